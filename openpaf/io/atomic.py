"""Atomic file writes: a temp file in the target's folder, fsync, ``os.replace``.

Readers see the old file or the complete new one, never a partial one; the temp file
(named by ``paths.temp_prefix``, so ``paths.remove_stale_temp_files`` can clear what a
killed process left) is removed on any failure.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from .paths import temp_prefix

PathLike = Union[str, os.PathLike]

# Read once at import: os.umask can only be read by setting it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


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


__all__ = ["AtomicPath", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_write_image"]
