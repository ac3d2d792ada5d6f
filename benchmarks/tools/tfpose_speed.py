"""Network ms per image of a tf-pose graph: openpaf (torch fp32, bf16) vs TensorFlow.

One run times all three on the same inputs (``--count`` coco/val photos prepared by
openpaf at ``--height``), in interleaved rounds so that load from other processes hits
all alike: openpaf through ``Predictor`` (its ``network`` timing) and TensorFlow's
runtime on the same frozen graph through ``tf_reference.py time`` in the TensorFlow venv
(``--tf-python``). A benchmark, not a test::

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

from openpaf.benchmark.machine import machine_info  # noqa: E402
from openpaf.predict import Predictor  # noqa: E402
from openpaf.preprocess import geometry, prepare  # noqa: E402
from openpaf.weights.formats import detect_format  # noqa: E402

GRAPH = ROOT.parent / "shared/models/tf-pose/mobilenet_v2_small/graph_opt.pb"
IMAGES = ROOT.parent / "shared/data/coco/val"


def openpaf_round(pred: Predictor, images: list) -> list:
    """``network`` ms of ``Predictor.maps`` for each image."""
    times = []
    for im in images:
        pred.maps([im])
        times.append(pred.last_timings["network"])
    return times


def tf_round(args, inputs: Path) -> dict:
    """TensorFlow's ms per input (one warm-up each), in the TF venv."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([args.tf_python, str(ROOT / "benchmarks/tools/tf_reference.py"),
                          "time", "--graph", str(args.graph), "--inputs", str(inputs),
                          "--repeats", "1", "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graph", type=Path, default=GRAPH)
    p.add_argument("--images", type=Path, default=IMAGES)
    p.add_argument("--height", type=int, default=432)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tf-python", default="/tmp/tfenv/bin/python")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for both torch and TF (0: their defaults)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    imported = detect_format(args.graph).read(args.graph)
    images = [cv2.imread(str(f)) for f in sorted(args.images.glob("*.jpg"))[:args.count]]
    preds = {f"openpaf_{precision}": Predictor(imported.model, imported.normalisation,
                                               height=args.height, precision=precision,
                                               device="cpu")
             for precision in ("fp32", "bf16")}
    report = {"graph": args.graph.name, "height": args.height, "images": len(images),
              "rounds": args.rounds, "threads": args.threads or "default", "torch": torch.__version__, "machine": machine_info()}
    times: dict[str, list] = {name: [] for name in (*preds, "tensorflow")}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **{f"x{i:03d}": prepare(im, geometry(im.shape[1::-1], args.height),
                                                  imported.normalisation)
                            for i, im in enumerate(images)})
        for name, pred in preds.items():
            openpaf_round(pred, images)                       # warm-up
        for _ in range(args.rounds):
            for name, pred in preds.items():
                times[name] += openpaf_round(pred, images)
            tf = tf_round(args, inputs)
            times["tensorflow"] += tf.pop("ms")
    report.update({f"{name}_ms_median": float(np.median(t)) for name, t in times.items()})
    report.update(tensorflow_version=tf["tensorflow"], tensorflow_onednn=tf["onednn"],
                  load_average_end=[round(v, 2) for v in os.getloadavg()])
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
