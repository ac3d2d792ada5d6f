"""ONNX export of a PAF network (any family).

``export_onnx(model, "model.onnx", normalisation=...)`` writes the last stage's
``(heatmaps, pafs)`` for an ``image`` input ``(batch, 3, height, width)`` with dynamic
batch, height and width, stores what a runtime needs to use it as ONNX ``metadata_props``
(``METADATA_KEYS``: normalisation, stride, arch, config, inference defaults, skeleton,
openpaf version) and checks the file against the torch outputs with onnxruntime at two
input sizes. Running the file is the runtime's job: :mod:`openpaf.runtime.onnxruntime`.

Needs ``onnx`` and ``onnxruntime`` (``pip install openpaf[onnx]``).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import first_line
from ..io.atomic import AtomicPath
from ..model import PretrainedCfg
from ..runtime.onnxruntime import (INPUT_NAME, METADATA_KEYS, OUTPUT_NAMES, OnnxModel,
                                   require)
from ..structures import InputNorm
from ..skeleton import OPENPOSE_COCO18
from ..weights.checkpoint import skeleton_dict

DEFAULT_OPSET = 17
# Verification tolerance: max |onnx - torch| / max |torch|.
RTOL_FP32 = 1e-3
RTOL_FP16 = 2e-2


class ExportError(ValueError):
    """Export failed or the exported model disagrees with torch (one-line message)."""


class _LastStage(torch.nn.Module):
    """``x -> (heatmaps, pafs)`` of the last stage; ``half`` runs the network in fp16
    between an fp32 input and fp32 outputs."""

    def __init__(self, model: torch.nn.Module, half: bool = False):
        super().__init__()
        self.model = model
        self.half = half

    def forward(self, x: torch.Tensor):
        if self.half:
            x = x.half()
        maps = self.model.predict(x)
        return maps.heatmaps.float(), maps.pafs.float()


@dataclass
class ExportReport:
    """What ``export_onnx`` wrote and how well it matches torch."""

    path: Path
    opset: int
    half: bool
    size_mb: float
    checks: list[dict]          # per input size: {"size": [h, w], "max_abs_diff", "rel_diff"}

    @property
    def max_abs_diff(self) -> float:
        return max((c["max_abs_diff"] for c in self.checks), default=0.0)

    @property
    def rel_diff(self) -> float:
        return max((c["rel_diff"] for c in self.checks), default=0.0)

    def summary(self) -> str:
        parts = [f"{tuple(c['size'])}: max abs diff {c['max_abs_diff']:.2e} "
                 f"(relative {c['rel_diff']:.2e})" for c in self.checks]
        checked = "; ".join(parts) if parts else "not verified"
        return (f"wrote {self.path} ({self.size_mb:.1f} MB, opset {self.opset}"
                f"{', fp16' if self.half else ''}); onnxruntime vs torch: {checked}")


def _metadata(model, normalisation: InputNorm, half: bool,
              pretrained: PretrainedCfg | None) -> dict[str, str]:
    config = getattr(model, "config", None)
    pretrained = PretrainedCfg() if pretrained is None else pretrained
    pretrained = dataclasses.replace(pretrained, normalisation=normalisation)
    meta = {METADATA_KEYS["normalisation"]: json.dumps(normalisation.to_dict()),
            METADATA_KEYS["pretrained_cfg"]: json.dumps(pretrained.to_dict()),
            METADATA_KEYS["stride"]: str(int(getattr(model, "stride", 8))),
            METADATA_KEYS["skeleton"]: json.dumps(
                skeleton_dict(getattr(model, "spec", OPENPOSE_COCO18))),
            METADATA_KEYS["version"]: __version__,
            METADATA_KEYS["precision"]: "fp16" if half else "fp32"}
    if config is not None and hasattr(config, "to_dict"):
        meta[METADATA_KEYS["config"]] = json.dumps(config.to_dict())
        meta[METADATA_KEYS["arch"]] = model.arch
    return meta


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *,
                normalisation: InputNorm = InputNorm(), height: int = 368, width: int = 368,
                opset: int = DEFAULT_OPSET, half: bool = False, verify: bool = True,
                verify_sizes: list[tuple[int, int]] | None = None,
                pretrained: PretrainedCfg | None = None) -> ExportReport:
    """Export ``model``'s last stage to ONNX at ``path`` (see the module doc).

    height, width: size of the example input used for tracing (any multiple of the
        stride works at run time: the axes are dynamic).
    pretrained: inference defaults to store (height, flip, pad value; normalisation is
        ``normalisation``).
    half: fp16 weights and arithmetic inside (fp32 input and outputs), for GPU runtimes.
    verify: run the file with onnxruntime (CPU) on random inputs of ``verify_sizes``
        (default: the example size and one 64 px larger each way) and raise
        ``ExportError`` if ``max |onnx - torch| / max |torch|`` exceeds ``RTOL_FP32``
        (``RTOL_FP16`` with ``half``; torch runs in fp32 as the reference).
    """
    onnx = require("onnx")
    stride = int(getattr(model, "stride", 8))
    if height <= 0 or width <= 0 or height % stride or width % stride:
        raise ExportError(f"height and width must be positive multiples of {stride}, "
                          f"got {height}x{width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()          # leave the caller's model where it is
    model = model.eval()
    net = _LastStage(copy.deepcopy(model).half() if half else model, half).eval()
    example = torch.zeros(1, 3, height, width)
    dynamic = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: "map_height", 3: "map_width"}
                    for name in OUTPUT_NAMES})
    staging = AtomicPath(path)
    tmp = staging.tmp
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript exporter handles this plain conv net and needs no onnxscript.
            torch.onnx.export(net, (example,), str(tmp), input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(tmp))
        for key, value in _metadata(model, normalisation, half, pretrained).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "openpaf"
        proto.producer_version = __version__
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        staging.commit()
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporter errors have many types
        first = first_line(exc)
        raise ExportError(f"ONNX export failed: {first[:300]}") from None
    finally:
        staging.discard()
    report = ExportReport(path=path, opset=opset, half=half,
                          size_mb=path.stat().st_size / 2 ** 20, checks=[])
    if verify:
        sizes = verify_sizes or [(height, width), (height + 8 * stride, width + 8 * stride)]
        report.checks = verify_onnx(model, path, sizes,
                                    rtol=RTOL_FP16 if half else RTOL_FP32)
    return report


def verify_onnx(model: torch.nn.Module, path: str | os.PathLike,
                sizes: list[tuple[int, int]], *, rtol: float = RTOL_FP32,
                seed: int = 0) -> list[dict]:
    """Compare onnxruntime (CPU) with ``model.predict`` on random inputs of ``sizes``
    (batch 2); raise ``ExportError`` when the relative difference exceeds ``rtol``."""
    onnx_model = OnnxModel(path, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    checks = []
    for h, w in sizes:
        x = torch.rand(2, 3, h, w, generator=gen) - 0.5
        with torch.no_grad():
            ref = model.predict(x)
        got = onnx_model.predict(x)
        diff = max(float((g - r.float()).abs().max()) for g, r in zip(got, ref))
        scale = max(max(float(r.abs().max()) for r in ref), 1e-6)
        check = {"size": [h, w], "max_abs_diff": diff, "rel_diff": diff / scale}
        checks.append(check)
        if not check["rel_diff"] <= rtol:       # also catches NaN
            raise ExportError(f"{path}: onnxruntime output differs from torch at {h}x{w}: "
                              f"max abs diff {diff:.3g} = {check['rel_diff']:.3g} of the "
                              f"largest output (limit {rtol:g})")
    return checks
