"""Output writers: atomic file writes, OpenPose JSON, COCO results, JSON Lines streams.

Coordinates are written as they are held in ``Person.keypoints``: image pixels with pixel
centres at integer coordinates. That is both OpenPose's and COCO's annotation
convention, so no +-0.5 shift happens here.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Optional, Union

import cv2
import numpy as np

from ..skeleton import NUM_COCO_KEYPOINTS, NUM_KEYPOINTS
from ..structures import Detections, Person
from .paths import temp_prefix

PathLike = Union[str, os.PathLike]

OPENPOSE_JSON_VERSION = 1.3
# Per-person keys of OpenPose >= 1.3 output, in its order; only the 2D body is filled.
_OPENPOSE_EMPTY_KEYS = ("face_keypoints_2d", "hand_left_keypoints_2d",
                        "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d",
                        "hand_left_keypoints_3d", "hand_right_keypoints_3d")
COCO_PERSON_CATEGORY = 1

# Read once at import: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# ---------------------------------------------------------------------------------------
# Atomic writes


class AtomicPath:
    """A temporary path next to ``path`` that replaces it on ``commit()``.

    For writers that need a file name rather than bytes (e.g. ``cv2.VideoWriter``). The
    temp file keeps ``path``'s suffix, so extension-sniffing writers still work. As a
    context manager it commits on success and removes the temp file on an exception.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=temp_prefix(self.path),
                                   suffix=f".tmp{self.path.suffix}")
        os.close(fd)
        self.tmp = Path(tmp)
        self.done = False

    def commit(self) -> Path:
        """fsync the temp file, give it normal permissions, and move it onto ``path``."""
        if self.done:
            return self.path
        try:
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(self.tmp, 0o666 & ~_UMASK)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self.done = True
        return self.path

    def discard(self) -> None:
        """Remove the temp file (if any); ``path`` is left as it was."""
        self.done = True
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "AtomicPath":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync,
    ``os.replace``. Readers see the old file or the complete new one, never a partial one;
    the temp file is removed on any failure. Parent folders are created."""
    with AtomicPath(path) as ap:
        with open(ap.tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
    return ap.path


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """``atomic_write_bytes`` for text."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: PathLike, obj, *, indent: Optional[int] = None) -> Path:
    """Serialise ``obj`` as JSON (NaN/inf refused) and write it atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False,
                      separators=(",", ":") if indent is None else None)
    return atomic_write_text(path, text + "\n")


def atomic_write_image(path: PathLike, image: np.ndarray,
                       params: Optional[list[int]] = None) -> Path:
    """Encode ``image`` (BGR uint8) by ``path``'s extension with ``cv2.imencode`` and write
    it atomically. Default JPEG quality 90. Raises ``ValueError`` if encoding fails."""
    ext = Path(path).suffix.lower() or ".jpg"
    if params is None and ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    ok, buf = cv2.imencode(ext, image, params or [])
    if not ok:
        raise ValueError(f"cannot encode image as {ext}")
    return atomic_write_bytes(path, buf.tobytes())


# ---------------------------------------------------------------------------------------
# OpenPose JSON


def _flat(kps: np.ndarray) -> list[float]:
    """``(K, 3)`` -> ``[x, y, c] * K`` with 3 decimals for x, y and 4 for c; missing points
    (c <= 0 or non-finite) are written as ``0, 0, 0`` like OpenPose."""
    out: list[float] = []
    for x, y, c in np.asarray(kps, dtype=np.float64):
        if not (c > 0 and math.isfinite(x) and math.isfinite(y) and math.isfinite(c)):
            out += [0.0, 0.0, 0.0]
        else:
            out += [round(float(x), 3), round(float(y), 3), round(float(c), 4)]
    return out


def _finite(v: float, ndigits: int = 4) -> float:
    v = float(v)
    return round(v, ndigits) if math.isfinite(v) else 0.0


def openpose_json(detections: Detections) -> dict:
    """Detections -> OpenPose (>= 1.3) JSON dict.

    ``{"version": 1.3, "people": [{"person_id": [id], "pose_keypoints_2d": [x, y, c] * 18,
    "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
    "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
    "hand_right_keypoints_3d": []}, ...]}``. ``person_id`` is ``[-1]`` when untracked.
    """
    people = []
    for p in detections.people:
        entry: dict = {"person_id": [int(p.id)], "pose_keypoints_2d": _flat(p.keypoints)}
        entry.update({k: [] for k in _OPENPOSE_EMPTY_KEYS})
        people.append(entry)
    return {"version": OPENPOSE_JSON_VERSION, "people": people}


def write_openpose_json(path: PathLike, detections: Detections) -> Path:
    """Write ``openpose_json(detections)`` to ``path`` atomically."""
    return atomic_write_json(path, openpose_json(detections))


def read_openpose_json(path_or_obj: Union[PathLike, dict],
                       image_size: tuple[int, int] = (0, 0)) -> Detections:
    """Read OpenPose JSON (a path or the loaded dict) back into ``Detections``.

    The file holds no person score: it is set to the mean confidence of found keypoints.
    ``image_size`` is ``(width, height)``, not stored in the file either.
    """
    obj = path_or_obj
    if not isinstance(obj, dict):
        with open(obj, encoding="utf-8") as fh:
            obj = json.load(fh)
    validate_openpose_json(obj)
    people = []
    for entry in obj["people"]:
        kps = np.asarray(entry["pose_keypoints_2d"], np.float32).reshape(NUM_KEYPOINTS, 3)
        found = kps[:, 2] > 0
        score = float(kps[found, 2].mean()) if found.any() else 0.0
        people.append(Person(kps, score, id=int(entry["person_id"][0])))
    return Detections(tuple(image_size), people)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_openpose_json(obj) -> None:
    """Schema-check an OpenPose JSON object; raise ``ValueError`` naming the first problem.

    Checks: ``version`` is a number; ``people`` is a list; each person has the keys of
    ``openpose_json``; ``person_id`` is a non-empty list of ints; ``pose_keypoints_2d``
    holds 54 finite numbers with confidences >= 0 (peaks may slightly exceed 1, and
    refined coordinates may be slightly negative, so neither is an error); the other
    keypoint lists are lists.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"top level must be an object, got {type(obj).__name__}")
    if not _is_number(obj.get("version")):
        raise ValueError("'version' must be a number")
    people = obj.get("people")
    if not isinstance(people, list):
        raise ValueError("'people' must be a list")
    n = 3 * NUM_KEYPOINTS
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
        if not isinstance(kps, list) or len(kps) != n:
            got = len(kps) if isinstance(kps, list) else type(kps).__name__
            raise ValueError(f"{where}.pose_keypoints_2d must have {n} numbers, got {got}")
        if not all(_is_number(v) for v in kps):
            raise ValueError(f"{where}.pose_keypoints_2d must hold finite numbers")
        for k in range(NUM_KEYPOINTS):
            if kps[3 * k + 2] < 0:
                raise ValueError(f"{where} keypoint {k}: negative confidence")
        for k in _OPENPOSE_EMPTY_KEYS:
            if not isinstance(p[k], list):
                raise ValueError(f"{where}.{k} must be a list")


# ---------------------------------------------------------------------------------------
# COCO results


_NUMERIC_STEM = re.compile(r"^\d+$")


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
        for p in detections.people:
            kps = p.coco_keypoints().astype(np.float64)
            kps[~np.isfinite(kps).all(axis=1) | (kps[:, 2] <= 0)] = 0.0
            assert kps.shape == (NUM_COCO_KEYPOINTS, 3)
            self.results.append({
                "image_id": image_id, "category_id": COCO_PERSON_CATEGORY,
                "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
                "score": _finite(p.score, 6)})
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
    int, "pose_keypoints_2d": [x, y, c] * 18, "score": float}]}``.
    ``target`` is a path (opened for writing, or appending with ``append=True``) or an
    open text file (not closed by ``close()``).
    """

    def __init__(self, target: Union[PathLike, IO[str]], *, append: bool = False):
        if hasattr(target, "write"):
            self._fh, self._own = target, False
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(target, "a" if append else "w", encoding="utf-8")
            self._own = True
        self.lines = 0

    def write(self, frame: int, time: Optional[float], detections: Detections,
              name: Optional[str] = None) -> None:
        people = [{"person_id": int(p.id), "pose_keypoints_2d": _flat(p.keypoints),
                   "score": _finite(p.score, 6)} for p in detections.people]
        rec = {"frame": int(frame),
               "time": None if time is None or not math.isfinite(time) else round(time, 6),
               "name": name, "people": people}
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


__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_write_image", "AtomicPath", "openpose_json", "write_openpose_json",
           "read_openpose_json", "validate_openpose_json", "CocoResultsWriter",
           "JsonlWriter", "OPENPOSE_JSON_VERSION"]
