"""Input sources: image files, folders, glob patterns, videos and webcams, as frames.

``iter_frames(specs)`` turns command-line style input specs into a stream of ``Frame``
(a decoded BGR image plus where it came from) and ``InputError`` (a bad input, with a
one-line reason). Bad inputs never raise: the caller reports them and goes on.

Spec kinds, tried in this order:
  * an existing file: a video if its extension is in ``VIDEO_EXTENSIONS``, else an image;
  * an existing folder: its images and videos (``IMAGE_EXTENSIONS`` (GIF: its first
    frame), ``VIDEO_EXTENSIONS``, case-insensitive; hidden ``.*`` files skipped, like
    glob does), in natural sort order (``img2`` before
    ``img10``), non-recursive unless ``recursive=True``;
  * all digits (and no such file): a webcam index for ``cv2.VideoCapture``;
  * containing ``* ? [``: a glob pattern (``**`` recurses, but not into links to
    folders); matching images and videos;
  * anything else: an ``InputError`` ("no such file or directory").

A file is read once however often the specs reach it (same real file: links, repeated
specs), and the rendered outputs in the run's ``output`` folder are never inputs (see
``io.paths``). Output names are assigned over the whole expansion of all specs (so they
do not depend on ``shard``), and never take the stem of a run-level file
(``openpaf_manifest``, ``openpaf_images``). With ``events=True`` the stream also carries
``Skipped`` (an input dropped by a ``skip``/``skip_stream`` callback) and ``StreamEnd``
(the last frame of a video, webcam or still-image sequence has been yielded) markers, for
consumers that keep per-stream state.

Units: each still image, video and webcam is one unit; with ``sequences=True`` the images
of one folder or glob spec (or of a run of consecutive image-file specs in one folder, as
the shell expands ``frames/*.jpg``) form one *sequence* unit instead. ``shard=(i, n)``
keeps the units whose position in the expansion (after ``every``, counting expansion
errors) is ``i`` modulo ``n``: n processes given the same specs and files split the work
with every unit in exactly one shard, and a video or sequence is never split.
"""
from __future__ import annotations

import glob
import os
import re
import struct
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import cv2
import numpy as np

from .paths import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, file_key, is_own_output, is_reserved_stem

# Images declaring more pixels than this are refused before decoding (a 20000 x 20000
# header would otherwise make the decoder allocate gigabytes).
MAX_IMAGE_PIXELS = 100_000_000
# Largest number taken as a webcam index (a longer digit string is a missing file).
MAX_WEBCAM_INDEX = 9999
# Consecutive unreadable webcam frames tolerated before giving up on it; also the longest
# unreadable tail of a video file taken as an over-stated frame count, not as damage.
MAX_BAD_FRAMES = 5
# Held while file descriptor 2 is silenced around a decode call (``_quiet_stderr``). A
# thread that must not lose what it writes to stderr (e.g. one-line error reports while a
# prefetch thread decodes) takes it around the write.
STDERR_LOCK = threading.RLock()

# FFmpeg's own log lines ("[mpeg4 @ 0x...] header damaged") would break one-line error
# reports, and its decoder threads can print them while fd 2 is not silenced: make OpenCV
# set FFmpeg's log level to quiet when it loads FFmpeg (unless the user chose a level).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
try:  # OpenCV's own log lines ("[ WARN:0@...] ...") would break one-line error reports.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass


class ImageLoadError(Exception):
    """An image file that cannot be used; ``str(err)`` is a one-line reason."""


@dataclass
class Frame:
    """One decoded input image.

    name: unique output stem: the image stem (``_2``, ``_3``... appended on clashes), or
        ``<video stem>_000123`` for frame 123 of a video (``webcam0_000123`` for webcams).
    image: ``(H, W, 3)`` uint8 BGR, C-contiguous.
    source: the file path (or ``webcam:N``) the frame came from.
    index: frame number inside its source (0 for a still image, or its position in the
        folder/glob listing).
    time: presentation time in seconds for video and webcam frames, None for stills.
    fps: frames per second of the video/webcam (None for stills, or when unknown).
    video: the stem shared by all frames of one video/webcam stream (``<video stem>`` or
        ``webcamN``), None for still images. Writers group a stream's frames by it.
    sequence: the stream the frame belongs to: ``video`` for video/webcam frames; for
        still images read with ``sequences=True`` the (unique) stem of their sequence
        (folder name, glob folder name, ...); else None.
    stream_source: what the stream is read from: the video path, ``webcam:N``, or the
        sequence's folder/glob spec (``"<first> ... <last> (N files)"`` for a run of image
        arguments); None when ``sequence`` is None.
    """

    name: str
    image: np.ndarray
    source: str
    index: int = 0
    time: Optional[float] = None
    fps: Optional[float] = None
    video: Optional[str] = None
    sequence: Optional[str] = None
    stream_source: Optional[str] = None


@dataclass
class InputError:
    """An input that could not be read; ``reason`` is one line for ``skipped <src>: <reason>``.
    frames: ``(first, last)`` frame numbers for unreadable frames of a video, else None."""

    source: str
    reason: str
    frames: Optional[tuple[int, int]] = None


@dataclass
class Skipped:
    """(``events=True`` only) An input dropped undecoded because a skip callback said so.

    kind: "image" (``skip(name)`` was True), or "video" / "sequence" (``skip_stream`` was
    True for the whole stream). name: the image's output name or the stream stem.
    frames: number of frames dropped when known (1 for an image, the image count of a
    sequence, None for a video).
    """

    source: str
    name: str
    kind: str = "image"
    frames: Optional[int] = 1


@dataclass
class StreamEnd:
    """(``events=True`` only) A video, webcam or sequence stream has ended.

    Follows the stream's last ``Frame`` (and any ``InputError`` about it). Not sent for a
    stream that could not be opened (an ``InputError`` reports that).
    name, source, kind: the stream's ``Frame.sequence``, ``Frame.stream_source`` and
        "video" | "webcam" | "sequence".
    frames: number of ``Frame``s yielded for it.
    complete: True when the stream ended by itself (end of file, or given up after
        unreadable frames); False when ``max_frames`` cut it short.
    """

    source: str
    name: str
    kind: str
    frames: int
    complete: bool


Item = Union[Frame, InputError, Skipped, StreamEnd]


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# Still images


@contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (libpng/libjpeg print straight to it, bypassing OpenCV's
    log level). Process-wide while active, so only wrapped around single decode calls, and
    done holding ``STDERR_LOCK`` (writers to stderr in other threads take it too)."""
    with STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all
            yield
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _header_size(data: bytes) -> Optional[tuple[int, int]]:
    """``(width, height)`` declared by a PNG, JPEG, BMP or WebP header, else None.

    Cheap (reads a few header bytes / JPEG marker segments); used to refuse absurd sizes
    before the decoder allocates memory for them.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            kind = data[12:16]
            if kind == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                h = 1 + int.from_bytes(data[27:30], "little")
                return w, h
            if kind == b"VP8L":
                b = int.from_bytes(data[21:25], "little")
                return 1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)
            if kind == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            return None
        if data[:2] == b"\xff\xd8":
            i, n = 2, len(data)
            while i + 9 < n:
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:  # fill byte
                    i += 1
                    continue
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return w, h
                i += 2 + seg_len
    except struct.error:
        return None
    return None


def _to_bgr_uint8(img: np.ndarray) -> np.ndarray:
    """Any decoded array -> ``(H, W, 3)`` uint8 BGR, C-contiguous (see ``load_image``)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ImageLoadError(f"unsupported image layout {img.shape}")
    # Depth first, so alpha compositing happens in [0, 1] floats.
    if img.dtype == np.uint8:
        f = None
    elif img.dtype == np.uint16:
        f = img.astype(np.float32) / 65535.0
    elif img.dtype in (np.int8, np.int16, np.int32):
        # Signed integer TIFFs: assume the non-negative part of the type's range.
        f = np.clip(img.astype(np.float32) / float(np.iinfo(img.dtype).max), 0.0, 1.0)
    elif np.issubdtype(img.dtype, np.floating):
        f = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        if f.size and float(f.max()) > 1.0:  # looks like 0..255 data, not 0..1
            f = f / 255.0
        f = np.clip(f, 0.0, 1.0)
    else:
        raise ImageLoadError(f"unsupported pixel type {img.dtype}")
    channels = img.shape[2]
    if channels in (2, 4):  # colour + alpha: composite on white
        if f is None:
            f = img.astype(np.float32) / 255.0
        alpha = f[:, :, -1:]
        f = f[:, :, :-1] * alpha + (1.0 - alpha)
    if f is not None:
        img = np.rint(f * 255.0).astype(np.uint8)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> ``(H, W, 3)`` uint8 BGR. Raises ``ImageLoadError``.

    See ``load_image`` for the conversions applied.
    """
    if len(data) == 0:
        raise ImageLoadError("empty file")
    size = _header_size(data)
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            raise ImageLoadError(f"invalid image size {w}x{h} in header")
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageLoadError(f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP, "
                                 f"limit {MAX_IMAGE_PIXELS / 1e6:.0f} MP)")
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if is_jpeg and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageLoadError("truncated JPEG (no end-of-image marker)")
    # JPEGs are 8-bit without alpha: IMREAD_COLOR also applies the EXIF orientation.
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        with _quiet_stderr():
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        msg = str(e).lower()
        if "pixels" in msg or "limit" in msg or "too" in msg:
            raise ImageLoadError("image too large for the decoder") from None
        raise ImageLoadError("not an image (cannot decode)") from None
    if img is None or img.size == 0:
        raise ImageLoadError("not an image (cannot decode)")
    return _to_bgr_uint8(img)


def load_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 BGR (C-contiguous).

    Raises ``ImageLoadError`` with a one-line reason for: a missing/unreadable file, an
    empty file, bytes no decoder accepts, a truncated JPEG (no ``FFD9`` end marker after
    stripping trailing zero bytes), or a header declaring more than ``MAX_IMAGE_PIXELS``.

    Conversions: bytes are read by Python (so non-ASCII paths work) and decoded with
    ``cv2.imdecode`` (JPEG: EXIF orientation applied); grayscale -> BGR by repetition;
    an alpha channel is composited onto a white background (transparent = white);
    16-bit -> 8-bit by ``round(v / 257)``; float images are taken as 0..1 (or 0..255 when
    their maximum exceeds 1), clipped and scaled to 0..255.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageLoadError("no such file") from None
    except IsADirectoryError:
        raise ImageLoadError("is a directory") from None
    except OSError as e:
        raise ImageLoadError(_one_line(f"cannot read file ({e.strerror or e})")) from None
    return decode_image(data)


# ---------------------------------------------------------------------------------------
# Expanding specs


@dataclass
class _Input:
    kind: str      # "image" | "video" | "webcam"
    path: str      # file path, or the webcam index as a string
    index: int = 0  # position inside a folder/glob listing
    name: str = ""  # output name (image) or stream stem (video, webcam)


@dataclass
class _Sequence:
    """Still images tracked as one stream (``sequences=True``)."""

    source: str    # the folder/glob spec, or "<first> ... <last> (N files)"
    images: list   # of _Input
    name: str = ""


def _natural_key(path: str):
    """Sort key: case-insensitive, digit runs compared as numbers (img2 < img10)."""
    parts = re.split(r"(\d+)", path.lower())
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts], path


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def _kind_of(path: str) -> Optional[str]:
    ext = os.path.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def _glob(pattern: str) -> list[str]:
    """``glob.glob(pattern, recursive=True)``, except that ``**`` never descends into a
    link to a folder (a link loop would repeat the same files without end)."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    i = parts.index("**")
    head = os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else "")
    tail = os.sep.join(parts[i + 1:])
    out: list[str] = []
    for base in (glob.glob(head) if _is_glob(head) else [head]) if head else [""]:
        for root, dirs, names in os.walk(base or os.curdir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            root = "" if root == os.curdir and not base else root
            if tail:
                out += _glob(os.path.join(glob.escape(root), tail))
            else:
                out += [os.path.join(root, n) for n in names if not n.startswith(".")]
    return out


def _keep(files: list[str], seen: set, output) -> list[str]:
    """``files`` less the run's own outputs and files already listed (by real file)."""
    kept = []
    for f in files:
        key = file_key(f)
        if key in seen or is_own_output(f, output):
            continue
        seen.add(key)
        kept.append(f)
    return kept


def _expand(spec: str, recursive: bool, seen: set,
            output=None) -> Iterator[Union[_Input, InputError]]:
    """The inputs of one spec; files in ``seen`` (``file_key``) or outputs of the run into
    ``output`` are left out, the others added to ``seen``."""
    spec = os.fspath(spec)
    if os.path.isfile(spec):
        for f in _keep([spec], seen, output):
            yield _Input(_kind_of(f) or "image", f)
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
                yield InputError(spec, _one_line(f"cannot list folder ({e.strerror or e})"))
                return
        files = sorted((f for f in files if _kind_of(f)), key=_natural_key)
        if not files:
            yield InputError(spec, "no images in folder")
        files = _keep(files, seen, output)
        for i, f in enumerate(files):
            yield _Input(_kind_of(f), f, i)
    elif spec.isdigit():
        if int(spec) > MAX_WEBCAM_INDEX:
            yield InputError(spec, f"no such file, and not a webcam index "
                                   f"(0-{MAX_WEBCAM_INDEX})")
            return
        yield _Input("webcam", spec)
    elif _is_glob(spec):
        files = sorted((f for f in _glob(spec) if _kind_of(f) and os.path.isfile(f)),
                       key=_natural_key)
        if not files:
            yield InputError(spec, "no images or videos match the pattern")
        files = _keep(files, seen, output)
        for i, f in enumerate(files):
            yield _Input(_kind_of(f), f, i)
    else:
        yield InputError(spec, "no such file or directory")


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when used or the stem of a run-level file."""
    out, k = name, 1
    while out in used or is_reserved_stem(out):
        k += 1
        out = f"{name}_{k}"
    used.add(out)
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


def _sequence_stem(spec: str) -> str:
    """Folder name of a folder or glob spec (the part before the first wildcard)."""
    if _is_glob(spec):
        head = re.split(r"[*?\[]", spec, maxsplit=1)[0]
        spec = head if head.endswith(("/", os.sep)) else os.path.dirname(head)
    name = Path(os.path.abspath(spec or ".")).name
    return name or "images"


def _plan(specs: list[str], *, every: int, recursive: bool,
          shard: Optional[tuple[int, int]], sequences: bool,
          output=None) -> Iterator[Union[_Input, _Sequence, InputError]]:
    """The units (image, video, webcam, sequence, expansion error) of ``specs`` in this
    ``shard``, in order, with output names assigned over all shards (see module doc).
    A file is listed once however often it is reached (links, repeated specs)."""
    used: set[str] = set()
    seen: set = set()
    position = 0
    run: Optional[_Sequence] = None   # a run of image-file specs in one folder
    run_dir: Optional[str] = None

    def mine() -> bool:
        nonlocal position
        position += 1
        return shard is None or (position - 1) % shard[1] == shard[0]

    def close_run() -> Optional[_Sequence]:
        nonlocal run, run_dir
        if run is None:
            return None
        seq, run, run_dir = run, None, None
        first, last = seq.images[0].path, seq.images[-1].path
        seq.source = first if len(seq.images) == 1 else \
            f"{first} ... {last} ({len(seq.images)} files)"
        seq.name = _unique(Path(os.path.abspath(first)).parent.name or "images", used)
        return seq if mine() else None

    for spec in specs:
        spec = os.fspath(spec)
        image_file = os.path.isfile(spec) and _kind_of(spec) != "video"
        if sequences and image_file:
            folder = os.path.dirname(os.path.abspath(spec))
            if run is not None and folder != run_dir:
                seq = close_run()
                if seq is not None:
                    yield seq
        else:
            seq = close_run()
            if seq is not None:
                yield seq
        group = _Sequence(spec, []) if sequences and not image_file else None
        for inp in _expand(spec, recursive, seen, output):
            if isinstance(inp, InputError):
                if mine():
                    yield inp
                continue
            if inp.kind == "image":
                if inp.index % every:
                    continue
                inp.name = _unique(Path(inp.path).stem, used)
                if sequences and image_file:
                    if run is None:
                        run, run_dir = _Sequence("", []), folder
                    run.images.append(inp)
                    continue
                if group is not None:
                    group.images.append(inp)
                    continue
            else:
                stem = f"webcam{inp.path}" if inp.kind == "webcam" else Path(inp.path).stem
                inp.name = _unique(stem, used)
            if mine():
                yield inp
        if group is not None and group.images:
            group.name = _unique(_sequence_stem(spec), used)
            if mine():
                yield group
    seq = close_run()
    if seq is not None:
        yield seq


# ---------------------------------------------------------------------------------------
# Video and webcam


def _read(cap, want: bool):
    """``(ok, image or None)`` of one ``read`` (``want``) or ``grab``; never raises."""
    try:
        with _quiet_stderr():  # ffmpeg logs decode errors straight to fd 2
            if want:
                ok, img = cap.read()
                return bool(ok) and img is not None and img.size > 0, img
            return bool(cap.grab()), None
    except cv2.error:
        return False, None


def _video_frames(cap, source: str, stem: str, every: int, *, live: bool,
                  limit: Optional[int]):
    """Frames of one opened ``cv2.VideoCapture``-like object (``read``, ``grab``, ``get``).

    Unreadable frames are skipped, and reading goes on past a damaged stretch up to the
    container's declared frame count: after a later frame reads again, one ``InputError``
    names the frames lost (the frame number is taken from the decoder's timestamp when it
    has one, so the gap is the real one). The stream ends at the declared count (an
    unreadable tail longer than ``MAX_BAD_FRAMES`` is reported), at the first failure
    when no count is declared, and for a webcam after ``MAX_BAD_FRAMES`` failures in a
    row. Returns (as the generator's value) True when the stream ended by itself, False
    when ``limit`` frames were yielded first.
    """
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0.0 < fps < 1000.0 else None
    declared = 0 if live else max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    start = time.monotonic()
    index, bad_start, bad, yielded = 0, 0, 0, 0
    complete = False
    try:
        while limit is None or yielded < limit:
            want = index % every == 0
            ok, img = _read(cap, want)
            if not ok:
                # End of file when the declared length is reached (or unknown); else a
                # damaged frame: skip it (a webcam: up to MAX_BAD_FRAMES in a row).
                eof = not live and (declared == 0 or index >= declared)
                if not eof:
                    bad_start = index if bad == 0 else bad_start
                    bad += 1
                    index += 1
                    if not live or bad <= MAX_BAD_FRAMES:
                        if live:
                            time.sleep(0.05)  # give the camera a moment
                        continue
                if bad and live:
                    yield InputError(source, "webcam stopped delivering frames")
                elif bad and declared - bad_start > MAX_BAD_FRAMES:
                    # (a short unreadable tail is an over-stated frame count, not damage)
                    yield InputError(source, f"frames {bad_start}-{declared - 1} of "
                                             f"{declared}: cannot decode, skipped",
                                     (bad_start, declared - 1))
                complete = True
                break
            ms = None if live else cap.get(cv2.CAP_PROP_POS_MSEC)
            if bad:
                if fps and ms is not None and ms > 0:  # the real frame number after a gap
                    index = max(bad_start, int(round(ms / 1000.0 * fps)))
                    want = want and index % every == 0
                if index > bad_start:
                    last = index - 1
                    span = f"{bad_start}-{last}" if last > bad_start else f"{bad_start}"
                    yield InputError(source, f"frame {span}: cannot decode, skipped",
                                     (bad_start, last))
                bad = 0
            if want:
                if live:
                    t = time.monotonic() - start
                else:
                    t = (ms / 1000.0 if ms is not None and (ms > 0 or index == 0 and ms == 0)
                         else (index / fps if fps else None))
                if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                    img = _to_bgr_uint8(img)
                yield Frame(name=f"{stem}_{index:06d}", image=np.ascontiguousarray(img),
                            source=source, index=index, time=t, fps=fps, video=stem,
                            sequence=stem, stream_source=source)
                yielded += 1
            index += 1
    finally:
        cap.release()
    return complete


def _open_capture(target) -> "cv2.VideoCapture":
    with _quiet_stderr():
        return cv2.VideoCapture(target)


def _video_items(inp: _Input, every: int, limit: Optional[int]):
    """Items of one video/webcam input; returns None when it cannot be opened, else
    whether it ended by itself (see ``_video_frames``)."""
    if inp.kind == "webcam":
        cap = _open_capture(int(inp.path))
        source = f"webcam:{inp.path}"
        if not cap.isOpened():
            cap.release()
            yield InputError(source, f"cannot open webcam {inp.path}")
            return None
    else:
        source = inp.path
        if os.path.getsize(inp.path) == 0:
            yield InputError(source, "empty file")
            return None
        cap = _open_capture(inp.path)
        if not cap.isOpened():
            cap.release()
            yield InputError(source, "not a video (cannot open)")
            return None
    return (yield from _video_frames(cap, source, inp.name, every,
                                     live=inp.kind == "webcam", limit=limit))


def _source_of(inp: _Input) -> str:
    return f"webcam:{inp.path}" if inp.kind == "webcam" else inp.path


# ---------------------------------------------------------------------------------------
# Public entry points


def _load_frame(path, **fields) -> "Frame | InputError":
    """A still image as a ``Frame`` (``fields`` as in ``Frame``), or its one-line error."""
    try:
        image = load_image(path)
    except ImageLoadError as e:
        return InputError(path, _one_line(str(e)))
    return Frame(image=image, source=path, **fields)


def iter_frames(specs: list[str], *, every: int = 1, max_frames: Optional[int] = None,
                recursive: bool = False,
                skip: Optional[Callable[[str], bool]] = None,
                skip_stream: Optional[Callable[[str, str], bool]] = None,
                shard: Optional[tuple[int, int]] = None, sequences: bool = False,
                events: bool = False, output=None) -> Iterator[Item]:
    """Yield ``Frame`` / ``InputError`` for every input spec, in order (see module doc).

    every: keep every N-th frame of each video/webcam and every N-th image of each
        folder/glob listing (frame/listing index ``% every == 0``).
    max_frames: stop after this many ``Frame``s in total (errors do not count).
    recursive: descend into sub-folders of folder specs.
    skip: called with each still image's output name before decoding; True drops the
        image without decoding it (used to skip already-processed outputs cheaply).
        Video frames are always decoded and yielded (a video is read sequentially).
    skip_stream: called with ``(stem, stream source)`` of each video and still-image
        sequence before opening it; True drops the whole stream (webcams never).
    shard: ``(i, n)``: only the units of shard i of n (see module doc).
    sequences: group still images into sequences (``Frame.sequence``, see module doc).
    events: also yield ``Skipped`` and ``StreamEnd`` markers.
    output: the run's output folder: its rendered outputs are never inputs.
    Callbacks run in the thread that iterates.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    check_shard(shard)
    yielded = 0
    for unit in _plan(list(specs), every=every, recursive=recursive, shard=shard,
                      sequences=sequences, output=output):
        if max_frames is not None and yielded >= max_frames:
            return
        if isinstance(unit, InputError):
            yield unit
        elif isinstance(unit, _Sequence):
            if skip_stream is not None and skip_stream(unit.name, unit.source):
                if events:
                    yield Skipped(unit.source, unit.name, "sequence", len(unit.images))
                continue
            count, cut = 0, False
            for inp in unit.images:
                if max_frames is not None and yielded >= max_frames:
                    cut = True
                    break
                item = _load_frame(inp.path, name=inp.name, index=inp.index,
                                   sequence=unit.name, stream_source=unit.source)
                yield item
                if isinstance(item, Frame):
                    yielded += 1
                    count += 1
            if events:
                yield StreamEnd(unit.source, unit.name, "sequence", count, not cut)
        elif unit.kind == "image":
            if skip is not None and skip(unit.name):
                if events:
                    yield Skipped(unit.path, unit.name, "image", 1)
                continue
            item = _load_frame(unit.path, name=unit.name, index=unit.index)
            yield item
            yielded += isinstance(item, Frame)
        else:
            source = _source_of(unit)
            if unit.kind == "video" and skip_stream is not None \
                    and skip_stream(unit.name, source):
                if events:
                    yield Skipped(source, unit.name, "video", None)
                continue
            limit = None if max_frames is None else max_frames - yielded
            count = 0
            items = _video_items(unit, every, limit)
            try:
                while True:
                    try:
                        item = next(items)
                    except StopIteration as stop:
                        complete = stop.value
                        break
                    if isinstance(item, Frame):
                        yielded += 1
                        count += 1
                    yield item
            finally:
                items.close()  # releases the capture when we are closed early
            if events and complete is not None:
                yield StreamEnd(source, unit.name, unit.kind, count, complete)


def count_inputs(specs: list[str], *, every: int = 1, max_frames: Optional[int] = None,
                 recursive: bool = False, shard: Optional[tuple[int, int]] = None,
                 sequences: bool = False, output=None) -> Optional[int]:
    """Number of items ``iter_frames`` will yield (frames + expansion errors), for a
    progress-bar total. Cheap: lists folders and reads video headers only. Video lengths
    come from ``CAP_PROP_FRAME_COUNT`` (can be approximate). None when a webcam is
    involved (endless) and ``max_frames`` is not set.
    """
    errors, frames, endless = 0, 0, False
    for unit in _plan(list(specs), every=every, recursive=recursive, shard=shard,
                      sequences=sequences, output=output):
        if isinstance(unit, InputError):
            errors += 1
        elif isinstance(unit, _Sequence):
            frames += len(unit.images)
        elif unit.kind == "image":
            frames += 1
        elif unit.kind == "webcam":
            endless = True
        else:
            n = video_length(unit.path)
            frames += (n + every - 1) // every
            errors += n == 0  # unreadable (one error item) or unknown length
    if max_frames is not None:
        return errors + (max_frames if endless else min(frames, max_frames))
    return None if endless else errors + frames


def input_keys(specs: list[str], *, recursive: bool = False, output=None) -> set:
    """``paths.file_key`` of every file the specs expand to (all shards)."""
    seen: set = set()
    for spec in specs:
        for _ in _expand(os.fspath(spec), recursive, seen, output):
            pass
    return seen


def video_length(path: str, every: int = 1) -> int:
    """Declared frame count of a video file (``CAP_PROP_FRAME_COUNT``; approximate for
    some containers) divided by ``every``, rounded up; 0 when unreadable or unknown."""
    with _quiet_stderr():
        cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    cap.release()
    return (max(n, 0) + every - 1) // every


__all__ = ["Frame", "InputError", "Skipped", "StreamEnd", "Item", "ImageLoadError",
           "iter_frames", "count_inputs", "input_keys", "video_length", "parse_shard", "check_shard",
           "STDERR_LOCK",
           "load_image", "decode_image", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS",
           "MAX_IMAGE_PIXELS"]
