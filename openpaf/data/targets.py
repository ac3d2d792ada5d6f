"""Ground-truth maps: Gaussian heatmaps and part affinity fields at the network's stride.

The same code renders training targets and the oracle maps of ``openpaf eval --oracle``.
Coordinates are network-input pixels with pixel centres at integers; map cell ``c`` is
centred on input pixel ``stride * c + (stride - 1) / 2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..skeleton import OPENPOSE_COCO18, KeypointSpec


@dataclass(frozen=True)
class TargetParams:
    """stride: input pixels per map cell. sigma: heatmap Gaussian std, input pixels.
    paf_width: half-width of a limb's field, input pixels (CMU: one cell = 8 px)."""

    stride: int = 8
    sigma: float = 7.0
    paf_width: float = 8.0


def _cell_centres(n: int, stride: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32) * stride + (stride - 1) / 2.0


def render_heatmaps(keypoints: np.ndarray, map_size: tuple[int, int],
                    params: TargetParams = TargetParams(),
                    spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
    """``(N, K, 3)`` keypoints [x, y, v] (v > 0 = labelled) -> ``(K + 1, H, W)`` float32
    (K = ``spec.num_keypoints``, 18 for COCO-18).

    Each part channel is the max over people of a Gaussian at the keypoint; channel K
    (background) is ``1 - max`` over the part channels.
    """
    h, w = map_size
    nk = spec.num_keypoints
    out = np.zeros((spec.num_heatmaps, h, w), dtype=np.float32)
    kps = np.asarray(keypoints, dtype=np.float32).reshape(-1, nk, 3)
    n, k = np.nonzero(kps[:, :, 2] > 0)
    if len(n):
        x, y = kps[n, k, 0], kps[n, k, 1]
        inv = -1.0 / (2.0 * params.sigma ** 2)
        ex = np.exp((_cell_centres(w, params.stride)[None, :] - x[:, None]) ** 2 * inv)
        ey = np.exp((_cell_centres(h, params.stride)[None, :] - y[:, None]) ** 2 * inv)
        g = ey[:, :, None] * ex[:, None, :]                     # (P, H, W)
        np.maximum.at(out, k, g)
    out[nk] = 1.0 - out[:nk].max(axis=0)
    return out


def render_pafs(keypoints: np.ndarray, map_size: tuple[int, int],
                params: TargetParams = TargetParams(),
                spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
    """``(N, K, 3)`` keypoints -> ``(2 L, H, W)`` float32 part affinity fields (channels
    ``spec.paf_channels``).

    A limb whose two ends are labelled sets the unit vector from its first to its second
    keypoint on every cell within ``paf_width`` of the segment; overlapping limbs of the
    same type are averaged.
    """
    h, w = map_size
    out = np.zeros((spec.num_pafs, h, w), dtype=np.float32)
    kps = np.asarray(keypoints, dtype=np.float32).reshape(-1, spec.num_keypoints, 3)
    limbs = np.array(spec.limbs).reshape(-1, 2)
    a, b = kps[:, limbs[:, 0]], kps[:, limbs[:, 1]]             # (N, L, 3)
    n, limb = np.nonzero((a[..., 2] > 0) & (b[..., 2] > 0))
    if len(n) == 0:
        return out
    pa, pb = a[n, limb, :2], b[n, limb, :2]                     # (L, 2)
    d = pb - pa
    length = np.hypot(d[:, 0], d[:, 1])
    ok = length > 1e-3
    n, limb, pa, d, length = n[ok], limb[ok], pa[ok], d[ok], length[ok]
    u = d / length[:, None]
    gx = _cell_centres(w, params.stride)[None, None, :] - pa[:, 0, None, None]
    gy = _cell_centres(h, params.stride)[None, :, None] - pa[:, 1, None, None]
    along = gx * u[:, 0, None, None] + gy * u[:, 1, None, None]   # (L, H, W)
    across = np.abs(gx * u[:, 1, None, None] - gy * u[:, 0, None, None])
    on = ((along >= -params.paf_width / 2) & (along <= length[:, None, None]
                                              + params.paf_width / 2)
          & (across <= params.paf_width)).astype(np.float32)
    count = np.zeros((spec.num_limbs, h, w), dtype=np.float32)
    np.add.at(count, limb, on)
    sums = np.zeros((spec.num_limbs, 2, h, w), dtype=np.float32)
    np.add.at(sums, limb, on[:, None] * u[:, :, None, None])
    sums /= np.maximum(count, 1.0)[:, None]
    out[np.array(spec.paf_channels).ravel()] = sums.reshape(-1, h, w)
    return out


def render_targets(keypoints: np.ndarray, map_size: tuple[int, int],
                   params: TargetParams = TargetParams(),
                   spec: KeypointSpec = OPENPOSE_COCO18) -> tuple[np.ndarray, np.ndarray]:
    """``(heatmaps (K + 1, H, W), pafs (2 L, H, W))`` for the people in ``keypoints``."""
    return (render_heatmaps(keypoints, map_size, params, spec),
            render_pafs(keypoints, map_size, params, spec))
