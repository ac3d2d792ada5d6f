"""Lightweight OpenPose family (Osokin 2018): MobileNetV1 trunk -> CPM -> an initial
stage -> N refinement stages, each predicting heatmaps and PAFs.

This is the topology of Intel's OMZ ``human-pose-estimation-0001`` (read by
:mod:`openpaf.weights.formats.openvino_ir`), activations included:

- trunk: MobileNetV1 to ``conv5_5``: ``conv1`` (3x3) then 11 depthwise-separable blocks
  (3x3 depthwise, 1x1 pointwise); stride 2 at ``conv1``, ``conv2_2`` and ``conv3_2``
  (stride 8 overall), the depthwise conv of ``conv5_1`` dilated (2); ReLU everywhere.
- CPM: ``a = align(x)`` (1x1 to ``channels``), then ``conv(a + trunk(reduce(a)))`` where
  ``reduce`` is 1x1 and ``trunk`` 3 depthwise-separable blocks, never with BatchNorm;
  ELU everywhere except the final 3x3 ``conv`` (ReLU).
- initial stage: 3 x 3x3 convs (ReLU) shared by both heads; each head is a 1x1 conv to
  ``initial_hidden`` (ReLU) then a 1x1 output conv (no activation).
- refinement stage: input ``cat([pafs, heatmaps, features])`` (CMU's L1, L2, features
  order); ``refinement_blocks`` residual blocks ``y = a + conv2(conv1(a))`` with
  ``a = initial(x)`` (1x1), ``conv1`` 3x3, ``conv2`` 3x3 dilated 2 (all ReLU); heads are
  1x1 to ``channels`` (ReLU) then 1x1 out.

Osokin's PyTorch release differs from the OMZ IR (no ``reduce`` conv, ReLU after
``align``, no biases in the CPM, features-first concat), so its checkpoints do not load
into this family as they are.

Input ``(B, 3, H, W)``, normalised as the variant's ``PretrainedCfg`` says (OMZ: BGR,
``(x - 128) / 255``), H and W multiples of 8. ``forward`` gives one ``Maps(heatmaps, pafs)``
per stage (``1 + refinement_stages``), shapes ``(B, 19, H/8, W/8)`` and ``(B, 38, H/8, W/8)``.
Within a stage the PAF head runs before the heatmap head (the IR's L1-then-L2 order,
which the IR reader's structural matching relies on).

State-dict keys (every conv is a ``ConvAct``: ``.conv.weight``, ``.conv.bias`` without
BatchNorm, ``.bn.*`` with it)::

    backbone.conv1.*                                   3 -> 32, stride 2
    backbone.conv{2_1..5_5}.{dw,pw}.*                  depthwise 3x3, pointwise 1x1
    cpm.{align,reduce}.*                               1x1, ELU
    cpm.trunk.{0,1,2}.{dw,pw}.*                        ELU, never BatchNorm
    cpm.conv.*                                         3x3, ReLU
    initial.trunk.{0,1,2}.*                            3x3
    initial.{pafs,heatmaps}.{hidden,out}.*             1x1
    refinement.{s}.trunk.{b}.{initial,conv1,conv2}.*   1x1, 3x3, 3x3 dilation 2
    refinement.{s}.{pafs,heatmaps}.{hidden,out}.*      1x1

``norm=True`` puts BatchNorm where Osokin trains with it: every trunk conv and
``conv1``/``conv2`` of each refinement block (those convs then have no bias);
``fold_batchnorm`` turns such a model into the ``norm=False`` layout.
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

# MobileNetV1 to conv5_5: (name, out channels, stride, dilation) after conv1 (32, stride 2).
MOBILENET_BLOCKS: tuple[tuple[str, int, int, int], ...] = (
    ("conv2_1", 64, 1, 1), ("conv2_2", 128, 2, 1), ("conv3_1", 128, 1, 1),
    ("conv3_2", 256, 2, 1), ("conv4_1", 256, 1, 1), ("conv4_2", 512, 1, 1),
    ("conv5_1", 512, 1, 2), ("conv5_2", 512, 1, 1), ("conv5_3", 512, 1, 1),
    ("conv5_4", 512, 1, 1), ("conv5_5", 512, 1, 1))
CONV1_CHANNELS = 32


@dataclass(frozen=True)
class LightweightConfig(FamilyConfig):
    """Architecture of a ``LightweightPose``; the defaults are OMZ's
    ``human-pose-estimation-0001`` (4.1M parameters).

    ``width_mult`` scales the MobileNet widths (rounded, >= 1); ``channels`` is the CPM
    output and stage width; ``norm`` adds BatchNorm (see the module docstring).
    """

    arch = "lightweight"

    refinement_stages: int = 1
    refinement_blocks: int = 5         # residual blocks per refinement stage
    channels: int = 128
    initial_hidden: int = 512          # 1x1 width of the initial stage's heads
    width_mult: float = 1.0
    norm: bool = False
    num_heatmaps: int = OPENPOSE_COCO18.num_heatmaps
    num_pafs: int = OPENPOSE_COCO18.num_pafs

    def __post_init__(self):
        if self.refinement_stages < 0:
            raise ValueError(f"refinement_stages must be >= 0, got {self.refinement_stages}")
        for name in ("refinement_blocks", "channels", "initial_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {self.width_mult}")

    def width(self, channels: int) -> int:
        """A MobileNet width after ``width_mult``."""
        return max(1, int(round(channels * self.width_mult)))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise ``dw`` (stride, dilation) then 1x1 pointwise ``pw``, both activated.

    ``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dilation: int = 1, norm: bool = False, act: str = "relu"):
        super().__init__()
        self.dw = ConvAct(in_channels, in_channels, 3, stride=stride, dilation=dilation,
                          groups=in_channels, norm=norm, act=act)
        self.pw = ConvAct(in_channels, out_channels, 1, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetTrunk(nn.Sequential):
    """MobileNetV1 to ``conv5_5`` with a dilated ``conv5_1``: ``(B, 3, H, W) ->
    (B, 512 * width_mult, H/8, W/8)``."""

    def __init__(self, config: LightweightConfig):
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        c = config.width(CONV1_CHANNELS)
        layers["conv1"] = ConvAct(3, c, 3, stride=2, norm=config.norm)
        for name, out, stride, dilation in MOBILENET_BLOCKS:
            out = config.width(out)
            layers[name] = DepthwiseSeparable(c, out, stride, dilation, norm=config.norm)
            c = out
        super().__init__(layers)
        self.out_channels = c


class Cpm(nn.Module):
    """``(B, c_in, h, w) -> (B, channels, h, w)``: ``a = align(x)``,
    ``conv(a + trunk(reduce(a)))``."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.align = ConvAct(in_channels, channels, 1, act="elu")
        self.reduce = ConvAct(channels, channels, 1, act="elu")
        self.trunk = nn.Sequential(*(DepthwiseSeparable(channels, channels, act="elu")
                                     for _ in range(3)))
        self.conv = ConvAct(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.align(x)
        return self.conv(x + self.trunk(self.reduce(x)))


class Head(nn.Module):
    """1x1 ``hidden`` (ReLU) then 1x1 ``out`` (no activation):
    ``(B, c_in, h, w) -> (B, out_channels, h, w)``."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.hidden = ConvAct(in_channels, hidden, 1)
        self.out = ConvAct(hidden, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class Stage(nn.Module):
    """``trunk`` then a PAF and a heatmap ``Head`` on its output:
    ``(B, c_in, h, w) -> Maps``. The PAF head runs first (the IR's L1, L2 order)."""

    def __init__(self, trunk: nn.Module, channels: int, hidden: int, num_heatmaps: int,
                 num_pafs: int):
        super().__init__()
        self.trunk = trunk
        self.pafs = Head(channels, hidden, num_pafs)
        self.heatmaps = Head(channels, hidden, num_heatmaps)

    def forward(self, x: torch.Tensor) -> Maps:
        features = self.trunk(x)
        pafs = self.pafs(features)
        return Maps(self.heatmaps(features), pafs)


class RefinementBlock(nn.Module):
    """``a = initial(x)`` (1x1); ``a + conv2(conv1(a))`` (3x3, 3x3 dilated 2)."""

    def __init__(self, in_channels: int, channels: int, norm: bool = False):
        super().__init__()
        self.initial = ConvAct(in_channels, channels, 1)
        self.conv1 = ConvAct(channels, channels, 3, norm=norm)
        self.conv2 = ConvAct(channels, channels, 3, dilation=2, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.initial(x)
        return a + self.conv2(self.conv1(a))


def initial_stage(config: LightweightConfig) -> Stage:
    """``(B, channels, h, w) -> Maps``: 3 x 3x3 convs, heads with ``initial_hidden``."""
    c = config.channels
    trunk = nn.Sequential(*(ConvAct(c, c, 3) for _ in range(3)))
    return Stage(trunk, c, config.initial_hidden, config.num_heatmaps, config.num_pafs)


def refinement_stage(config: LightweightConfig) -> Stage:
    """``(B, num_pafs + num_heatmaps + channels, h, w) -> Maps``: residual blocks, heads."""
    c = config.channels
    cin = config.num_pafs + config.num_heatmaps + c
    trunk = nn.Sequential(*(RefinementBlock(cin if b == 0 else c, c, norm=config.norm)
                            for b in range(config.refinement_blocks)))
    return Stage(trunk, c, c, config.num_heatmaps, config.num_pafs)


@register_family
class LightweightPose(PafModel):
    """Lightweight OpenPose; see the module docstring for shapes and keys."""

    config_cls = LightweightConfig

    @property
    def num_stages(self) -> int:
        return 1 + len(self.refinement)

    def __init__(self, config: LightweightConfig = LightweightConfig()):
        super().__init__(config)
        self.backbone = MobileNetTrunk(config)
        self.cpm = Cpm(self.backbone.out_channels, config.channels)
        self.initial = initial_stage(config)
        self.refinement = nn.ModuleList(refinement_stage(config)
                                        for _ in range(config.refinement_stages))
        self.num_heatmaps, self.num_pafs = config.num_heatmaps, config.num_pafs
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming-normal (fan_out, ReLU) convs, normal(0.01) output convs, zero biases;
        BatchNorm keeps torch's identity initialisation."""
        outputs = {m.out.conv for m in self.modules() if isinstance(m, Head)}
        for m in self.modules():
            if not isinstance(m, nn.Conv2d):
                continue
            if m in outputs:
                nn.init.normal_(m.weight, std=0.01)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def fp32_modules(self) -> list[nn.Module]:
        """The output 1x1 convs (``Head.out``) of every stage, PAFs and heatmaps."""
        return [m.out for m in self.modules() if isinstance(m, Head)]

    def forward(self, x: torch.Tensor) -> list[Maps]:
        """``(B, 3, H, W)`` -> one ``Maps(heatmaps, pafs)`` per stage, at ``(H/8, W/8)``."""
        features = self.cpm(self.backbone(x))
        maps = self.initial(features)
        outputs = [maps]
        for stage in self.refinement:
            maps = stage(torch.cat([maps.pafs, maps.heatmaps, features], dim=1))
            outputs.append(maps)
        return outputs


# --- registered variants (each only chooses config values) -----------------------------

# OMZ human-pose-estimation-0001: the IR's own Multiply/Add (f16 1/255 and -128/255, i.e.
# BGR (x - 128) / 255); pad with grey 128 (Osokin pads the normalised image with 0);
# Osokin evaluates at height 368.
# accurate_scales: flip + scales 0.8, 1 of the default model, chosen on coco/train at height
# 456 (AP 0.466 at 3.3x the network time; flip alone 0.450, 0.9/1.1 0.462, 1/1.2 0.465 at
# 4.9x, 0.6/0.8/1 0.460; benchmarks/choices/accurate_scales_coco_train*.json).
LIGHTWEIGHT_PRETRAINED = PretrainedCfg(InputNorm("BGR", 0.0039215087890625, -0.501953125),
                                       height=368, pad_value=128, accurate_scales=(0.8, 1.0))


@register_model(LIGHTWEIGHT_PRETRAINED)
def lightweight_mobilenet_v1() -> LightweightConfig:
    """Lightweight OpenPose, 1 refinement stage (4.1M params; OMZ human-pose-estimation-0001)."""
    return LightweightConfig()


@register_model(LIGHTWEIGHT_PRETRAINED)
def lightweight_mobilenet_v1_3ref() -> LightweightConfig:
    """Lightweight OpenPose, 3 refinement stages (the recipe's last run grows it from 1)."""
    return LightweightConfig(refinement_stages=3)


@register_model(LIGHTWEIGHT_PRETRAINED)
def lightweight_tiny() -> LightweightConfig:
    """Toy lightweight network for tests (1/8 trunk width, 16 channels, 2 blocks)."""
    return LightweightConfig(width_mult=1 / 8, channels=16, initial_hidden=32,
                             refinement_blocks=2)
