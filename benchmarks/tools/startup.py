"""Start-up costs, interleaved in one run: ``openpaf --help`` vs ``python -c "import
torch"`` (wall, median of ``--rounds``), a one-photo ``openpaf infer`` (wall), and where a
one-photo run's time goes (the same steps timed in one process)::

    python benchmarks/tools/startup.py --json benchmarks/startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT.parent / "shared" / "data" / "coco" / "val"
CLI = ("import sys; sys.path[:0] = [{root!r}, {tests!r}]; import helpers; "
       "helpers.bind_checkout_cli(); from openpaf_cli.main import main; "
       "main(sys.argv[1:], prog_name='openpaf')").format(root=str(ROOT),
                                                         tests=str(ROOT / "tests"))
STEPS = """
import sys, time, json
t = {}; t0 = time.perf_counter()
import torch; t["import torch"] = time.perf_counter() - t0; t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from openpaf.predict import Predictor
from openpaf.io.images import load_image
from openpaf.io.writers import write_openpose_json
from openpaf.io.render import render
t["import openpaf"] = time.perf_counter() - t0; t0 = time.perf_counter()
p = Predictor.from_checkpoint(device="cpu")
t["load weights + convert"] = time.perf_counter() - t0; t0 = time.perf_counter()
im = load_image(sys.argv[2]); t["read photo"] = time.perf_counter() - t0
t0 = time.perf_counter(); det = p(im); t["predict (first call)"] = time.perf_counter() - t0
t0 = time.perf_counter(); det = p(im); t["predict (again)"] = time.perf_counter() - t0
t0 = time.perf_counter(); write_openpose_json(sys.argv[3] + "/k.json", det)
render(im, det); t["write + render"] = time.perf_counter() - t0
print(json.dumps({k: round(v, 3) for k, v in t.items()}))
"""


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    photo = str(sorted(PHOTO.iterdir())[0])
    py = sys.executable
    rows = {"help": [], "import_torch": [], "infer_one_photo": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            rows["help"].append(wall([py, "-c", CLI, "--help"]))
            rows["import_torch"].append(wall([py, "-c", "import torch"]))
            rows["infer_one_photo"].append(wall([py, "-c", CLI, "infer", photo, "-o", tmp,
                                                 "-q"]))
        steps = json.loads(subprocess.run([py, "-c", STEPS, str(ROOT), photo, tmp],
                                          check=True, capture_output=True, text=True
                                          ).stdout.strip().splitlines()[-1])
    med = {k: round(statistics.median(v), 3) for k, v in rows.items()}
    out = {"median_s": med, "help_vs_import_torch": round(med["help"] / med["import_torch"], 3),
           "one_photo_steps_s": steps, "load_average": os.getloadavg(),
           "note": "machine shared; rounds interleaved"}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
