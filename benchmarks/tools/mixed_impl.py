"""How to run bf16 with fp32 heads, timed interleaved in one process on the default model
(456x608 input, 2 threads): bf16 weights + channels_last with the heads' inputs cast to
fp32 (``runtime.precision.apply_precision``, what ``--precision auto`` runs) vs
``torch.autocast`` with the same heads excluded; fp32 and whole-model bf16 for scale::

    python benchmarks/tools/mixed_impl.py --json benchmarks/choices/mixed_precision_impl.json
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf.benchmark.machine import machine_info  # noqa: E402
from openpaf.predict import optimize_model  # noqa: E402
from openpaf.runtime.precision import apply_precision, resolve_precision  # noqa: E402
from openpaf.weights import load_default  # noqa: E402


def autocast_heads_fp32(model: torch.nn.Module):
    """``x -> Maps`` under bf16 autocast, the family's ``fp32_modules`` outside it."""
    for m in model.fp32_modules():
        def forward(x, _f=m.forward):
            with torch.autocast("cpu", enabled=False):
                return _f(x.float())
        m.forward = forward

    def run(x):
        with torch.autocast("cpu", torch.bfloat16):
            return model.predict(x)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = optimize_model(load_default(torch.device("cpu")).model.eval())
    x = torch.randn(1, 3, 456, 608).contiguous(memory_format=torch.channels_last)
    auto = apply_precision(model, resolve_precision("auto", "cpu", flags=["amx_bf16"]))
    whole = apply_precision(model, resolve_precision("bf16", "cpu"))
    paths = {"fp32": model.predict, "bf16_whole": lambda x: whole.predict(x.bfloat16()),
             "bf16_weights_heads_fp32": auto.predict,
             "bf16_autocast_heads_fp32": autocast_heads_fp32(copy.deepcopy(model))}
    times = {k: [] for k in paths}
    with torch.inference_mode():
        for f in paths.values():            # warm-up: oneDNN primitives, casts
            f(x)
        for _ in range(args.rounds):
            for name, f in paths.items():
                t0 = time.perf_counter()
                f(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
    rows = {k: round(statistics.median(v), 1) for k, v in times.items()}
    out = {"input": [1, 3, 456, 608], "threads": 2, "rounds": args.rounds,
           "median_network_ms": rows, "machine": machine_info("cpu"),
           "note": "interleaved rounds; machine shared, compare within this file only"}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
