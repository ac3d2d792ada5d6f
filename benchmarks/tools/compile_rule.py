"""Measures the constants of the compile rule (``runtime.compiled``): eager and compiled
network ms of the default model under ``--precision auto`` at 456x640 (a 640x480 photo,
width bucketed), the cold compile time (empty inductor cache) and the warm one (a second
process on the same cache: what a second run of the same video pays)::

    python benchmarks/tools/compile_rule.py --json benchmarks/choices/compile_rule.json
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

CHILD = """
import json, statistics, sys, time, torch
sys.path.insert(0, sys.argv[1])
from openpaf.predict import Predictor
from openpaf.runtime.compiled import CompiledNetwork
p = Predictor.from_checkpoint(device="cpu", compile=False)
x = torch.randn(1, 3, 456, 640).contiguous(memory_format=torch.channels_last)
net = CompiledNetwork(p.model, always=True)
def ms(f, n=9):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); f(x); out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)
with torch.inference_mode():
    p.model.predict(x)
    eager = ms(p.model.predict)
    t0 = time.perf_counter(); net(x); compile_s = time.perf_counter() - t0
    compiled = ms(net)
    eager2 = ms(p.model.predict)
print(json.dumps({"eager_ms": round((eager + eager2) / 2, 1), "compiled_ms": round(compiled, 1),
                  "compile_s": round(compile_s, 2), "precision": str(p.precision_choice)}))
"""


def run(cache: str) -> dict:
    env = dict(os.environ, OPENPAF_CACHE=cache, TORCHINDUCTOR_CACHE_DIR=f"{cache}/inductor")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], env=env, check=True,
                         capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    row["process_s"] = round(time.perf_counter() - t0, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="openpaf-compile-") as cache:
        cold, warm = run(cache), run(cache)
    saving = 1 - statistics.mean([cold["compiled_ms"] / cold["eager_ms"],
                                  warm["compiled_ms"] / warm["eager_ms"]])
    out = {"cold": cold, "warm": warm, "saving_fraction": round(saving, 3),
           "load_average": os.getloadavg(),
           "rule": "compile a shape once frames_seen x saving x eager_s >= compile_s"}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
