"""Network maps saved per image (``infer --write-maps``) for people who post-process
them: float16 ``.npy`` or grey PNG strips, plus a JSON with the scale back to pixels."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np

from ..structures import ImageMaps
from .atomic import PathLike, atomic_write_bytes, atomic_write_image, atomic_write_json

MAPS_FORMATS = ("npy", "png")


def maps_strip(maps: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(C, h, w)`` maps -> ``(h, C * w)`` uint8 grey strip, channels side by side,
    ``[low, high]`` mapped onto ``[0, 255]`` (clipped)."""
    c, h, w = maps.shape
    unit = (np.clip(maps.astype(np.float32), low, high) - low) / (high - low)
    return np.rint(unit * 255.0).astype(np.uint8).transpose(1, 0, 2).reshape(h, c * w)


def write_maps(folder: PathLike, name: str, maps: ImageMaps, image_size: tuple[int, int],
               fmt: str = "npy") -> list[Path]:
    """Save one image's maps into ``folder`` for people who post-process them; returns the
    paths.

    npy: ``<name>_heatmaps.npy`` ``(19, h, w)`` and ``<name>_pafs.npy`` ``(38, h, w)``,
    float16. png: ``<name>_heatmaps.png`` / ``<name>_pafs.png``, the channels side by
    side (``maps_strip``): heatmap = value / 255, PAF = value / 127.5 - 1. Both:
    ``<name>_maps.json`` ``{"image_size": [W, H], "scale": [sx, sy], "format",
    "heatmaps", "pafs"}``; ``scale`` is image pixels per map cell, so
    ``decode(heatmaps, pafs, scale=scale)`` finds the people in image pixels.
    """
    if fmt not in MAPS_FORMATS:
        raise ValueError(f"maps format must be one of {', '.join(MAPS_FORMATS)}, got {fmt!r}")
    folder = Path(folder)
    files = {}
    for kind, arr, low in (("heatmaps", maps.heatmaps, 0.0), ("pafs", maps.pafs, -1.0)):
        path = folder / f"{name}_{kind}.{fmt}"
        if fmt == "npy":
            buf = BytesIO()
            np.save(buf, np.asarray(arr, np.float16))
            atomic_write_bytes(path, buf.getvalue())
        else:
            atomic_write_image(path, maps_strip(arr, low, 1.0))
        files[kind] = path
    meta = {"image_size": [int(v) for v in image_size],
            "scale": [float(v) for v in maps.scale], "format": fmt,
            "heatmaps": files["heatmaps"].name, "pafs": files["pafs"].name}
    return [*files.values(), atomic_write_json(folder / f"{name}_maps.json", meta)]


__all__ = ["MAPS_FORMATS", "maps_strip", "write_maps"]
