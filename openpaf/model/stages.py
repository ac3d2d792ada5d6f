"""CPM adapter and the two-branch prediction stages (CMU layout).

Every stage has a PAF branch (CMU "L1") and a heatmap branch (CMU "L2"). A branch is
``layers`` (``ConvAct`` with ReLU) followed by ``out``, a 1x1 conv without activation.
Keys, e.g. ``paf.layers.0.conv.weight``, ``heatmap.out.bias``; see :mod:`openpaf.cmu`.
"""
from __future__ import annotations

import torch
from torch import nn

from .vgg import ConvAct


class Cpm(nn.Sequential):
    """CMU's ``conv4_3_CPM`` / ``conv4_4_CPM``: two 3x3 ConvAct.

    ``(B, in_channels, h, w) -> (B, out_channels, h, w)``.

    Keys: ``conv4_3.conv.*``, ``conv4_4.conv.*``.
    """

    def __init__(self, in_channels: int = 512, mid_channels: int = 256,
                 out_channels: int = 128, batch_norm: bool = False):
        super().__init__()
        self.conv4_3 = ConvAct(in_channels, mid_channels, 3, batch_norm=batch_norm)
        self.conv4_4 = ConvAct(mid_channels, out_channels, 3, batch_norm=batch_norm)
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
            layers.append(ConvAct(c, channels, kernel_size, batch_norm=batch_norm))
            c = channels
        layers.append(ConvAct(c, hidden, 1, batch_norm=batch_norm))
        self.layers = nn.Sequential(*layers)
        self.out = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(x))


class Stage(nn.Module):
    """One stage: ``x -> (pafs (B, num_pafs, h, w), heatmaps (B, num_heatmaps, h, w))``.

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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.paf(x), self.heatmap(x)
