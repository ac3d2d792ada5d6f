"""The run loop's parallel predict path: order kept, frames really in flight together,
errors handed over with their frame."""
import threading
from types import SimpleNamespace

import pytest

from openpaf.runner.concurrency import predict_ahead, predict_parallel


def _items(n):
    return [SimpleNamespace(image=i, skip=(i == 3)) for i in range(n)]


def test_parallel_keeps_input_order_and_runs_frames_together():
    barrier = threading.Barrier(2, timeout=10)   # breaks unless 2 calls overlap

    def predict(i):
        if i < 2:
            barrier.wait()
        if i == 5:
            raise ValueError("bad frame")
        return i * 10

    out = list(predict_parallel(_items(8), predict, lambda it: not it.skip, workers=2))
    assert [it.image for it, _ in out] == list(range(8))
    results = [r for _, r in out]
    assert results[:3] == [0, 10, 20] and results[3] is None
    assert isinstance(results[5], ValueError) and results[7] == 70


@pytest.mark.parametrize("workers", [0, 1])
def test_one_worker_is_predict_ahead(workers):
    items = _items(5)
    expected = [(it.image, r) for it, r in predict_ahead(items, lambda i: -i, lambda it: True)]
    got = [(it.image, r) for it, r in predict_parallel(items, lambda i: -i, lambda it: True,
                                                       workers)]
    assert got == expected


def test_closing_early_stops_the_pool():
    calls = []

    def predict(i):
        calls.append(i)
        return i

    gen = predict_parallel(_items(100), predict, lambda it: True, workers=2)
    next(gen)
    gen.close()
    assert len(calls) <= 4
