"""``OpenVinoModel``: an openpaf network run by OpenVINO's CPU plugin.

For users on Intel CPUs who want OpenVINO's kernels (``--backend openvino``). Two ways in:

* ``from_torch(model, pretrained)``: any openpaf network (any family), converted with
  ``openvino.convert_model`` once and cached as IR under ``$OPENPAF_CACHE`` (default
  ``~/.cache/openpaf/openvino``), keyed by the weights' sha256; run at ``precision``
  (fp32 by default: outputs equal torch's up to float rounding, relative 1e-4).
* ``from_ir(xml)``: an OpenVINO IR file run as it is, at the precision OpenVINO picks
  unless ``precision`` is given (e.g. Intel's INT8 human-pose-estimation-0001; bf16
  around its INT8 layers on BF16 CPUs). Its input normalisation is inside the IR, so the
  input is raw BGR 0-255.

``precision`` becomes OpenVINO's ``INFERENCE_PRECISION_HINT`` (``HINTS``): the precision
of the float layers; INT8 layers (FakeQuantize / QDQ in the model) stay INT8 either way.

It has the interface ``Predictor`` uses (``predict(x) -> Maps``, ``stride``,
``to``, ``eval``). Needs ``pip install openpaf[openvino]``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import first_line
from ..model import PafModel, PretrainedCfg
from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from ..structures import InputNorm, Maps
from ..weights.checkpoint import CheckpointError
from .onnxruntime import OnnxUnavailableError

RAW_BGR = InputNorm("BGR", 1.0, 0.0)        # what an IR with folded normalisation takes
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}   # openpaf precision -> OpenVINO


def require_openvino():
    try:
        import openvino
    except ImportError:
        raise OnnxUnavailableError("openvino is not installed: pip install openpaf[openvino]"
                                   ) from None
    return openvino


def cache_dir() -> Path:
    """Where converted IR files are kept: ``$OPENPAF_CACHE/openvino`` or ~/.cache/..."""
    root = os.environ.get("OPENPAF_CACHE") or Path.home() / ".cache" / "openpaf"
    return Path(root) / "openvino"


class _LastStage(torch.nn.Module):
    def __init__(self, model: PafModel):
        super().__init__()
        self.model = model

    def forward(self, x):
        maps = self.model(x)[-1]
        return maps.heatmaps, maps.pafs


def _weights_key(model: PafModel) -> str:
    h = hashlib.sha256(model.arch.encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


class OpenVinoModel:
    """A compiled OpenVINO model whose outputs are the heatmaps and PAFs of ``spec``
    (19 and 38 for OpenPose COCO-18)."""

    stride = 8

    def __init__(self, ov_model, normalisation: InputNorm, pretrained: PretrainedCfg,
                 source: str = "", precision: str | None = "fp32",
                 spec: KeypointSpec = OPENPOSE_COCO18):
        """precision: a key of ``HINTS``, or None for OpenVINO's own choice (bf16 on BF16
        CPUs); spec: the skeleton of the outputs."""
        ov = require_openvino()
        if precision is not None and precision not in HINTS:
            raise ValueError(f"the openvino backend runs {', '.join(HINTS)} (or OpenVINO's "
                             f"choice), not {precision!r}")
        name = ov_model.inputs[0].get_any_name()
        ov_model.reshape({name: ov.PartialShape([-1, 3, -1, -1])})
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        self.precision = precision
        self.compiled = ov.Core().compile_model(ov_model, "CPU", config)
        channels = {int(o.get_partial_shape()[1].get_length()): o
                    for o in self.compiled.outputs}
        heat, paf = spec.num_heatmaps, spec.num_pafs
        if set(channels) != {heat, paf}:
            raise CheckpointError(f"{source}: expected outputs of {heat} and {paf} channels, "
                                  f"got {sorted(channels)}")
        self._heatmaps, self._pafs = channels[heat], channels[paf]
        self.spec = spec
        self.normalisation = normalisation
        self.pretrained = pretrained
        self.source = source
        self.device = torch.device("cpu")

    @classmethod
    def from_torch(cls, model: PafModel, pretrained: PretrainedCfg,
                   cache: Path | None = None, precision: str = "fp32") -> "OpenVinoModel":
        """Convert ``model`` (float32) to OpenVINO, reusing a cached conversion."""
        ov = require_openvino()
        model = model.float().cpu().eval()
        xml = (cache or cache_dir()) / f"{model.arch}-{_weights_key(model)}.xml"
        if xml.is_file():
            ov_model = ov.Core().read_model(xml)
        else:
            example = torch.zeros(1, 3, pretrained.height, pretrained.height)
            with torch.no_grad():
                ov_model = ov.convert_model(_LastStage(model), example_input=example)
            xml.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(ov_model, str(xml), compress_to_fp16=False)
        return cls(ov_model, pretrained.normalisation, pretrained, source=str(xml),
                   precision=precision, spec=getattr(model, "spec", OPENPOSE_COCO18))

    @classmethod
    def from_torch_int8(cls, model: PafModel, pretrained: PretrainedCfg, calibration,
                        cache: Path | None = None) -> "OpenVinoModel":
        """``model`` quantized with an INT8 calibration (``runtime.int8``): its quantize /
        dequantize pairs become FakeQuantize nodes, which OpenVINO runs as INT8; the
        layers the calibration keeps float (the heads) run in float32."""
        from .int8 import quantize_int8
        ov = require_openvino()
        model = model.float().cpu().eval()
        key = hashlib.sha256(_weights_key(model).encode())
        for name, t in sorted(calibration.state.items()):
            key.update(name.encode() + t.float().numpy().tobytes())
        xml = (cache or cache_dir()) / f"{model.arch}-int8-{key.hexdigest()[:20]}.xml"
        if xml.is_file():
            ov_model = ov.Core().read_model(xml)
        else:
            example = torch.zeros(1, 3, pretrained.height, pretrained.height)
            graph = quantize_int8(model, example, calibration, compile=False)
            dims = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
            ov_model = ov.convert_model(torch.export.export(graph, (example,),
                                                            dynamic_shapes=(dims,)))
            xml.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(ov_model, str(xml), compress_to_fp16=False)
        made = cls(ov_model, pretrained.normalisation, pretrained, source=str(xml),
                   spec=getattr(model, "spec", OPENPOSE_COCO18))
        made.precision = "int8"
        return made

    @classmethod
    def from_ir(cls, xml: str | Path, pretrained: PretrainedCfg,
                precision: str | None = None) -> "OpenVinoModel":
        """Run an IR file as it is; its normalisation is taken to be inside it."""
        ov = require_openvino()
        try:
            ov_model = ov.Core().read_model(str(xml))
        except Exception as exc:  # noqa: BLE001 - openvino raises its own types
            first = first_line(exc)
            raise CheckpointError(f"{xml}: OpenVINO cannot read it ({first[:200]})") from None
        pre = PretrainedCfg(RAW_BGR, pretrained.height, pretrained.pad_value, pretrained.flip)
        return cls(ov_model, RAW_BGR, pre, source=str(xml), precision=precision)

    def to(self, device=None, *args, **kwargs) -> "OpenVinoModel":
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError("the openvino backend runs on the CPU (--device cpu)")
        return self

    def eval(self) -> "OpenVinoModel":
        return self

    def predict(self, x: torch.Tensor) -> Maps:
        """``(B, 3, H, W)`` float32 -> ``Maps`` of float32 CPU tensors."""
        result = self.compiled(np.ascontiguousarray(x.detach().float().cpu().numpy()))
        return Maps(torch.from_numpy(np.asarray(result[self._heatmaps], np.float32)),
                    torch.from_numpy(np.asarray(result[self._pafs], np.float32)))

    def __repr__(self) -> str:
        return f"OpenVinoModel({self.source!r})"


def openvino_model(loaded, precision: str | None = None) -> OpenVinoModel:
    """``OpenVinoModel`` for loaded weights at ``precision`` (fp32, bf16, fp16, int8).

    An IR file runs as it is (its own INT8 layers), its float layers at ``precision``'s
    hint; None, "auto" or "int8": OpenVINO's choice (bf16 on BF16 CPUs). Other weights are
    converted and run at ``precision`` (None: fp32); int8 uses the calibration shipped
    with them (``runtime.int8.shipped_calibration``).
    """
    if str(loaded.path).lower().endswith(".xml"):
        made = OpenVinoModel.from_ir(loaded.path, loaded.pretrained,
                                     precision if precision in HINTS else None)
        made.precision = precision or "fp32"
        return made
    if precision == "int8":
        from .int8 import shipped_calibration
        calibration = shipped_calibration(loaded.model)
        if calibration is None:
            raise ValueError("--backend openvino --precision int8 needs an INT8 calibration "
                             "of these weights (only the default weights ship one)")
        return OpenVinoModel.from_torch_int8(loaded.model, loaded.pretrained, calibration)
    return OpenVinoModel.from_torch(loaded.model, loaded.pretrained,
                                    precision=precision if precision in HINTS else "fp32")
