"""Read ahead of the consumer: run an iterator in a background thread with a bounded queue.

``Prefetcher(items, size=4)`` iterates ``items`` (e.g. ``iter_frames(...)``, which decodes
images) in a daemon thread while the caller works on the previous items (e.g. runs the
network), keeping at most ``size`` items waiting. Items arrive in order; ``InputError``
items are ordinary items and pass through in order too. An exception raised by the
iterator itself is re-raised in the consumer at the same position.

Shutdown: ``close()`` (also on leaving the ``with`` block, on an exception in the consumer,
or on KeyboardInterrupt) tells the thread to stop, drains the queue and joins the thread;
the thread closes the iterator itself (a generator must be closed by the thread that runs
it), so its ``finally`` blocks (e.g. ``VideoCapture.release``) run.
"""
from __future__ import annotations

import queue
import threading
from typing import Generic, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2
# How often blocked queue operations wake up to check for a stop request (seconds).
_POLL = 0.05


class Prefetcher(Generic[T]):
    """Iterate ``items`` in a background thread, up to ``size`` items ahead.

    size: maximum number of produced items waiting for the consumer (>= 1); 0 means no
        thread at all: ``items`` is iterated in the caller's thread (for debugging).
    join_timeout: seconds ``close()`` waits for the thread to finish its current item
        (e.g. a decode call) before giving up on it; it is a daemon thread, so it can
        never keep the process alive.
    """

    def __init__(self, items: Iterable[T], size: int = 4, *, name: str = "openpaf-prefetch",
                 join_timeout: float = 10.0):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size
        self.join_timeout = join_timeout
        self._items = items
        self._done = False
        self._thread: Optional[threading.Thread] = None
        self._inline: Optional[Iterator[T]] = None
        if size == 0:
            self._inline = iter(items)
            return
        self._queue: "queue.Queue[tuple[int, object]]" = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # -- producer (background thread) ---------------------------------------------------
    def _put(self, entry: tuple[int, object]) -> bool:
        """Queue ``entry``, waiting while the queue is full; False once asked to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        iterator = None
        try:
            iterator = iter(self._items)
            for item in iterator:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as e:  # handed to the consumer, raised there
            self._put((_ERROR, e))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # pragma: no cover - a generator's cleanup failing
                    pass

    # -- consumer ------------------------------------------------------------------------
    def __iter__(self) -> "Prefetcher[T]":
        return self

    def __next__(self) -> T:
        if self._inline is not None:
            return next(self._inline)
        if self._done:
            raise StopIteration
        while True:
            try:
                kind, value = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True  # stopped by close() from elsewhere
                    raise StopIteration from None
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._done = True
        self._thread.join(self.join_timeout)
        if kind == _ERROR:
            raise value  # type: ignore[misc]
        raise StopIteration

    def close(self) -> None:
        """Stop the thread and wait for it (idempotent). Items not consumed are dropped."""
        self._done = True
        if self._inline is not None:
            close = getattr(self._inline, "close", None)
            if close is not None:
                close()
            return
        if self._thread is None:
            return
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(self.join_timeout)

    @property
    def alive(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Prefetcher[T]":
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


__all__ = ["Prefetcher"]
