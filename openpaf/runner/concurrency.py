"""The run loop's threads and signals: predicting a frame ahead of the outputs (run in
an ``io.prefetch.Prefetcher`` thread), and holding off Ctrl-C while outputs are written."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterable


@contextmanager
def sigint_deferred():
    """Hold off Ctrl-C while cleaning up (main thread only); yields a list that gets an
    entry per SIGINT received meanwhile."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    try:
        old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    except (ValueError, OSError):  # pragma: no cover - e.g. signals unavailable
        yield got
        return
    try:
        yield got
    finally:
        signal.signal(signal.SIGINT, old)


def predict_ahead(items: Iterable, predict: Callable, needed: Callable[[object], bool]):
    """``(item, Detections | Exception | None)`` per item: frames that ``needed`` are
    predicted here (a background thread), a frame ahead of the caller's outputs."""
    for item in items:
        if not needed(item):
            yield item, None
            continue
        try:
            yield item, predict(item.image)
        except Exception as e:  # handed over with its frame; reported in input order
            yield item, e
