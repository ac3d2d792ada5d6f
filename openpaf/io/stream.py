"""Live network streams (``rtsp://``, ``http(s)://`` MJPEG/HLS/progressive, ``udp://``,
``tcp://``...) and capture devices (``/dev/videoN``) as ``Frame``s.

Reader: OpenCV's FFmpeg backend (``cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)``). Its
``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``CAP_PROP_READ_TIMEOUT_MSEC`` work through FFmpeg's
interrupt callback, so they bound every protocol (a silent RTSP or HTTP server gives up
after the timeout, a refused port at once), and it is the capture API webcams and video
files already use; PyAV would add a second decode path for no gain here.

A stream is opened once with ``open_timeout``; failing that is one ``InputError``. A
connection that drops while reading is reopened up to ``reconnect`` times (counted since
the last frame read), waiting ``backoff`` s before the first try and twice as long before
each next one (at most ``MAX_BACKOFF``); a stream with a declared length (a video file
served over HTTP) just ends instead, as reopening would replay it. Every attempt goes to
stderr and into the stream's ``StreamState.record()`` (the manifest), and after the last
failed one the stream ends with an ``InputError`` ("gave up"). Frames carry ``captured`` (wall clock) and ``time``
(seconds since the stream opened).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import cv2
import numpy as np

from .frames import Frame, InputError
from .images import STDERR_LOCK, quiet_stderr, to_bgr_uint8
from .plan import Unit
from .urls import is_capture_device
from .video import _read

MAX_BACKOFF = 8.0  # seconds


@dataclass(frozen=True)
class LiveOptions:
    """How live streams are opened and kept open.

    open_timeout: seconds to wait for a stream to open (and for any one read).
    reconnect: reopen attempts after a dropped connection before giving up (0: none).
    backoff: seconds before the first reopen attempt; doubled for each next one.
    """

    open_timeout: float = 5.0
    reconnect: int = 3
    backoff: float = 0.5

    def __post_init__(self):
        if not self.open_timeout > 0:
            raise ValueError(f"open_timeout must be > 0 s, got {self.open_timeout}")
        if self.reconnect < 0:
            raise ValueError(f"reconnect must be >= 0, got {self.reconnect}")


@dataclass
class StreamState:
    """How a live stream went: ``state`` "ended" (the source closed it, reconnect 0),
    "gave up" (reconnect attempts failed), "stopped" (``limit`` reached); ``attempts``:
    ``{"after_frames", "wait_s", "ok"}`` per reopen attempt."""

    state: str = "open"
    attempts: list = field(default_factory=list)  # of dict

    @property
    def complete(self) -> bool:
        return self.state != "stopped"

    def record(self) -> dict:
        return {"live": True, "state": self.state, "reconnects": len(self.attempts),
                **({"reconnect_attempts": self.attempts} if self.attempts else {})}


def open_stream(target: str, timeout: float):
    """An opened ``cv2.VideoCapture`` for a URL or device, or None (within ``timeout`` s)."""
    ms = int(timeout * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    api = cv2.CAP_V4L2 if is_capture_device(target) else cv2.CAP_FFMPEG
    with quiet_stderr():
        try:
            cap = cv2.VideoCapture(target, api, params)
        except cv2.error:
            return None
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def _say(text: str) -> None:
    with STDERR_LOCK:
        print(text, file=sys.stderr, flush=True)


def _reopen(unit: Unit, opts: LiveOptions, state: StreamState, frames: int, tries: int,
            sleep: Callable[[float], None] = time.sleep):
    """Reopen a dropped stream with backoff, ``tries`` attempts having been made since
    the last frame read; ``(capture or None after the last try, tries)``."""
    wait = min(opts.backoff * 2 ** tries, MAX_BACKOFF)
    while tries < opts.reconnect:
        tries += 1
        _say(f"{unit.source}: connection lost, reconnecting ({tries}/{opts.reconnect}) "
             f"in {wait:g} s")
        sleep(wait)
        cap = open_stream(unit.path, opts.open_timeout)
        state.attempts.append({"after_frames": frames, "wait_s": round(wait, 3),
                               "ok": cap is not None})
        if cap is not None:
            return cap, tries
        wait = min(2 * wait, MAX_BACKOFF)
    return None, tries


def stream_items(unit: Unit, every: int, limit: Optional[int], opts: LiveOptions):
    """Items of one live stream (see module doc); returns its ``StreamState``, or None
    when it could not be opened."""
    source = unit.source  # credentials masked
    start = time.monotonic()
    cap = open_stream(unit.path, opts.open_timeout)
    if cap is None:
        waited = time.monotonic() - start
        why = (f"no answer within --open-timeout {opts.open_timeout:g} s"
               if waited >= 0.9 * opts.open_timeout else "unreachable or not a video")
        yield InputError(source, f"cannot open stream: {why}")
        return None
    state, index, yielded, tries = StreamState(), 0, 0, 0
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0.0 < fps < 1000.0 else None
    # A declared length (a file served over HTTP...) ends by itself: reopening would
    # replay it, so it is not reconnected.
    finite = 0 < cap.get(cv2.CAP_PROP_FRAME_COUNT) < 1e12
    try:
        while limit is None or yielded < limit:
            want = index % every == 0
            ok, img = _read(cap, want)
            if not ok:
                cap.release()
                cap, tries = (None, tries) if finite or not opts.reconnect else \
                    _reopen(unit, opts, state, yielded, tries)
                if cap is None:
                    state.state = "ended" if finite or not opts.reconnect else "gave up"
                    if state.state == "gave up":
                        yield InputError(source, f"connection lost; gave up after "
                                                 f"{opts.reconnect} reconnect attempts")
                    return state
                continue
            tries = 0
            if want:
                if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                    img = to_bgr_uint8(img)
                yield Frame(name=f"{unit.name}_{index:06d}", image=np.ascontiguousarray(img),
                            source=source, index=index, time=time.monotonic() - start,
                            fps=fps, video=unit.name, sequence=unit.name,
                            stream_source=source, captured=time.time())
                yielded += 1
            index += 1
        state.state = "stopped"
        return state
    finally:
        if cap is not None:
            cap.release()


__all__ = ["LiveOptions", "StreamState", "open_stream", "stream_items"]
