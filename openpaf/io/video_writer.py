"""Rendered videos that play everywhere: H.264 (``libx264``, yuv420p) in MP4 through PyAV.

``open_video_writer(path, fps)`` returns an ``H264Sink`` when PyAV with libx264 is
installed, else ``io.render.VideoSink`` (``mp4v``, MPEG-4 Part 2, which browsers and the
default Windows/macOS players do not play) after one warning line on stderr. Both have
the same interface: ``write(frame)``, ``close() -> path | None``, ``abort()``, ``frames``.
"""
from __future__ import annotations

import os
import sys
from fractions import Fraction
from typing import Optional, Union

import cv2
import numpy as np

from .atomic import AtomicPath
from .images import STDERR_LOCK
from .render import VideoSink

CRF = 23            # libx264 quality (its default; lower is better and larger)
PRESET = "veryfast"  # libx264 speed/size trade-off
CLOCK = 90000  # ticks per second of the presentation times (MPEG's 90 kHz: exact at
#               the usual 12/15/24/25/30/50/60 and NTSC 30000/1001 frame rates)
_TICK = Fraction(1, CLOCK)
_warned = False


def h264_available() -> bool:
    """True when PyAV is installed and its FFmpeg has the libx264 encoder."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


def even_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` rounded up to even numbers (yuv420p needs them)."""
    return width + width % 2, height + height % 2


class _Encoder:
    """One PyAV libx264/yuv420p MP4 file: ``write(bgr, pts)``, ``release()``."""

    def __init__(self, path, fps: float, size: tuple[int, int]):
        import av
        self._av = av
        self._out = av.open(str(path), "w", format="mp4")
        self._stream = self._out.add_stream("libx264",
                                            rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(CRF), "preset": PRESET}
        self._stream.codec_context.time_base = _TICK

    def write(self, frame: np.ndarray, pts: int) -> None:
        image = self._av.VideoFrame.from_ndarray(frame, format="bgr24")
        image.pts, image.time_base = pts, _TICK
        for packet in self._stream.encode(image):
            self._out.mux(packet)

    def release(self) -> None:
        try:
            for packet in self._stream.encode():  # flush the encoder
                self._out.mux(packet)
        finally:
            self._out.close()


class H264Sink(VideoSink):
    """``VideoSink`` (temporary file moved into place by ``close()``, size fixed by the
    first frame, nothing written without frames) that writes H.264/yuv420p through PyAV.

    Odd sizes are padded by one edge row/column to even. Frames written with a time ``t``
    (s) are shown at that time (variable frame rate: a real-time stream that dropped
    frames still plays at real speed); without, at ``fps``.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: Optional[float] = None):
        super().__init__(path, fps, fourcc="h264")
        self._t0: Optional[float] = None
        self._pts = -1  # of the last frame, in ticks

    def write(self, frame: np.ndarray, t: Optional[float] = None) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame, shown at time ``t`` (s) if given."""
        if self._writer is None:
            self._size = (frame.shape[1], frame.shape[0])
            self._tmp = AtomicPath(self.path)
            self._writer = _Encoder(self._tmp.tmp, self.fps, even_size(*self._size))
        w, h = self._size
        if (frame.shape[1], frame.shape[0]) != (w, h):
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        ew, eh = even_size(w, h)
        if (ew, eh) != (w, h):
            frame = cv2.copyMakeBorder(frame, 0, eh - h, 0, ew - w, cv2.BORDER_REPLICATE)
        self._writer.write(np.ascontiguousarray(frame, np.uint8), self._next_pts(t))
        self.frames += 1

    def _next_pts(self, t: Optional[float]) -> int:
        """Presentation time in ``CLOCK`` ticks: from ``t`` (relative to the first
        frame's) or the frame count at ``fps``; strictly increasing."""
        if t is not None:
            self._t0 = t if self._t0 is None else self._t0
            pts = int(round((t - self._t0) * CLOCK))
        else:
            pts = int(round(self.frames * CLOCK / self.fps))
        self._pts = max(pts, self._pts + 1)
        return self._pts


def open_video_writer(path: Union[str, os.PathLike], fps: Optional[float] = None):
    """An ``H264Sink`` for ``path``, or an ``mp4v`` ``VideoSink`` (one warning per
    process) when PyAV/libx264 is missing."""
    global _warned
    if h264_available():
        return H264Sink(path, fps)
    if not _warned:
        _warned = True
        with STDERR_LOCK:
            print("warning: PyAV with libx264 not found (pip install av): rendered videos "
                  "are mp4v, which browsers and default players may not play",
                  file=sys.stderr, flush=True)
    return VideoSink(path, fps)


__all__ = ["H264Sink", "open_video_writer", "h264_available", "even_size"]
