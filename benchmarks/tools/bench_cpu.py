"""``make bench-cpu``: the CPU execution paths of the default model in one interleaved run
(fp32, bf16 whole, auto, auto + compile, int8 when ``openpaf.runtime.int8`` exists, and
Intel's OpenVINO INT8 IR), at height 456 on coco/val photos: network ms and end-to-end
images/s (image file -> OpenPose JSON), with coco/val AP from the eval JSONs named in
``AP_FILES`` where they exist. Writes the JSON and prints the README's markdown table::

    python benchmarks/tools/bench_cpu.py --json benchmarks/bench_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf.benchmark import list_images  # noqa: E402
from openpaf.benchmark.pipeline import default_images_dir  # noqa: E402
from openpaf.benchmark.runtimes import (BENCH_CPU_PATHS, compare_runtimes,  # noqa: E402
                                        format_markdown, format_runtimes)

# path -> `openpaf eval` JSON on coco/val at height 456 (Makefile default-eval and bench-cpu)
AP_FILES = {"torch": "default_val.json", "torch-bf16": "default_val_bf16.json",
            "torch-auto": "default_val_auto.json", "torch-int8": "default_val_int8.json",
            "openvino-ir": "default_val_openvino_ir_456.json"}


def read_ap(folder: Path) -> dict[str, float]:
    """AP per path from the eval JSONs in ``folder`` that exist."""
    out = {}
    for path, name in AP_FILES.items():
        f = folder / name
        if f.is_file():
            out[path] = json.loads(f.read_text())["AP"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--max-images", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--height", type=int, default=456)
    ap.add_argument("--paths", default=",".join(BENCH_CPU_PATHS),
                    help="comma-separated subset of " + ", ".join(BENCH_CPU_PATHS))
    args = ap.parse_args()
    paths = list_images(default_images_dir(), args.max_images)
    report = compare_runtimes(paths, None, runtimes=args.paths.split(","), heights=(args.height,),
                              repeats=args.repeats, progress=lambda m: print(m, flush=True))
    report["ap_coco_val"] = read_ap(ROOT / "benchmarks")
    report["markdown"] = format_markdown(report, report["ap_coco_val"])
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(format_runtimes(report))
    print(report["markdown"])


if __name__ == "__main__":
    main()
