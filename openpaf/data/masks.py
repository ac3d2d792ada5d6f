"""Loss masks: where (ignore regions) and which channels (unknown keypoints) to train.

Spatial mask: crowd regions and people annotated with zero keypoints are real people the
labels do not describe, so they must not be taught as background. Their segmentation
(polygons or RLE, via pycocotools ``annToMask``) is masked when present, else their box
(for a crowd box, minus the labelled people's boxes inside it).

Channel masks: a keypoint type a dataset never labels is *unknown*, not absent. Its
heatmap channel, the PAF channels of every limb touching it and the background channel
(``1 - max`` over parts, which would call the unknown part background) get weight 0.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..skeleton import (OPENPOSE_COCO18, KeypointSpec, dataset_index, limbs_touching,
                        paf_channels_of, unlabelled_points)

_FACE_NAMES = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")


def face_points(spec: KeypointSpec = OPENPOSE_COCO18) -> tuple[int, ...]:
    """The spec's indices of the face points a machine added in
    lspet/train_face_pseudo.json (people with "face_source"); those it has."""
    return tuple(spec.keypoints.index(n) for n in _FACE_NAMES if n in spec.keypoints)


FACE: tuple[int, ...] = face_points()


def num_keypoints(ann: dict) -> int:
    """``num_keypoints``, or the count of v > 0 in ``keypoints`` when that field is absent."""
    if ann.get("num_keypoints") is not None:
        return int(ann["num_keypoints"])
    return int((np.asarray(ann.get("keypoints") or [], np.float32).reshape(-1, 3)[:, 2]
                > 0).sum())


def is_ignored(ann: dict) -> bool:
    """A crowd region or a person annotated with zero keypoints."""
    return bool(ann.get("iscrowd", 0)) or num_keypoints(ann) == 0


def is_labelled(ann: dict) -> bool:
    """A non-crowd person with at least one labelled keypoint (a training target)."""
    return not is_ignored(ann)


def ignore_mask(coco, anns: Iterable[dict], height: int, width: int) -> np.ndarray | None:
    """``(H, W)`` float32, 0 inside the ignored annotations of ``anns``, 1 elsewhere.

    Segmentations (polygons/RLE) are used when present, else boxes. A crowd *box* is
    coarse and usually contains the labelled people, so the labelled people's boxes are
    re-opened inside it; zero-keypoint people are masked after that. None when nothing
    is ignored. ``coco``: the pycocotools ``COCO`` holding ``anns`` (for ``annToMask``).
    """
    anns = list(anns)
    ignored = [a for a in anns if is_ignored(a)]
    if not ignored:
        return None
    mask = np.ones((height, width), np.float32)
    coarse = [a for a in ignored if a.get("iscrowd") and not a.get("segmentation")]
    for ann in coarse:
        _fill_box(mask, ann.get("bbox"), 0.0)
    if coarse:
        for ann in anns:
            if is_labelled(ann):
                _fill_box(mask, ann.get("bbox"), 1.0)
    for ann in ignored:
        if ann.get("segmentation"):
            mask[coco.annToMask(ann) > 0] = 0.0
        elif ann not in coarse:
            _fill_box(mask, ann.get("bbox"), 0.0)
    return mask


def _fill_box(mask: np.ndarray, bbox, value: float) -> None:
    if not bbox:
        return
    x, y, w, h = bbox
    x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
    x1, y1 = min(int(np.ceil(x + w)), mask.shape[1]), min(int(np.ceil(y + h)), mask.shape[0])
    mask[y0:y1, x0:x1] = value


def keypoint_indices(names: Iterable[str],
                     spec: KeypointSpec = OPENPOSE_COCO18) -> tuple[int, ...]:
    """The spec's indices of keypoint names; a clear error for unknown names."""
    out = []
    for n in names:
        if n not in spec.keypoints:
            raise ValueError(f"unknown keypoint name {n!r}; choose from {list(spec.keypoints)}")
        out.append(spec.keypoints.index(n))
    return tuple(sorted(set(out)))


def never_labelled(anns: Iterable[dict], spec: KeypointSpec = OPENPOSE_COCO18,
                   names: Iterable[str] | None = None) -> tuple[int, ...]:
    """The spec's indices of the keypoints with v=0 in every labelled annotation, those
    the data (keypoints ``names``, default ``spec.dataset_keypoints``) does not have,
    and derived points (the neck) with an end among them. Empty when there are no
    labelled annotations."""
    names = tuple(spec.dataset_keypoints if names is None else names)
    seen = np.zeros(len(names), bool)
    any_ann = False
    for ann in anns:
        if is_labelled(ann):
            any_ann = True
            seen |= np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)[:, 2] > 0
    if not any_ann:
        return ()
    to_spec = dataset_index(spec, names)
    unknown = {to_spec[c] for c in np.flatnonzero(~seen) if to_spec[c] >= 0}
    unknown |= set(unlabelled_points(spec, names))
    unknown |= {d.index for d in spec.derived
                if unknown & set(d.between) and spec.keypoints[d.index] not in names}
    return tuple(sorted(unknown))


def channel_weights(unknown: Iterable[int], spec: KeypointSpec = OPENPOSE_COCO18
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(heatmap weights (K + 1,), paf weights (2 L,))`` float32: 0 for the channels of
    the ``unknown`` keypoints, their limbs and (if any is unknown) the background; else 1."""
    unknown = tuple(sorted(set(int(k) for k in unknown)))
    heat = np.ones(spec.num_heatmaps, np.float32)
    paf = np.ones(spec.num_pafs, np.float32)
    if unknown:
        heat[list(unknown)] = 0.0
        heat[spec.num_keypoints] = 0.0
        paf[list(paf_channels_of(limbs_touching(unknown, spec), spec))] = 0.0
    return heat, paf
