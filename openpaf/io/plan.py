"""Input specs -> units to read: expansion of files, folders, globs and webcam indexes
(natural sort order, each real file once, the run's own outputs never), output names
unique over the whole expansion, sequences of stills, and the shard a unit belongs to.
See ``io.sources`` for the rules."""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from ..errors import one_line
from .frames import Duplicate, InputError
from .paths import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, file_key, is_own_output, is_reserved_stem
from .urls import is_live_spec, mask_credentials, stream_stem

# Largest number taken as a webcam index (a longer digit string is a missing file).
MAX_WEBCAM_INDEX = 9999


@dataclass
class Unit:
    """One still image, video, webcam or live stream to read."""

    kind: str      # "image" | "video" | "webcam" | "stream" (URL or /dev/videoN)
    path: str      # file path, the webcam index as a string, or the stream URL
    index: int = 0  # position inside a folder/glob listing
    name: str = ""  # output name (image) or stream stem (video, webcam)

    @property
    def source(self) -> str:
        """The path, ``webcam:N``, or the stream URL without its credentials."""
        if self.kind == "stream":
            return mask_credentials(self.path)
        return f"webcam:{self.path}" if self.kind == "webcam" else self.path


@dataclass
class StillSequence:
    """Still images tracked as one stream (``sequences=True``)."""

    source: str    # the folder/glob spec, or "<first> ... <last> (N files)"
    images: list   # of Unit
    name: str = ""


def natural_key(path: str):
    """Sort key: case-insensitive, digit runs compared as numbers (img2 < img10)."""
    parts = re.split(r"(\d+)", path.lower())
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts], path


def is_glob(spec: str) -> bool:
    """True for a glob pattern (``* ? [``)."""
    return any(c in spec for c in "*?[")


def kind_of(path: str) -> Optional[str]:
    """"image" or "video" by extension, else None."""
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def glob_files(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, except that ``**`` never descends into a
    link to a folder (a link loop would repeat the same files without end)."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    i = parts.index("**")
    head = os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else "")
    tail = os.sep.join(parts[i + 1:])
    out: list[str] = []
    for base in (glob.glob(head) if is_glob(head) else [head]) if head else [""]:
        for root, dirs, names in os.walk(base or os.curdir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            root = "" if root == os.curdir and not base else root
            if tail:
                out += glob_files(os.path.join(glob.escape(root), tail))
            else:
                out += [os.path.join(root, n) for n in names if not n.startswith(".")]
    return out


def _keep(files: list[str], seen: dict, output) -> Iterator[Union[str, Duplicate]]:
    """``files`` less the run's own outputs and paths already listed; another path to a
    file already listed (by real file: links) as a ``Duplicate`` naming the path listed
    first."""
    for f in files:
        key = file_key(f)
        if is_own_output(f, output):
            continue
        if key in seen:
            if os.path.abspath(f) != os.path.abspath(seen[key]):
                yield Duplicate(f, seen[key])
            continue
        seen[key] = f
        yield f


def _units(files: list[str], seen: dict, output,
           kind=None) -> Iterator[Union[Unit, Duplicate]]:
    """``Unit``s of the ``_keep`` files (indexed in order) and their ``Duplicate``s."""
    i = 0
    for f in _keep(files, seen, output):
        if isinstance(f, Duplicate):
            yield f
            continue
        yield Unit(kind or kind_of(f), f, i)
        i += 1


def expand(spec: str, recursive: bool, seen: dict,
           output=None) -> Iterator[Union[Unit, InputError, Duplicate]]:
    """The inputs of one spec; outputs of the run into ``output`` are left out, files in
    ``seen`` (``file_key -> path``) come as ``Duplicate``, the others are added to it."""
    spec = os.fspath(spec)
    if is_live_spec(spec):
        yield Unit("stream", spec)
    elif os.path.isfile(spec):
        yield from _units([spec], seen, output, kind_of(spec) or "image")
    elif os.path.isdir(spec):
        if recursive:
            files = [os.path.join(root, f) for root, dirs, names in os.walk(spec)
                     for f in names if not f.startswith(".")
                     and not any(part.startswith(".") for part in
                                 Path(os.path.relpath(root, spec)).parts if part != ".")]
        else:
            try:
                files = [e.path for e in os.scandir(spec)
                         if e.is_file() and not e.name.startswith(".")]
            except OSError as e:
                yield InputError(spec, one_line(f"cannot list folder ({e.strerror or e})", 200))
                return
        files = sorted((f for f in files if kind_of(f)), key=natural_key)
        if not files:
            yield InputError(spec, "no images in folder")
        yield from _units(files, seen, output)
    elif spec.isdigit():
        if int(spec) > MAX_WEBCAM_INDEX:
            yield InputError(spec, f"no such file, and not a webcam index "
                                   f"(0-{MAX_WEBCAM_INDEX})")
            return
        yield Unit("webcam", spec)
    elif is_glob(spec):
        files = sorted((f for f in glob_files(spec) if kind_of(f) and os.path.isfile(f)),
                       key=natural_key)
        if not files:
            yield InputError(spec, "no images or videos match the pattern")
        yield from _units(files, seen, output)
    elif os.path.exists(spec):
        yield InputError(spec, "not a regular file or folder (a FIFO, socket or device)")
    else:
        yield InputError(spec, "no such file or directory")


# A video's frame ``i`` is named ``<stem>_<i:06d>`` (``io.video``).
_FRAME_NAME = re.compile(r"(.*)_\d{6,}")


class Names:
    """The output names of one run, each given once (``give``): never the stem of a
    run-level file, nor one of ``reserved`` (names whose outputs a run-level file takes),
    and a still's name never looks like a frame of a video stem given in the run
    (``<stem>_000123``, as ``ffmpeg -i a.mp4 a_%06d.jpg`` names them), in either order."""

    def __init__(self, reserved=()):
        self.used: set[str] = set()
        self.videos: set[str] = set()     # stems whose frames are named <stem>_<number>
        self.frame_like: set[str] = set()  # <stem> of names looking like <stem>_<number>
        for name in reserved:
            self._take(name)

    def _take(self, name: str) -> None:
        self.used.add(name)
        m = _FRAME_NAME.fullmatch(name)
        if m:
            self.frame_like.add(m.group(1))

    def _taken(self, name: str, video: bool) -> bool:
        if name in self.used or is_reserved_stem(name):
            return True
        if video:
            return name in self.frame_like
        m = _FRAME_NAME.fullmatch(name)
        return m is not None and m.group(1) in self.videos

    def give(self, name: str, video: bool = False) -> str:
        """``name``, or ``name_2``, ``name_3``... when taken (``video``: a stream stem
        whose frames get ``<stem>_<number>`` names)."""
        out, k = name, 1
        while self._taken(out, video):
            k += 1
            out = f"{name}_{k}"
        self._take(out)
        if video:
            self.videos.add(out)
        return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; raises ``ValueError`` otherwise."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {text!r}") from None
    check_shard((i, n))
    return i, n


def check_shard(shard: Optional[tuple[int, int]]) -> None:
    """Raise ``ValueError`` unless ``shard`` is None or ``(i, n)`` with ``0 <= i < n``."""
    if shard is None:
        return
    i, n = shard
    if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")


def sequence_stem(spec: str) -> str:
    """Folder name of a folder or glob spec (the part before the first wildcard)."""
    if is_glob(spec):
        head = re.split(r"[*?\[]", spec, maxsplit=1)[0]
        spec = head if head.endswith(("/", os.sep)) else os.path.dirname(head)
    name = Path(os.path.abspath(spec or ".")).name
    return name or "images"


class _Planner:
    """The state of one expansion: names used, files seen, the unit count for shards, and
    the open run of image-file specs in one folder (``sequences=True``)."""

    def __init__(self, every: int, recursive: bool, shard: Optional[tuple[int, int]],
                 sequences: bool, output, reserved=()):
        self.every, self.recursive, self.shard = every, recursive, shard
        self.sequences, self.output = sequences, output
        self.names = Names(reserved)
        self.seen: dict = {}
        self.position = 0
        self.run: Optional[StillSequence] = None
        self.run_dir: Optional[str] = None

    def mine(self) -> bool:
        """Count one unit; True when it falls in this shard."""
        self.position += 1
        return self.shard is None or (self.position - 1) % self.shard[1] == self.shard[0]

    def close_run(self) -> Iterator[StillSequence]:
        """The open run of image-file specs as one sequence (when in this shard)."""
        if self.run is None:
            return
        seq, self.run, self.run_dir = self.run, None, None
        first, last = seq.images[0].path, seq.images[-1].path
        seq.source = first if len(seq.images) == 1 else \
            f"{first} ... {last} ({len(seq.images)} files)"
        seq.name = self.names.give(Path(os.path.abspath(first)).parent.name or "images")
        if self.mine():
            yield seq

    def units(self, spec: str) -> Iterator[Union[Unit, StillSequence, InputError]]:
        """The units of one spec (images of a run of image files are held back)."""
        image_file = os.path.isfile(spec) and kind_of(spec) != "video"
        in_run = self.sequences and image_file
        folder = os.path.dirname(os.path.abspath(spec)) if in_run else None
        if not in_run or (self.run is not None and folder != self.run_dir):
            yield from self.close_run()
        group = StillSequence(spec, []) if self.sequences and not image_file else None
        for inp in expand(spec, self.recursive, self.seen, self.output):
            if isinstance(inp, (InputError, Duplicate)):
                if self.mine():
                    yield inp
                continue
            if inp.kind == "image":
                if inp.index % self.every:
                    continue
                inp.name = self.names.give(Path(inp.path).stem)
                if in_run:
                    if self.run is None:
                        self.run, self.run_dir = StillSequence("", []), folder
                    self.run.images.append(inp)
                    continue
                if group is not None:
                    group.images.append(inp)
                    continue
            else:
                stem = (f"webcam{inp.path}" if inp.kind == "webcam" else stream_stem(inp.path)
                        if inp.kind == "stream" else Path(inp.path).stem)
                inp.name = self.names.give(stem, video=True)
            if self.mine():
                yield inp
        if group is not None and group.images:
            group.name = self.names.give(sequence_stem(spec))
            if self.mine():
                yield group


def plan(specs: list[str], *, every: int, recursive: bool,
         shard: Optional[tuple[int, int]], sequences: bool, output=None,
         reserved=()) -> Iterator[Union[Unit, StillSequence, InputError, Duplicate]]:
    """The units (image, video, webcam, sequence, expansion error) of ``specs`` in this
    ``shard``, in order, with output names assigned over all shards (see ``io.sources``).
    A file is listed once however often it is reached (links, repeated specs).
    ``reserved``: names not to give (see ``Names``)."""
    planner = _Planner(every, recursive, shard, sequences, output, reserved)
    for spec in specs:
        yield from planner.units(os.fspath(spec))
    yield from planner.close_run()


def input_keys(specs: list[str], *, recursive: bool = False, output=None) -> set:
    """``paths.file_key`` of every file the specs expand to (all shards)."""
    seen: dict = {}
    for spec in specs:
        for _ in expand(os.fspath(spec), recursive, seen, output):
            pass
    return set(seen)


__all__ = ["MAX_WEBCAM_INDEX", "Names", "StillSequence", "Unit", "check_shard", "expand",
           "input_keys", "kind_of", "natural_key", "parse_shard", "plan"]
