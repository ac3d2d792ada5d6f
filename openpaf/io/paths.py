"""Rules about the paths a run writes, enforced in one place.

* An output is never an input: files a run would write (``--jsonl``, ``--coco-json``) may
  not be an input nor carry an image/video extension (``check_output_files``), and the
  rendered outputs in the output folder (``*_rendered.jpg``, ``*_rendered.mp4``) are never
  read back as inputs (``is_own_output``).
* Run-level files (``openpaf_manifest[.shard<i>of<n>].jsonl``,
  ``openpaf_images[.shard<i>of<n>].jsonl``) have reserved stems: a per-stream output never
  takes one (``is_reserved_stem``).
* One run at a time writes one output folder (per shard): ``output_lock``.
* Temporary files carry their writer's pid (``temp_prefix``), so a resumed run removes
  those a killed run left (``remove_stale_temp_files``) without touching a live one's.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Union

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

MANIFEST_STEM = "openpaf_manifest"
IMAGES_STEM = "openpaf_images"
_RESERVED = re.compile(rf"({MANIFEST_STEM}|{IMAGES_STEM})(\.shard\d+of\d+)?", re.IGNORECASE)
_TEMP = re.compile(r"\..+\.(\d+)\.[^.]+\.tmp(\.[^.]+)?")
_OWN_OUTPUT = re.compile(r".*_rendered\.(jpg|mp4)", re.IGNORECASE)
LOCK_NAME = ".openpaf.lock"


class OutputError(ValueError):
    """An output path that must not be written; ``str(err)`` is one line."""


def shard_suffix(shard: Optional[tuple[int, int]]) -> str:
    """``""`` or ``".shard<i>of<n>"``."""
    return "" if shard is None else f".shard{shard[0]}of{shard[1]}"


def is_reserved_stem(stem: str) -> bool:
    """True for the stem of a run-level file (manifest, images JSONL, any shard)."""
    return _RESERVED.fullmatch(stem) is not None


def is_own_output(path: PathLike, output: Optional[PathLike]) -> bool:
    """True when ``path`` is a rendered output (``*_rendered.jpg|mp4``) inside ``output``."""
    if output is None or not _OWN_OUTPUT.fullmatch(os.path.basename(path)):
        return False
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    folder = os.path.realpath(output)
    return parent == folder or parent.startswith(folder.rstrip(os.sep) + os.sep)


def file_key(path: PathLike) -> Optional[tuple[int, int]]:
    """``(device, inode)`` of the file ``path`` resolves to, None when it does not exist."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def check_output_files(files: Mapping[str, Optional[PathLike]],
                       inputs: Iterable[tuple[int, int]]) -> None:
    """Refuse, before anything is opened, an output file (``label -> path``, None = not
    written) that has an image/video extension, resolves to an input (``file_key`` of
    each), is another output's file, is a folder, or whose folder cannot be written.
    Raises ``OutputError``."""
    keys = set(inputs)
    taken: dict[str, str] = {}
    for label, path in files.items():
        if path is None:
            continue
        path = Path(path)
        real = os.path.realpath(path)
        if real in taken:
            raise OutputError(f"{label} {path} is also the {taken[real]} file")
        taken[real] = label
        if path.suffix.lower() in MEDIA_EXTENSIONS:
            raise OutputError(f"{label} {path}: refusing to write an image/video file name "
                              f"(it looks like an input); use .json/.jsonl")
        key = file_key(path)
        if key is not None and key in keys:
            raise OutputError(f"{label} {path} is one of the inputs: refusing to "
                              "overwrite it")
        if path.is_dir():
            raise OutputError(f"{label} {path} is a folder")
        parent = _existing_parent(path)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"{label} {path}: cannot write in {parent}")


def _existing_parent(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


@contextmanager
def output_lock(folder: PathLike, shard: Optional[tuple[int, int]] = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (one per shard) for a run; raises
    ``OutputError`` at once when another process holds it. The lock file
    (``.openpaf.lock[.shard<i>of<n>]``) is removed on exit; a killed run's is reused."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield Path(folder)
        return
    path = Path(folder) / (LOCK_NAME + shard_suffix(shard))
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"output folder {folder} is in use by another openpaf run "
                              f"(pid {other}); wait for it, or use another -o or --shard") \
                from None
        if os.fstat(fd).st_ino == (file_key(path) or (0, -1))[1]:
            break
        os.close(fd)  # the holder removed the file meanwhile: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def temp_prefix(path: PathLike) -> str:
    """``mkstemp`` prefix of a temp file that will replace ``path``: ``.<name>.<pid>.``."""
    return f".{Path(path).name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temp_files(folder: PathLike) -> int:
    """Remove the temp files (``temp_prefix`` naming) in ``folder`` whose writer process
    is gone (a ``kill -9``); returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        m = _TEMP.fullmatch(e.name)
        if m and e.is_file(follow_symlinks=False) and not _alive(int(m.group(1))):
            try:
                os.unlink(e.path)
                removed += 1
            except OSError:
                pass
    return removed


__all__ = ["remove_stale_temp_files", "temp_prefix", "OutputError", "check_output_files", "file_key", "is_own_output",
           "is_reserved_stem", "output_lock", "shard_suffix", "IMAGE_EXTENSIONS",
           "VIDEO_EXTENSIONS", "MEDIA_EXTENSIONS", "MANIFEST_STEM", "IMAGES_STEM",
           "LOCK_NAME"]
