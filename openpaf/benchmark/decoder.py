"""The decoder alone: synthetic crowds and oracle maps of a COCO file."""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..decode import decode, get_params
from ..evaluate import ORACLE_HEIGHT, gt_keypoints, load_ground_truth, oracle_maps
from ..preprocess import geometry
from .machine import summary_ms

# --- synthetic crowds ------------------------------------------------------------------

# A standing person about 186 px tall in the 18-keypoint order, (x, y) about the hips.
_TEMPLATE = np.array([
    [0, -80], [0, -60], [-20, -60], [-28, -30], [-30, 0], [20, -60], [28, -30], [30, 0],
    [-12, 0], [-14, 50], [-15, 100], [12, 0], [14, 50], [15, 100], [-5, -86], [5, -86],
    [-10, -82], [10, -82]], dtype=np.float32)
_TEMPLATE_HEIGHT = 186.0


def synthetic_crowd(num_people: int, image_size: tuple[int, int] = (960, 540),
                    seed: int = 0, missing: float = 0.1) -> np.ndarray:
    """``(N, 18, 3)`` ground-truth-style keypoints (image pixels, v=2 or 0) of a crowd.

    People are laid on a jittered grid (one per cell, so they rarely overlap) with a
    random size (55-90 % of the cell height), lean (+-15 degrees), per-keypoint jitter
    and ``missing`` of the keypoints unlabelled; keypoints outside the image are dropped.
    """
    rng = np.random.default_rng(seed)
    w, h = image_size
    kps = np.zeros((num_people, len(_TEMPLATE), 3), np.float32)
    if num_people == 0:
        return kps
    cols = max(1, math.ceil(math.sqrt(num_people * w / h)))
    rows = math.ceil(num_people / cols)
    cw, ch = w / cols, h / rows
    cells = rng.permutation(rows * cols)[:num_people]
    for i, cell in enumerate(cells):
        r, c = divmod(int(cell), cols)
        height = ch * rng.uniform(0.55, 0.9)
        size = height / _TEMPLATE_HEIGHT
        angle = np.deg2rad(rng.uniform(-15, 15))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]],
                       np.float32)
        pts = (_TEMPLATE * size) @ rot.T
        pts += rng.normal(0.0, 0.03 * height, pts.shape).astype(np.float32)
        pts *= np.array([rng.choice([-1.0, 1.0]), 1.0], np.float32)   # facing either way
        centre = np.array([(c + 0.5 + rng.uniform(-0.15, 0.15)) * cw,
                           (r + 0.5 + rng.uniform(-0.1, 0.1)) * ch + 0.04 * height],
                          np.float32)
        kps[i, :, :2] = pts + centre
        kps[i, :, 2] = np.where(rng.random(len(_TEMPLATE)) < missing, 0.0, 2.0)
    inside = ((kps[..., 0] >= 0) & (kps[..., 0] <= w - 1) & (kps[..., 1] >= 0)
              & (kps[..., 1] <= h - 1))
    kps[~inside] = 0.0
    return kps


def crowd_maps(num_people: int, image_size: tuple[int, int] = (960, 540),
               height: int = ORACLE_HEIGHT, seed: int = 0):
    """``(heatmaps, pafs, geometry, keypoints)`` of a ``synthetic_crowd`` at the map grid
    of a ``height``-pixel network input (the oracle maps of ``openpaf eval --oracle``)."""
    kps = synthetic_crowd(num_people, image_size, seed)
    geo = geometry(image_size, height)
    heat, paf = oracle_maps(kps, geo)
    return heat, paf, geo, kps


def _time_decode(maps, params, warmup: int, repeats: int) -> tuple[dict, int]:
    """Per-stage and total decode ms lists over ``repeats`` decodes of each map set."""
    out: dict[str, list[float]] = {"peaks": [], "limbs": [], "assembly": [], "total": []}
    found = 0
    for heat, paf, geo in maps:
        for _ in range(warmup):
            decode(heat, paf, params, scale=geo.map_scale, image_size=geo.image_size)
        for _ in range(repeats):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            det = decode(heat, paf, params, scale=geo.map_scale, image_size=geo.image_size,
                         timings=t)
            out["total"].append((time.perf_counter() - t0) * 1e3)
            for k in ("peaks", "limbs", "assembly"):
                out[k].append(t[k])
        found += len(det)
    return out, found


def benchmark_crowds(people: Sequence[int] = (1, 5, 10, 20), *, height: int = ORACLE_HEIGHT,
                     image_size: tuple[int, int] = (960, 540), params=None,
                     crowds: int = 3, repeats: int = 10, warmup: int = 1,
                     seed: int = 0) -> dict:
    """Decoder timings on synthetic crowds: ``{str(n): {"total", "peaks", "limbs",
    "assembly": {median, p90}, "people_found": mean per crowd, "map_size": [h, w]}}``."""
    params = get_params(params)
    table = {}
    for n in people:
        maps = []
        for c in range(crowds):
            heat, paf, geo, _ = crowd_maps(n, image_size, height, seed + 1000 * n + c)
            maps.append((heat, paf, geo))
        times, found = _time_decode(maps, params, warmup, repeats)
        row = {k: summary_ms(v) for k, v in times.items()}
        row["people_found"] = round(found / crowds, 2)
        row["map_size"] = list(maps[0][2].map_size)
        table[str(n)] = row
    return table


def benchmark_oracle(ann_file: str | Path, *, height: int = ORACLE_HEIGHT, params=None,
                     repeats: int = 3, warmup: int = 1,
                     max_images: int | None = None) -> tuple[dict, int]:
    """Decoder stage timings on oracle maps of every image of a COCO keypoint file.

    Returns ``({"peaks", "limbs", "assembly", "total": [ms, ...]}, images)``.
    """
    coco = load_ground_truth(ann_file)
    maps = []
    for image_id in sorted(coco.getImgIds())[:max_images]:
        info = coco.loadImgs(image_id)[0]
        geo = geometry((info["width"], info["height"]), height)
        heat, paf = oracle_maps(gt_keypoints(coco, image_id), geo)
        maps.append((heat, paf, geo))
    times, _ = _time_decode(maps, get_params(params), warmup, repeats)
    return times, len(maps)
