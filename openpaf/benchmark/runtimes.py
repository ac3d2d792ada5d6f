"""One model's weights under several runtimes and input heights, timed in one run.

``compare_runtimes(...)`` builds one ``Predictor`` per (runtime, height), then runs
``repeats`` rounds in which every predictor processes the same images in turn
(interleaved, so load from other processes hits all alike). Per predictor it reports
network ms per image (median over all images and rounds) and end-to-end FPS (image file
-> OpenPose JSON, every stage, the median round). Ratios compare each runtime with the
reference (``openvino-ir`` at the same height when it ran, else the first runtime).

Runtimes (``RUNTIMES``; ``BENCH_CPU_PATHS``: the paths ``make bench-cpu`` compares):
    torch        fp32, channels_last, BatchNorm folded (``--precision fp32``)
    torch-bf16   the same, the whole network in bf16 (``--precision bf16``)
    torch-auto   openpaf's default: ``--precision auto`` (bf16 body, fp32 heads on
                 AMX / AVX512-BF16 CPUs)
    torch-auto-compile  the same through ``torch.compile`` (``--compile``)
    torch-int8   ``--precision int8`` (``openpaf.runtime.int8``, torchao)
    onnxruntime  the weights exported once to a temporary ONNX file
    openvino     the weights converted for OpenVINO's CPU plugin, fp32
    openvino-ir  an OpenVINO IR run as it is (``ir``: e.g. Intel's INT8 model)
A runtime that is not installed (or has no IR) is recorded with its error and skipped.
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from ..errors import first_line
from ..export import export_onnx
from ..predict import Predictor
from ..weights import load_default, load_weights
from .machine import machine_info, torch_info
from .pipeline import _shared_data, benchmark_pipeline

RUNTIMES: tuple[str, ...] = ("torch", "torch-bf16", "onnxruntime", "openvino", "openvino-ir")
TORCH_PATHS = {"torch": ("fp32", False), "torch-bf16": ("bf16", False),
               "torch-auto": ("auto", None), "torch-auto-compile": ("auto", True),
               "torch-int8": ("int8", False)}
BENCH_CPU_PATHS: tuple[str, ...] = tuple(TORCH_PATHS) + ("openvino-ir",)
OMZ_IR = ("models/openvino/human-pose-estimation-0001/FP16-INT8/"
          "human-pose-estimation-0001.xml")


def default_ir() -> Path:
    """Intel's INT8 IR of the default model in ``../shared/models`` (may be absent)."""
    return _shared_data().parent / OMZ_IR


def build_runtime(name: str, weights: str | None, height: int | None, *, ir: Path | None,
                  tmp: Path, flip: bool | None = None) -> Predictor:
    """The ``Predictor`` of runtime ``name`` (see the module doc) on ``weights``."""
    kwargs = dict(device="cpu", height=height, flip=flip)
    if name in TORCH_PATHS:
        precision, compile_ = TORCH_PATHS[name]
        return Predictor.from_checkpoint(weights, precision=precision, compile=compile_,
                                         **kwargs)
    if name == "openvino":
        return Predictor.from_checkpoint(weights, precision="fp32", backend="openvino",
                                         **kwargs)
    if name == "onnxruntime":
        onnx = tmp / "model.onnx"
        if not onnx.is_file():
            loaded = load_weights(weights) if weights else load_default()
            export_onnx(loaded.model, onnx, normalisation=loaded.normalisation,
                        pretrained=loaded.pretrained, verify=False)
        return Predictor.from_checkpoint(onnx, backend="onnxruntime", **kwargs)
    if name == "openvino-ir":
        if ir is None or not Path(ir).is_file():
            raise FileNotFoundError(f"no OpenVINO IR at {ir} (give --openvino-ir FILE)")
        return Predictor.from_checkpoint(ir, backend="openvino", **kwargs)
    raise ValueError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")


def compare_runtimes(paths: Sequence[Path], weights: str | None = None, *,
                     runtimes: Sequence[str] = RUNTIMES, heights: Sequence[int | None] = (None,),
                     ir: Path | None = None, repeats: int = 3, flip: bool | None = None,
                     progress: Callable[[str], None] | None = None) -> dict:
    """Time ``runtimes`` x ``heights`` on the images ``paths`` (see the module doc)."""
    say = progress or (lambda msg: None)
    ir = default_ir() if ir is None else Path(ir)
    rows: dict[str, dict] = {}
    predictors: dict[str, Predictor] = {}
    with tempfile.TemporaryDirectory(prefix="openpaf-runtimes-") as tmp:
        for height in heights:
            for name in runtimes:
                key = f"{name}@{height or 'default'}"
                try:
                    predictors[key] = build_runtime(name, weights, height, ir=ir,
                                                    tmp=Path(tmp), flip=flip)
                    # compiled paths compile every shape bucket of the images now
                    warm = paths if name.endswith("compile") else paths[:1]
                    benchmark_pipeline(predictors[key], warm, warmup=1, repeats=0)
                    rows[key] = {"runtime": name, "height": predictors[key].height,
                                 "precision": str(predictors[key].precision_choice),
                                 "network_ms": [], "fps": []}
                except Exception as exc:  # noqa: BLE001 - a missing runtime is a result
                    text = first_line(exc, "")[:200]
                    rows[key] = {"runtime": name, "height": height,
                                 "error": f"{type(exc).__name__}: {text}"}
                    say(f"{key}: skipped ({rows[key]['error']})")
        for r in range(repeats):
            say(f"round {r + 1}/{repeats}")
            for key, predictor in predictors.items():
                res = benchmark_pipeline(predictor, paths, warmup=0, repeats=1)
                rows[key]["network_ms"] += res["stages"]["network"]
                rows[key]["fps"].append(res["fps"])
    return {"machine": machine_info("cpu"), "torch": torch_info(), "images": len(paths),
            "repeats": repeats, "weights": str(weights or "default"), "ir": str(ir),
            "rows": _summarise(rows)}


def _summarise(rows: dict[str, dict]) -> dict[str, dict]:
    """Medians, and ratios to the reference runtime at the same height."""
    for row in rows.values():
        if "error" not in row:
            row["network_ms"] = round(statistics.median(row["network_ms"]), 2)
            row["fps"] = round(statistics.median(row["fps"]), 2)
    for row in rows.values():
        if "error" in row:
            continue
        same = [r for r in rows.values() if "error" not in r and r["height"] == row["height"]]
        ref = next((r for r in same if r["runtime"] == "openvino-ir"), same[0])
        row["reference"] = ref["runtime"]
        row["network_speed_vs_reference"] = round(ref["network_ms"] / row["network_ms"], 3)
        row["fps_vs_reference"] = round(row["fps"] / ref["fps"], 3)
    return rows


def format_markdown(report: dict, ap: dict[str, float] | None = None) -> str:
    """``compare_runtimes``' report as a markdown table (README), with ``ap``
    (runtime -> coco/val AP, from eval JSONs) where given."""
    ap = ap or {}
    lines = ["| path | precision | height | network ms | images/s end to end | "
             "coco/val AP |", "|---|---|---|---|---|---|"]
    for row in report["rows"].values():
        if "error" in row:
            lines.append(f"| {row['runtime']} | - | {row['height']} | not run: "
                         f"{row['error'][:80]} | | |")
            continue
        score = ap.get(row["runtime"])
        lines.append(f"| {row['runtime']} | {row.get('precision', '-')} | {row['height']} "
                     f"| {row['network_ms']:.1f} | {row['fps']:.2f} | "
                     f"{'-' if score is None else f'{score:.3f}'} |")
    return "\n".join(lines)


def format_runtimes(report: dict) -> str:
    """A text table of ``compare_runtimes``' report."""
    lines = [f"{report['images']} images x {report['repeats']} rounds; weights "
             f"{report['weights']}; load {report['machine'].get('load_average')}",
             f"{'runtime':<13}{'height':>7}{'net ms':>9}{'FPS':>8}{'net x':>8}{'FPS x':>8}"
             "  (x = speed relative to the reference)"]
    for row in report["rows"].values():
        if "error" in row:
            lines.append(f"{row['runtime']:<13}{str(row['height']):>7}  {row['error']}")
            continue
        lines.append(f"{row['runtime']:<13}{row['height']:>7}{row['network_ms']:>9.1f}"
                     f"{row['fps']:>8.2f}{row['network_speed_vs_reference']:>8.2f}"
                     f"{row['fps_vs_reference']:>8.2f}")
    return "\n".join(lines)
