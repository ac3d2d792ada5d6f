"""The run loop's threads and signals: predicting a frame ahead of the outputs (run in
an ``io.prefetch.Prefetcher`` thread), SIGTERM handled like Ctrl-C, and holding both off
while outputs are written."""
from __future__ import annotations

import signal
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Optional


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
        yield item, _guarded(predict, item.image) if needed(item) else None


def _guarded(predict: Callable, image):
    """``predict(image)``, or the exception it raised (reported with its frame)."""
    try:
        return predict(image)
    except Exception as e:  # noqa: BLE001 - handed over with its frame
        return e


def predict_parallel(items: Iterable, predict: Callable, needed: Callable[[object], bool],
                     workers: int):
    """``predict_ahead`` with up to ``workers`` frames predicted at once (a thread pool),
    yielded in input order: the throughput mode for engines that run several requests
    in flight (``Engine.parallelism``; OpenVINO's streams release the GIL while the
    network runs, and each worker decodes its own frame meanwhile). ``predict`` must be
    thread-safe. ``workers <= 1`` is ``predict_ahead``."""
    if workers <= 1:
        yield from predict_ahead(items, predict, needed)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="openpaf-predict")
    pending: deque[tuple[object, Optional[Future]]] = deque()
    try:
        for item in items:
            job = pool.submit(_guarded, predict, item.image) if needed(item) else None
            pending.append((item, job))
            while len(pending) > workers:
                done, job = pending.popleft()
                yield done, None if job is None else job.result()
        while pending:
            done, job = pending.popleft()
            yield done, None if job is None else job.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
