"""Frame-to-frame person tracking: stable ``Person.id`` across video frames.

Each ``Tracker.update`` call matches the frame's people to the live tracks with a
similarity that mixes keypoint OKS and box IoU, both measured against each track's
constant-velocity *prediction* (last observation + velocity x frames since seen, the
velocity being the mean displacement of the keypoints common to the last two
observations over their frame gap), then solves the assignment with the Hungarian method.
Unmatched people start new tracks; tracks unseen for more than ``max_age`` frames die.
Ids are ints from 0 upwards and are never reused (until ``reset``).

Optionally a One-Euro filter (Casiez et al., CHI 2012) per track smooths the matched
people's keypoints in place. Matching and prediction always use the raw detections, so
the filter's lag never feeds back into the association.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .skeleton import OPENPOSE_COCO18, KeypointSpec
from .structures import Detections, Person

__all__ = ["TrackerParams", "Tracker", "OneEuroFilter", "keypoint_sigmas", "oks_matrix",
           "iou_matrix", "assign"]


def keypoint_sigmas(spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
    """``(K,)`` float64 OKS sigmas of ``spec`` in its order (COCO-18: COCO's, the neck
    gets the shoulders' value)."""
    return np.asarray(spec.sigmas, np.float64)


@dataclass
class TrackerParams:
    """Options of ``Tracker``.

    max_age: frames a track may go unseen and still be matched (short occlusions); a
        track missed in more than ``max_age`` consecutive frames dies and its id is gone.
    min_similarity: gate in [0, 1]; a person/track pair below it is never matched.
        For a track with no velocity yet (seen once), 0.2 tolerates a ~27 px step of a
        170 px tall person, 0.3 only ~22 px.
    oks_weight, iou_weight: weights of keypoint OKS and box IoU in the similarity
        ``(oks_weight * OKS + iou_weight * IoU) / (oks_weight + iou_weight)``.
    min_area: floor (px^2) of the OKS object area, so one- or two-keypoint people (tiny
        boxes) do not get an absurdly strict OKS.
    motion: predict each track with constant velocity (off: match the last position).
    smooth: One-Euro-smooth the keypoints of tracked people in place.
    min_cutoff: One-Euro minimum cutoff frequency (Hz); lower = smoother when still.
    beta: One-Euro speed coefficient (Hz per px/s); higher = less lag when moving.
    d_cutoff: cutoff (Hz) of the filter on the speed estimate.
    fps: frame rate used for the filter's clock when ``update`` gets no ``time``.
    """

    max_age: int = 15
    min_similarity: float = 0.2
    oks_weight: float = 0.75
    iou_weight: float = 0.25
    min_area: float = 32.0 ** 2
    motion: bool = True
    smooth: bool = False
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    fps: float = 30.0

    def __post_init__(self):
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {self.max_age}")
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [0, 1], got {self.min_similarity}")
        if self.oks_weight < 0 or self.iou_weight < 0 or self.oks_weight + self.iou_weight <= 0:
            raise ValueError("oks_weight and iou_weight must be >= 0 with a positive sum")
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0 or self.fps <= 0:
            raise ValueError("min_cutoff, d_cutoff and fps must be > 0 and beta >= 0")


# --------------------------------------------------------------------------- similarity

def _boxes(xy: np.ndarray, found: np.ndarray) -> np.ndarray:
    """``(N, 18, 2)`` points + ``(N, 18)`` mask -> ``(N, 4)`` ``x0, y0, x1, y1`` (0 if empty)."""
    big = np.float64(np.inf)
    x0y0 = np.where(found[..., None], xy, big).min(axis=1)
    x1y1 = np.where(found[..., None], xy, -big).max(axis=1)
    boxes = np.concatenate([x0y0, x1y1], axis=1)
    return np.where(found.any(axis=1, keepdims=True), boxes, 0.0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` (``x0, y0, x1, y1``) -> ``(N, M)``.

    Empty (zero-area) boxes have IoU 0 with everything.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0.0, None).prod(axis=-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def oks_matrix(a: np.ndarray, b: np.ndarray, min_area: float = 32.0 ** 2,
               spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
    """Object keypoint similarity of ``a (N, K, 3)`` and ``b (M, K, 3)`` -> ``(N, M)``,
    with ``spec``'s sigmas (K = ``spec.num_keypoints``).

    ``[x, y, conf]`` in pixels; only keypoints found (conf > 0) in both count:
    ``OKS = mean_k exp(-d_k^2 / (2 * area * (2 sigma_k)^2))`` where ``area`` (px^2) is
    the mean of the two keypoint boxes' areas, floored at ``min_area``. Pairs with no
    common keypoint get 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, spec.num_keypoints, 3)
    b = np.asarray(b, np.float64).reshape(-1, spec.num_keypoints, 3)
    fa, fb = a[..., 2] > 0, b[..., 2] > 0
    box_a, box_b = _boxes(a[..., :2], fa), _boxes(b[..., :2], fb)
    area_a = (box_a[:, 2:] - box_a[:, :2]).prod(axis=-1)
    area_b = (box_b[:, 2:] - box_b[:, :2]).prod(axis=-1)
    area = np.maximum(0.5 * (area_a[:, None] + area_b[None, :]), min_area)     # (N, M)
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(axis=-1)           # (N, M, K)
    both = fa[:, None, :] & fb[None, :, :]
    e = d2 / (2.0 * area[..., None] * (2.0 * keypoint_sigmas(spec)) ** 2)
    n = both.sum(axis=-1)
    return np.where(both, np.exp(-e), 0.0).sum(axis=-1) / np.maximum(n, 1)


def assign(sim: np.ndarray, min_similarity: float) -> list[tuple[int, int]]:
    """Hungarian matching of ``sim (N, M)`` -> ``[(row, col), ...]`` maximising the total
    similarity of the kept pairs; pairs below ``min_similarity`` count as unmatched (0)
    during the optimisation, so they never displace a valid pair, and are dropped."""
    if sim.size == 0:
        return []
    gated = np.where(sim >= min_similarity, sim, 0.0)
    rows, cols = linear_sum_assignment(gated, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if sim[r, c] >= min_similarity]


# --------------------------------------------------------------------------- smoothing

class OneEuroFilter:
    """One-Euro filter over ``(K, D)`` points (e.g. 18 keypoints x 2 coordinates).

    ``cutoff = min_cutoff + beta * speed`` (Hz), with ``speed`` the low-passed norm of
    each point's velocity (units/s). Each point keeps its own clock, so a point that
    was missing resumes with the right ``dt``. Points outside ``mask`` pass through
    unchanged and leave the state untouched; a point seen for the first time starts
    the filter at its value.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._x = self._dx = self._t = self._init = None

    @staticmethod
    def _alpha(cutoff: np.ndarray, dt: np.ndarray) -> np.ndarray:
        tau = 1.0 / (2.0 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, mask: np.ndarray | None = None) -> np.ndarray:
        """Filter ``x (K, D)`` observed at time ``t`` (s); ``mask (K,)`` bool = valid."""
        x = np.asarray(x, np.float64)
        mask = np.ones(x.shape[0], bool) if mask is None else np.asarray(mask, bool)
        if self._x is None:
            self._x, self._dx = np.zeros_like(x), np.zeros_like(x)
            self._t, self._init = np.zeros(x.shape[0]), np.zeros(x.shape[0], bool)
        new = mask & ~self._init
        upd = mask & self._init
        out = x.copy()
        if upd.any():
            dt = t - self._t[upd]
            if np.any(dt <= 0):
                raise ValueError("OneEuroFilter: time must increase between calls")
            dt = dt[:, None]
            x_prev, dx_prev = self._x[upd], self._dx[upd]
            dx = (x[upd] - x_prev) / dt
            edx = dx_prev + self._alpha(self.d_cutoff, dt) * (dx - dx_prev)
            cutoff = self.min_cutoff + self.beta * np.linalg.norm(edx, axis=-1, keepdims=True)
            out[upd] = x_prev + self._alpha(cutoff, dt) * (x[upd] - x_prev)
            self._dx[upd] = edx
        self._dx[new] = 0.0
        self._x[mask] = out[mask]
        self._t[mask] = t
        self._init |= mask
        return out


# --------------------------------------------------------------------------- tracking

def _centre(person: Person) -> tuple[float, float]:
    x0, y0, x1, y1 = person.bbox()
    return (0.5 * (x0 + x1), 0.5 * (y0 + y1))


class _Track:
    """One identity: last raw observation, velocity from the last two, smoothing filter."""

    def __init__(self, track_id: int, kps: np.ndarray, frame: int, smoother):
        self.id = track_id
        self.kps = kps                    # (K, 3) last raw observation
        self.frame = frame                # frame index of ``kps``
        self.velocity = np.zeros(2)       # px / frame, whole-body translation
        self.smoother = smoother

    def observe(self, kps: np.ndarray, frame: int) -> None:
        both = (kps[:, 2] > 0) & (self.kps[:, 2] > 0)
        if both.any():
            disp = (kps[both, :2] - self.kps[both, :2]).mean(axis=0)
            self.velocity = disp / (frame - self.frame)
        else:
            self.velocity = np.zeros(2)
        self.kps, self.frame = kps, frame

    def predict(self, frame: int, motion: bool) -> np.ndarray:
        """``(K, 3)`` expected keypoints at ``frame`` (conf as last observed)."""
        pred = self.kps.copy()
        if motion:
            pred[:, :2] += self.velocity * (frame - self.frame)
        return pred


class Tracker:
    """Assigns stable ids to the people of consecutive frames (see module docstring)."""

    def __init__(self, params: TrackerParams | None = None):
        self.params = params or TrackerParams()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids start again from 0."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = -1
        self._timed: bool | None = None
        self._last_time: float | None = None

    @property
    def track_ids(self) -> tuple[int, ...]:
        """Ids of the live tracks (seen within the last ``max_age`` frames)."""
        return tuple(t.id for t in self._tracks)

    def similarity(self, people: list[Person],
                   spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
        """``(len(people), len(tracks))`` similarity in [0, 1] against the predictions
        for the next frame; ``spec``: the people's keypoints (sigmas)."""
        p = self.params
        det = np.stack([q.keypoints for q in people]).astype(np.float64) if people \
            else np.zeros((0, spec.num_keypoints, 3))
        pred = np.stack([t.predict(self._frame + 1, p.motion) for t in self._tracks]) \
            if self._tracks else np.zeros((0, spec.num_keypoints, 3))
        oks = oks_matrix(det, pred, p.min_area, spec)
        iou = iou_matrix(_boxes(det[..., :2], det[..., 2] > 0),
                         _boxes(pred[..., :2], pred[..., 2] > 0))
        return (p.oks_weight * oks + p.iou_weight * iou) / (p.oks_weight + p.iou_weight)

    def _clock(self, time: float | None) -> float:
        timed = time is not None
        if self._timed is not None and timed != self._timed:
            raise ValueError("pass `time` to every update or to none (or call reset())")
        self._timed = timed
        if not timed:
            return (self._frame + 1) / self.params.fps
        if self._last_time is not None and time <= self._last_time:
            raise ValueError(f"time must increase: {time} after {self._last_time}")
        self._last_time = float(time)
        return float(time)

    def update(self, detections: Detections, time: float | None = None) -> Detections:
        """Track one frame: set ``person.id`` in place (and smooth keypoints when
        ``params.smooth``); returns ``detections``.

        time: frame timestamp in seconds for the smoothing filter; when omitted the
            frame counter at ``params.fps`` is used. People with no found keypoint get
            id -1 and start no track.
        """
        p = self.params
        now = self._clock(time)
        people = [q for q in detections.people if q.num_parts > 0]
        for q in detections.people:
            q.id = -1
        sim = self.similarity(people, detections.spec)
        self._frame += 1

        matches = assign(sim, p.min_similarity)
        for r, c in matches:
            track, person = self._tracks[c], people[r]
            track.observe(person.keypoints.astype(np.float64), self._frame)
            person.id = track.id
        # New ids in a canonical order (score, then left to right, top to bottom) so the
        # order of ``detections.people`` never matters.
        matched = {r for r, _ in matches}
        new = [q for r, q in enumerate(people) if r not in matched]
        new.sort(key=lambda q: (-q.score, *_centre(q)))
        for person in new:
            smoother = OneEuroFilter(p.min_cutoff, p.beta, p.d_cutoff) if p.smooth else None
            track = _Track(self._next_id, person.keypoints.astype(np.float64), self._frame,
                           smoother)
            self._next_id += 1
            self._tracks.append(track)
            person.id = track.id

        if p.smooth:
            by_id = {t.id: t for t in self._tracks}
            for person in people:
                found = person.found
                xy = by_id[person.id].smoother(person.keypoints[:, :2], now, found)
                person.keypoints[found, :2] = xy[found]

        self._tracks = [t for t in self._tracks if self._frame - t.frame <= p.max_age]
        return detections
