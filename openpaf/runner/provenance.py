"""What produced an input's outputs, as the manifest records it for resuming.

Per input: a *stamp* of its source (``file_stamp``: real path, size, mtime; a sequence or
many files: ``files_stamp``). Per run: its *settings* (``run_settings``: the weights'
sha256, the network and decoder settings the predictor resolved, and every output
setting that changes what is written), stored whole in the run's start record and by
``settings_id`` in each input's record. A resumed run skips an input only when stamp and
settings match (``differences`` says in one line why not).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Optional

from .options import InferOptions

# Predictor attributes that change its detections (read when present; a plain callable
# has none).
PREDICTOR_SETTINGS = ("height", "scales", "flip", "precision", "dtype", "max_side",
                      "pad_value")


def file_stamp(path) -> Optional[dict]:
    """``{"file": real path, "size": bytes, "mtime_ns": ns}``; None when it cannot be read
    (a webcam, a vanished file)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    return {"file": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def files_stamp(paths: Iterable) -> dict:
    """Stamp of several files (a still-image sequence): their count and one sha256 over
    each ``file_stamp``."""
    digest, n = hashlib.sha256(), 0
    for p in paths:
        digest.update(json.dumps(file_stamp(p), sort_keys=True).encode("utf-8", "replace"))
        n += 1
    return {"files": n, "sha256": digest.hexdigest()}


def weights_sha256(path) -> Optional[str]:
    """sha256 of a weights file (an OpenVINO ``.xml`` with its ``.bin``); None if none."""
    if path is None:
        return None
    from ..weights.checkpoint import file_sha256   # (imports torch: not at --help)
    path = Path(path)
    files = [path] + ([path.with_suffix(".bin")] if path.suffix.lower() == ".xml" else [])
    try:
        return "+".join(file_sha256(f) for f in files if f.exists()) or None
    except OSError:
        return None


def _plain(value):
    """A dataclass as a dict (``run_settings`` makes the rest JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def run_settings(predict, o: InferOptions) -> dict:
    """Everything of this run that changes an input's outputs, as the manifest holds it
    (JSON values; anything else as its ``str``)."""
    out: dict = {"weights_sha256": weights_sha256(getattr(predict, "weights_path", None))}
    for name in PREDICTOR_SETTINGS:
        if hasattr(predict, name):
            out[name] = _plain(getattr(predict, name))
    if hasattr(predict, "params"):
        out["decoder"] = _plain(predict.params)
    if hasattr(predict, "model"):  # (torch module, onnxruntime or OpenVINO model)
        out["runtime"] = type(predict.model).__name__
    out.update(layout=o.openpose.layout, keypoint_scale=o.openpose.keypoint_scale,
               part_candidates=o.openpose.part_candidates,
               number_people_max=o.number_people_max, render_threshold=o.render_threshold,
               maps_format=o.maps_format, every=o.every, track=o.track, smooth=o.smooth,
               tracker=_plain(o.tracker_params()) if o.track else None)
    return json.loads(json.dumps(out, default=str))


def settings_id(settings: dict) -> str:
    """Short stable id of ``settings`` (16 hex digits of the sha256 of its JSON)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _show(key: str, old, new) -> str:
    if isinstance(old, (dict, list)) or isinstance(new, (dict, list)):
        return f"{key} changed"
    if key == "weights_sha256":
        return f"weights changed (sha256 {str(old)[:12]} -> {str(new)[:12]})"
    return f"{key} {old} -> {new}"


def differences(old: Optional[dict], new: dict) -> str:
    """One line naming the settings that differ (``old`` None: not recorded)."""
    if old is None:
        return "its settings were not recorded"
    keys = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
    return ", ".join(_show(k, old.get(k), new.get(k)) for k in keys) or "settings changed"


def stamp_difference(old: Optional[dict], new: Optional[dict]) -> Optional[str]:
    """Why a source stamp does not match (None when it does)."""
    if old == new:
        return None
    if old is None or new is None:
        return "its source was not recorded"
    if old.get("file") != new.get("file"):
        return f"another source (was {old.get('file')})"
    return "its source file changed"


__all__ = ["file_stamp", "files_stamp", "weights_sha256", "run_settings", "settings_id",
           "differences", "stamp_difference"]
