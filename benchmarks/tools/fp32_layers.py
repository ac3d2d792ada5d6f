"""Which layers stay float32 under ``--precision auto``: coco AP of the default model with
fp32, whole-model bf16, bf16 with the family's heads in fp32, and heads + first conv.

Chooses on coco/train (never coco/val) and writes the choice JSON::

    python benchmarks/tools/fp32_layers.py --split train \
        --json benchmarks/choices/fp32_layers_coco_train.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf.benchmark.machine import machine_info  # noqa: E402
from openpaf.evaluate import evaluate  # noqa: E402
from openpaf.predict import Predictor  # noqa: E402
from openpaf.runtime import precision  # noqa: E402

VARIANTS = {"fp32": ("fp32", False), "bf16_whole": ("bf16", False),
            "bf16_heads_fp32": ("auto", False), "bf16_heads_first_conv_fp32": ("auto", True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="train")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "coco"))
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    ann, images = f"{args.data}/{args.split}.json", f"{args.data}/{args.split}"
    rows = {}
    for name, (kind, first) in VARIANTS.items():
        precision.KEEP_FIRST_CONV = first
        predictor = Predictor.from_checkpoint(device="cpu", precision=kind)
        report = evaluate(ann, images, predictor=predictor, progress=False)
        rows[name] = {k: report[k] for k in ("AP", "AP50", "APm", "APl", "AR")}
        rows[name]["precision"] = str(predictor.precision_choice)
        print(name, rows[name], flush=True)
    best = max(("bf16_heads_fp32", "bf16_heads_first_conv_fp32"), key=lambda k: rows[k]["AP"])
    if rows["bf16_heads_first_conv_fp32"]["AP"] <= rows["bf16_heads_fp32"]["AP"] + 0.002:
        best = "bf16_heads_fp32"       # the first conv must earn its fp32 cost
    out = {"split": args.split, "height": 456, "model": "weights/default.pt",
           "machine": machine_info("cpu")["cpu"], "results": rows, "choice": best,
           "rule": "keep the first conv in fp32 only if it adds > 0.002 AP over heads only"}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print("choice:", best)


if __name__ == "__main__":
    main()
