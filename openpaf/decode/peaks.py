"""Stage 1 of decoding: heatmap peaks (non-maximum suppression + sub-pixel refinement)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from ..skeleton import NUM_KEYPOINTS


@dataclass
class Peaks:
    """All keypoint candidates of one image, grouped by keypoint type.

    xy: ``(N, 2)`` float32 (x, y) in map cells (cell centres at integers).
    score: ``(N,)`` float32 heatmap value at the peak.
    part: ``(N,)`` int64 keypoint type, non-decreasing.
    offsets: ``(K + 1,)`` int64; peaks of type k are ``offsets[k]:offsets[k + 1]``.
    """

    xy: np.ndarray
    score: np.ndarray
    part: np.ndarray
    offsets: np.ndarray

    def __post_init__(self):
        n = len(self.score)
        if self.xy.shape != (n, 2) or self.part.shape != (n,):
            raise ValueError("Peaks: xy must be (N, 2) and part (N,) with N = len(score)")
        if self.offsets[-1] != n:
            raise ValueError("Peaks: offsets[-1] must equal the number of peaks")

    def __len__(self) -> int:
        return len(self.score)

    def indices(self, k: int) -> np.ndarray:
        """Global indices of the peaks of keypoint type ``k``."""
        return np.arange(self.offsets[k], self.offsets[k + 1])


def _refine(hm: np.ndarray, k: np.ndarray, y: np.ndarray, x: np.ndarray):
    """Sub-pixel offsets (dx, dy) in [-0.5, 0.5] from a parabola fit to log(heatmap).

    Exact for a Gaussian peak; neighbours outside the map count as the peak itself.
    """
    _, h, w = hm.shape
    logv = lambda yy, xx: np.log(np.maximum(hm[k, yy, xx], 1e-6))  # noqa: E731
    c = logv(y, x)
    out = []
    for lo, hi in (
        (logv(y, np.maximum(x - 1, 0)), logv(y, np.minimum(x + 1, w - 1))),
        (logv(np.maximum(y - 1, 0), x), logv(np.minimum(y + 1, h - 1), x)),
    ):
        curv = lo - 2 * c + hi
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(curv < -1e-6, 0.5 * (lo - hi) / curv, 0.0)
        out.append(np.clip(d, -0.5, 0.5))
    return out[0], out[1]


def find_peaks(heatmaps: np.ndarray, threshold: float = 0.1, *, max_peaks: int = 64,
               refine: bool = True) -> Peaks:
    """Local maxima (3x3) above ``threshold`` in each keypoint heatmap.

    heatmaps: ``(18 or 19, H, W)`` float32; a background channel (index 18) is ignored.
    Returns at most ``max_peaks`` peaks per type, highest first within each type.
    """
    if heatmaps.ndim != 3 or heatmaps.shape[0] < NUM_KEYPOINTS:
        raise ValueError(f"heatmaps must be ({NUM_KEYPOINTS} or {NUM_KEYPOINTS + 1}, H, W), "
                         f"got {heatmaps.shape}")
    hm = np.ascontiguousarray(heatmaps[:NUM_KEYPOINTS], dtype=np.float32)
    is_peak = (hm > threshold) & (hm >= maximum_filter(hm, size=(1, 3, 3), mode="constant"))
    k, y, x = np.nonzero(is_peak)
    score = hm[k, y, x]
    # Sort by type, then by score (descending), and cap the count per type.
    order = np.lexsort((-score, k))
    k, y, x, score = k[order], y[order], x[order], score[order]
    counts = np.bincount(k, minlength=NUM_KEYPOINTS)
    if counts.max(initial=0) > max_peaks:
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        keep = (np.arange(len(k)) - first[k]) < max_peaks
        k, y, x, score = k[keep], y[keep], x[keep], score[keep]
        counts = np.minimum(counts, max_peaks)
    xy = np.stack([x, y], axis=1).astype(np.float32)
    if refine and len(k):
        dx, dy = _refine(hm, k, y, x)
        xy += np.stack([dx, dy], axis=1).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Peaks(xy=xy, score=score.astype(np.float32), part=k.astype(np.int64),
                 offsets=offsets)
