"""One network forward pass under several CPU execution paths (eager, channels_last,
TorchScript, bf16, ONNX Runtime, torch.compile), interleaved in one run."""
from __future__ import annotations

import contextlib
import copy
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import first_line
from ..export import export_onnx
from ..model import count_flops, create_model, fold_batchnorm
from ..runtime.onnxruntime import OnnxModel
from .machine import machine_info, torch_info

# --- CPU execution paths ---------------------------------------------------------------

CPU_PATHS: tuple[str, ...] = ("eager_fp32", "inference_mode", "channels_last",
                              "threads_1", "bn_folded", "jit_freeze",
                              "jit_optimize_for_inference", "bf16_autocast",
                              "bf16_autocast_channels_last", "bf16_weights_channels_last",
                              "fp16_autocast_channels_last", "onnxruntime", "torch_compile")


def lively_init(model, seed: int = 0) -> None:
    """Re-initialise weights so activations keep their scale through every stage (the
    default init makes a deep random network's outputs ~0, useless for accuracy diffs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                               * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.01)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


class _Predict:
    """``fn(x) -> (heatmaps, pafs)`` plus how to prepare its input."""

    def __init__(self, fn, channels_last: bool = False, context=None, threads=None):
        self.fn, self.channels_last, self.context, self.threads = (fn, channels_last,
                                                                   context, threads)

    def __call__(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        old = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with (self.context() if self.context else contextlib.nullcontext()):
                out = self.fn(x)
        finally:
            torch.set_num_threads(old)
        return out


def _build_path(name: str, model, example, onnx_dir: Path):
    """``_Predict`` for one path name, or raise (the caller records the error)."""

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.predict(x)

    im = torch.inference_mode
    cl = lambda m: copy.deepcopy(m).to(memory_format=torch.channels_last)  # noqa: E731
    if name == "eager_fp32":
        return _Predict(model.predict, context=torch.no_grad)
    if name == "inference_mode":
        return _Predict(model.predict, context=im)
    if name == "channels_last":
        return _Predict(cl(model).predict, True, im)
    if name == "threads_1":
        return _Predict(cl(model).predict, True, im, threads=1)
    if name == "bn_folded":
        if not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
            raise RuntimeError("no BatchNorm in this model")
        return _Predict(fold_batchnorm(model).to(memory_format=torch.channels_last).predict,
                        True, im)
    if name in ("jit_freeze", "jit_optimize_for_inference"):
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(Wrapped(model).eval(), example))
            if name == "jit_optimize_for_inference":
                traced = torch.jit.optimize_for_inference(traced)
        return _Predict(traced, context=im)
    if name in ("bf16_autocast", "bf16_autocast_channels_last", "fp16_autocast_channels_last"):
        dtype = torch.float16 if name.startswith("fp16") else torch.bfloat16
        m = cl(model) if name.endswith("channels_last") else model
        return _Predict(m.predict, name.endswith("channels_last"),
                        lambda: _autocast_cpu(dtype))
    if name == "bf16_weights_channels_last":
        m = cl(model).to(torch.bfloat16)
        return _Predict(lambda x: type(ref := m.predict(x.to(torch.bfloat16)))(
            *(t.float() for t in ref)), True, im)
    if name == "onnxruntime":
        path = onnx_dir / "model.onnx"
        export_onnx(model, path, height=example.shape[2], width=example.shape[3],
                    verify=False)
        om = OnnxModel(path, providers=["CPUExecutionProvider"])
        return _Predict(om.predict)
    if name == "torch_compile":
        compiled = torch.compile(cl(model).predict)
        return _Predict(compiled, True, im)
    raise ValueError(f"unknown CPU path {name!r}; choose from {', '.join(CPU_PATHS)}")


@contextlib.contextmanager
def _autocast_cpu(dtype):
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype):
        yield


def compare_cpu_paths(model_name: str = "cmu_vgg19",
                      sizes: Sequence[tuple[int, int]] = ((368, 368), (368, 656)),
                      paths: Sequence[str] = CPU_PATHS, *, repeats: int = 2,
                      seed: int = 0, progress: Callable[[str], None] | None = None) -> dict:
    """Time one forward pass of ``model_name`` per CPU execution path, interleaved.

    For each ``(height, width)``: build every path once (``build_s``), run it once
    untimed (``first_s``: includes lazy compilation), then ``repeats`` rounds in which
    every path runs once in turn (so load from other processes hits all paths alike).
    Reports per path the median and best seconds, GFLOP/s of each, their ratios to
    ``eager_fp32`` (the best is the steadier figure on a shared machine) and the max abs
    difference of its outputs from eager fp32 relative to the largest
    eager output (weights re-initialised so outputs are O(1)). A path that fails to build
    or run is recorded with its error and skipped.
    """
    say = progress or (lambda msg: None)
    torch.manual_seed(seed)
    model = create_model(model_name).eval()
    lively_init(model, seed)
    result = {"machine": machine_info("cpu"), "torch": torch_info(), "model": model_name,
              "repeats": repeats, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="openpaf-paths-") as tmp:
        for h, w in sizes:
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
            gflop = count_flops(model, h, w) / 1e9
            with torch.no_grad():
                ref = model.predict(x)
            scale = max(float(t.abs().max()) for t in ref)
            runners, rows = {}, {}
            for name in paths:
                t0 = time.perf_counter()
                try:
                    fn = _build_path(name, model, x, Path(tmp))
                    build = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    out = fn(x)
                    first = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001 - any failure is a result here
                    text = first_line(exc, "")[:200]
                    rows[name] = {"error": f"{type(exc).__name__}: {text}".rstrip(": ")}
                    say(f"{h}x{w} {name}: unavailable ({rows[name]['error']})")
                    continue
                diff = max(float((a.float() - b).abs().max()) for a, b in zip(out, ref))
                runners[name] = fn
                rows[name] = {"build_s": round(build, 3), "first_s": round(first, 3),
                              "times_s": [], "rel_diff": float(f"{diff / scale:.3g}")}
                say(f"{h}x{w} {name}: built in {build:.1f}s, first run {first:.2f}s")
            for r in range(repeats):
                for name, fn in runners.items():
                    t0 = time.perf_counter()
                    fn(x)
                    rows[name]["times_s"].append(round(time.perf_counter() - t0, 4))
                say(f"{h}x{w} round {r + 1}/{repeats} done")
            base = rows.get("eager_fp32", {})
            base_t = (statistics.median(base["times_s"]), min(base["times_s"])) \
                if base.get("times_s") else None
            for name, row in rows.items():
                if not row.get("times_s"):
                    continue
                med, best = statistics.median(row["times_s"]), min(row["times_s"])
                row.update(median_s=round(med, 4), best_s=round(best, 4),
                           gflop_per_s=round(gflop / med, 1),
                           best_gflop_per_s=round(gflop / best, 1))
                if base_t:
                    row["ratio_vs_eager_fp32"] = round(base_t[0] / med, 2)
                    row["best_ratio_vs_eager_fp32"] = round(base_t[1] / best, 2)
            result["sizes"][f"{h}x{w}"] = {"gflop": round(gflop, 2), "paths": rows}
            del runners
    return result


def format_cpu_paths(result: dict) -> str:
    """``compare_cpu_paths`` result as a table per input size."""
    lines = [f"{result['model']} on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores, torch {result['torch']['version']})"]
    for size, entry in result["sizes"].items():
        lines.append(f"{size} ({entry['gflop']:.1f} GFLOP):")
        lines.append(f"  {'path':<30}{'median s':>9}{'GFLOP/s':>9}{'ratio':>7}{'best s':>8}"
                     f"{'GFLOP/s':>9}{'ratio':>7}{'rel diff':>10}{'first s':>9}")
        for name, row in entry["paths"].items():
            if "error" in row:
                lines.append(f"  {name:<30}unavailable: {row['error']}")
                continue
            lines.append(f"  {name:<30}{row['median_s']:>9.3f}{row['gflop_per_s']:>9.1f}"
                         f"{row.get('ratio_vs_eager_fp32', float('nan')):>7.2f}"
                         f"{row['best_s']:>8.3f}{row['best_gflop_per_s']:>9.1f}"
                         f"{row.get('best_ratio_vs_eager_fp32', float('nan')):>7.2f}"
                         f"{row['rel_diff']:>10.1e}{row['first_s']:>9.2f}")
    return "\n".join(lines)
