"""The network a run starts from: scratch, a torchvision VGG19 trunk, or a checkpoint."""
from __future__ import annotations

import torch

from ..model import PretrainedCfg, build_model as build_family, create_model, get_pretrained_cfg
from ..model.base import head_sizes
from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from ..structures import InputNorm
from .config import TrainConfig
from .heads import carry_over


def build_model(config: TrainConfig, spec: KeypointSpec = OPENPOSE_COCO18
                ) -> tuple[torch.nn.Module, PretrainedCfg]:
    """The network as ``config.init`` says, with heads for ``spec``, and its inference
    defaults (normalisation, height, ...): scratch, a torchvision VGG19 trunk, or a
    checkpoint or foreign weight file to fine-tune. A checkpoint's architecture wins over
    ``config.model``, except that a ``config.model`` of the same family but another shape
    (e.g. more refinement stages) grows from it: see ``grow_from``. A checkpoint of
    other keypoints gives every layer that fits and the head channels of the keypoints
    and limbs named alike (``heads.carry_over``)."""
    kind, _, path = config.init.partition(":")
    if kind == "checkpoint":
        from ..weights import load_weights
        loaded = load_weights(path)
        model, pretrained = loaded.model, loaded.pretrained
        wanted = create_model(config.model, spec=spec, **config.model_overrides)
        if loaded.spec != spec:
            if wanted.arch != model.arch:
                wanted = build_family(model.arch, {**model.config.to_dict(), **head_sizes(spec)})
                wanted.spec = spec
            model = carry_over(wanted, model, loaded.spec)
        elif wanted.arch == model.arch and wanted.config != model.config:
            model = grow_from(wanted, model)
    elif kind in ("scratch", "vgg19-torchvision"):
        model = create_model(config.model, spec=spec, **config.model_overrides)
        pretrained = get_pretrained_cfg(config.model)
        if kind == "vgg19-torchvision":
            from ..weights.formats.torchvision_vgg import load_torchvision_vgg19_file
            load_torchvision_vgg19_file(model, path)
            fold_imagenet_input(model.backbone.conv1_1, pretrained.normalisation)
    else:
        raise ValueError(f"--init must be scratch, vgg19-torchvision:FILE or "
                         f"checkpoint:FILE, got {config.init!r}")
    return model.train(), pretrained


@torch.no_grad()
def grow_from(model: torch.nn.Module, source: torch.nn.Module) -> torch.nn.Module:
    """Copy into ``model`` every tensor of ``source`` with the same name and shape (the
    lightweight recipe's last step: 1 -> 3 refinement stages); the others keep their
    fresh initialisation. Refuses when fewer than half of ``model``'s tensors match."""
    theirs = source.state_dict()
    ours = model.state_dict()
    same = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    if len(same) < len(ours) / 2:
        raise ValueError(f"--init checkpoint: only {len(same)} of {len(ours)} tensors fit "
                         f"{type(model).__name__}({model.config}); nothing to grow from")
    model.load_state_dict(same, strict=False)
    return model


IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@torch.no_grad()
def fold_imagenet_input(first: torch.nn.Module, norm: InputNorm) -> None:
    """Make a torchvision-trained first ``ConvAct`` (expects RGB ``(x/255 - mean) / std``)
    take ``norm``'s input instead (CMU: BGR ``x/256 - 0.5``) by rewriting its weights.

    Exact except on the 1-pixel zero-padded border. Without a conv bias (BatchNorm) the
    constant goes into the BN's ``running_mean``.
    """
    conv, bn = first.conv, getattr(first, "bn", None)
    order = [2, 1, 0] if norm.channel_order == "BGR" else [0, 1, 2]   # ours -> RGB index
    mean = torch.tensor(IMAGENET_MEAN_RGB)[order]
    std = torch.tensor(IMAGENET_STD_RGB)[order]
    # ours y = x * scale + offset, so x/255 = (y - offset) / (255 * scale)
    a = 1.0 / (255.0 * norm.scale * std)
    b = (-norm.offset / (255.0 * norm.scale) - mean) / std
    w = conv.weight[:, order]                          # reorder input channels to ours
    delta = (w * b[None, :, None, None]).sum(dim=(1, 2, 3))
    conv.weight.copy_(w * a[None, :, None, None])
    if conv.bias is not None:
        conv.bias.add_(delta)
    elif bn is not None:
        bn.running_mean.sub_(delta)
