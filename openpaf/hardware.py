"""What machine a result was measured on: the CPU model and its speed-relevant flags
(from ``/proc/cpuinfo``), or the GPU name, for reports and manifests."""
from __future__ import annotations

import os
import platform

SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


def cpu_model() -> tuple[str, list[str]]:
    """CPU model name and the speed-relevant flags (bf16/AMX) from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = [f for f in SPEED_FLAGS if f in have]
                    break
    except OSError:
        pass
    return name, flags


def describe(device, world: int = 1) -> str:
    """``"2 x NVIDIA H100"`` (``device`` a cuda ``torch.device``) or ``"1 x CPU <model>
    (<n> cores)"``."""
    if device.type == "cuda":
        import torch
        return f"{world} x {torch.cuda.get_device_name(device)}"
    return f"{world} x CPU {cpu_model()[0]} ({os.cpu_count()} cores)"
