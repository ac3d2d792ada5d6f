"""``OnnxModel``: an ONNX file exported by ``openpaf export --onnx``, run by onnxruntime.

It has the interface ``Predictor`` uses (``predict(x) -> Maps`` of torch tensors,
``stride``, ``to``, ``eval``), so ``Predictor.from_checkpoint("model.onnx")`` runs the
exported model unchanged. The file's ``metadata_props`` (``METADATA_KEYS``) carry the
normalisation, stride, family, config and inference defaults.

Needs ``onnxruntime`` (``pip install openpaf[onnx]``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import first_line
from ..model import FAMILIES, PretrainedCfg
from ..structures import InputNorm, Maps
from ..skeleton import SkeletonError, spec_from_stored
from ..weights.checkpoint import CheckpointError

INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps", "pafs")
# ONNX metadata_props keys written by ``export_onnx`` and read by ``OnnxModel``.
METADATA_KEYS = {"normalisation": "openpaf.normalisation", "stride": "openpaf.stride",
                 "config": "openpaf.config", "skeleton": "openpaf.skeleton",
                 "version": "openpaf.version", "precision": "openpaf.precision",
                 "arch": "openpaf.arch", "pretrained_cfg": "openpaf.pretrained_cfg"}


class OnnxUnavailableError(ImportError, ValueError):
    """onnx or onnxruntime is not installed (one-line message with the pip command)."""


def require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OnnxUnavailableError(f"{module} is not installed: pip install openpaf[onnx]"
                                   ) from None


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (raw strings)."""
    ort = require("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


def _default_providers(device: torch.device) -> list[str]:
    ort = require("onnxruntime")
    available = ort.get_available_providers()
    wanted = (["CUDAExecutionProvider"] if device.type == "cuda" else []) + [
        "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or available


class OnnxModel:
    """An exported openpaf ONNX file run by onnxruntime, usable where ``Predictor``
    expects a model: ``predict(x) -> Maps(heatmaps, pafs)`` float32 torch tensors on ``x``'s
    device, ``stride`` (8), ``normalisation`` and ``config`` from the file's metadata.

    providers: onnxruntime execution providers; None: CUDA (when ``device`` is cuda and
    available) then CPU.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None, *,
                 device: str | torch.device = "cpu"):
        ort = require("onnxruntime")
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
            first = first_line(exc)
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
            self.pretrained = (PretrainedCfg.from_dict(
                json.loads(meta[METADATA_KEYS["pretrained_cfg"]]))
                if METADATA_KEYS["pretrained_cfg"] in meta
                else PretrainedCfg(normalisation=self.normalisation))
            self.config = None
            if METADATA_KEYS["config"] in meta:
                arch = meta.get(METADATA_KEYS["arch"], "cmu_vgg")
                self.config = FAMILIES[arch].config_cls.from_dict(
                    json.loads(meta[METADATA_KEYS["config"]]))
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{self.path}: bad openpaf metadata ({exc})") from None
        try:
            self.spec = spec_from_stored(skeleton)
        except (SkeletonError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.path}: skeleton mismatch: {first_line(exc)}"
                                  ) from None
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

    def predict(self, x: torch.Tensor) -> Maps:
        """``(B, 3, H, W)`` float32 -> ``Maps(heatmaps (B, 19, H/8, W/8), pafs (B, 38, ..))``."""
        feed = np.ascontiguousarray(x.detach().float().cpu().numpy())
        heatmaps, pafs = self.session.run(list(OUTPUT_NAMES), {self.input_name: feed})
        return Maps(torch.from_numpy(heatmaps).to(x.device),
                    torch.from_numpy(pafs).to(x.device))

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, providers={self.providers})"
