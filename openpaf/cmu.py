"""Foreign weight layouts <-> openpaf state dicts, as named key-mapping functions.

CMU COCO body model, in the flat layout of pytorch-openpose's ``body_pose_model.pth``::

    conv1_1 .. conv4_2, conv4_3_CPM, conv4_4_CPM          (.weight, .bias)
    conv5_{1..5}_CPM_L{1,2}                                stage 1
    Mconv{1..7}_stage{2..N}_L{1,2}                         stages 2..N

L1 = PAFs (38 channels), L2 = heatmaps (19); input BGR, ``x / 256 - 0.5``. The last conv
of every branch (``conv5_5``, ``Mconv7``) has no ReLU, as in CMU's Caffe prototxt.
torchvision ``vgg19`` / ``vgg19_bn`` ``features.N`` map onto our ``backbone.convX_Y``.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from . import __version__
from .checkpoint import (CheckpointError, PathLike, atomic_torch_save, check_state_dict,
                         file_sha256, format_norm, read_checkpoint, save_checkpoint,
                         short_list, torch_load_error)
from .model import PafNet, PafNetConfig
from .model.vgg import VGG19_DEPTHS, vgg_layer_names
from .structures import InputNorm

CMU_NORMALISATION = InputNorm(channel_order="BGR", scale=1.0 / 256.0, offset=-0.5)
CMU_LICENCE = "CMU OpenPose COCO model, non-commercial licence (CMU academic licence)"
_PARAMS = ("weight", "bias")
_MCONV = re.compile(r"^Mconv\d+_stage(\d+)_L[12]\.")


def cmu_config(stages: int = 6) -> PafNetConfig:
    """The ``PafNetConfig`` of CMU's COCO model truncated to ``stages`` stages."""
    return PafNetConfig(stages=stages)


def cmu_key_map(stages: int = 6) -> dict[str, str]:
    """``{our key: CMU key}`` for every tensor of a ``stages``-stage CMU model, CMU order."""
    m = {}
    for name in vgg_layer_names(VGG19_DEPTHS):
        if name.startswith("conv"):
            m.update({f"backbone.{name}.conv.{p}": f"{name}.{p}" for p in _PARAMS})
    for name in ("conv4_3", "conv4_4"):
        m.update({f"cpm.{name}.conv.{p}": f"{name}_CPM.{p}" for p in _PARAMS})
    for s in range(stages):
        for branch, lx in (("paf", "L1"), ("heatmap", "L2")):
            if s == 0:
                cmu = [f"conv5_{i}_CPM_{lx}" for i in range(1, 6)]
            else:
                cmu = [f"Mconv{i}_stage{s + 1}_{lx}" for i in range(1, 8)]
            for i, name in enumerate(cmu[:-1]):
                m.update({f"stages.{s}.{branch}.layers.{i}.conv.{p}": f"{name}.{p}"
                          for p in _PARAMS})
            m.update({f"stages.{s}.{branch}.out.{p}": f"{cmu[-1]}.{p}" for p in _PARAMS})
    return m


def cmu_stages_in(keys) -> int:
    """Number of stages in a CMU-named key set: the highest ``Mconv*_stageN`` (1 if none)."""
    found = [int(m.group(1)) for k in keys if (m := _MCONV.match(str(k)))]
    return max(found, default=1)


def cmu_to_ours(flat_state_dict: Mapping) -> tuple[PafNetConfig, dict[str, torch.Tensor]]:
    """CMU flat state dict -> ``(config, our state dict)`` (fp32), after checking every key.

    Accepts the dict itself, ``{"state_dict": ...}``, or keys prefixed with ``module.``.
    Raises ``CheckpointError`` listing missing / unexpected / wrong-shape keys.
    """
    sd = _unwrap(flat_state_dict)
    stages = cmu_stages_in(sd)
    config = cmu_config(stages)
    key_map = cmu_key_map(stages)
    shapes = _shapes(config)
    if set(shapes) != set(key_map):  # our model and the mapping must agree exactly
        raise AssertionError("cmu_key_map is out of date with PafNet's state_dict keys")
    check_state_dict(sd, {key_map[k]: s for k, s in shapes.items()},
                     f"not a CMU COCO body model ({stages} stages inferred)")
    return config, {ours: sd[cmu].detach().float().contiguous()
                    for ours, cmu in key_map.items()}


def ours_to_cmu(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """Our state dict (CMU-shaped, no BatchNorm) -> CMU flat state dict (fp32), CMU order.

    Also accepts a whole openpaf checkpoint dict (its ``state_dict`` is used).
    """
    if isinstance(state_dict, Mapping) and state_dict.get("format") == "openpaf":
        state_dict = state_dict["state_dict"]
    sd = _unwrap(state_dict)
    stage_ids = [int(k.split(".")[1]) for k in sd if k.startswith("stages.")]
    stages = max(stage_ids, default=0) + 1
    config = cmu_config(stages)
    check_state_dict(sd, _shapes(config), f"cannot export to CMU layout ({stages} stages; "
                     "only the CMU architecture without BatchNorm can be exported)")
    return {cmu: sd[ours].detach().float().contiguous()
            for ours, cmu in cmu_key_map(stages).items()}


def torchvision_vgg19_to_ours(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """torchvision ``vgg19`` (or ``vgg19_bn``) state dict -> our ``backbone.*`` keys.

    Only conv1_1 .. conv4_2 are used (``features.0`` = conv1_1, ``features.2`` = conv1_2,
    ``features.5`` = conv2_1, ...). For ``vgg19_bn`` (our BN convs have no bias) the conv
    bias is folded into ``running_mean``, which is exact: BN removes per-channel offsets.
    """
    sd = _unwrap(state_dict)
    bn = "features.1.running_mean" in sd
    layout, idx = [], 0                      # (our layer name, torchvision conv index)
    for name in vgg_layer_names(VGG19_DEPTHS):
        if name.startswith("pool"):
            idx += 1
        else:
            layout.append((name, idx))
            idx += 3 if bn else 2            # conv, [bn], relu
    bn_params = ("weight", "bias", "running_mean", "running_var")
    required = [f"features.{i}.{p}" for _, i in layout for p in _PARAMS]
    if bn:
        required += [f"features.{i + 1}.{p}" for _, i in layout for p in bn_params]
    missing = [k for k in required if k not in sd]
    if missing:
        raise CheckpointError(f"not a torchvision vgg19{'_bn' if bn else ''} state dict: "
                              f"missing {short_list(missing)}")
    out = {}
    for name, i in layout:
        ours = f"backbone.{name}"
        out[f"{ours}.conv.weight"] = sd[f"features.{i}.weight"].float()
        if not bn:
            out[f"{ours}.conv.bias"] = sd[f"features.{i}.bias"].float()
            continue
        for p in ("weight", "bias", "running_var"):
            out[f"{ours}.bn.{p}"] = sd[f"features.{i + 1}.{p}"].float()
        out[f"{ours}.bn.running_mean"] = (sd[f"features.{i + 1}.running_mean"].float()
                                          - sd[f"features.{i}.bias"].float())
        out[f"{ours}.bn.num_batches_tracked"] = sd.get(
            f"features.{i + 1}.num_batches_tracked", torch.tensor(0))
    return out


def load_torchvision_vgg19(model: PafNet, state_dict: Mapping) -> None:
    """Copy torchvision VGG19 weights into ``model.backbone`` (strict: shapes must match)."""
    mapped = torchvision_vgg19_to_ours(state_dict)
    check_state_dict(mapped, {k: tuple(v.shape) for k, v in model.state_dict().items()
                    if k.startswith("backbone.")},
           "torchvision VGG19 weights do not fit this backbone")
    model.backbone.load_state_dict(
        {k[len("backbone."):]: v for k, v in mapped.items()}, strict=True)


def import_cmu(src: PathLike, dst: PathLike, *, half: bool = False) -> Path:
    """Convert CMU's ``body_pose_model.pth`` at ``src`` into an openpaf checkpoint ``dst``."""
    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"file not found: {src}")
    try:
        raw = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{src}: {torch_load_error(e)}") from None
    config, state = cmu_to_ours(raw)
    with torch.device("meta"):
        model = PafNet(config)
    model.load_state_dict(state, strict=True, assign=True)
    manifest = {
        "source": str(src.resolve()),
        "source_sha256": file_sha256(src),
        "source_format": "CMU OpenPose COCO body model (pytorch-openpose flat layout)",
        "licence": CMU_LICENCE,
        "normalisation": format_norm(CMU_NORMALISATION),
        "stages": config.stages,
        "created_by": f"openpaf {__version__} weights import",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return save_checkpoint(dst, model, config, normalisation=CMU_NORMALISATION,
                           manifest=manifest, half=half)


def export_cmu(src: PathLike, dst: PathLike) -> Path:
    """Write the openpaf checkpoint ``src`` as a CMU flat state dict (pytorch-openpose)."""
    ckpt = read_checkpoint(src)
    norm = InputNorm(**ckpt["normalisation"])
    if norm != CMU_NORMALISATION:
        raise CheckpointError(f"{src}: expects input {norm.to_dict()}, but CMU-layout "
                              "consumers feed BGR x/256 - 0.5; not exported")
    return atomic_torch_save(ours_to_cmu(ckpt["state_dict"]), dst)


# --- helpers ---------------------------------------------------------------------------

def _unwrap(obj) -> dict:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state dict, got {type(obj).__name__}")
    if obj.get("format") == "openpaf":
        raise CheckpointError("this is already an openpaf checkpoint")
    if isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    keys = [str(k) for k in obj]
    if keys and all(k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"state dict has non-tensor entries: {short_list(bad)}")
    return dict(obj)


def _shapes(config: PafNetConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in PafNet(config).state_dict().items()}
