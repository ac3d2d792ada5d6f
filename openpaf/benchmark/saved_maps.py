"""The decoder on a real network's maps, saved once and decoded many times.

``save_maps`` runs a ``Predictor`` over the images of a COCO keypoint file and writes, per
image, ``<image_id>.npz`` (``heatmaps`` (19, H, W) and ``pafs`` (38, H, W) float16,
``map_scale`` (sx, sy), ``image_size`` (W, H)) plus ``maps.json`` (what made them).
``benchmark_saved_maps`` decodes such a folder with openpaf's decoder and scores it with
COCOeval: the decoder measured on real maps without running the network again, so
decoder settings can be compared cheaply and side by side with other decoders given the
same maps.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..data.records import load_ground_truth
from ..decode import DecodeParams, decode, get_params
from ..evaluate import coco_stats
from ..io.writers import coco_results
from .machine import summary_ms

INDEX = "maps.json"


def save_maps(predictor, ann_file: str | Path, images_dir: str | Path, out_dir: str | Path,
              *, max_images: int | None = None,
              progress: Callable[[str], None] | None = None) -> int:
    """Save the maps of every image of ``ann_file`` (sorted ids, first ``max_images``)
    under ``out_dir``; returns the number of images saved. Missing images raise
    ``FileNotFoundError``."""
    from ..io.images import load_image
    coco = load_ground_truth(ann_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = sorted(coco.getImgIds())[:max_images]
    for n, image_id in enumerate(ids):
        path = Path(images_dir) / coco.imgs[image_id]["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image")
        (heat, paf, geo), = predictor.maps([load_image(path)])
        np.savez(out / f"{image_id}.npz", heatmaps=heat.astype(np.float16),
                 pafs=paf.astype(np.float16), map_scale=np.array(geo.map_scale),
                 image_size=np.array(geo.image_size))
        if progress and (n + 1) % 25 == 0:
            progress(f"saved maps of {n + 1}/{len(ids)} images")
    index = {"annotations": str(ann_file), "images_dir": str(images_dir),
             "image_ids": ids, "weights": str(getattr(predictor, "weights_path", "")),
             "height": predictor.height, "scales": list(predictor.scales),
             "flip": predictor.flip, "precision": predictor.precision}
    (out / INDEX).write_text(json.dumps(index, indent=1))
    return len(ids)


def load_maps(folder: str | Path) -> Iterator[tuple[int, np.ndarray, np.ndarray,
                                                     tuple[float, float], tuple[int, int]]]:
    """``(image_id, heatmaps, pafs, map_scale, image_size)`` per saved image, float32
    maps, in the index's order."""
    folder = Path(folder)
    index = folder / INDEX
    if not index.is_file():
        raise FileNotFoundError(f"{folder}: no {INDEX} (save maps with `openpaf benchmark "
                                "--save-maps`)")
    for image_id in json.loads(index.read_text())["image_ids"]:
        with np.load(folder / f"{image_id}.npz") as z:
            yield (int(image_id), z["heatmaps"].astype(np.float32),
                   z["pafs"].astype(np.float32), tuple(z["map_scale"].tolist()),
                   tuple(int(v) for v in z["image_size"]))


def benchmark_saved_maps(folder: str | Path, ann_file: str | Path,
                         params: DecodeParams | str | None = None, *,
                         repeats: int = 1) -> dict:
    """Decode saved maps and score them: ``{"AP", "AP50", ..., "images", "detections",
    "decode_ms": {median, p90}, "settings"}``. Each image is decoded ``repeats`` times
    (timed); the people of the last decode are scored."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    params = params if isinstance(params, DecodeParams) else get_params(params)
    coco = load_ground_truth(ann_file)
    results, ms, ids = [], [], []
    for image_id, heat, paf, scale, size in load_maps(folder):
        if image_id not in coco.imgs:
            raise ValueError(f"{folder}: image {image_id} is not in {ann_file}")
        for _ in range(repeats):
            t0 = time.perf_counter()
            det = decode(heat, paf, params, scale=scale, image_size=size)
            ms.append((time.perf_counter() - t0) * 1e3)
        results.extend(coco_results(image_id, det))
        ids.append(image_id)
    stats, _ = coco_stats(coco, results, ids)
    report = {k: round(v, 4) for k, v in stats.items()}
    made = json.loads((Path(folder) / INDEX).read_text())
    report.update(images=len(ids), detections=len(results), decode_ms=summary_ms(ms),
                  settings={"maps": str(folder), "annotations": str(ann_file),
                            "made_with": {k: v for k, v in made.items() if k != "image_ids"},
                            "repeats": repeats, "decode": asdict(params)})
    return report


def format_saved_maps(report: dict) -> str:
    """One line: AP, AP50 and decode ms of a ``benchmark_saved_maps`` report."""
    d = report["decode_ms"]
    return (f"{report['settings']['maps']}: {report['images']} images, "
            f"AP {report['AP']:.3f}, AP50 {report['AP50']:.3f}, decode "
            f"{d['median']:.2f} ms median ({d['p90']:.2f} p90)")
