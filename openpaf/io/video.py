"""Video files and webcams as ``Frame``s: capture, timestamps, and reading on past
damaged frames (reported as ``InputError``s naming the frames lost)."""
from __future__ import annotations

import os
import time
from typing import Optional

import cv2
import numpy as np

from .frames import Frame, InputError
from .images import quiet_stderr, to_bgr_uint8
from .plan import Unit

# FFmpeg's own log lines ("[mpeg4 @ 0x...] header damaged") would break one-line error
# reports, and its decoder threads can print them while fd 2 is not silenced: make OpenCV
# set FFmpeg's log level to quiet when it loads FFmpeg (unless the user chose a level).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# Consecutive unreadable webcam frames tolerated before giving up on it; also the longest
# unreadable tail of a video file taken as an over-stated frame count, not as damage.
MAX_BAD_FRAMES = 5

def _read(cap, want: bool):
    """``(ok, image or None)`` of one ``read`` (``want``) or ``grab``; never raises."""
    try:
        with quiet_stderr():  # ffmpeg logs decode errors straight to fd 2
            if want:
                ok, img = cap.read()
                return bool(ok) and img is not None and img.size > 0, img
            return bool(cap.grab()), None
    except cv2.error:
        return False, None


def video_frames(cap, source: str, stem: str, every: int, *, live: bool,
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
                    img = to_bgr_uint8(img)
                yield Frame(name=f"{stem}_{index:06d}", image=np.ascontiguousarray(img),
                            source=source, index=index, time=t, fps=fps, video=stem,
                            sequence=stem, stream_source=source)
                yielded += 1
            index += 1
    finally:
        cap.release()
    return complete


def open_capture(target) -> "cv2.VideoCapture":
    with quiet_stderr():
        return cv2.VideoCapture(target)


def video_items(inp: Unit, every: int, limit: Optional[int]):
    """Items of one video/webcam input; returns None when it cannot be opened, else
    whether it ended by itself (see ``video_frames``)."""
    if inp.kind == "webcam":
        cap = open_capture(int(inp.path))
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
        cap = open_capture(inp.path)
        if not cap.isOpened():
            cap.release()
            yield InputError(source, "not a video (cannot open)")
            return None
    return (yield from video_frames(cap, source, inp.name, every,
                                     live=inp.kind == "webcam", limit=limit))


def video_length(path: str, every: int = 1) -> int:
    """Declared frame count of a video file (``CAP_PROP_FRAME_COUNT``; approximate for
    some containers) divided by ``every``, rounded up; 0 when unreadable or unknown."""
    with quiet_stderr():
        cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    cap.release()
    return (max(n, 0) + every - 1) // every


def verify_video(path, expected_frames: int) -> None:
    """Raise ``OSError`` (one line) unless the video writer's file ``path`` holds
    ``expected_frames`` readable frames: called before a finished video replaces an
    earlier one, since OpenCV's writer fails silently when the disk fills or a file-size
    limit is hit."""
    size = os.path.getsize(path)
    hint = "disk full or a file size limit?"
    if size < 64:  # (smaller than any container header)
        raise OSError(f"the written video is {size} bytes ({hint})")
    cap = open_capture(str(path))
    try:
        if not cap.isOpened() or not _read(cap, True)[0]:
            raise OSError(f"the written video ({size} bytes) cannot be read back ({hint})")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:  # not declared by the container: count them
            count = 1
            while _read(cap, False)[0]:
                count += 1
    finally:
        cap.release()
    if count != expected_frames:
        raise OSError(f"the written video holds {count} of {expected_frames} frames ({hint})")


__all__ = ["MAX_BAD_FRAMES", "open_capture", "verify_video", "video_frames", "video_items",
           "video_length"]
