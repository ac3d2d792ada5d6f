"""Reading and checking COCO keypoint files, so that a bad record is found when the file is
loaded (one line naming the file and the record), never hours into a run.

``read_coco(path)``: the file's structure (a JSON object with ``images``, ``annotations``
and ``categories`` lists, integer image ids, annotations of known images); a file that
fails is refused with ``ValueError``. ``annotation_problem(ann)``: what is wrong with one
annotation (3 x D finite keypoint values, D = the file's keypoints, 17 for COCO; a finite
``[x, y, w, h]`` box), or None. Callers
choose what a bad annotation means: ``evaluate`` refuses the file (``load_ground_truth``
with ``check_annotations``), training skips the image (see ``data.coco.PoseDataset``).
``gt_keypoints``: an image's ground-truth people in a ``KeypointSpec``'s order (default
OpenPose COCO-18). ``file_keypoints``/``file_spec``: the file's keypoint names and spec (from
its category, see ``skeleton.spec_for_categories``).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..skeleton import (OPENPOSE_COCO18, KeypointSpec, SkeletonError, from_named,
                        keypoint_category, spec_for_categories)

NUM_COCO_KEYPOINTS = len(OPENPOSE_COCO18.dataset_keypoints)      # 17


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite_numbers(v, n: int) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        for x in v)


def annotation_problem(ann: dict, num_keypoints: int = NUM_COCO_KEYPOINTS) -> Optional[str]:
    """One line on what makes ``ann`` unusable (``"annotation 7: ..."``), or None;
    ``num_keypoints``: how many the file's category lists."""
    where = f"annotation {ann.get('id', '?')} (image {ann.get('image_id', '?')})"
    if not _finite_numbers(ann.get("keypoints"), 3 * num_keypoints):
        return f"{where}: 'keypoints' must be {3 * num_keypoints} finite numbers"
    box = ann.get("bbox")
    if not _finite_numbers(box, 4) or box[2] < 0 or box[3] < 0:
        return f"{where}: 'bbox' must be 4 finite numbers [x, y, w >= 0, h >= 0]"
    return None


def scoring_problem(ann: dict, category_id: int = 1) -> Optional[str]:
    """What makes an annotated person unscorable by COCOeval (it would count as missed
    at AP 0 without a word): a ``category_id`` other than the file's keypoint category
    (1, person, in COCO), or a non-positive ``area`` (OKS divides by it); None for
    people without keypoints or crowds."""
    if ann.get("iscrowd", 0) or not ann.get("num_keypoints", 0):
        return None
    where = f"annotation {ann.get('id', '?')} (image {ann.get('image_id', '?')})"
    if ann.get("category_id") != category_id:
        return (f"{where}: category_id {ann.get('category_id')!r} is not {category_id}, "
                "the keypoint category")
    area = ann.get("area")
    if not isinstance(area, (int, float)) or not 0 < area < math.inf:
        return f"{where}: 'area' must be a finite number > 0, got {area!r}"
    return None


def _structure_problem(doc) -> Optional[str]:
    if not isinstance(doc, dict):
        return f"the top level is a {type(doc).__name__}, not an object"
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            return f"no '{key}' list"
    ids = set()
    for img in doc["images"]:
        if not isinstance(img, dict) or not _is_int(img.get("id")):
            return f"image {img.get('id') if isinstance(img, dict) else img!r}: " \
                   "'id' must be an integer"
        if not isinstance(img.get("file_name"), str):
            return f"image {img['id']}: no 'file_name'"
        ids.add(img["id"])
    for ann in doc["annotations"]:
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            return "an annotation without an integer 'id'"
        if ann.get("image_id") not in ids or not _is_int(ann.get("image_id")):
            return f"annotation {ann['id']}: 'image_id' {ann.get('image_id')!r} is not " \
                   "the integer id of an image in the file"
    return None


def read_coco(path: Union[str, os.PathLike]):
    """A pycocotools ``COCO`` of the keypoint file ``path`` (prints silenced). Raises
    ``FileNotFoundError`` or ``ValueError`` (``"<path>: <what is wrong>"``)."""
    from pycocotools.coco import COCO
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file (empty or truncated?): "
                         f"{' '.join(str(e).split())}") from None
    problem = _structure_problem(doc)
    if problem:
        raise ValueError(f"{path}: {problem}")
    for ann in doc["annotations"]:   # what COCOeval reads, from what the file has
        kps = ann.get("keypoints")
        if "num_keypoints" not in ann and isinstance(kps, list):
            ann["num_keypoints"] = sum(1 for v in kps[2::3]
                                       if isinstance(v, (int, float)) and v > 0)
        box = ann.get("bbox")
        if "area" not in ann and _finite_numbers(box, 4):
            ann["area"] = float(box[2] * box[3])
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_ground_truth(ann_file: str | Path, check_annotations: bool = False):
    """A pycocotools ``COCO`` object of a checked file (``data.records.read_coco``).
    check_annotations: also refuse the file when an annotation is unusable
    (``annotation_problem``: keypoints, box) or unscorable (``scoring_problem``: category,
    area), naming the first and the count."""
    coco = read_coco(ann_file)
    if check_annotations:
        d = len(file_keypoints(coco))
        cat = (keypoint_category(coco.dataset.get("categories")) or {}).get("id", 1)
        bad = [p for a in coco.anns.values() for p in (annotation_problem(a, d)
                                                        or scoring_problem(a, cat),) if p]
        if bad:
            raise ValueError(f"{ann_file}: {len(bad)} unusable annotation(s), first "
                             f"{bad[0]}")
    return coco


def file_keypoints(coco) -> tuple[str, ...]:
    """The keypoint names of a COCO file's category, in its order (COCO-17 when no
    category lists any)."""
    try:
        cat = keypoint_category(coco.dataset.get("categories"))
    except SkeletonError as e:
        raise ValueError(str(e)) from None
    return tuple(cat["keypoints"]) if cat else OPENPOSE_COCO18.dataset_keypoints


def file_spec(coco, given: KeypointSpec | None = None) -> KeypointSpec:
    """The ``KeypointSpec`` of a COCO file (``skeleton.spec_for_categories``): ``given``
    when its points name the file's, else the file's own."""
    return spec_for_categories(coco.dataset.get("categories"), given)


def gt_keypoints(coco, image_id: int, spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
    """``(N, K, 3)`` float32 keypoints of the non-crowd people with keypoints, image px, in
    ``spec``'s order (the file's points mapped by name)."""
    anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
    if not anns:
        return np.zeros((0, spec.num_keypoints, 3), np.float32)
    names = file_keypoints(coco)
    kps = np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, len(names), 3)
    return from_named(spec, kps, names)


__all__ = ["annotation_problem", "file_keypoints", "file_spec", "gt_keypoints",
           "load_ground_truth", "read_coco", "scoring_problem"]
