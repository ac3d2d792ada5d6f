"""INT8 execution of an openpaf network on x86 CPUs (``--precision int8``).

torchao's PT2E static quantization with the x86 inductor quantizer: the network is
captured with ``torch.export``, observers are inserted (``prepare_pt2e``), fed real
photos (calibration), turned into quantize/dequantize pairs (``convert_pt2e``) and
compiled by inductor (``freezing``), which fuses them into oneDNN INT8 convolutions.
Layers listed in ``fp32_modules`` (the output heads) get no observers and stay float32.

The calibration result is the observers' state (activation histograms and ranges,
``Int8Calibration``); it is saved next to the weights (``calibration_path``), so users of
the default model need no calibration data. Needs ``pip install openpaf[int8]``
(torchao) and a C++ compiler (inductor).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..structures import Maps

CALIBRATION_FILE = "default_int8_calibration.pt"   # next to weights/default.pt


class Int8UnavailableError(RuntimeError):
    """torchao is missing (one-line message saying what to install)."""


def require_torchao():
    try:
        import torchao.quantization.pt2e.quantize_pt2e as pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    except ImportError:
        raise Int8UnavailableError("--precision int8 needs torchao: pip install "
                                   "\"openpaf[int8]\"") from None
    return pt2e, x86


@dataclass
class Int8Calibration:
    """Observer state of a prepared model: ``state`` (observer buffers by name),
    ``weights`` (key of the float weights it belongs to), ``fp32_modules`` and ``info``
    (what it was calibrated on, for the manifest)."""

    state: dict[str, torch.Tensor]
    weights: str
    fp32_modules: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        torch.save({"state": self.state, "weights": self.weights,
                    "fp32_modules": list(self.fp32_modules), "info": self.info}, path)

    @classmethod
    def load(cls, path: str | Path) -> "Int8Calibration":
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["state"], d["weights"], tuple(d["fp32_modules"]), d["info"])


def fp32_module_names(model: torch.nn.Module) -> tuple[str, ...]:
    """Names in ``model`` of the layers its family keeps float32 (``fp32_modules()``, the
    same declaration ``runtime.precision`` uses: each stage's output convs)."""
    keep = {id(m) for m in model.fp32_modules()}
    return tuple(name for name, m in model.named_modules() if id(m) in keep)


def weights_key(model: torch.nn.Module) -> str:
    """sha256 (20 hex) of a model's float weights: which weights a calibration fits."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class _Maps(torch.nn.Module):
    """The last stage as a tensor pair (what ``torch.export`` captures)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        maps = self.model(x)[-1]
        return maps.heatmaps, maps.pafs


def prepare(model: torch.nn.Module, example_input: torch.Tensor,
            fp32_modules: Sequence[str] | None = None) -> torch.fx.GraphModule:
    """``model`` (float32, eval) exported and observed: run inputs through it to calibrate.

    example_input: ``(1, 3, H, W)`` float32; H and W are dynamic in the capture.
    fp32_modules: names of the layers left float32 (None: ``fp32_module_names``).
    """
    if fp32_modules is None:
        fp32_modules = fp32_module_names(model)
    pt2e, x86 = require_torchao()
    wrapped = _Maps(model.float().cpu().eval())
    dims = {0: torch.export.Dim.STATIC, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    exported = torch.export.export(wrapped, (example_input.float(),),
                                   dynamic_shapes=({0: dims[0], 2: dims[2], 3: dims[3]},))
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    for name in fp32_modules:
        quantizer.set_module_name_qconfig(f"model.{name}", None)
    return pt2e.prepare_pt2e(exported.module(), quantizer)


def observer_state(prepared: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    """The observers' buffers of a prepared (calibrated) model."""
    return {k: v.detach().clone() for k, v in prepared.state_dict().items()
            if k.startswith("activation_post_process_")}


@torch.no_grad()
def calibrate(model: torch.nn.Module, inputs: Iterable[torch.Tensor],
              fp32_modules: Sequence[str] | None = None, info: dict | None = None
              ) -> Int8Calibration:
    """Observe ``inputs`` (preprocessed ``(1, 3, H, W)`` real photos) through ``model``;
    ``fp32_modules`` as in ``prepare``."""
    if fp32_modules is None:
        fp32_modules = fp32_module_names(model)
    inputs = iter(inputs)
    first = next(inputs)
    prepared = prepare(model, first, fp32_modules)
    prepared(first.float())
    for x in inputs:
        prepared(x.float())
    return Int8Calibration(observer_state(prepared), weights_key(model),
                           tuple(fp32_modules), dict(info or {}))


def photo_inputs(paths: Iterable[str | Path], normalisation, height: int,
                 pad_value: int) -> Iterable[torch.Tensor]:
    """Photos as ``(1, 3, H, W)`` network inputs, preprocessed as ``Predictor`` does."""
    from ..io.images import load_image
    from ..preprocess import geometry, prepare
    for path in paths:
        image = load_image(path)
        geo = geometry((image.shape[1], image.shape[0]), height)
        yield torch.from_numpy(prepare(image, geo, normalisation, pad_value))[None]


def shipped_calibration(model: torch.nn.Module) -> Int8Calibration | None:
    """The calibration shipped next to the default weights, if it fits ``model``."""
    from ..weights.checkpoint import default_weights_path
    path = default_weights_path().with_name(CALIBRATION_FILE)
    if not path.is_file():
        return None
    calibration = Int8Calibration.load(path)
    return calibration if calibration.weights == weights_key(model) else None


class Int8Model:
    """A quantized, compiled network with the interface ``Predictor`` uses
    (``predict(x) -> Maps``, ``stride``, ``to``, ``eval``); outputs are float32.

    Built from a float ``model`` and a calibration (None: the shipped one if it fits,
    else the first input's, with a warning) at the first ``predict``, whose input is the
    example for ``torch.export`` (height and width stay dynamic).
    """

    def __init__(self, model: torch.nn.Module, calibration=None, compile: bool = True):
        require_torchao()
        self.float_model = model
        self.calibration = calibration
        self.compile = compile
        self.module = None
        self.stride = int(getattr(model, "stride", 8))
        self.device = torch.device("cpu")

    def _build(self, x: torch.Tensor):
        calibration = self.calibration or shipped_calibration(self.float_model)
        if calibration is None:
            warnings.warn("no INT8 calibration ships with these weights: calibrating on "
                          "the first input only", stacklevel=3)
        self.module = quantize_int8(self.float_model, x, calibration, self.compile)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> Maps:
        x = x.float().contiguous()
        if self.module is None:
            self._build(x)
        heatmaps, pafs = self.module(x)
        return Maps(heatmaps.float(), pafs.float())

    __call__ = predict

    def to(self, device=None, *args, **kwargs) -> "Int8Model":
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError("--precision int8 runs on the CPU (--device cpu)")
        return self

    def eval(self) -> "Int8Model":
        return self


def quantize_int8(model: torch.nn.Module, example_input: torch.Tensor,
                  calibration: Int8Calibration | str | Path | Iterable[torch.Tensor] | None
                  = None, compile: bool = True):
    """``model`` quantized to INT8 (activations per tensor, weights per channel).

    calibration: an ``Int8Calibration`` (or its file) made for these weights, or an
    iterable of preprocessed real photos to calibrate on now; None calibrates on
    ``example_input`` alone (a rough fit: ship a calibration instead).
    compile: inductor with freezing (the INT8 kernels); False runs the quantize /
    dequantize graph eagerly (slow, for checks).
    Returns a callable ``x -> (heatmaps, pafs)`` (``Int8Model`` wraps it for ``Predictor``).
    """
    pt2e, _ = require_torchao()
    if calibration is None:
        calibration = [example_input]
    if isinstance(calibration, (str, Path)):
        calibration = Int8Calibration.load(calibration)
    if not isinstance(calibration, Int8Calibration):
        calibration = calibrate(model, calibration)
    elif calibration.weights != weights_key(model):
        raise ValueError("this INT8 calibration was made for other weights")
    prepared = prepare(model, example_input, calibration.fp32_modules)
    missing = set(observer_state(prepared)) ^ set(calibration.state)
    if missing:
        raise ValueError(f"INT8 calibration does not fit this network ({len(missing)} "
                         "observers differ)")
    prepared(example_input.float())          # sizes every observer buffer, then overwrite
    prepared.load_state_dict(calibration.state, strict=False)
    converted = pt2e.convert_pt2e(prepared, fold_quantize=compile)
    if compile:
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
        converted = torch.compile(converted)
    return converted


def calibrate_default(images_dir: str | Path, count: int = 32,
                      out: str | Path | None = None) -> Path:
    """Calibrate the default weights on the first ``count`` photos (sorted names) of
    ``images_dir`` (coco/train, never the evaluation images) at their default height and
    save ``default_int8_calibration.pt`` plus a ``.json`` saying how (next to them)."""
    import json
    from ..weights.checkpoint import default_weights_path, load_default
    loaded = load_default("cpu")
    pre = loaded.pretrained
    paths = sorted(p for p in Path(images_dir).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    if not paths:
        raise FileNotFoundError(f"{images_dir}: no photos to calibrate on")
    info = {"method": "torchao PT2E static INT8, X86InductorQuantizer default config "
                      "(activations per tensor, HistogramObserver; weights per channel)",
            "fp32_modules": list(fp32_module_names(loaded.model)), "height": pre.height,
            "images": f"{images_dir} (first {len(paths)} by name)",
            "image_files": [p.name for p in paths]}
    calibration = calibrate(loaded.model, photo_inputs(paths, pre.normalisation,
                                                        pre.height, pre.pad_value),
                            info=info)
    out = Path(out) if out else default_weights_path().with_name(CALIBRATION_FILE)
    calibration.save(out)
    out.with_suffix(".json").write_text(json.dumps(
        {**info, "weights": default_weights_path().name, "weights_key": calibration.weights,
         "observers": len(calibration.state)}, indent=1) + "\n")
    return out
