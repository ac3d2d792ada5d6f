"""Maps -> people: the CPU post-processor, usable with any network's outputs.

``decode(heatmaps, pafs, params, scale=..., spec=...)`` takes numpy maps in the layout of a
``KeypointSpec`` (default: the CMU COCO layout, ``(18 or 19, H, W)`` heatmaps, ``(38, H,
W)`` PAFs, float32) and returns ``Detections`` with keypoints in image pixels. Works at
network resolution (no map resizing): peaks are refined to sub-cell precision instead.
Only numpy and scipy are needed (no torch).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from ..structures import Detections, Person
from .assemble import group_peaks, select_people
from .limbs import Connections, score_limbs
from .params import PRESETS, DecodeParams, get_params
from .peaks import Peaks, find_peaks

__all__ = ["decode", "PafDecoder", "DecodeParams", "PRESETS", "get_params", "Peaks",
           "Connections", "find_peaks", "score_limbs", "group_peaks", "select_people"]


def _as_xy(scale) -> tuple[float, float]:
    """``scale`` as ``(sx, sy)``; ValueError unless both are finite and > 0."""
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    sx, sy = float(sx), float(sy)
    if not (0 < sx < np.inf and 0 < sy < np.inf):
        raise ValueError(f"scale (image pixels per map cell) must be finite and > 0, "
                         f"got {scale}")
    return sx, sy


def decode(heatmaps: np.ndarray, pafs: np.ndarray, params: DecodeParams | str | None = None,
           *, scale: float | tuple[float, float] = 1.0,
           image_size: tuple[int, int] | None = None,
           timings: dict[str, float] | None = None,
           peaks: Peaks | None = None,
           spec: KeypointSpec = OPENPOSE_COCO18) -> Detections:
    """Find people in one image's maps.

    heatmaps: ``(K or K + 1, H, W)`` float32 (background channel ignored), K keypoints of
        ``spec`` (the weights' ``KeypointSpec``; default OpenPose COCO-18).
    pafs: ``(2 L, H, W)`` float32, channel layout of ``spec.paf_channels``.
    params: ``DecodeParams``, a preset name ("cvpr2017", "openpose") or None (default).
    scale: image pixels per map cell, a number or ``(sx, sy)``. A map cell ``c`` lands at
        image pixel ``(c + 0.5) * scale - 0.5`` (e.g. stride 8 / resize factor).
    image_size: ``(width, height)`` of the image; defaults to the map size times scale.
    timings: if given, filled with milliseconds per stage (``peaks``, ``limbs``,
        ``assembly``).
    peaks: peaks found elsewhere (e.g. on a GPU by ``predict.find_peaks_torch``); then
        ``heatmaps`` is not used and may be None.
    Every peak also goes to ``Detections.part_candidates`` (image pixels, per type).
    """
    if not isinstance(params, DecodeParams):
        params = get_params(params)
    pafs = np.asarray(pafs, dtype=np.float32)
    if peaks is None:
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
        if heatmaps.ndim != 3 or pafs.ndim != 3 or heatmaps.shape[1:] != pafs.shape[1:]:
            raise ValueError(f"heatmaps {heatmaps.shape} and pafs {pafs.shape} must be "
                             "(C, H, W) maps of the same H, W")
    elif pafs.ndim != 3:
        raise ValueError(f"pafs must be (C, H, W), got {pafs.shape}")
    sx, sy = _as_xy(scale)
    if image_size is None:
        image_size = (round(pafs.shape[2] * sx), round(pafs.shape[1] * sy))
    t0 = time.perf_counter()
    if peaks is None:
        peaks = find_peaks(heatmaps, params.peak_threshold, max_peaks=params.max_peaks,
                           refine=params.refine, num_keypoints=spec.num_keypoints)
    t1 = time.perf_counter()
    connections = score_limbs(peaks, pafs, params, scale=(sx, sy),
                              image_height=float(image_size[1]), spec=spec)
    t2 = time.perf_counter()
    members, limb_scores, scores = select_people(peaks, *group_peaks(peaks, connections, spec),
                                                 params, spec)
    # Every peak in image pixels, [x, y, score]: people pick rows, candidates are all.
    xys = np.empty((len(peaks), 3), dtype=np.float32)
    xys[:, :2] = (peaks.xy + 0.5) * np.array([sx, sy], dtype=np.float32) - 0.5
    xys[:, 2] = peaks.score
    people = []
    for m, ls, s in zip(members, limb_scores, scores):
        kps = np.zeros((len(m), 3), dtype=np.float32)
        found = m >= 0
        kps[found] = xys[m[found]]
        people.append(Person(keypoints=kps, score=float(s), limb_scores=ls))
    if timings is not None:
        t3 = time.perf_counter()
        timings.update(peaks=(t1 - t0) * 1e3, limbs=(t2 - t1) * 1e3, assembly=(t3 - t2) * 1e3)
    return Detections(image_size=(int(image_size[0]), int(image_size[1])), people=people,
                      part_candidates=np.split(xys, peaks.offsets[1:-1]), spec=spec)


@dataclass
class PafDecoder:
    """``decode`` with fixed params and spec: ``PafDecoder(params)(heatmaps, pafs,
    scale=...)``."""

    params: DecodeParams = field(default_factory=DecodeParams)
    spec: KeypointSpec = OPENPOSE_COCO18

    def __call__(self, heatmaps: np.ndarray, pafs: np.ndarray, *, scale=1.0,
                 image_size=None) -> Detections:
        return decode(heatmaps, pafs, self.params, scale=scale, image_size=image_size,
                      spec=self.spec)
