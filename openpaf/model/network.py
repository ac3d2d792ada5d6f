"""``PafNet``: VGG19 trunk -> CPM -> N two-branch stages (the CMU COCO body model).

Input ``(B, 3, H, W)`` float, normalised as the checkpoint's ``InputNorm`` says (CMU: BGR,
x/256 - 0.5). Output of ``forward``: one ``(pafs, heatmaps)`` tuple per stage, shapes
``(B, num_pafs, H//8, W//8)`` and ``(B, num_heatmaps, H//8, W//8)``. Stage ``s > 1`` sees
``cat([pafs, heatmaps, features], dim=1)`` of stage ``s-1`` (CMU's order: L1, L2, features).

State-dict keys (pinned by ``tests/test_model.py``)::

    backbone.conv{1_1..4_2}.conv.{weight,bias}      VGG19 conv1_1 .. conv4_2
    cpm.conv4_{3,4}.conv.{weight,bias}               conv4_3_CPM, conv4_4_CPM
    stages.{s}.{paf,heatmap}.layers.{i}.conv.*       conv5_{i+1}_CPM_L* / Mconv{i+1}_stage{s+1}_L*
    stages.{s}.{paf,heatmap}.out.{weight,bias}       conv5_5_CPM_L* / Mconv7_stage{s+1}_L*

With ``batch_norm=True`` every ``ConvAct`` also has ``bn.*`` and its conv has no bias.

Initialisation: trunk and CPM convs use Kaiming-normal (fan_out, ReLU) like torchvision's
VGG, so training from scratch works; stage convs use CMU's normal(std=0.01), zero bias.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..skeleton import NUM_HEATMAPS, NUM_PAFS
from .registry import get_config, register_model
from .stages import Cpm, Stage
from .vgg import VGG19_DEPTHS, VGG19_WIDTHS, VggBackbone


@dataclass(frozen=True)
class PafNetConfig:
    """Architecture of a ``PafNet``; the defaults are CMU's 6-stage COCO model.

    ``width_mult`` scales the VGG trunk widths and ``cpm_mid_channels`` (rounded, >= 1);
    ``cpm_channels``, ``stage_channels`` and the hidden widths are absolute.
    """

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
    num_heatmaps: int = NUM_HEATMAPS   # 18 parts + background
    num_pafs: int = NUM_PAFS           # 2 x 19 limbs

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

    def to_dict(self) -> dict:
        """Plain dict (tuples become lists) for checkpoints and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "PafNetConfig":
        """Inverse of ``to_dict``; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PafNetConfig field(s): {unknown}")
        return cls(**d)


def _scale(channels: int, mult: float) -> int:
    return max(1, int(round(channels * mult)))


class PafNet(nn.Module):
    """Multi-stage Part Affinity Field network; see the module docstring for shapes/keys."""

    def __init__(self, config: PafNetConfig | None = None):
        super().__init__()
        cfg = config if config is not None else PafNetConfig()
        self.config = cfg
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
        self.stride: int = self.backbone.stride            # 8
        self.num_pafs: int = cfg.num_pafs
        self.num_heatmaps: int = cfg.num_heatmaps
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

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(B, 3, H, W)`` -> ``[(pafs, heatmaps)]`` per stage, at ``(H//8, W//8)``."""
        features = self.cpm(self.backbone(x))
        outputs = []
        h = features
        for i, stage in enumerate(self.stages):
            pafs, heatmaps = stage(h)
            outputs.append((pafs, heatmaps))
            if i + 1 < len(self.stages):
                h = torch.cat([pafs, heatmaps, features], dim=1)
        return outputs

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last stage only, without gradients: ``(heatmaps, pafs)`` (note the order)."""
        pafs, heatmaps = self.forward(x)[-1]
        return heatmaps, pafs


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model_or_config: PafNet | PafNetConfig | str, height: int,
                width: int) -> float:
    """FLOPs of one forward pass at ``height x width``: 2 x conv multiply-adds.

    Computed analytically from the config (pools, ReLU, BN, biases and concat not
    counted). CMU's 6-stage model at 368x368: ~272 GFLOP.
    """
    if isinstance(model_or_config, str):
        cfg = get_config(model_or_config)
    elif isinstance(model_or_config, PafNet):
        cfg = model_or_config.config
    else:
        cfg = model_or_config
    macs = 0
    h, w, c = int(height), int(width), 3
    widths = cfg.trunk_widths
    for b, (cout, depth) in enumerate(zip(widths, cfg.vgg_depths)):
        for _ in range(depth):
            macs += h * w * 9 * c * cout
            c = cout
        if b + 1 < len(widths):
            h, w = h // 2, w // 2
    hw = h * w
    macs += hw * 9 * (c * cfg.cpm_mid + cfg.cpm_mid * cfg.cpm_channels)
    ch = cfg.stage_channels
    for s in range(cfg.stages):
        if s == 0:
            cin, k, n, hidden = (cfg.cpm_channels, cfg.stage1_kernel, cfg.stage1_layers,
                                 cfg.stage1_hidden)
        else:
            cin, k, n, hidden = (cfg.refine_in_channels, cfg.refine_kernel,
                                 cfg.refine_layers, cfg.refine_hidden)
        for cout in (cfg.num_pafs, cfg.num_heatmaps):
            convs = cin * ch * k * k + (n - 1) * ch * ch * k * k if n > 0 else 0
            last = ch if n > 0 else cin
            macs += hw * (convs + last * hidden + hidden * cout)
    return 2.0 * macs


# --- registered variants (each only chooses config values) -----------------------------

@register_model
def cmu_vgg19() -> PafNetConfig:
    """CMU's COCO body model: VGG19 to conv4_2 + 6 stages (~52.3M params; loads CMU weights)."""
    return PafNetConfig()


@register_model
def vgg19_3stage() -> PafNetConfig:
    """CMU architecture with 3 stages (faster; stages 1-3 of CMU weights fit)."""
    return PafNetConfig(stages=3)


@register_model
def small() -> PafNetConfig:
    """Half-width VGG, 3 stages of 64 channels, BatchNorm (~6.9M params; train from scratch)."""
    return PafNetConfig(stages=3, width_mult=0.5, batch_norm=True, cpm_channels=64,
                        stage_channels=64, stage1_hidden=256, refine_hidden=64)


@register_model
def tiny() -> PafNetConfig:
    """Toy network for tests (~74k parameters, 2 stages, 3x3 refinement)."""
    return PafNetConfig(stages=2, width_mult=1 / 16, cpm_channels=16, stage_channels=16,
                        stage1_hidden=32, refine_kernel=3, refine_layers=2,
                        refine_hidden=16)
