"""``Predictor``: image(s) -> ``Detections`` (preprocess, network, map averaging, decode)."""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .decode import DecodeParams, decode, get_params
from .skeleton import NUM_PAFS
from .preprocess import Geometry, geometry, prepare
from .structures import Detections, InputNorm


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; a clear error for an absent GPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return device


def resample_maps(maps: torch.Tensor, src: Geometry, dst: Geometry) -> torch.Tensor:
    """Resample ``(B, C, h, w)`` maps of geometry ``src`` onto the map grid of ``dst``.

    Both geometries describe the same image; cell centres are aligned exactly in image
    pixels (bilinear, border values beyond the edge).
    """
    (sfx, sfy), (dfx, dfy) = src.factor, dst.factor
    dh, dw = dst.map_size
    h, w = maps.shape[-2:]
    # dst cell u sits at src cell (u + 0.5) * r - 0.5 with r = src factor / dst factor.
    cx = (torch.arange(dw, device=maps.device, dtype=torch.float32) + 0.5) * (sfx / dfx)
    cy = (torch.arange(dh, device=maps.device, dtype=torch.float32) + 0.5) * (sfy / dfy)
    gx, gy = cx * (2.0 / w) - 1.0, cy * (2.0 / h) - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
    grid = grid.unsqueeze(0).expand(maps.shape[0], -1, -1, -1).to(maps.dtype)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


class Predictor:
    """Runs a PAF network on images and decodes people.

    height: network input height in pixels at scale 1 (OpenPose's ``-1x368``).
    scales: input scales whose maps are averaged (e.g. ``(0.5, 1, 1.5, 2)``); maps are
        resampled to the scale-1 map grid before averaging.
    ``last_timings`` holds the milliseconds of the last call: ``preprocess``,
    ``network``, ``resize`` (map averaging and copy to CPU), ``peaks``, ``limbs``,
    ``assembly``.
    """

    def __init__(self, model: torch.nn.Module, normalisation: InputNorm = InputNorm(), *,
                 height: int = 368, scales: Sequence[float] = (1.0,),
                 decode_params: DecodeParams | str | None = None,
                 device: str | torch.device | None = "auto", max_side: int | None = 4096):
        if height <= 0 or height % 8:
            raise ValueError(f"height must be a positive multiple of 8, got {height}")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive numbers, got {list(scales)}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.normalisation = normalisation
        self.height = int(height)
        self.scales = tuple(float(s) for s in scales)
        self.params = (decode_params if isinstance(decode_params, DecodeParams)
                       else get_params(decode_params))
        self.max_side = max_side
        self.stride = int(getattr(model, "stride", 8))
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, device="auto", **kwargs):
        """Load an openpaf checkpoint (None: the default weights) and wrap it."""
        from .checkpoint import load_checkpoint, load_default
        dev = resolve_device(device)
        loaded = load_default(dev) if path is None else load_checkpoint(path, dev)
        return cls(loaded.model, loaded.normalisation, device=dev, **kwargs)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def maps(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray,
                                                               Geometry]]:
        """Per image: ``(heatmaps (19, h, w), pafs (38, h, w), geometry)`` as float32 numpy,
        averaged over the scales on the scale-1 map grid of ``geometry``."""
        t0 = time.perf_counter()
        base = [geometry(im.shape[1::-1], self.height, 1.0, self.stride, self.max_side)
                for im in images]
        # Group (image, scale) inputs by padded size so equal shapes run as one batch.
        groups: dict[tuple[int, int], list[tuple[int, Geometry]]] = defaultdict(list)
        for i, im in enumerate(images):
            for s in self.scales:
                g = geometry(im.shape[1::-1], self.height, s, self.stride, self.max_side)
                groups[g.padded_size].append((i, g))
        inputs = {key: np.stack([prepare(images[i], g, self.normalisation)
                                 for i, g in items]) for key, items in groups.items()}
        t1 = time.perf_counter()
        outputs = {}
        for key, x in inputs.items():
            heat, paf = self.model.predict(torch.from_numpy(x).to(self.device))
            outputs[key] = torch.cat([heat.float(), paf.float()], dim=1)
        self._sync()
        t2 = time.perf_counter()
        sums: list[torch.Tensor | None] = [None] * len(images)
        for key, items in groups.items():
            for j, (i, g) in enumerate(items):
                m = outputs[key][j:j + 1]
                if g.map_size != base[i].map_size or g.factor != base[i].factor:
                    m = resample_maps(m, g, base[i])
                sums[i] = m if sums[i] is None else sums[i] + m
        result = []
        for i, total in enumerate(sums):
            avg = (total[0] / len(self.scales)).cpu().numpy()
            result.append((avg[:-NUM_PAFS], avg[-NUM_PAFS:], base[i]))
        t3 = time.perf_counter()
        self.last_timings = {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                             "resize": (t3 - t2) * 1e3}
        return result

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """``(H, W, 3)`` uint8 BGR images -> one ``Detections`` each."""
        if len(images) == 0:
            return []
        out = []
        timings = {"peaks": 0.0, "limbs": 0.0, "assembly": 0.0}
        for heat, paf, geo in self.maps(images):
            t: dict[str, float] = {}
            out.append(decode(heat, paf, self.params, scale=geo.map_scale,
                              image_size=geo.image_size, timings=t))
            for k in timings:
                timings[k] += t[k]
        self.last_timings.update(timings)
        return out

    def __call__(self, image: np.ndarray) -> Detections:
        return self.predict_batch([image])[0]
