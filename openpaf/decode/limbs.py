"""Stage 2 of decoding: PAF line-integral scores of candidate limbs, greedy matching."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from .params import DecodeParams
from .peaks import Peaks


_PAF_XY: dict[int, tuple] = {}


def paf_xy(spec: KeypointSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(x channels, y channels)``, each ``(L,)`` int64: limb k's field in the PAFs
    (cached per spec object: hashing a spec costs more than the lookup)."""
    hit = _PAF_XY.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = _PAF_XY[id(spec)] = (spec, np.array([c[0] for c in spec.paf_channels]),
                                   np.array([c[1] for c in spec.paf_channels]))
    return hit[1], hit[2]


_PAF_X, _PAF_Y = paf_xy(OPENPOSE_COCO18)


@dataclass
class Connections:
    """Accepted limbs of one image (each peak used at most once per limb type).

    limb: ``(M,)`` int64 limb index into the spec's ``limbs``.
    a, b: ``(M,)`` int64 global peak indices of the limb's two ends (``limbs[limb]`` order).
    score: ``(M,)`` float32 PAF score with the distance prior, sorted descending.
    """

    limb: np.ndarray
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    def __post_init__(self):
        n = len(self.score)
        if not (len(self.limb) == len(self.a) == len(self.b) == n):
            raise ValueError("Connections: limb, a, b and score must have the same length")

    def __len__(self) -> int:
        return len(self.score)


def candidate_pairs(peaks: Peaks, spec: KeypointSpec = OPENPOSE_COCO18
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (limb, a, b) pair of peaks that could form a limb: ``(P,)`` int64 each."""
    limbs, a_idx, b_idx = [], [], []
    for k, (pa, pb) in enumerate(spec.limbs):
        ia, ib = peaks.indices(pa), peaks.indices(pb)
        if len(ia) == 0 or len(ib) == 0:
            continue
        ga, gb = np.meshgrid(ia, ib, indexing="ij")
        a_idx.append(ga.ravel())
        b_idx.append(gb.ravel())
        limbs.append(np.full(ga.size, k, dtype=np.int64))
    if not limbs:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(limbs), np.concatenate(a_idx), np.concatenate(b_idx)


def _bilinear_channels(maps: np.ndarray, channels, x: np.ndarray,
                       y: np.ndarray) -> list[np.ndarray]:
    """Sample ``maps[ch, y, x]`` bilinearly for each channel array ``ch`` of
    ``channels`` (each broadcasts against ``x``/``y``) at the same points, sharing the
    index and weight arithmetic; gathers from the flat map (faster than 3-D fancy
    indexing)."""
    _, h, w = maps.shape
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros_like(x, int)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros_like(y, int)
    fx, fy = x - x0, y - y0
    gx, gy = 1 - fx, 1 - fy
    dx = np.minimum(x0 + 1, w - 1) - x0
    dy = (np.minimum(y0 + 1, h - 1) - y0) * w
    flat = maps.reshape(-1)
    out = []
    for ch in channels:
        i00 = np.asarray(ch) * (h * w) + y0 * w + x0
        i10 = i00 + dy
        out.append((flat[i00] * gx + flat[i00 + dx] * fx) * gy
                   + (flat[i10] * gx + flat[i10 + dx] * fx) * fy)
    return out


def _probe_samples(num_samples: int, min_pass_ratio: float) -> np.ndarray | None:
    """Sample indices that reject a candidate exactly when all of them fail.

    A candidate needs ``ceil(ratio * S)`` passing samples, so it may fail at most
    ``f = S - ceil(ratio * S)``; if ``f + 1`` chosen samples all fail it cannot pass.
    None when probing cannot save work.
    """
    needed = math.ceil(min_pass_ratio * num_samples - 1e-9)
    probes = num_samples - needed + 1
    if needed <= 0 or probes >= num_samples:
        return None
    return np.unique(np.round(np.linspace(0, num_samples - 1, probes + 2)[1:-1]).astype(int))


def score_limbs(peaks: Peaks, pafs: np.ndarray, params: DecodeParams,
                scale: tuple[float, float] = (1.0, 1.0),
                image_height: float | None = None,
                spec: KeypointSpec = OPENPOSE_COCO18) -> Connections:
    """Score every candidate limb by its PAF line integral; keep those that pass.

    pafs: ``(2 L, H, W)`` float32 at the same resolution as the peaks (L = the spec's
    limbs, channels ``spec.paf_channels``).
    scale: ``(sx, sy)`` image pixels per map cell (for the distance prior).
    image_height: in pixels, for the distance prior; defaults to ``H * sy``.
    A candidate passes if at least ``min_pass_ratio`` of its ``num_samples`` samples
    exceed ``paf_threshold`` and its mean score plus distance prior is > 0.

    Candidates are first probed at the few samples that decide the pass rule on their
    own (``_probe_samples``); only survivors are sampled fully. Per sample the arithmetic
    is the same either way, so results equal full sampling bit for bit.
    """
    if pafs.ndim != 3 or pafs.shape[0] != spec.num_pafs:
        raise ValueError(f"pafs must be ({spec.num_pafs}, H, W), got {pafs.shape}")
    paf_x, paf_y = paf_xy(spec)
    limb, a, b = candidate_pairs(peaks, spec)
    if len(limb) == 0:
        return Connections(limb, a, b, np.zeros(0, np.float32))
    pafs = np.ascontiguousarray(pafs, dtype=np.float32)
    t = np.linspace(0.0, 1.0, params.num_samples)
    probe = _probe_samples(params.num_samples, params.min_pass_ratio)
    if probe is not None:
        pa, pb = peaks.xy[a].astype(np.float64), peaks.xy[b].astype(np.float64)
        d = pb - pa
        unit = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
        tp = t[probe]
        vx, vy = _bilinear_channels(pafs, (paf_x[limb][:, None], paf_y[limb][:, None]),
                                    pa[:, 0:1] + tp * d[:, 0:1], pa[:, 1:2] + tp * d[:, 1:2])
        alive = ((vx * unit[:, 0:1] + vy * unit[:, 1:2]) > params.paf_threshold).any(axis=1)
        limb, a, b = limb[alive], a[alive], b[alive]
    pa, pb = peaks.xy[a].astype(np.float64), peaks.xy[b].astype(np.float64)
    d = pb - pa
    norm = np.hypot(d[:, 0], d[:, 1])
    unit = d / np.maximum(norm, 1e-6)[:, None]
    sx = pa[:, 0:1] + t * d[:, 0:1]                        # (P, S)
    sy = pa[:, 1:2] + t * d[:, 1:2]
    vx, vy = _bilinear_channels(pafs, (paf_x[limb][:, None], paf_y[limb][:, None]), sx, sy)
    dots = vx * unit[:, 0:1] + vy * unit[:, 1:2]           # (P, S)
    score = dots.mean(axis=1)
    if params.distance_prior:
        height = image_height if image_height is not None else pafs.shape[1] * scale[1]
        length_px = np.maximum(np.hypot(d[:, 0] * scale[0], d[:, 1] * scale[1]), 1e-6)
        score = score + np.minimum(0.5 * height / length_px - 1.0, 0.0)
    passed = ((dots > params.paf_threshold).sum(axis=1)
              >= params.min_pass_ratio * params.num_samples - 1e-9)
    keep = passed & (score > 0) & (norm > 1e-6)
    return match_greedy(limb[keep], a[keep], b[keep], score[keep].astype(np.float32))


def match_greedy(limb: np.ndarray, a: np.ndarray, b: np.ndarray,
                 score: np.ndarray) -> Connections:
    """Per limb type, take candidates by descending score, each peak at most once."""
    order = np.argsort(-score, kind="stable")
    limb, a, b, score = limb[order], a[order], b[order], score[order]
    keep = np.zeros(len(score), dtype=bool)
    used: set[tuple[int, int]] = set()
    for i, (k, ia, ib) in enumerate(zip(limb.tolist(), a.tolist(), b.tolist())):
        if (k, ia) in used or (k, ib) in used:
            continue
        used.add((k, ia))
        used.add((k, ib))
        keep[i] = True
    return Connections(limb[keep], a[keep], b[keep], score[keep])
