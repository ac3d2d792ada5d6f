"""Test helpers shared by several test files (fixtures live in ``conftest.py``)."""
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bind_checkout_cli():
    """Import this checkout's ``cli/`` folder as ``openpaf_cli``, the name pip installs it
    under (setup.py), so that tests run the CLI of the checkout they are in, also when
    another checkout is the installed one. Returns the package."""
    if "openpaf_cli" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "openpaf_cli", ROOT / "cli" / "__init__.py",
            submodule_search_locations=[str(ROOT / "cli")])
        package = importlib.util.module_from_spec(spec)
        sys.modules["openpaf_cli"] = package
        spec.loader.exec_module(package)
    return sys.modules["openpaf_cli"]


# Python code that makes a child process run this checkout's openpaf and CLI (see
# ``bind_checkout_cli``); ``CLI`` runs ``openpaf ARGS`` that way.
CHILD_PRELUDE = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]; "
                 "import helpers; helpers.bind_checkout_cli()\n")
CLI = [sys.executable, "-c", CHILD_PRELUDE + "from openpaf_cli.main import main; "
       "main(sys.argv[1:], prog_name='openpaf')"]


def numbered_frame(i: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``i`` of a test video: grey level ``20 i`` with the number written on it."""
    frame = np.full((size[1], size[0], 3), 20 * i % 256, np.uint8)
    cv2.putText(frame, str(i), (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    return frame


def write_video(path, n: int = 6, size: tuple[int, int] = (64, 48), fps: float = 10.0,
                frame=numbered_frame) -> Path:
    """An mp4v video of ``frame(i, size)`` for i in 0 .. n - 1 (``size`` = (W, H))."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(n):
        writer.write(frame(i, size))
    writer.release()
    return Path(path)


def random_crowd_maps():
    """Seeded synthetic crowds of 0-30 people as ``(heatmaps, pafs, geometry)``, every other
    one with Gaussian noise on its maps."""
    from openpaf.benchmark import crowd_maps
    rng = np.random.default_rng(7)
    for trial, n in enumerate([0, 1, 3, 8, 20, 30, 12]):
        heat, paf, geo, _ = crowd_maps(n, seed=100 + trial)
        if trial % 2:
            heat = heat + rng.normal(0, 0.05, heat.shape).astype(np.float32)
            paf = paf + rng.normal(0, 0.2, paf.shape).astype(np.float32)
        yield heat, paf, geo
