"""``openpaf benchmark --live`` with a 60 ms stand-in network (tests/test_live.py's
FakePredict) instead of a model, at 3 s and 9 s of a 50 fps source: shows that real-time
latency does not grow with the run's length. Writes benchmarks/live_standin.json.

    python benchmarks/tools/live_standin.py
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from openpaf.benchmark import benchmark_live, format_live  # noqa: E402
from test_live import FakePredict  # noqa: E402

reports = {}
for seconds in (3, 9):
    report = benchmark_live(FakePredict(0.06), ROOT.parent / "shared/data/coco/val",
                            fps=50, seconds=seconds, frame_height=96)
    print(format_live(report))
    reports[f"{seconds}s"] = report
(ROOT / "benchmarks" / "live_standin.json").write_text(json.dumps(reports, indent=1) + "\n")
