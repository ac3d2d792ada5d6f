"""tf-pose-estimation's MobileNetV2 PAF network (ildoonet/tf-pose-estimation, Apache-2.0).

Input ``(B, 3, H, W)`` raw BGR 0-255 float (``InputNorm("BGR", 1, 0)``). ``forward``
returns one ``Maps`` per stage: heatmaps ``(B, 19, h, w)`` and PAFs ``(B, 38, h, w)`` with
``h, w = ceil(H / 8), ceil(W / 8)``.

* Trunk: MobileNetV2 with depth multiplier ``width_mult`` (widths rounded to multiples of
  8, as TF-slim's ``mobilenet_v2`` does), up to ``layer_14`` (stride 16).
* Features: ``cat([layer_7, resize_bilinear(layer_14 -> layer_7's size)])``.
* ``stages`` stages, each an L1 branch (38 PAFs) and an L2 branch (19 heatmaps) of five
  separable convs (depthwise k x k without bias, then pointwise 1x1 with folded BN; at
  k = 1 the depthwise scale is folded into the pointwise conv):
  3x3 ``int(128 r)``, 3x3, 3x3, 1x1 ``int(512 r)`` (stage 1) or ``int(128 r)``, 1x1 out,
  ``r = refine_width``; ReLU except on the outputs. Stage ``s > 1`` sees
  ``cat([pafs, heatmaps, features])`` of stage ``s - 1``.

TensorFlow semantics kept: SAME padding (asymmetric for stride 2 on even sizes), Relu6 in
the trunk, ``ResizeBilinear``'s coordinate rule (``resize``), and the trunk BatchNorm of
tf-pose's frozen graphs, which runs in training mode: ``trunk_norm="image"`` normalises
with each image's own statistics (TF at batch size 1); ``"folded"`` is a constant BN
folded into the conv bias.

Keys: ``trunk.conv.*``, ``trunk.blocks.{i}.{expand,depthwise,project}.*`` (i = layer - 2),
``stages.{s}.{paf,heatmap}.{j}.{depthwise (j < 3),pointwise}.conv.*``; trunk units carry
``norm.{weight,bias}`` with ``trunk_norm="image"`` and ``conv.bias`` otherwise.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..skeleton import OPENPOSE_COCO18
from ..structures import InputNorm, Maps
from .base import FamilyConfig, PafModel
from .layers import ConvAct
from .registry import PretrainedCfg, register_family, register_model

# (expansion, base output channels, stride) of MobileNetV2 layer_2 .. layer_14
TRUNK_BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
                (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1),
                (6, 96, 1))
STEM_CHANNELS = 32
TAPS = (5, 12)                 # block indices of layer_7 (stride 8) and layer_14 (stride 16)
RESIZE_MODES = ("legacy", "half_pixel", "align_corners")
TRUNK_NORMS = ("image", "folded")
BN_EPS = 1e-3                  # TF-slim mobilenet_v2 BatchNorm epsilon


def make_divisible(value: float, divisor: int = 8) -> int:
    """TF-slim's channel rounding: nearest multiple of ``divisor`` (>= divisor), never
    more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class TfposeConfig(FamilyConfig):
    """tf-pose's ``Mobilenetv2Network(conv_width=width_mult, conv_width2=refine_width)``."""

    arch: ClassVar[str] = "tfpose_mobilenet_v2"
    width_mult: float = 0.5
    refine_width: float = 0.5
    stages: int = 6
    trunk_norm: str = "image"       # see the module docstring
    resize: str = "legacy"          # TF ResizeBilinear: legacy | half_pixel | align_corners
    num_heatmaps: int = OPENPOSE_COCO18.num_heatmaps   # keypoints + background
    num_pafs: int = OPENPOSE_COCO18.num_pafs           # 2 x limbs

    def __post_init__(self):
        if self.width_mult <= 0 or self.refine_width <= 0 or self.stages < 1:
            raise ValueError("width_mult and refine_width must be > 0 and stages >= 1, got "
                             f"{self.width_mult}, {self.refine_width}, {self.stages}")
        if self.trunk_norm not in TRUNK_NORMS:
            raise ValueError(f"trunk_norm must be one of {TRUNK_NORMS}, got {self.trunk_norm!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")

    def trunk_widths(self) -> tuple[int, ...]:
        """Output channels of the stem conv and of each of the 13 trunk blocks."""
        return (make_divisible(STEM_CHANNELS * self.width_mult),) + tuple(
            make_divisible(c * self.width_mult) for _, c, _ in TRUNK_BLOCKS)

    def refine_widths(self) -> tuple[int, int, int]:
        """``(channels, stage-1 hidden, later hidden)`` of the stage branches."""
        r = self.refine_width
        return int(128 * r), int(512 * r), int(128 * r)


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` like TF's ``SAME``: extra row/column at the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max(kernel - (stride if size % stride == 0 else size % stride), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class ImageNorm(nn.Module):
    """BatchNorm with each image's own statistics (TF ``FusedBatchNorm(is_training=True)``
    at batch size 1): ``(B, C, H, W)``, biased variance over ``H, W``, affine ``weight``
    and ``bias`` ``(C,)``. One fused ``batch_norm`` per image, in any memory format."""

    def __init__(self, channels: int, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [F.batch_norm(image, None, None, self.weight, self.bias, training=True,
                            eps=self.eps) for image in x.split(1)]
        return out[0] if len(out) == 1 else torch.cat(out)


class TfConvAct(ConvAct):
    """``ConvAct`` with TF ``SAME`` padding (asymmetric at stride 2) and ``norm``:
    ``"image"`` (BN with the image's own statistics: affine ``norm.*``, no conv bias),
    ``"folded"`` (constant BN folded: conv bias) or ``None`` (no bias).

    The per-image norm is kept out of ``ConvAct.bn``, which ``fold_batchnorm`` folds with
    running statistics this norm does not have.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, groups: int = 1, act: str | None = None,
                 norm: str | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         groups=groups, padding=0 if stride > 1 else None, act=act,
                         bias=norm == "folded")
        self.norm = ImageNorm(out_channels) if norm == "image" else None
        self.tf_act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride = self.conv.stride[0]
        if stride > 1:
            x = tf_same_pad(x, self.conv.kernel_size[0], stride)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x) if self.act is not None else x


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand, Relu6] -> 3x3 depthwise, Relu6 -> 1x1 project
    (+ input when stride 1 and widths match). ``(B, cin, H, W) -> (B, cout, H/s, W/s)``."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, norm: str):
        super().__init__()
        inner = make_divisible(cin * expansion) if expansion > 1 else cin
        self.expand = TfConvAct(cin, inner, 1, act="relu6", norm=norm) if inner > cin else None
        self.depthwise = TfConvAct(inner, inner, 3, stride, groups=inner, act="relu6",
                                   norm=norm)
        self.project = TfConvAct(inner, cout, 1, norm=norm)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class MobileNetV2Trunk(nn.Module):
    """``(B, 3, H, W)`` -> ``(layer_7 (B, C7, H/8, W/8), layer_14 (B, C14, H/16, W/16))``."""

    def __init__(self, config: TfposeConfig):
        super().__init__()
        widths = config.trunk_widths()
        self.conv = TfConvAct(3, widths[0], 3, 2, act="relu6", norm=config.trunk_norm)
        self.blocks = nn.ModuleList(
            InvertedResidual(cin, cout, t, s, config.trunk_norm)
            for cin, cout, (t, _, s) in zip(widths, widths[1:], TRUNK_BLOCKS))
        self.out_channels = widths[TAPS[0] + 1] + widths[TAPS[1] + 1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in TAPS:
                taps.append(x)
        return taps[0], taps[1]


def _source_index(out_size: int, in_size: int, mode: str, device) -> tuple:
    """TF ResizeBilinear's ``(lower, upper, lerp)`` source indices along one axis."""
    i = torch.arange(out_size, dtype=torch.float32, device=device)
    if mode == "align_corners" and out_size > 1:
        src = i * (torch.tensor(in_size - 1, dtype=torch.float32) / (out_size - 1))
    else:
        scale = torch.tensor(in_size, dtype=torch.float32) / out_size   # float32, as TF
        src = (i + 0.5) * scale - 0.5 if mode == "half_pixel" else i * scale
    floor = torch.floor(src)
    lower = floor.clamp(min=0).long()
    upper = torch.ceil(src).clamp(max=in_size - 1).long()
    return lower, upper, (src - floor)


def resize_bilinear_tf(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """TF ``ResizeBilinear`` of ``(B, C, h, w)`` to ``size = (H, W)``; ``mode``: ``legacy``
    (``align_corners=False, half_pixel_centers=False``), ``half_pixel`` or ``align_corners``."""
    y0, y1, ly = _source_index(size[0], x.shape[-2], mode, x.device)
    x0, x1, lx = _source_index(size[1], x.shape[-1], mode, x.device)
    lx, ly = lx.to(x.dtype), ly.to(x.dtype)[:, None]
    top, bottom = x[..., y0, :], x[..., y1, :]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * lx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * lx
    return top + (bottom - top) * ly


def separable(cin: int, cout: int, kernel: int, act: str | None) -> nn.Sequential:
    """tf-pose ``separable_conv``: depthwise k x k (no bias) -> pointwise 1x1 (folded BN,
    act). At k = 1 the depthwise conv is a per-channel scale, folded into the pointwise
    conv on import, so the module is the pointwise conv alone."""
    layers = OrderedDict()
    if kernel > 1:
        layers["depthwise"] = TfConvAct(cin, cin, kernel, groups=cin)
    layers["pointwise"] = TfConvAct(cin, cout, 1, act=act, norm="folded")
    return nn.Sequential(layers)


def branch(cin: int, cout: int, channels: int, hidden: int) -> nn.Sequential:
    """One L1/L2 branch: three 3x3 separables, a 1x1 to ``hidden``, a linear 1x1 out."""
    widths = (channels, channels, channels, hidden)
    layers, c = [], cin
    for k, w in zip((3, 3, 3, 1), widths):
        layers.append(separable(c, w, k, "relu"))
        c = w
    layers.append(separable(c, cout, 1, None))
    return nn.Sequential(*layers)


@register_family
class TfposeMobilenetV2(PafModel):
    """tf-pose MobileNetV2 PAF network; see the module docstring for shapes and keys."""

    config_cls = TfposeConfig

    def __init__(self, config: TfposeConfig | None = None):
        super().__init__(config if config is not None else TfposeConfig())
        cfg = self.config
        self.trunk = MobileNetV2Trunk(cfg)
        channels, hidden1, hidden = cfg.refine_widths()
        feats = self.trunk.out_channels
        stages = []
        for s in range(cfg.stages):
            cin = feats if s == 0 else feats + self.num_pafs + self.num_heatmaps
            h = hidden1 if s == 0 else hidden
            stages.append(nn.ModuleDict(OrderedDict(
                paf=branch(cin, self.num_pafs, channels, h),
                heatmap=branch(cin, self.num_heatmaps, channels, h))))
        self.stages = nn.ModuleList(stages)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, C7 + C14, ceil(H/8), ceil(W/8))`` stage input."""
        low, high = self.trunk(x)
        up = resize_bilinear_tf(high, tuple(low.shape[-2:]), self.config.resize)
        return torch.cat([low, up], dim=1)

    def fp32_modules(self) -> list[nn.Module]:
        """The linear 1x1 output separable (last layer of each ``branch``) of every stage."""
        return [stage[name][-1] for stage in self.stages for name in ("paf", "heatmap")]

    def forward(self, x: torch.Tensor) -> list[Maps]:
        """``(B, 3, H, W)`` raw BGR -> one ``Maps(heatmaps, pafs)`` per stage."""
        feats = self.features(x)
        h, outputs = feats, []
        for stage in self.stages:
            pafs, heatmaps = stage["paf"](h), stage["heatmap"](h)
            outputs.append(Maps(heatmaps, pafs))
            h = torch.cat([pafs, heatmaps, feats], dim=1)
        return outputs


# --- registered variants: every MobileNetV2 configuration tf-pose published ------------
TFPOSE_PRETRAINED = PretrainedCfg(InputNorm("BGR", 1.0, 0.0), height=432)
# name -> (width_mult, refine_width), from tf-pose's ``networks.get_network``
TFPOSE_VARIANTS = {
    "tfpose_mobilenet_v2_small": (0.5, 0.5),      # tf-pose "mobilenet_v2_small"
    "tfpose_mobilenet_v2_large": (1.4, 1.0),      # tf-pose "mobilenet_v2_large", "_1.4"
    "tfpose_mobilenet_v2_w1_4_r0_5": (1.4, 0.5),
    "tfpose_mobilenet_v2_w1_0_r1_0": (1.0, 1.0),  # also tf-pose "mobilenet_v2_1.0"
    "tfpose_mobilenet_v2_w1_0_r0_75": (1.0, 0.75),
    "tfpose_mobilenet_v2_w1_0_r0_5": (1.0, 0.5),
    "tfpose_mobilenet_v2_w0_75_r0_75": (0.75, 0.75),
    "tfpose_mobilenet_v2_w0_75_r1_0": (0.75, 1.0),  # tf-pose "mobilenet_v2_0.75"
    "tfpose_mobilenet_v2_w0_5_r1_0": (0.5, 1.0),    # tf-pose "mobilenet_v2_0.5"
}


def _register_variant(name: str, width_mult: float, refine_width: float) -> None:
    def variant() -> TfposeConfig:
        return TfposeConfig(width_mult=width_mult, refine_width=refine_width)
    variant.__name__ = variant.__qualname__ = name
    variant.__doc__ = (f"tf-pose MobileNetV2 PAF, width {width_mult} / refine "
                       f"{refine_width} (imports tf-pose graph_opt.pb, Apache-2.0)")
    register_model(TFPOSE_PRETRAINED)(variant)


for _name, (_w, _r) in TFPOSE_VARIANTS.items():
    _register_variant(_name, _w, _r)
