"""ONNX export of a PAF network, and ``OnnxModel``: the exported file run by onnxruntime.

``export_onnx(model, "model.onnx", normalisation=...)`` writes the last stage's
``(heatmaps, pafs)`` for an ``image`` input ``(batch, 3, height, width)`` with dynamic
batch, height and width, stores what a runtime needs to use it as ONNX ``metadata_props``
(``METADATA_KEYS``: normalisation, stride, config, skeleton, openpaf version) and checks
the file against the torch outputs with onnxruntime at two input sizes.

``OnnxModel(path)`` has the interface ``Predictor`` uses (``predict(x) -> (heatmaps,
pafs)`` torch tensors, ``stride``, ``to``, ``eval``), so
``Predictor.from_checkpoint("model.onnx")`` runs the exported model unchanged.

Needs ``onnx`` and ``onnxruntime`` (``pip install openpaf[onnx]``).
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import CheckpointError, skeleton_dict
from .structures import InputNorm

INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps", "pafs")
# ONNX metadata_props keys written by ``export_onnx`` and read by ``OnnxModel``.
METADATA_KEYS = {"normalisation": "openpaf.normalisation", "stride": "openpaf.stride",
                 "config": "openpaf.config", "skeleton": "openpaf.skeleton",
                 "version": "openpaf.version", "precision": "openpaf.precision"}
DEFAULT_OPSET = 17
# Verification tolerance: max |onnx - torch| / max |torch|.
RTOL_FP32 = 1e-3
RTOL_FP16 = 2e-2


class OnnxUnavailableError(ImportError, ValueError):
    """onnx or onnxruntime is not installed (one-line message with the pip command)."""


class ExportError(ValueError):
    """Export failed or the exported model disagrees with torch (one-line message)."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OnnxUnavailableError(f"{module} is not installed: pip install openpaf[onnx]"
                                   ) from None


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
        heatmaps, pafs = self.model.predict(x)
        return heatmaps.float(), pafs.float()


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


def _metadata(model, normalisation: InputNorm, half: bool) -> dict[str, str]:
    config = getattr(model, "config", None)
    meta = {METADATA_KEYS["normalisation"]: json.dumps(normalisation.to_dict()),
            METADATA_KEYS["stride"]: str(int(getattr(model, "stride", 8))),
            METADATA_KEYS["skeleton"]: json.dumps(skeleton_dict()),
            METADATA_KEYS["version"]: __version__,
            METADATA_KEYS["precision"]: "fp16" if half else "fp32"}
    if config is not None and hasattr(config, "to_dict"):
        meta[METADATA_KEYS["config"]] = json.dumps(config.to_dict())
    return meta


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *,
                normalisation: InputNorm = InputNorm(), height: int = 368, width: int = 368,
                opset: int = DEFAULT_OPSET, half: bool = False, verify: bool = True,
                verify_sizes: list[tuple[int, int]] | None = None) -> ExportReport:
    """Export ``model``'s last stage to ONNX at ``path`` (see the module doc).

    height, width: size of the example input used for tracing (any multiple of the
        stride works at run time: the axes are dynamic).
    half: fp16 weights and arithmetic inside (fp32 input and outputs), for GPU runtimes.
    verify: run the file with onnxruntime (CPU) on random inputs of ``verify_sizes``
        (default: the example size and one 64 px larger each way) and raise
        ``ExportError`` if ``max |onnx - torch| / max |torch|`` exceeds ``RTOL_FP32``
        (``RTOL_FP16`` with ``half``; torch runs in fp32 as the reference).
    """
    onnx = _require("onnx")
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
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript exporter handles this plain conv net and needs no onnxscript.
            torch.onnx.export(net, (example,), str(tmp), input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        proto = onnx.load(str(tmp))
        for key, value in _metadata(model, normalisation, half).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "openpaf"
        proto.producer_version = __version__
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporter errors have many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"ONNX export failed: {first[:300]}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
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


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (raw strings)."""
    ort = _require("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


def _default_providers(device: torch.device) -> list[str]:
    ort = _require("onnxruntime")
    available = ort.get_available_providers()
    wanted = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + [
        "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or available


class OnnxModel:
    """An exported openpaf ONNX file run by onnxruntime, usable where ``Predictor``
    expects a model: ``predict(x) -> (heatmaps, pafs)`` float32 torch tensors on ``x``'s
    device, ``stride`` (8), ``normalisation`` and ``config`` from the file's metadata.

    providers: onnxruntime execution providers; None: CUDA (when ``device`` is cuda and
    available) then CPU.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None, *,
                 device: str | torch.device = "cpu"):
        ort = _require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model not found: {self.path}")
        self.device = torch.device(device)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options,
                providers=providers or _default_providers(self.device))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CheckpointError(f"{self.path}: cannot load as ONNX ({first[:200]})"
                                  ) from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = meta
        try:
            self.normalisation = (InputNorm(**json.loads(meta[METADATA_KEYS["normalisation"]]))
                                  if METADATA_KEYS["normalisation"] in meta else InputNorm())
            self.stride = int(meta.get(METADATA_KEYS["stride"], 8))
            if self.stride < 1 or self.stride & (self.stride - 1):
                raise ValueError(f"stride must be a power of two, got {self.stride}")
            skeleton = json.loads(meta.get(METADATA_KEYS["skeleton"], "null"))
            self.config = None
            if METADATA_KEYS["config"] in meta:
                from .model import PafNetConfig
                self.config = PafNetConfig.from_dict(json.loads(meta[METADATA_KEYS["config"]]))
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{self.path}: bad openpaf metadata ({exc})") from None
        if skeleton is not None and skeleton != skeleton_dict():
            raise CheckpointError(f"{self.path}: skeleton mismatch: the model was exported "
                                  "for a different keypoint/limb layout")
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or outputs[:2] != list(OUTPUT_NAMES):
            raise CheckpointError(f"{self.path}: expected one input and outputs "
                                  f"{list(OUTPUT_NAMES)}, got {outputs}")
        self.input_name = inputs[0].name
        self.providers = self.session.get_providers()

    def to(self, device=None, *args, **kwargs) -> "OnnxModel":
        """Outputs go to ``device``; the session keeps its providers."""
        if isinstance(device, (str, torch.device)):
            self.device = torch.device(device)
        return self

    def eval(self) -> "OnnxModel":
        return self

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` float32 -> ``(heatmaps (B, 19, H/8, W/8), pafs (B, 38, ...))``."""
        feed = np.ascontiguousarray(x.detach().float().cpu().numpy())
        heatmaps, pafs = self.session.run(list(OUTPUT_NAMES), {self.input_name: feed})
        return (torch.from_numpy(heatmaps).to(x.device),
                torch.from_numpy(pafs).to(x.device))

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, providers={self.providers})"
