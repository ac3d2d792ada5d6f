"""Reference maps and timings from Intel's own OpenVINO runtime (not part of openpaf).

Runs only where the ``openvino`` package is installed, e.g. a scratch venv::

    python3 -m venv /tmp/ovenv
    /tmp/ovenv/bin/pip install openvino numpy opencv-python-headless
    /tmp/ovenv/bin/python benchmarks/tools/openvino_reference.py fixtures
    /tmp/ovenv/bin/python benchmarks/tools/openvino_reference.py time \\
        --images ../shared/data/coco/val --height 368

``--ir`` defaults to the shared OMZ IR, ``--images`` to the shared ``coco/train``.

``fixtures``: for each of a few COCO photos, a crop ``(x0, y0, w, 368)`` is taken (so
``openpaf.preprocess.prepare`` at height 368 does not resize: the input is reproducible
bit for bit with any OpenCV), padded to the stride with grey 128 exactly as ``prepare``
does, and fed as raw BGR 0-255 (the IR normalises inside). Saved, compressed, per image
``i``: ``name_i``, ``crop_i`` (x0, y0, w, h), ``input_sha256_i`` (of the padded uint8
``(h, w, 3)`` image), ``heatmaps_i`` ``(19, h/8, w/8)`` and ``pafs_i`` ``(38, h/8, w/8)``
as float16; plus ``openvino_version`` and ``precision`` (the CPU plugin's inference
precision hint: its default on this CPU, bf16 with INT8 convs, unless ``--f32``).

``time``: median network ms per image (``infer`` only) at ``--height`` on the images of a
folder, resized like openpaf's predictor, 2 threads by default (the benchmark machine).
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo's openpaf
from openpaf.preprocess import geometry, prepare  # noqa: E402
from openpaf.structures import InputNorm  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / "shared"
IR = (SHARED / "models" / "openvino" / "human-pose-estimation-0001" / "FP16-INT8"
      / "human-pose-estimation-0001.xml")
RAW = InputNorm("BGR", 1.0, 0.0)           # the IR's own Multiply/Add normalise
# (file in coco/train, crop x0, y0, width); the crops hold several people; 364 is not
# a multiple of 8, so that crop is padded.
CROPS = (("000000000542.jpg", 136, 58, 368), ("000000129648.jpg", 20, 20, 364),
         ("000000293802.jpg", 20, 100, 368))
HEIGHT = 368


def compile_ir(xml: Path, threads: int, f32: bool):
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if f32:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    model = core.read_model(str(xml))
    model.reshape({model.inputs[0].any_name: ov.PartialShape([1, 3, -1, -1])})
    compiled = core.compile_model(model, "CPU", config)
    return compiled, compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def run(compiled, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(3, h, w)`` float32 raw BGR -> ``(heatmaps (19, h/8, w/8), pafs (38, ...))``."""
    out = compiled(x[None])
    maps = {o.get_partial_shape()[1].get_length(): v[0] for o, v in out.items()}
    return maps[19], maps[38]


def crop_input(images: Path, name: str, x0: int, y0: int, w: int):
    """The padded raw input of one crop and the sha256 of its uint8 pixels."""
    img = cv2.imread(str(images / name), cv2.IMREAD_COLOR)
    crop = np.ascontiguousarray(img[y0:y0 + HEIGHT, x0:x0 + w])
    if crop.shape[:2] != (HEIGHT, w):
        raise SystemExit(f"{name}: crop {x0},{y0},{w} leaves the image {img.shape}")
    x = prepare(crop, geometry((w, HEIGHT), HEIGHT), RAW)
    pixels = np.ascontiguousarray(x.transpose(1, 2, 0).astype(np.uint8))
    return x, hashlib.sha256(pixels.tobytes()).hexdigest()


def make_fixtures(args) -> None:
    compiled, precision = compile_ir(args.ir, args.threads, args.f32)
    out = {"openvino_version": ov.__version__, "precision": precision}
    for i, (name, x0, y0, w) in enumerate(CROPS):
        x, sha = crop_input(args.images, name, x0, y0, w)
        heatmaps, pafs = run(compiled, x)
        out.update({f"name_{i}": name, f"crop_{i}": np.array([x0, y0, w, HEIGHT]),
                    f"input_sha256_{i}": sha, f"heatmaps_{i}": heatmaps.astype(np.float16),
                    f"pafs_{i}": pafs.astype(np.float16)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"{args.out}: {len(CROPS)} crops, openvino {ov.__version__}, {precision}, "
          f"{args.out.stat().st_size} bytes")


def time_folder(args) -> None:
    compiled, precision = compile_ir(args.ir, args.threads, args.f32)
    files = sorted(args.images.glob("*.jpg"))[:args.limit]
    ms = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        x = prepare(img, geometry((img.shape[1], img.shape[0]), args.height), RAW)
        run(compiled, x)                                   # warm this shape up
        t = time.perf_counter()
        run(compiled, x)
        ms.append((time.perf_counter() - t) * 1e3)
    print(f"openvino {ov.__version__} {precision}, {args.threads} threads, height "
          f"{args.height}: median {statistics.median(ms):.1f} ms over {len(ms)} images")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("fixtures", "time"))
    p.add_argument("--ir", type=Path, default=IR, help="the IR .xml (its .bin beside it)")
    p.add_argument("--images", type=Path, default=SHARED / "data" / "coco" / "train",
                   help="folder of COCO .jpg images")
    p.add_argument("--out", type=Path, default=Path("tests/fixtures/openvino_hpe0001.npz"))
    p.add_argument("--height", type=int, default=HEIGHT, help="network input height (time)")
    p.add_argument("--limit", type=int, default=50, help="images to time")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--f32", action="store_true",
                   help="f32 inference precision hint instead of the CPU's default")
    args = p.parse_args()
    (make_fixtures if args.command == "fixtures" else time_folder)(args)


if __name__ == "__main__":
    main()
