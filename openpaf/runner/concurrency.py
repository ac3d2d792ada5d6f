"""The run loop's threads and signals: predicting a frame ahead of the outputs (run in
an ``io.prefetch.Prefetcher`` thread), SIGTERM handled like Ctrl-C, and holding both off
while outputs are written."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterable


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run stops as on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated


@contextmanager
def sigterm_interrupts():
    """While active (main thread only), SIGTERM raises ``Terminated`` (a
    ``KeyboardInterrupt``), so a run is finalised as on Ctrl-C instead of dying."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - e.g. signals unavailable
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def sigint_deferred():
    """Hold off Ctrl-C and SIGTERM while cleaning up (main thread only); yields a list
    that gets the number of each signal received meanwhile (``raise_late`` re-raises)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    try:
        old = {s: signal.signal(s, lambda signum, frame: got.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM)}
    except (ValueError, OSError):  # pragma: no cover - e.g. signals unavailable
        yield got
        return
    try:
        yield got
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def raise_late(late: list[int]) -> None:
    """Raise what the signals ``sigint_deferred`` held off would have raised."""
    if signal.SIGTERM in late:
        raise Terminated
    if late:
        raise KeyboardInterrupt


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
