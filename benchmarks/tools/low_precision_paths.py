"""The default model's precision paths interleaved on coco/<split> at height 456: AP,
network and end-to-end ms (image file -> people) per path, in one process.

    python benchmarks/tools/low_precision_paths.py val [PATHS] [MAX_IMAGES]

PATHS: comma-separated subset of torch-fp32, torch-bf16, torch-int8, ov-fp32, ov-bf16,
ov-int8, ov-ir (Intel's INT8 IR at OpenVINO's default precision). Writes
benchmarks/low_precision_<split>.json. The first two photos are not timed (compiles).
"""
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from openpaf.data.records import load_ground_truth
from openpaf.evaluate import coco_stats
from openpaf.io.images import load_image
from openpaf.io.writers import coco_results
from openpaf.predict import Predictor

DATA = Path("../shared/data/coco")
IR = Path("../shared/models/openvino/human-pose-estimation-0001/FP16-INT8/"
          "human-pose-estimation-0001.xml")
PATHS = "torch-fp32,torch-int8,ov-int8,ov-bf16,ov-ir"


def build(name: str) -> Predictor:
    kw = dict(device="cpu", height=456, flip=False)
    runtime, precision = name.split("-")
    if runtime == "torch":
        return Predictor.from_checkpoint(precision=precision, **kw)
    if precision == "ir":
        return Predictor.from_checkpoint(IR, backend="openvino", **kw)
    return Predictor.from_checkpoint(backend="openvino", precision=precision, **kw)


def main(split: str, names: list[str], limit: int | None) -> dict:
    torch.set_num_threads(2)
    predictors = {n: build(n) for n in names}
    coco = load_ground_truth(DATA / f"{split}.json")
    ids = sorted(coco.getImgIds())[:limit]
    results = {n: [] for n in names}
    net = {n: [] for n in names}
    e2e = {n: [] for n in names}
    for i, image_id in enumerate(ids):
        path = DATA / split / coco.imgs[image_id]["file_name"]
        for n, predictor in predictors.items():
            t0 = time.perf_counter()
            det = predictor(load_image(path))
            if i >= 2:
                e2e[n].append((time.perf_counter() - t0) * 1e3)
                net[n].append(predictor.last_timings["network"])
            results[n].extend(coco_results(image_id, det))
    report = {}
    for n in names:
        stats, _ = coco_stats(coco, results[n], ids)
        report[n] = dict(AP=round(stats["AP"], 4), AP50=round(stats["AP50"], 4),
                         network_ms=round(statistics.median(net[n]), 1),
                         e2e_ms=round(statistics.median(e2e[n]), 1))
    return report


if __name__ == "__main__":
    split = sys.argv[1] if len(sys.argv) > 1 else "val"
    names = (sys.argv[2] if len(sys.argv) > 2 else PATHS).split(",")
    report = main(split, names, int(sys.argv[3]) if len(sys.argv) > 3 else None)
    print(json.dumps(report, indent=1))
    Path(f"benchmarks/low_precision_{split}.json").write_text(json.dumps(report, indent=1))
