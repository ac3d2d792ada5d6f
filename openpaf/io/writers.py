"""Output writers: OpenPose JSON, COCO results, JSON Lines streams (file writes are
atomic: ``io.atomic``).

Coordinates are written as they are held in ``Person.keypoints``: image pixels with pixel
centres at integer coordinates. That is both OpenPose's and COCO's annotation
convention, so no +-0.5 shift happens here. OpenPose JSON and JSONL can instead use
OpenPose's BODY_25 order and its [0, 1] / [-1, 1] keypoint scales (``OpenPoseFormat``).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Union

import numpy as np

from ..skeleton import (NUM_BODY25_KEYPOINTS, OPENPOSE_COCO18, OURS_TO_BODY25, KeypointSpec,
                        body25_to_ours, ours_to_body25)
from ..structures import Detections, Person
from .atomic import atomic_write_json

PathLike = Union[str, os.PathLike]

OPENPOSE_JSON_VERSION = 1.3
# Per-person keys of OpenPose >= 1.3 output, in its order; only the 2D body is filled.
_OPENPOSE_EMPTY_KEYS = ("face_keypoints_2d", "hand_left_keypoints_2d",
                        "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d",
                        "hand_left_keypoints_3d", "hand_right_keypoints_3d")
COCO_PERSON_CATEGORY = 1
OPENPOSE_LAYOUTS = ("coco18", "body25")
# Ours -> OpenPose's --keypoint_scale number.
KEYPOINT_SCALES = {"pixels": 0, "unit": 3, "signed-unit": 4}

# ---------------------------------------------------------------------------------------
# OpenPose JSON


def _flat(kps: np.ndarray, digits: int = 3) -> list[float]:
    """``(K, 3)`` -> ``[x, y, c] * K`` with ``digits`` decimals for x, y and 4 for c; missing
    points (c <= 0 or non-finite) are written as ``0, 0, 0`` like OpenPose."""
    out: list[float] = []
    for x, y, c in np.asarray(kps, dtype=np.float64):
        if not (c > 0 and math.isfinite(x) and math.isfinite(y) and math.isfinite(c)):
            out += [0.0, 0.0, 0.0]
        else:
            out += [round(float(x), digits), round(float(y), digits), round(float(c), 4)]
    return out


@dataclass(frozen=True)
class OpenPoseFormat:
    """What ``pose_keypoints_2d`` (and ``part_candidates``) hold in OpenPose JSON and JSONL.

    layout: "coco18", our 18 points in the order of OpenPose ``--model_pose COCO``; or
        "body25", OpenPose's default BODY_25 order (``skeleton.ours_to_body25``: mid-hip
        = the hips' mid-point, the six foot points zeros).
    keypoint_scale: "pixels" (OpenPose ``--keypoint_scale 0``), "unit": [0, 1] (3) or
        "signed-unit": [-1, 1] (4). As in OpenPose, x is divided by (width - 1) and y by
        (height - 1); missing points stay ``0, 0, 0``. x, y get 3 decimals in pixels, 6
        otherwise.
    part_candidates: also write every keypoint candidate (heatmap peak), as OpenPose's
        ``--part_candidates`` does: ``"part_candidates": [{"0": [x, y, score, ...], ...}]``.
    """

    layout: str = "coco18"
    keypoint_scale: str = "pixels"
    part_candidates: bool = False

    def check_spec(self, spec: KeypointSpec) -> None:
        """One-line ``ValueError`` when this layout cannot hold ``spec``'s keypoints
        (BODY_25 is a layout of COCO-18 results only)."""
        if self.layout == "body25" and spec != OPENPOSE_COCO18:
            raise ValueError(f"the body25 layout needs OpenPose COCO-18 keypoints; these "
                             f"weights predict '{spec.name}' ({spec.num_keypoints} points): "
                             "use --openpose-layout coco18")

    def __post_init__(self):
        if self.layout not in OPENPOSE_LAYOUTS:
            raise ValueError(f"OpenPose layout must be one of {', '.join(OPENPOSE_LAYOUTS)}, "
                             f"got {self.layout!r}")
        if self.keypoint_scale not in KEYPOINT_SCALES:
            raise ValueError(f"keypoint scale must be one of {', '.join(KEYPOINT_SCALES)}, "
                             f"got {self.keypoint_scale!r}")

    @property
    def digits(self) -> int:
        return 3 if self.keypoint_scale == "pixels" else 6

    def _affine(self, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, offset)``, each ``(2,)``: written x, y = pixels * scale + offset."""
        if self.keypoint_scale == "pixels":
            return np.ones(2), np.zeros(2)
        if min(image_size) <= 0:
            raise ValueError(f"keypoint scale {self.keypoint_scale} needs the image size")
        span = np.maximum(np.asarray(image_size, np.float64) - 1.0, 1.0)
        if self.keypoint_scale == "unit":
            return 1.0 / span, np.zeros(2)
        return 2.0 / span, -np.ones(2)

    def _scaled(self, kps: np.ndarray, image_size, inverse: bool = False) -> np.ndarray:
        """``(K, 3)`` float64 copy with x, y of the found points (c > 0) in this scale
        (``inverse``: from this scale back to pixels)."""
        kps = np.array(kps, dtype=np.float64).reshape(-1, 3)
        scale, offset = self._affine(image_size)
        found = kps[:, 2] > 0
        kps[found, :2] = (kps[found, :2] - offset) / scale if inverse \
            else kps[found, :2] * scale + offset
        return kps

    def keypoints(self, kps: np.ndarray, image_size: tuple[int, int]) -> list[float]:
        """``(K, 3)`` pixel keypoints (spec order) -> the flat ``pose_keypoints_2d`` list."""
        if self.layout == "body25":
            kps = ours_to_body25(kps)
        return _flat(self._scaled(kps, image_size), self.digits)

    def candidates(self, detections: Detections) -> dict[str, list[float]]:
        """OpenPose's ``part_candidates`` object for ``detections``: ``{"k": [x, y, score,
        ...]}`` per keypoint k of the layout (BODY_25's mid-hip and feet: empty)."""
        if detections.part_candidates is None:
            raise ValueError("no part candidates to write: the predictor did not return them")
        self.check_spec(detections.spec)
        parts = detections.part_candidates
        if self.layout == "body25":
            parts = [np.zeros((0, 3), np.float32)] * NUM_BODY25_KEYPOINTS
            for i, j in enumerate(OURS_TO_BODY25):
                parts[j] = detections.part_candidates[i]
        return {str(k): _flat(self._scaled(c, detections.image_size), self.digits)
                for k, c in enumerate(parts)}

    def read_keypoints(self, values: list, image_size: tuple[int, int]) -> np.ndarray:
        """A ``pose_keypoints_2d`` list (54 or 75 numbers, in this scale) -> our ``(18, 3)``
        pixel keypoints (BODY_25 is recognised by its length)."""
        kps = self._scaled(values, image_size, inverse=True)
        return (body25_to_ours(kps) if len(kps) == NUM_BODY25_KEYPOINTS else kps) \
            .astype(np.float32)

    def read_candidates(self, obj: dict, image_size: tuple[int, int]) -> list[np.ndarray]:
        """A ``part_candidates`` object (18 or 25 keys) -> our 18 pixel arrays ``(n, 3)``."""
        parts = [self._scaled(obj[str(k)], image_size, inverse=True) for k in range(len(obj))]
        if len(parts) == NUM_BODY25_KEYPOINTS:
            parts = [parts[j] for j in OURS_TO_BODY25]
        return [p.astype(np.float32) for p in parts]


def _finite(v: float, ndigits: int = 4) -> float:
    v = float(v)
    return round(v, ndigits) if math.isfinite(v) else 0.0


def openpose_json(detections: Detections, fmt: OpenPoseFormat = OpenPoseFormat()) -> dict:
    """Detections -> OpenPose JSON dict, as OpenPose 1.7 writes it (file version 1.3).

    ``{"version": 1.3, "people": [{"person_id": [id], "pose_keypoints_2d": [x, y, c] * K,
    "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
    "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
    "hand_right_keypoints_3d": []}, ...]}``, plus ``"part_candidates": [{"0": [...], ...}]``
    when ``fmt.part_candidates``. K = 18 or 25 by ``fmt.layout`` (the spec's K for other
    skeletons); ``person_id`` is ``[-1]`` when untracked.
    """
    fmt.check_spec(detections.spec)
    people = []
    for p in detections.people:
        entry: dict = {"person_id": [int(p.id)],
                       "pose_keypoints_2d": fmt.keypoints(p.keypoints, detections.image_size)}
        entry.update({k: [] for k in _OPENPOSE_EMPTY_KEYS})
        people.append(entry)
    obj = {"version": OPENPOSE_JSON_VERSION, "people": people}
    if fmt.part_candidates:
        obj["part_candidates"] = [fmt.candidates(detections)]
    return obj


def write_openpose_json(path: PathLike, detections: Detections,
                        fmt: OpenPoseFormat = OpenPoseFormat()) -> Path:
    """Write ``openpose_json(detections, fmt)`` to ``path`` atomically."""
    return atomic_write_json(path, openpose_json(detections, fmt))


def read_openpose_json(path_or_obj: Union[PathLike, dict],
                       image_size: tuple[int, int] = (0, 0),
                       keypoint_scale: str = "pixels",
                       spec: KeypointSpec = OPENPOSE_COCO18) -> Detections:
    """Read OpenPose JSON (a path or the loaded dict) back into ``Detections`` of ``spec``.

    COCO-18 and BODY_25 files are told apart by length (other specs: K x 3 values);
    ``part_candidates`` are read when present. The file holds no person score: it is set
    to the mean confidence of found keypoints. ``image_size`` is ``(width, height)``, not
    stored in the file either; it is needed to read a ``keypoint_scale`` other than
    pixels.
    """
    obj = path_or_obj
    if not isinstance(obj, dict):
        with open(obj, encoding="utf-8") as fh:
            obj = json.load(fh)
    coco18 = spec == OPENPOSE_COCO18
    validate_openpose_json(obj, None if coco18 else spec.num_keypoints)
    fmt = OpenPoseFormat(keypoint_scale=keypoint_scale)
    people = []
    for entry in obj["people"]:
        kps = fmt.read_keypoints(entry["pose_keypoints_2d"], image_size) if coco18 \
            else fmt._scaled(entry["pose_keypoints_2d"], image_size, True).astype(np.float32)
        found = kps[:, 2] > 0
        score = float(kps[found, 2].mean()) if found.any() else 0.0
        people.append(Person(kps, score, id=int(entry["person_id"][0])))
    candidates = fmt.read_candidates(obj["part_candidates"][0], image_size) \
        if "part_candidates" in obj else None
    return Detections(tuple(image_size), people, part_candidates=candidates, spec=spec)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_openpose_json(obj, num_keypoints: int | None = None) -> None:
    """Schema-check an OpenPose JSON object; raise ``ValueError`` naming the first problem.

    Checks: ``version`` is a number; ``people`` is a list; each person has the keys of
    ``openpose_json``; ``person_id`` is a non-empty list of ints; ``pose_keypoints_2d``
    holds 54 (COCO-18) or 75 (BODY_25) finite numbers (``3 * num_keypoints`` when given,
    for other skeletons) with confidences >= 0 (peaks may
    slightly exceed 1, and refined coordinates may be slightly negative, so neither is an
    error); the other keypoint lists are lists; ``part_candidates``, when present, is one
    object with keys "0".."K-1" of lists of finite numbers in threes.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"top level must be an object, got {type(obj).__name__}")
    if not _is_number(obj.get("version")):
        raise ValueError("'version' must be a number")
    people = obj.get("people")
    if not isinstance(people, list):
        raise ValueError("'people' must be a list")
    sizes = (3 * OPENPOSE_COCO18.num_keypoints, 3 * NUM_BODY25_KEYPOINTS) \
        if num_keypoints is None else (3 * num_keypoints,) * 2
    for i, p in enumerate(people):
        where = f"people[{i}]"
        if not isinstance(p, dict):
            raise ValueError(f"{where} must be an object")
        missing = [k for k in ("person_id", "pose_keypoints_2d") + _OPENPOSE_EMPTY_KEYS
                   if k not in p]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}")
        pid = p["person_id"]
        if not (isinstance(pid, list) and pid and all(isinstance(v, int)
                                                      and not isinstance(v, bool)
                                                      for v in pid)):
            raise ValueError(f"{where}.person_id must be a non-empty list of ints")
        kps = p["pose_keypoints_2d"]
        if not isinstance(kps, list) or len(kps) not in sizes:
            got = len(kps) if isinstance(kps, list) else type(kps).__name__
            raise ValueError(f"{where}.pose_keypoints_2d must have {sizes[0]} or {sizes[1]} "
                             f"numbers, got {got}")
        if not all(_is_number(v) for v in kps):
            raise ValueError(f"{where}.pose_keypoints_2d must hold finite numbers")
        for k in range(len(kps) // 3):
            if kps[3 * k + 2] < 0:
                raise ValueError(f"{where} keypoint {k}: negative confidence")
        for k in _OPENPOSE_EMPTY_KEYS:
            if not isinstance(p[k], list):
                raise ValueError(f"{where}.{k} must be a list")
    if "part_candidates" in obj:
        _validate_candidates(obj["part_candidates"], sizes[0] // 3)


def _validate_candidates(cands, k: int = OPENPOSE_COCO18.num_keypoints) -> None:
    if not (isinstance(cands, list) and len(cands) == 1 and isinstance(cands[0], dict)):
        raise ValueError("'part_candidates' must be a list holding one object")
    keys = list(cands[0])
    if len(keys) not in (k, NUM_BODY25_KEYPOINTS) \
            or sorted(keys) != sorted(str(i) for i in range(len(keys))):
        raise ValueError(f"part_candidates keys must be '0'..'{k - 1}' or "
                         f"'0'..'{NUM_BODY25_KEYPOINTS - 1}'")
    for k, v in cands[0].items():
        if not (isinstance(v, list) and len(v) % 3 == 0 and all(_is_number(x) for x in v)):
            raise ValueError(f"part_candidates[{k!r}] must hold finite numbers in threes")


# ---------------------------------------------------------------------------------------
# COCO results


_NUMERIC_STEM = re.compile(r"^\d+$")


def coco_results(image_id: int, detections: Detections,
                 category_id: int = COCO_PERSON_CATEGORY) -> list[dict]:
    """One image's people as COCO keypoint results (see ``CocoResultsWriter``), in the
    dataset's keypoint order of ``detections.spec`` (COCO-17 for COCO-18): keypoints to 3
    decimals (missing or non-finite points 0 0 0), score to 6."""
    out = []
    spec = detections.spec
    for p in detections.people:
        kps = p.coco_keypoints(spec).astype(np.float64)
        kps[~np.isfinite(kps).all(axis=1) | (kps[:, 2] <= 0)] = 0.0
        assert kps.shape == (len(spec.dataset_keypoints), 3)
        out.append({"image_id": int(image_id), "category_id": int(category_id),
                    "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
                    "score": _finite(p.score, 6)})
    return out


class CocoResultsWriter:
    """Collect COCO keypoint results and write them as one JSON list at ``close()``.

    Each person becomes ``{"image_id", "category_id": 1, "keypoints": 51 floats (COCO-17
    order, v = 2 for found points, 0 0 0 for missing), "score"}``, loadable with
    ``pycocotools.coco.COCO.loadRes``.

    Image ids: an ``int`` is used as is; a name whose stem is all digits (COCO file names
    such as ``000000000139.jpg``) becomes that number; any other name gets a running index
    (0, 1, 2, ... counting such names in the order first seen; it may collide with numeric
    ids, so do not mix both kinds). ``image_ids`` maps every name seen to its id.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.results: list[dict] = []
        self.image_ids: dict[str, int] = {}
        self._next = 0

    def image_id(self, image: Union[int, str]) -> int:
        """The COCO image id for ``image`` (an int, or a file name / stem)."""
        if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
            return int(image)
        name = str(image)
        if name not in self.image_ids:
            stem = Path(name).stem
            if _NUMERIC_STEM.match(stem):
                self.image_ids[name] = int(stem)
            else:
                self.image_ids[name] = self._next
                self._next += 1
        return self.image_ids[name]

    def add(self, detections: Detections, image: Union[int, str]) -> int:
        """Add one image's detections; returns the image id used."""
        image_id = self.image_id(image)
        self.results.extend(coco_results(image_id, detections))
        return image_id

    def close(self) -> Path:
        """Write all results (a JSON list, possibly empty) atomically; returns the path."""
        return atomic_write_json(self.path, self.results)

    def __enter__(self) -> "CocoResultsWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


# ---------------------------------------------------------------------------------------
# JSON Lines stream


class JsonlWriter:
    """One JSON object per frame, one line each, flushed per line (for live streams).

    Line: ``{"frame": i, "time": t or null, "name": str or null, "people": [{"person_id":
    int, "pose_keypoints_2d": [x, y, c] * K, "score": float}]}``, keypoints and the
    optional ``"part_candidates"`` as in OpenPose JSON of format ``fmt``. For skeletons
    other than COCO-18 each line also has ``"keypoint_names"`` (the K names, in order).
    ``target`` is a path (opened for writing, or appending with ``append=True``) or an
    open text file (not closed by ``close()``).
    """

    def __init__(self, target: Union[PathLike, IO[str]], *, append: bool = False,
                 fmt: OpenPoseFormat = OpenPoseFormat()):
        self.fmt = fmt
        if hasattr(target, "write"):
            self._fh, self._own = target, False
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(target, "a" if append else "w", encoding="utf-8")
            self._own = True
        self.lines = 0

    def write(self, frame: int, time: Optional[float], detections: Detections,
              name: Optional[str] = None, extra: Optional[dict] = None) -> None:
        """One line; ``extra``: more top-level fields (e.g. ``captured``, ``latency_ms``)."""
        size = detections.image_size
        self.fmt.check_spec(detections.spec)
        people = [{"person_id": int(p.id),
                   "pose_keypoints_2d": self.fmt.keypoints(p.keypoints, size),
                   "score": _finite(p.score, 6)} for p in detections.people]
        rec = {"frame": int(frame),
               "time": None if time is None or not math.isfinite(time) else round(time, 6),
               "name": name, "people": people}
        if detections.spec != OPENPOSE_COCO18:
            rec["keypoint_names"] = list(detections.spec.keypoints)
        if self.fmt.part_candidates:
            rec["part_candidates"] = [self.fmt.candidates(detections)]
        rec.update(extra or {})
        self._fh.write(json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n")
        self._fh.flush()
        self.lines += 1

    def close(self) -> None:
        if self._own and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


__all__ = ["openpose_json", "write_openpose_json",
           "read_openpose_json", "validate_openpose_json", "coco_results", "CocoResultsWriter",
           "JsonlWriter", "OPENPOSE_JSON_VERSION", "OpenPoseFormat", "OPENPOSE_LAYOUTS",
           "KEYPOINT_SCALES"]
