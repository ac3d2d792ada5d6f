"""CMU's VGG19 PAF family (the reference architecture): VGG19 trunk -> CPM -> N
two-branch stages.

Input ``(B, 3, H, W)`` float, normalised as the variant's ``PretrainedCfg`` says (CMU:
BGR, x/256 - 0.5). ``forward`` gives one ``Maps(heatmaps, pafs)`` per stage, shapes
``(B, 19, H//8, W//8)`` and ``(B, 38, H//8, W//8)``. Stage ``s > 1`` sees
``cat([pafs, heatmaps, features], dim=1)`` of stage ``s-1`` (CMU's order: L1, L2, features).

State-dict keys (pinned by ``tests/test_model.py``; CMU's Caffe names in
:mod:`openpaf.weights.formats.cmu`)::

    backbone.conv{1_1..4_2}.conv.{weight,bias}      VGG19 conv1_1 .. conv4_2
    cpm.conv4_{3,4}.conv.{weight,bias}               conv4_3_CPM, conv4_4_CPM
    stages.{s}.{paf,heatmap}.layers.{i}.conv.*       conv5_{i+1}_CPM_L* / Mconv{i+1}_stage{s+1}_L*
    stages.{s}.{paf,heatmap}.out.{weight,bias}       conv5_5_CPM_L* / Mconv7_stage{s+1}_L*

With ``batch_norm=True`` every ``ConvAct`` also has ``bn.*`` and its conv has no bias.

Initialisation: trunk and CPM convs use Kaiming-normal (fan_out, ReLU) like torchvision's
VGG, so training from scratch works; stage convs use CMU's normal(std=0.01), zero bias.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..skeleton import OPENPOSE_COCO18
from ..structures import InputNorm, Maps
from .base import FamilyConfig, PafModel
from .layers import ConvAct
from .registry import PretrainedCfg, register_family, register_model

# Convs per VGG block used here; VGG19 has (2, 2, 4, 4, 4) and we stop after conv4_2.
VGG19_DEPTHS: tuple[int, ...] = (2, 2, 4, 2)
VGG19_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)


def vgg_layer_names(depths: tuple[int, ...] = VGG19_DEPTHS) -> list[str]:
    """Layer names in execution order, e.g. ``conv1_1, conv1_2, pool1, conv2_1, ...``.

    A 2x2/stride-2 max-pool follows every block but the last.
    """
    names = []
    for b, depth in enumerate(depths, start=1):
        names += [f"conv{b}_{i}" for i in range(1, depth + 1)]
        if b < len(depths):
            names.append(f"pool{b}")
    return names


class VggBackbone(nn.Sequential):
    """VGG trunk: ``(B, in_channels, H, W)`` -> ``(B, widths[-1], H//s, W//s)``.

    ``s = 2 ** (len(depths) - 1)`` (8 for the default four blocks). Pools use floor
    rounding like torchvision and pytorch-openpose (Caffe rounds up; identical for inputs
    that are multiples of 8, which is what preprocessing produces).
    """

    def __init__(self, widths: tuple[int, ...] = VGG19_WIDTHS,
                 depths: tuple[int, ...] = VGG19_DEPTHS, in_channels: int = 3,
                 batch_norm: bool = False):
        if len(widths) != len(depths):
            raise ValueError(f"widths {widths} and depths {depths} differ in length")
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        c = in_channels
        for b, (width, depth) in enumerate(zip(widths, depths), start=1):
            for i in range(1, depth + 1):
                layers[f"conv{b}_{i}"] = ConvAct(c, width, 3, norm=batch_norm)
                c = width
            if b < len(depths):
                layers[f"pool{b}"] = nn.MaxPool2d(kernel_size=2, stride=2)
        super().__init__(layers)
        self.out_channels = c
        self.stride = 2 ** (len(depths) - 1)


class Cpm(nn.Sequential):
    """CMU's ``conv4_3_CPM`` / ``conv4_4_CPM``: two 3x3 ConvAct.

    ``(B, in_channels, h, w) -> (B, out_channels, h, w)``.

    Keys: ``conv4_3.conv.*``, ``conv4_4.conv.*``.
    """

    def __init__(self, in_channels: int = 512, mid_channels: int = 256,
                 out_channels: int = 128, batch_norm: bool = False):
        super().__init__()
        self.conv4_3 = ConvAct(in_channels, mid_channels, 3, norm=batch_norm)
        self.conv4_4 = ConvAct(mid_channels, out_channels, 3, norm=batch_norm)
        self.out_channels = out_channels


class Branch(nn.Module):
    """``num_layers`` k x k ConvAct, one 1x1 ConvAct to ``hidden``, then a 1x1 ``out`` conv.

    ``(B, in_channels, h, w) -> (B, out_channels, h, w)``; the output has no activation.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int = 128,
                 kernel_size: int = 3, num_layers: int = 3, hidden: int = 512,
                 batch_norm: bool = False):
        super().__init__()
        layers = []
        c = in_channels
        for _ in range(num_layers):
            layers.append(ConvAct(c, channels, kernel_size, norm=batch_norm))
            c = channels
        layers.append(ConvAct(c, hidden, 1, norm=batch_norm))
        self.layers = nn.Sequential(*layers)
        self.out = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(x))


class Stage(nn.Module):
    """One stage: ``x -> Maps(heatmaps (B, num_heatmaps, h, w), pafs (B, num_pafs, h, w))``.

    Stage 1 (CMU ``conv5_*_CPM``): 3 x 3x3 convs, hidden 512. Refinement stages (CMU
    ``Mconv*_stage*``): 5 x 7x7 convs, hidden 128, on ``cat([pafs, heatmaps, features])``.
    """

    def __init__(self, in_channels: int, num_pafs: int, num_heatmaps: int,
                 channels: int = 128, kernel_size: int = 3, num_layers: int = 3,
                 hidden: int = 512, batch_norm: bool = False):
        super().__init__()
        kw = dict(channels=channels, kernel_size=kernel_size, num_layers=num_layers,
                  hidden=hidden, batch_norm=batch_norm)
        self.paf = Branch(in_channels, num_pafs, **kw)
        self.heatmap = Branch(in_channels, num_heatmaps, **kw)

    def forward(self, x: torch.Tensor) -> Maps:
        return Maps(self.heatmap(x), self.paf(x))


@dataclass(frozen=True)
class CmuVggConfig(FamilyConfig):
    """Architecture of a ``CmuVgg``; the defaults are CMU's 6-stage COCO model.

    ``width_mult`` scales the VGG trunk widths and ``cpm_mid_channels`` (rounded, >= 1);
    ``cpm_channels``, ``stage_channels`` and the hidden widths are absolute.
    """

    arch = "cmu_vgg"

    stages: int = 6
    vgg_widths: tuple[int, ...] = VGG19_WIDTHS
    vgg_depths: tuple[int, ...] = VGG19_DEPTHS
    width_mult: float = 1.0
    cpm_mid_channels: int = 256        # conv4_3_CPM output
    cpm_channels: int = 128            # conv4_4_CPM output = shared features
    stage_channels: int = 128          # width of the k x k convs in every stage
    stage1_kernel: int = 3
    stage1_layers: int = 3
    stage1_hidden: int = 512           # conv5_4_CPM 1x1 width
    refine_kernel: int = 7
    refine_layers: int = 5
    refine_hidden: int = 128           # Mconv6 1x1 width
    batch_norm: bool = False
    num_heatmaps: int = OPENPOSE_COCO18.num_heatmaps   # keypoints + background
    num_pafs: int = OPENPOSE_COCO18.num_pafs           # 2 x limbs

    def __post_init__(self):
        object.__setattr__(self, "vgg_widths", tuple(int(c) for c in self.vgg_widths))
        object.__setattr__(self, "vgg_depths", tuple(int(d) for d in self.vgg_depths))
        if len(self.vgg_widths) != 4 or len(self.vgg_depths) != 4:
            raise ValueError("vgg_widths and vgg_depths need 4 entries (stride 8), got "
                             f"{self.vgg_widths} and {self.vgg_depths}")
        if self.stages < 1:
            raise ValueError(f"stages must be >= 1, got {self.stages}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {self.width_mult}")
        for name in ("stage1_layers", "refine_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("stage1_kernel", "refine_kernel"):
            if getattr(self, name) % 2 != 1:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")

    @property
    def trunk_widths(self) -> tuple[int, ...]:
        """VGG block widths after ``width_mult``."""
        return tuple(_scale(c, self.width_mult) for c in self.vgg_widths)

    @property
    def cpm_mid(self) -> int:
        return _scale(self.cpm_mid_channels, self.width_mult)

    @property
    def refine_in_channels(self) -> int:
        """Input channels of stages 2..N: pafs + heatmaps + features."""
        return self.num_pafs + self.num_heatmaps + self.cpm_channels


def _scale(channels: int, mult: float) -> int:
    return max(1, int(round(channels * mult)))


@register_family
class CmuVgg(PafModel):
    """CMU's multi-stage PAF network; see the module docstring for shapes/keys."""

    config_cls = CmuVggConfig

    def __init__(self, config: CmuVggConfig | None = None):
        cfg = config if config is not None else CmuVggConfig()
        super().__init__(cfg)
        bn = cfg.batch_norm
        self.backbone = VggBackbone(widths=cfg.trunk_widths, depths=cfg.vgg_depths,
                                    batch_norm=bn)
        self.cpm = Cpm(self.backbone.out_channels, cfg.cpm_mid, cfg.cpm_channels,
                       batch_norm=bn)
        stages = [Stage(cfg.cpm_channels, cfg.num_pafs, cfg.num_heatmaps,
                        channels=cfg.stage_channels, kernel_size=cfg.stage1_kernel,
                        num_layers=cfg.stage1_layers, hidden=cfg.stage1_hidden,
                        batch_norm=bn)]
        for _ in range(1, cfg.stages):
            stages.append(Stage(cfg.refine_in_channels, cfg.num_pafs, cfg.num_heatmaps,
                                channels=cfg.stage_channels, kernel_size=cfg.refine_kernel,
                                num_layers=cfg.refine_layers, hidden=cfg.refine_hidden,
                                batch_norm=bn))
        self.stages = nn.ModuleList(stages)
        self.stride = self.backbone.stride                 # 8
        self.num_pafs = cfg.num_pafs
        self.num_heatmaps = cfg.num_heatmaps
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal trunk/CPM, normal(0.01) stages, zero biases, BN = identity."""
        for part, stage_part in ((self.backbone, False), (self.cpm, False),
                                 (self.stages, True)):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    if stage_part:
                        nn.init.normal_(m.weight, std=0.01)
                    else:
                        nn.init.kaiming_normal_(m.weight, mode="fan_out",
                                                nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def fp32_modules(self) -> list[nn.Module]:
        """The output 1x1 convs (``Branch.out``) of every stage, PAFs and heatmaps."""
        return [m.out for m in self.modules() if isinstance(m, Branch)]

    def forward(self, x: torch.Tensor) -> list[Maps]:
        """``(B, 3, H, W)`` -> one ``Maps(heatmaps, pafs)`` per stage, at ``(H//8, W//8)``."""
        features = self.cpm(self.backbone(x))
        outputs = []
        h = features
        for i, stage in enumerate(self.stages):
            maps = stage(h)
            outputs.append(maps)
            if i + 1 < len(self.stages):
                h = torch.cat([maps.pafs, maps.heatmaps, features], dim=1)
        return outputs


# --- registered variants (each only chooses config values) -----------------------------

# CMU: BGR, x / 256 - 0.5; pad with grey (0 after normalisation); OpenPose's -1x368.
CMU_PRETRAINED = PretrainedCfg(InputNorm("BGR", 1 / 256, -0.5), height=368, pad_value=128)


@register_model(CMU_PRETRAINED)
def cmu_vgg19() -> CmuVggConfig:
    """CMU's COCO body model: VGG19 to conv4_2 + 6 stages (~52.3M params; loads CMU weights)."""
    return CmuVggConfig()


@register_model(CMU_PRETRAINED)
def vgg19_3stage() -> CmuVggConfig:
    """CMU architecture with 3 stages (faster; stages 1-3 of CMU weights fit)."""
    return CmuVggConfig(stages=3)


@register_model(CMU_PRETRAINED)
def small() -> CmuVggConfig:
    """Half-width VGG, 3 stages of 64 channels, BatchNorm (~6.9M params; train from scratch)."""
    return CmuVggConfig(stages=3, width_mult=0.5, batch_norm=True, cpm_channels=64,
                        stage_channels=64, stage1_hidden=256, refine_hidden=64)


@register_model(CMU_PRETRAINED)
def tiny() -> CmuVggConfig:
    """Toy network for tests (~74k parameters, 2 stages, 3x3 refinement)."""
    return CmuVggConfig(stages=2, width_mult=1 / 16, cpm_channels=16, stage_channels=16,
                        stage1_hidden=32, refine_kernel=3, refine_layers=2,
                        refine_hidden=16)
