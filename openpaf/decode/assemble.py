"""Stage 3 of decoding: join accepted limbs into people.

Limbs are taken in descending score order over all limb types (Kruskal-style): a limb
joins the two partial people at its ends when they share no keypoint type. Every limb,
the redundant shoulder-ear ones included, can join fragments, so a person whose neck is
missing still comes out whole where other limbs connect the pieces.
"""
from __future__ import annotations

import numpy as np

from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from .limbs import Connections
from .params import DecodeParams
from .peaks import Peaks


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def group_peaks(peaks: Peaks, connections: Connections,
                spec: KeypointSpec = OPENPOSE_COCO18) -> tuple[np.ndarray, np.ndarray]:
    """Union peaks along limbs by descending score, never joining two of the same type.

    Returns ``(members, limb_scores)``: ``members`` is ``(G, K)`` int64 global peak
    indices (-1 = missing) and ``limb_scores`` is ``(G, L)`` float32 (0 = no limb), one
    row per group of connected peaks (isolated peaks included).
    """
    n = len(peaks)
    parent = list(range(n))
    mask = [1 << int(p) for p in peaks.part.tolist()]
    limbs_of: dict[int, list[tuple[int, float]]] = {}
    order = np.argsort(-connections.score, kind="stable")
    for k, ia, ib, s in zip(connections.limb[order].tolist(), connections.a[order].tolist(),
                            connections.b[order].tolist(),
                            connections.score[order].tolist()):
        ra, rb = _find(parent, ia), _find(parent, ib)
        if ra != rb:
            if mask[ra] & mask[rb]:
                continue                      # would give a person two of one part
            parent[rb] = ra
            mask[ra] |= mask[rb]
            limbs_of.setdefault(ra, []).extend(limbs_of.pop(rb, []))
        limbs_of.setdefault(ra, []).append((k, s))
    roots = np.array([_find(parent, i) for i in range(n)], dtype=np.int64)
    uniq, group = np.unique(roots, return_inverse=True)
    members = np.full((len(uniq), spec.num_keypoints), -1, dtype=np.int64)
    members[group, peaks.part] = np.arange(n)
    limb_scores = np.zeros((len(uniq), spec.num_limbs), dtype=np.float32)
    for g, r in enumerate(uniq.tolist()):
        for k, s in limbs_of.get(r, ()):
            limb_scores[g, k] = max(limb_scores[g, k], s)
    return members, limb_scores


def rank_scores(total: np.ndarray, found: np.ndarray, power: float,
                possible: int = OPENPOSE_COCO18.num_keypoints + OPENPOSE_COCO18.num_limbs
                ) -> np.ndarray:
    """``mean * completeness ** power`` per person: ``total`` is the sum of its peak and
    limb scores, ``found`` how many of the ``possible`` keypoints + limbs (18 + 19 for
    COCO-18) it has (mean = total / found)."""
    if power == 1:
        return total / possible                      # exactly the CVPR sum over 37
    found = np.maximum(found, 1)
    return total / found * (found / possible) ** power


def select_people(peaks: Peaks, members: np.ndarray, limb_scores: np.ndarray,
                  params: DecodeParams, spec: KeypointSpec = OPENPOSE_COCO18
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filter groups into people and score them.

    Keeps a group with >= ``min_parts`` keypoints and (peak + limb) score per keypoint
    >= ``min_mean_score`` (CVPR's rule), or a smaller group (>= ``min_small_parts``) all
    of whose peak and limb scores are >= ``keep_small_score``. The ranking score, in
    [0, 1], is the mean of the person's peak and limb scores times its completeness
    (found parts and limbs over the spec's K + L possible) to the power
    ``params.completeness_power``: 1 gives the sum over 37 (CVPR), smaller values rank
    confident partial people higher. Returns ``(members, limb_scores, scores)`` of the
    kept people, sorted by score descending.
    """
    found = members >= 0
    count = found.sum(axis=1)
    peak_scores = np.where(found, peaks.score[np.maximum(members, 0)], 0.0)
    has_limb = limb_scores > 0
    total = peak_scores.sum(axis=1) + limb_scores.sum(axis=1)
    keep = (count >= params.min_parts) & (total >= params.min_mean_score * count)
    if params.keep_small_score > 0:
        low = np.minimum(np.where(found, peak_scores, np.inf).min(axis=1),
                         np.where(has_limb, limb_scores, np.inf).min(axis=1))
        keep |= (count >= params.min_small_parts) & (low >= params.keep_small_score)
    scores = np.clip(rank_scores(total, count + has_limb.sum(axis=1), params.completeness_power,
                                 spec.num_keypoints + spec.num_limbs), 0.0, 1.0)
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return members[idx], limb_scores[idx], scores[idx].astype(np.float32)
