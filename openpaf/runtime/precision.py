"""Precision policy: which dtype a torch network runs in, and which layers stay float32.

``resolve_precision("auto", device)`` picks bf16 on CPUs with native bf16 (AMX or
AVX512-BF16, read by ``openpaf.hardware``), fp32 on other CPUs, and bf16 (or fp16 where
bf16 is missing) on CUDA. Under "auto" (and explicit fp16) the layers a family declares
precision sensitive (``PafModel.fp32_modules()``: its output 1x1 convs, whose rounding
moves peak positions and PAF line integrals) stay float32; explicit "bf16" converts the
whole network, as it always did. ``apply_precision`` makes the converted copy: body
weights in the low dtype, the kept modules in float32 with their inputs cast up, and
every other layer with weights casting its input down when a float32 tensor arrives
(refinement stages read the previous stage's maps). Which layers to keep was measured on coco/train
(``benchmarks/choices/fp32_layers_coco_train.json``): the heads and the first conv
(AP 0.4274 against 0.4236 for the heads alone, 0.4153 for whole bf16, 0.4245 for fp32).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import hardware
from . import PRECISIONS
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
          "int8": torch.float32}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
RUNTIME_OWN = "the runtime's own"           # exported models (onnxruntime, openvino)
# Measured on coco/train (see the module docstring): the first conv (the input layer,
# the first Conv2d of the network, whatever the family) earns its fp32 cost.
KEEP_FIRST_CONV = True


@dataclass(frozen=True)
class PrecisionChoice:
    """What a network runs in.

    kind: "fp32" | "bf16" | "fp16" | "int8". dtype: the body's torch dtype.
    fp32_heads: the family's ``fp32_modules()`` stay float32. reason: why (CPU flag,
    device, or "asked for").
    """

    kind: str
    dtype: torch.dtype = torch.float32
    fp32_heads: bool = False
    reason: str = "asked for"
    keep_first_conv: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        if self.reason == RUNTIME_OWN:
            return RUNTIME_OWN
        kept = ""
        if self.fp32_heads and self.kind != "fp32":
            kept = ", heads and first conv fp32" if self.keep_first_conv else ", heads fp32"
        return f"{self.kind} ({self.reason}){kept}"


def bf16_cpu_flag(flags: list[str] | None = None) -> str | None:
    """The first CPU flag that gives native bf16 (``BF16_CPU_FLAGS``), or None."""
    flags = hardware.cpu_model()[1] if flags is None else flags
    return next((f for f in BF16_CPU_FLAGS if f in flags), None)


def resolve_precision(requested: str, device: torch.device | str = "cpu",
                      flags: list[str] | None = None) -> PrecisionChoice:
    """``requested`` (one of ``PRECISIONS``) on ``device`` -> ``PrecisionChoice``.

    flags: the CPU's flags (None: read ``/proc/cpuinfo``); tests pass their own.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {requested!r}")
    device = torch.device(device)
    if requested != "auto":
        return PrecisionChoice(requested, DTYPES[requested], fp32_heads=requested == "fp16")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", torch.bfloat16, True, "cuda",
                                   keep_first_conv=KEEP_FIRST_CONV)
        return PrecisionChoice("fp16", torch.float16, True, "cuda, no bf16",
                               keep_first_conv=KEEP_FIRST_CONV)
    if device.type != "cpu":
        return PrecisionChoice("fp32", reason=f"{device.type}")
    flag = bf16_cpu_flag(flags)
    if flag is None:
        return PrecisionChoice("fp32", reason="CPU without amx_bf16/avx512_bf16")
    return PrecisionChoice("bf16", torch.bfloat16, True, flag,
                           keep_first_conv=KEEP_FIRST_CONV)


def resolve_for_model(requested: str, model: nn.Module,
                      device: torch.device | str = "cpu") -> PrecisionChoice:
    """``resolve_precision``, except that "auto" stays fp32 for a network that does not
    declare its precision-sensitive layers (``fp32_modules``): mixed precision only where
    a family says what must stay float32."""
    choice = resolve_precision(requested, device)
    if requested == "auto" and choice.fp32_heads:
        try:
            model.fp32_modules()
        except (AttributeError, NotImplementedError):
            return PrecisionChoice("fp32", reason=f"{type(model).__name__} declares no "
                                   "fp32_modules")
    return choice


def _to_float32(module, args):
    return tuple(a.float() if torch.is_tensor(a) else a for a in args)


def _cast_to_weight(module, args):
    dtype = next(module.parameters(recurse=False)).dtype
    return tuple(a.to(dtype) if torch.is_tensor(a) and a.dtype != dtype else a
                 for a in args)


def kept_modules(model: nn.Module, choice: PrecisionChoice) -> list[nn.Module]:
    """The modules ``choice`` keeps in float32: the family's ``fp32_modules()`` (and the
    first conv when ``keep_first_conv``)."""
    if not choice.fp32_heads:
        return []
    keep = list(model.fp32_modules())
    if choice.keep_first_conv:
        keep.append(next(m for m in model.modules() if isinstance(m, nn.Conv2d)))
    return keep


def apply_precision(model: nn.Module, choice: PrecisionChoice) -> nn.Module:
    """``model`` (never changed) as ``choice`` runs it: a copy whose weights are in
    ``choice.dtype`` except the kept modules; maps come out float32 when the heads are
    kept. fp32 and int8 (quantised elsewhere) return ``model`` itself."""
    if choice.kind in ("fp32", "int8"):
        return model
    converted = copy.deepcopy(model).to(choice.dtype)
    keep = kept_modules(converted, choice)
    for m in keep:
        m.float()
        m.register_forward_pre_hook(_to_float32)
    if keep:        # every other layer with weights reads its own dtype
        kept_ids = {id(p) for m in keep for p in m.parameters()}
        for m in converted.modules():
            own = list(m.parameters(recurse=False))
            if own and id(own[0]) not in kept_ids:
                m.register_forward_pre_hook(_cast_to_weight)
    return converted
