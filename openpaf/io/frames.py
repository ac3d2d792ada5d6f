"""What reading inputs yields: ``Frame`` (a decoded image and where it came from),
``InputError`` (a bad input, one line), and with ``events=True`` the ``Skipped``,
``Duplicate`` and ``StreamEnd`` markers for consumers that keep per-stream state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np


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
    captured: wall-clock time (``time.time()``, s) the frame was read from a live source
        or handed over in real-time mode; None otherwise.
    dropped: real-time mode: newer frames replaced older ones this many times since the
        previous frame handed over (frames skipped, not processed).
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
    captured: Optional[float] = None
    dropped: int = 0


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
    sequence, None for a video). index: an image's position in its spec's expansion (the
    ``Frame.index`` it would have had).
    """

    source: str
    name: str
    kind: str = "image"
    frames: Optional[int] = 1
    index: int = 0


@dataclass
class Duplicate:
    """(``events=True`` only) An input path that is the same file as one read before
    (a symlink, a hard link, a repeated spec): not read again. of: the path read."""

    source: str
    of: str


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
    info: live streams: their state for the manifest (``io.stream.StreamState.record``).
    """

    source: str
    name: str
    kind: str
    frames: int
    complete: bool
    info: Optional[dict] = None


Item = Union[Frame, InputError, Skipped, StreamEnd, Duplicate]
