"""Real-time reading: capture in its own thread and always hand over the newest frame.

``newest_only(items)`` runs a stream's item generator (``io.stream.stream_items``,
``io.video.video_items``) in a daemon thread. The thread keeps only the latest ``Frame``:
a frame not yet taken when a newer one arrives is dropped, and the next frame handed
over carries the count in ``Frame.dropped``. Other items (``InputError``) are never
dropped and keep their order. With ``pace=True`` (video files) frames are released at
their own timestamps (``Frame.time``), so a file plays at its fps like a camera would.
Frames get ``captured`` (wall clock at release) when the reader did not set it.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Iterator, Optional

from .frames import Frame

_POLL = 0.05  # seconds between checks for a stop request


class _Latest:
    """The state shared by the capture thread and the consumer."""

    def __init__(self):
        self.cond = threading.Condition()
        self.frame: Optional[Frame] = None
        self.others: deque = deque()
        self.dropped = 0
        self.done = False
        self.value = None
        self.error: Optional[BaseException] = None
        self.stop = threading.Event()


def _capture(items: Iterator, box: _Latest, pace: bool) -> None:
    start = None
    try:
        while not box.stop.is_set():
            try:
                item = next(items)
            except StopIteration as end:
                box.value = end.value
                break
            if isinstance(item, Frame):
                if pace and item.time is not None:
                    start = time.monotonic() - item.time if start is None else start
                    box.stop.wait(max(0.0, start + item.time - time.monotonic()))
                if item.captured is None:
                    item.captured = time.time()
            with box.cond:
                if isinstance(item, Frame):
                    box.dropped += box.frame is not None
                    box.frame = item
                else:
                    box.others.append(item)
                box.cond.notify()
    except BaseException as e:  # raised in the consumer
        box.error = e
    finally:
        close = getattr(items, "close", None)
        if close is not None:  # releases the capture, in the thread that ran it
            close()
        with box.cond:
            box.done = True
            box.cond.notify()


def newest_only(items: Iterator, limit: Optional[int] = None, pace: bool = False):
    """Items of ``items`` as described in the module doc, at most ``limit`` frames.
    Returns (generator value) the inner generator's value, or False when ``limit``
    frames were handed over first."""
    box = _Latest()
    thread = threading.Thread(target=_capture, args=(items, box, pace), daemon=True,
                              name="openpaf-capture")
    thread.start()
    handed = 0
    try:
        while limit is None or handed < limit:
            with box.cond:
                while box.frame is None and not box.others and not box.done:
                    box.cond.wait(_POLL)
                if box.others:
                    item = box.others.popleft()
                elif box.frame is not None:
                    item, box.frame = box.frame, None
                    item.dropped, box.dropped = box.dropped, 0
                else:
                    break
            if isinstance(item, Frame):
                handed += 1
            yield item
        else:
            return False
    finally:
        box.stop.set()
        thread.join(10.0)
    if box.error is not None:
        raise box.error
    return box.value


__all__ = ["newest_only"]
