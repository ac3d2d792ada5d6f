"""``Predictor``: image(s) -> ``Detections`` (preprocess, network, map averaging, decode)."""
from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .decode import DecodeParams, Peaks, decode, get_params
from .decode.peaks import peaks_from_candidates
from .model import PretrainedCfg, fold_batchnorm
from .preprocess import Geometry, geometry, prepare
from .runtime.precision import (RUNTIME_OWN, PrecisionChoice, apply_precision,
                                resolve_for_model, resolve_precision)
from .skeleton import OPENPOSE_COCO18, KeypointSpec
from .structures import Detections, ImageMaps, InputNorm


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; a clear error for an absent GPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU here")
    return device


def resample_maps(maps: torch.Tensor, src: Geometry, dst: Geometry) -> torch.Tensor:
    """Resample ``(B, C, h, w)`` maps of geometry ``src`` onto the map grid of ``dst``.

    Both geometries describe the same image; cell centres are aligned exactly in image
    pixels (bilinear, border values beyond the edge).
    """
    (sfx, sfy), (dfx, dfy) = src.factor, dst.factor
    dh, dw = dst.map_size
    h, w = maps.shape[-2:]
    # dst cell u sits at src cell (u + 0.5) * r - 0.5 with r = src factor / dst factor.
    cx = (torch.arange(dw, device=maps.device, dtype=torch.float32) + 0.5) * (sfx / dfx)
    cy = (torch.arange(dh, device=maps.device, dtype=torch.float32) + 0.5) * (sfy / dfy)
    gx, gy = cx * (2.0 / w) - 1.0, cy * (2.0 / h) - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
    grid = grid.unsqueeze(0).expand(maps.shape[0], -1, -1, -1).to(maps.dtype)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def _flip_tables(spec: KeypointSpec = OPENPOSE_COCO18) -> tuple[list[int], torch.Tensor]:
    """Channel order and signs that turn the maps of a mirrored image back into maps of
    the image: heatmap ``i`` <- mirrored ``spec.flip[i]`` (background stays); PAF limb
    ``k`` <- mirrored limb ``spec.limb_flip[k]`` with its x component negated."""
    order = list(spec.flip) + [spec.num_keypoints]
    paf_order, sign = [0] * spec.num_pafs, [1.0] * spec.num_pafs
    limb_flip = spec.limb_flip
    for k, (cx, cy) in enumerate(spec.paf_channels):
        src_x, src_y = spec.paf_channels[limb_flip[k]]
        paf_order[cx], paf_order[cy] = src_x, src_y
        sign[cx] = -1.0
    offset = len(order)
    return order + [offset + c for c in paf_order], torch.tensor([1.0] * offset + sign)


def unflip_maps(maps: torch.Tensor, spec: KeypointSpec = OPENPOSE_COCO18) -> torch.Tensor:
    """Maps ``(B, K + 1 + 2 L, h, w)`` (19 + 38 for COCO-18) of horizontally mirrored
    inputs -> maps of the inputs.

    Mirrors back along x, swaps left/right channels (``spec.flip``/``limb_flip``) and
    negates PAF x. Exact for maps that follow the training targets' convention (cell
    ``c`` centred on input pixel ``8c + 3.5``, mirror-symmetric for widths that are
    multiples of 8), whatever the network's own geometry: a half-cell correction for
    MobileNets' asymmetric stride-2 convs cost 0.03-0.12 AP on coco/train.
    """
    order, sign = _flip_tables(spec)
    return maps.flip(-1)[:, order] * sign.to(maps.device, maps.dtype)[None, :, None, None]


BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "openvino")


def optimize_model(model: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """The conversion ``Predictor(optimize=True)`` makes once, chosen by measurement
    (``benchmarks/cpu_paths.json``): BatchNorm folded into the convs (on a copy, only
    for BN models) and weights in ``channels_last`` layout, which oneDNN (CPU) and cuDNN
    (GPU, with fp16/bf16) run fastest. Exact up to float rounding. (TorchScript
    freeze + ``optimize_for_inference`` ran 7-12 % faster on cmu_vgg19 but needs the
    deprecated ``torch.jit.trace`` and ~2 s of setup, so it is not used; the big CPU win
    is bf16, ``runtime.precision``, and streams compile, ``runtime.compiled``.)

    Returns ``(model, converted)``; models that are not torch modules with conv weights
    (e.g. ``OnnxModel``) come back unchanged with ``converted=False``.
    """
    if not isinstance(model, torch.nn.Module) or not any(
            isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return model, False
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
        model = fold_batchnorm(model)
    return model.to(memory_format=torch.channels_last), True


def _openvino_model(loaded, device: torch.device, precision: str | None = None):
    """``OpenVinoModel`` for loaded weights: an IR file runs as it is, others are converted
    and run at ``precision`` (``runtime.openvino.openvino_model``)."""
    from .runtime.openvino import openvino_model
    if device.type != "cpu":
        raise ValueError("the openvino backend runs on the CPU: use --device cpu")
    if precision == "auto" and not str(loaded.path).lower().endswith(".xml"):
        precision = resolve_precision("auto", device).kind   # bf16 on BF16 CPUs
    return openvino_model(loaded, precision)


def find_peaks_torch(heatmaps: torch.Tensor, threshold: float = 0.1, *, max_peaks: int = 64,
                     refine: bool = True, num_keypoints: int = OPENPOSE_COCO18.num_keypoints
                     ) -> Peaks:
    """``decode.find_peaks`` on a ``(K or K + 1, H, W)`` tensor on any device.

    The 3x3 non-maximum suppression runs where the tensor lives (``max_pool2d``); only
    the peaks' coordinates, scores and 3x3 cross neighbourhoods are copied to the CPU,
    where sorting, capping and sub-pixel refinement reuse the numpy code, so the result
    equals ``find_peaks`` on the same float32 values exactly.
    """
    if heatmaps.ndim != 3 or heatmaps.shape[0] < num_keypoints:
        raise ValueError(f"heatmaps must be ({num_keypoints} or {num_keypoints + 1}, H, W), "
                         f"got {tuple(heatmaps.shape)}")
    hm = heatmaps[:num_keypoints].float()
    _, h, w = hm.shape
    pooled = F.max_pool2d(F.pad(hm[None], (1, 1, 1, 1), value=0.0), 3, stride=1)[0]
    p = F.pad(hm, (1, 1, 1, 1), value=-math.inf)      # decode.peaks.peak_mask's plateau rule
    earlier = torch.stack([p[:, :-2, :-2], p[:, :-2, 1:-1], p[:, :-2, 2:], p[:, 1:-1, :-2]])
    k, y, x = ((hm > threshold) & (hm >= pooled) & (hm > earlier.amax(0))
               ).nonzero(as_tuple=True)                                     # row-major
    values = torch.stack([hm[k, y, x], hm[k, y, (x - 1).clamp(min=0)],
                          hm[k, y, (x + 1).clamp(max=w - 1)], hm[k, (y - 1).clamp(min=0), x],
                          hm[k, (y + 1).clamp(max=h - 1), x]])
    idx = torch.stack([k, y, x]).cpu().numpy()
    values = values.cpu().numpy()
    return peaks_from_candidates(idx[0], idx[1], idx[2], values[0], max_peaks=max_peaks,
                                 refine=refine, neighbours=values,
                                 num_keypoints=num_keypoints)


def _choose_precision(model, precision: str, device: torch.device) -> PrecisionChoice:
    """``resolve_precision`` for torch models; exported models run at their own."""
    if isinstance(model, torch.nn.Module):
        return resolve_for_model(precision, model, device)
    own = getattr(model, "precision", None)     # (the openvino backend's, as built)
    if precision not in ("auto", "fp32") and own != precision:
        raise ValueError(f"precision {precision} needs a torch model; an exported "
                         "model runs at the precision it was exported with")
    if own not in (None, "fp32") and precision != "auto":
        return PrecisionChoice(own, reason="openvino")
    return resolve_precision("fp32", device) if precision == "fp32" else PrecisionChoice(
        "fp32", reason=RUNTIME_OWN)


def _network_runner(model, compile: bool | None):
    """``x -> Maps``: the model's ``predict``, or compiled (``runtime.compiled``)."""
    if compile is False or not isinstance(model, torch.nn.Module):
        return model.predict
    from .runtime.compiled import CompiledNetwork
    return CompiledNetwork(model, always=bool(compile))


class Predictor:
    """Runs a PAF network on images and decodes people.

    normalisation, height, flip, pad_value: None takes them from ``pretrained`` (the
    weights' inference defaults; ``PretrainedCfg()`` = CMU's if not given).
    height: network input height in pixels at scale 1 (OpenPose's ``-1x368``).
    scales: input scales whose maps are averaged (e.g. ``(0.5, 1, 1.5, 2)``); maps are
        resampled to the scale-1 map grid before averaging.
    flip: also run each input mirrored and average its maps, swapped back
        (``unflip_maps``), with the others: ~2x the network time, better accuracy.
    accurate: the accuracy mode: ``flip`` and ``scales`` default to on and to the
        weights' ``PretrainedCfg.accurate_scales`` (chosen on coco/train).
    ``last_timings`` holds the milliseconds of the last call: ``preprocess``,
    ``network``, ``resize`` (map averaging and copy to CPU), ``peaks``, ``limbs``,
    ``assembly``.
    precision: "auto" (``runtime.precision.resolve_precision``: bf16 body with fp32
        heads on CPUs with AMX/AVX512-BF16 and on GPUs, else fp32), "fp32", "bf16" (the
        whole network), "fp16" (fp32 heads) or "int8" (``runtime.int8.Int8Model``: CPU,
        torchao, the calibration shipped with the weights; compiled at the first image).
        The network runs on a converted copy; maps are float32 either way. Exported
        models (onnxruntime, openvino) run at their own precision ("auto" means that;
        the openvino backend was built for the precision asked).
        ``precision_choice`` holds what was chosen and why.
    compile: ``torch.compile`` streams of repeated input shapes
        (``runtime.compiled.CompiledNetwork``): None (auto) compiles a shape once it has
        cost in eager time what its compilation costs, so single photos never compile;
        True compiles every shape at once; False never.
    optimize: convert the model once for inference (``optimize_model``: BN folding,
        channels_last); the caller's module may have its memory format changed.
    gpu_peaks: find peaks where the maps are (``find_peaks_torch``) and copy only the
        PAFs and the peaks to the CPU; None: on for CUDA devices. Same people either way.
    keep_maps: attach each image's maps to its ``Detections.maps`` (e.g. to save them).
    spec: the keypoints the network predicts; None: ``model.spec`` (the weights'), else
        OpenPose COCO-18. Flip tables, decoding and ``Detections`` follow it.
    """

    def __init__(self, model: torch.nn.Module, normalisation: InputNorm | None = None, *,
                 height: int | None = None, scales: Sequence[float] | None = None,
                 flip: bool | None = None, accurate: bool = False,
                 pretrained: PretrainedCfg | None = None,
                 pad_value: int | None = None,
                 decode_params: DecodeParams | str | None = None,
                 device: str | torch.device | None = "auto", max_side: int | None = 4096,
                 precision: str = "auto", optimize: bool = True,
                 compile: bool | None = None,
                 gpu_peaks: bool | None = None, keep_maps: bool = False,
                 spec: KeypointSpec | None = None):
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"Predictor needs a model, got {type(model).__name__}; for "
                            "weights use Predictor.from_checkpoint(path or None)")
        pre = pretrained if pretrained is not None else PretrainedCfg()
        normalisation = pre.normalisation if normalisation is None else normalisation
        height = pre.height if height is None else height
        if accurate:            # the accuracy mode: flip + the weights' chosen scales
            flip = True if flip is None else flip
            scales = pre.accurate_scales if scales is None else scales
        scales = (1.0,) if scales is None else scales
        if height <= 0 or height % 8:
            raise ValueError(f"height must be a positive multiple of 8, got {height}")
        if not scales or not all(0 < s < math.inf for s in scales):
            raise ValueError(f"scales must be positive numbers, got {list(scales)}")
        if height * min(scales) < 8:
            raise ValueError(f"height x scale = {height * min(scales):g} px is less than "
                             "one map cell (8 px): use larger scales")
        if max_side is not None and height * max(scales) > max_side:
            raise ValueError(f"height x scale = {height * max(scales):g} px exceeds the "
                             f"{max_side} px input limit")
        self.device = resolve_device(device)
        model = model.to(self.device).eval()
        self.model, self.optimized = (optimize_model(model) if optimize
                                      else (model, False))
        self.precision_choice = _choose_precision(self.model, precision, self.device)
        self.precision = self.precision_choice.kind
        self.dtype = self.precision_choice.dtype
        if self.precision == "int8" and isinstance(self.model, torch.nn.Module):
            from .runtime.int8 import Int8Model
            self.model = Int8Model(self.model)
        elif isinstance(self.model, torch.nn.Module):
            self.model = apply_precision(self.model, self.precision_choice)
        # fp32 inputs when float32 layers read them (hooks cast for the body).
        self.input_dtype = torch.float32 if self.precision_choice.fp32_heads else self.dtype
        self.network = _network_runner(self.model, compile)
        self.gpu_peaks = self.device.type == "cuda" if gpu_peaks is None else bool(gpu_peaks)
        self.keep_maps = bool(keep_maps)
        self.spec = spec if spec is not None else getattr(model, "spec", OPENPOSE_COCO18)
        self.normalisation = normalisation
        self.height = int(height)
        self.scales = tuple(float(s) for s in scales)
        self.flip = pre.flip if flip is None else bool(flip)
        self.pad_value = pre.pad_value if pad_value is None else int(pad_value)
        self.params = (decode_params if isinstance(decode_params, DecodeParams)
                       else get_params(decode_params))
        self.max_side = max_side
        self.stride = int(getattr(model, "stride", 8))
        self.last_timings: dict[str, float] = {}
        self.weights_path: Path | None = None     # set by from_checkpoint
        self.manifest: dict = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, backend: str | None = None,
                        device="auto", **kwargs):
        """Load a model file (None: the default weights) and wrap it.

        backend: "torch" for openpaf checkpoints (``.pt``) and foreign weight files
        (converted in memory, see ``openpaf.weights.formats``); "onnxruntime" for a model
        exported with ``openpaf export --onnx`` (its normalisation travels inside the
        file); "openvino" runs any of those weights on OpenVINO's CPU plugin (an IR
        ``.xml`` as it is, e.g. Intel's INT8 model). None: onnxruntime for ``.onnx``,
        else torch. The weights' inference defaults (height, flip, normalisation) apply
        unless ``kwargs`` override them.
        """
        from .weights import CheckpointError, load_default, load_weights
        is_onnx = path is not None and str(path).lower().endswith(".onnx")
        backend = backend or ("onnxruntime" if is_onnx else "torch")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if is_onnx != (backend == "onnxruntime"):
            raise CheckpointError(
                f"{path or 'the default weights'}: .onnx files run with --backend "
                "onnxruntime, and that backend runs only .onnx files (export one with "
                "`openpaf export --onnx model.onnx`)")
        dev = resolve_device("cpu" if backend == "openvino" and device == "auto" else device)
        manifest: dict = {}
        if backend == "onnxruntime":
            from .runtime.onnxruntime import OnnxModel
            model = OnnxModel(path, device=dev)
            pretrained, weights_path = model.pretrained, Path(path)
        else:
            loaded = load_default(dev) if path is None else load_weights(path, dev)
            model, pretrained = loaded.model, loaded.pretrained
            weights_path, manifest = loaded.path, loaded.manifest
            if backend == "openvino":
                model = _openvino_model(loaded, dev, kwargs.get("precision"))
                pretrained = model.pretrained
        kwargs.setdefault("spec", loaded.spec if backend != "onnxruntime" else model.spec)
        predictor = cls(model, pretrained=pretrained, device=dev, **kwargs)
        predictor.weights_path, predictor.manifest = weights_path, manifest
        return predictor

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def _averaged(self, images: Sequence[np.ndarray]) -> list[tuple[torch.Tensor, Geometry]]:
        """Per image: ``(maps (19 + 38, h, w) float32 on the device, geometry)``, averaged
        over the scales. Sets the ``preprocess`` and ``network`` timings and ``resize``
        (the averaging part)."""
        t0 = time.perf_counter()
        base = [geometry(im.shape[1::-1], self.height, 1.0, self.stride, self.max_side)
                for im in images]
        # Group (image, scale) inputs by padded size so equal shapes run as one batch.
        groups: dict[tuple[int, int], list[tuple[int, Geometry]]] = defaultdict(list)
        for i, im in enumerate(images):
            for s in self.scales:
                g = geometry(im.shape[1::-1], self.height, s, self.stride, self.max_side)
                groups[g.padded_size].append((i, g))
        inputs = {key: np.stack([prepare(images[i], g, self.normalisation, self.pad_value)
                                 for i, g in items]) for key, items in groups.items()}
        t1 = time.perf_counter()
        outputs = {key: self._network(x) for key, x in inputs.items()}
        self._sync()
        t2 = time.perf_counter()
        sums: list[torch.Tensor | None] = [None] * len(images)
        for key, items in groups.items():
            for j, (i, g) in enumerate(items):
                m = outputs[key][j:j + 1]
                if g.map_size != base[i].map_size or g.factor != base[i].factor:
                    m = resample_maps(m, g, base[i])
                sums[i] = m if sums[i] is None else sums[i] + m
        passes = len(self.scales) * (2 if self.flip else 1)
        result = [(total[0] / passes, base[i]) for i, total in enumerate(sums)]
        self._sync()
        t3 = time.perf_counter()
        self.last_timings = {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                             "resize": (t3 - t2) * 1e3}
        return result

    def _network(self, x: np.ndarray) -> torch.Tensor:
        """``(B, 3, h, w)`` inputs -> ``(B, 19 + 38, h/8, w/8)`` float32 maps; with flip,
        the mirrored inputs run in the same batch and their maps are added, swapped back."""
        x = torch.from_numpy(x).to(self.device, self.input_dtype)
        n = x.shape[0]
        if self.flip:
            x = torch.cat([x, x.flip(-1)])
        if self.optimized:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.network(x)
        maps = torch.cat([out.heatmaps.float(), out.pafs.float()], dim=1)
        if self.flip:
            maps = maps[:n] + unflip_maps(maps[n:], self.spec)
        return maps.contiguous()

    def maps(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray,
                                                               Geometry]]:
        """Per image: ``(heatmaps (19, h, w), pafs (38, h, w), geometry)`` as float32 numpy,
        averaged over the scales on the scale-1 map grid of ``geometry``."""
        averaged = self._averaged(images)
        t0 = time.perf_counter()
        result = []
        for total, geo in averaged:
            avg = total.cpu().numpy()
            result.append((avg[:-self.spec.num_pafs], avg[-self.spec.num_pafs:], geo))
        self.last_timings["resize"] += (time.perf_counter() - t0) * 1e3
        return result

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """``(H, W, 3)`` uint8 BGR images -> one ``Detections`` each."""
        if len(images) == 0:
            return []
        out = []
        timings = {"peaks": 0.0, "limbs": 0.0, "assembly": 0.0}
        copy_ms = 0.0
        for total, geo in self._averaged(images):
            # Only the PAFs go to the CPU when the peaks are found on the device.
            t0 = time.perf_counter()
            npaf = self.spec.num_pafs
            paf = total[-npaf:].cpu().numpy()
            heat = None if self.gpu_peaks and not self.keep_maps \
                else total[:-npaf].cpu().numpy()
            t1 = time.perf_counter()
            peaks = None
            if self.gpu_peaks:
                with torch.inference_mode():
                    peaks = find_peaks_torch(total[:-npaf], self.params.peak_threshold,
                                             max_peaks=self.params.max_peaks,
                                             refine=self.params.refine,
                                             num_keypoints=self.spec.num_keypoints)
            t2 = time.perf_counter()
            t: dict[str, float] = {}
            out.append(decode(heat, paf, self.params, scale=geo.map_scale,
                              image_size=geo.image_size, timings=t, peaks=peaks,
                              spec=self.spec))
            if self.keep_maps:
                out[-1].maps = ImageMaps(heat, paf, geo.map_scale)
            copy_ms += (t1 - t0) * 1e3
            t["peaks"] += (t2 - t1) * 1e3
            for k in timings:
                timings[k] += t[k]
        self.last_timings["resize"] += copy_ms
        self.last_timings.update(timings)
        return out

    def __call__(self, image: np.ndarray) -> Detections:
        return self.predict_batch([image])[0]
