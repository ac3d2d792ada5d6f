"""torchvision's ImageNet ``vgg19`` / ``vgg19_bn`` weights -> the CMU VGG family's trunk.

``features.N`` map onto our ``backbone.convX_Y``; only conv1_1 .. conv4_2 are used. These
files hold a classifier, not a pose model: they start training
(``openpaf train --init vgg19-torchvision:FILE``) and ``weights import`` says so.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ...model.cmu_vgg import VGG19_DEPTHS, CmuVgg, vgg_layer_names
from ..checkpoint import CheckpointError, check_state_dict, short_list
from . import Imported, WeightFormat, register_format
from .torch_files import load_torch_file, sniff_state_dict, unwrap_state_dict

_PARAMS = ("weight", "bias")


def torchvision_vgg19_to_ours(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """torchvision ``vgg19`` (or ``vgg19_bn``) state dict -> our ``backbone.*`` keys.

    Only conv1_1 .. conv4_2 are used (``features.0`` = conv1_1, ``features.2`` = conv1_2,
    ``features.5`` = conv2_1, ...). For ``vgg19_bn`` (our BN convs have no bias) the conv
    bias is folded into ``running_mean``, which is exact: BN removes per-channel offsets.
    """
    sd = unwrap_state_dict(state_dict)
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


def load_torchvision_vgg19(model: CmuVgg, state_dict: Mapping) -> None:
    """Copy torchvision VGG19 weights into ``model.backbone`` (strict: shapes must match)."""
    mapped = torchvision_vgg19_to_ours(state_dict)
    check_state_dict(mapped, {k: tuple(v.shape) for k, v in model.state_dict().items()
                              if k.startswith("backbone.")},
                     "torchvision VGG19 weights do not fit this backbone")
    model.backbone.load_state_dict(
        {k[len("backbone."):]: v for k, v in mapped.items()}, strict=True)


def load_torchvision_vgg19_file(model: CmuVgg, path: str | Path) -> None:
    """``load_torchvision_vgg19`` from a file (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"torchvision VGG19 weights not found: {path}")
    load_torchvision_vgg19(model, load_torch_file(path))


class TorchvisionVggFormat(WeightFormat):
    name = "torchvision-vgg"
    description = "torchvision ImageNet vgg19/vgg19_bn, a training start only"

    def sniff(self, path: Path, head: bytes) -> bool:
        obj = sniff_state_dict(path, head) or {}
        return "features.0.weight" in obj and "classifier.0.weight" in obj

    def read(self, path: Path) -> Imported:
        raise CheckpointError(
            f"{path}: torchvision ImageNet VGG19 weights are a classifier trunk, not a pose "
            f"model; start training from them with `openpaf train --init "
            f"vgg19-torchvision:{path}`")


register_format(TorchvisionVggFormat())
