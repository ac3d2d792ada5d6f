"""What a benchmark ran on: CPU model and speed flags, torch build, timing summaries,
JSON reports."""
from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..hardware import cpu_model
from ..io.atomic import atomic_write_text


def machine_info(device: str = "cpu") -> dict:
    """CPU model, core count, torch threads, load average and (for cuda) the GPU name."""
    cpu, flags = cpu_model()
    info = {"cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "platform": platform.platform()}
    with contextlib.suppress(OSError, AttributeError):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    if str(device).startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info


def torch_info() -> dict:
    info = {"version": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available()}
    with contextlib.suppress(ImportError):
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    return info


def summary_ms(values: Sequence[float]) -> dict:
    """``{"median", "p90"}`` of millisecond values, rounded to microseconds."""
    if len(values) == 0:
        return {"median": 0.0, "p90": 0.0}
    v = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(v)), 3),
            "p90": round(float(np.percentile(v, 90)), 3)}


def write_json(path: str | Path, obj: dict) -> Path:
    """Write a report as indented JSON (atomically)."""
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
