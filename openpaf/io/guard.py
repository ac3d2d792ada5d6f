"""One rule for every command that writes a file: an output is never one of its inputs.

``infer`` checks its many outputs with ``paths.check_output_files``; the single-output
commands (``eval --json``, ``benchmark --json``, ``weights import/pack/export``,
``export --onnx``) call ``check_output`` before they read or compute anything.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

from .paths import OutputError, file_key

PathLike = Union[str, os.PathLike]


def _same_file(output: Path, source: Path) -> bool:
    """True when ``output`` names ``source``: same resolved path (symlinks followed) or
    the same existing file (device, inode), which also catches hard links."""
    if os.path.realpath(output) == os.path.realpath(source):
        return True
    key = file_key(output)
    return key is not None and key == file_key(source)


def _writable_folder(path: Path) -> Path:
    """The nearest existing folder above ``path`` (where it, or its folders, get made)."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _in_folders(out: Path, folders: Iterable[Optional[PathLike]]) -> Optional[Path]:
    """The folder of ``folders`` whose files (not recursively) include the existing file
    ``out`` (by device and inode), else None."""
    key = file_key(out)
    if key is None:
        return None
    for folder in folders:
        if folder is not None and Path(folder).is_dir():
            if any(file_key(f) == key for f in Path(folder).iterdir()):
                return Path(folder)
    return None


def check_output(output: PathLike, inputs: Iterable[Optional[PathLike]],
                 label: str = "output", folders: Iterable[Optional[PathLike]] = ()) -> None:
    """Refuse ``output`` (raise ``OutputError``, one line) when it resolves to any of
    ``inputs`` or to a file in one of the input ``folders`` (None entries ignored),
    including through symbolic or hard links, is a folder, or its folder cannot be
    written."""
    out = Path(output)
    for source in inputs:
        if source is not None and _same_file(out, Path(source)):
            raise OutputError(f"{label} {out} is the input {source}: refusing to overwrite "
                              "it; choose another file name")
    folder = _in_folders(out, folders)
    if folder is not None:
        raise OutputError(f"{label} {out} is an input file in {folder}: refusing to "
                          "overwrite it; choose another file name")
    if out.is_dir():
        raise OutputError(f"{label} {out} is a folder")
    folder = _writable_folder(out)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{label} {out}: cannot write in {folder}")


def companions(path: Optional[PathLike]) -> list[Path]:
    """``path`` and the files read with it: an OpenVINO IR's ``.xml`` and ``.bin``."""
    if path is None:
        return []
    p = Path(path)
    if p.suffix.lower() in (".xml", ".bin"):
        return [p, p.with_suffix(".xml"), p.with_suffix(".bin")]
    return [p]


__all__ = ["check_output", "companions", "OutputError"]
