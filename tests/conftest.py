"""Shared fixtures: synthetic skeletons and the shared real-data location."""
from pathlib import Path

import numpy as np
import pytest

from openpaf.skeleton import NUM_KEYPOINTS

from helpers import bind_checkout_cli

bind_checkout_cli()      # tests import the CLI as openpaf_cli, from this checkout

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
COCO_VAL = SHARED_DATA / "coco" / "val.json"
COCO_TRAIN = SHARED_DATA / "coco" / "train.json"

# A standing person, ~200 px tall, in the 18-keypoint order (x, y) about the origin.
TEMPLATE = np.array([
    [0, -80], [0, -60], [-20, -60], [-28, -30], [-30, 0], [20, -60], [28, -30], [30, 0],
    [-12, 0], [-14, 50], [-15, 100], [12, 0], [14, 50], [15, 100], [-5, -86], [5, -86],
    [-10, -82], [10, -82]], dtype=np.float32)


def person(cx: float, cy: float, size: float = 1.0, missing=()) -> np.ndarray:
    """``(18, 3)`` keypoints [x, y, v] of the template centred at (cx, cy)."""
    kps = np.ones((NUM_KEYPOINTS, 3), np.float32) * 2
    kps[:, :2] = TEMPLATE * size + np.array([cx, cy], np.float32)
    kps[list(missing), :] = 0
    return kps


@pytest.fixture
def one_thread():
    """Two threads on a busy 2-core machine are ~50x slower than one for tiny nets."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def require(path: Path):
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (see README: ../shared/data)")
    return path
