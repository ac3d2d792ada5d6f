"""VGG19 trunk (conv1_1 .. conv4_2, stride 8) and the shared conv building block.

Module names follow the Caffe/CMU blob names (``conv1_1`` .. ``conv4_2``), so both CMU's
flat weights and torchvision's ``vgg19.features.N`` map onto them with a key rename
(see :mod:`openpaf.cmu`). These names are API: ``tests/test_model.py`` pins them.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# Convs per VGG block used here; VGG19 has (2, 2, 4, 4, 4) and we stop after conv4_2.
VGG19_DEPTHS: tuple[int, ...] = (2, 2, 4, 2)
VGG19_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)


class ConvAct(nn.Module):
    """``k x k`` conv ("same" padding, stride 1) -> optional BatchNorm -> optional ReLU.

    Keys: ``conv.weight``, ``conv.bias`` (absent with BN), ``bn.*`` (only with BN).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 batch_norm: bool = False, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None
        self.act = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


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
                layers[f"conv{b}_{i}"] = ConvAct(c, width, 3, batch_norm=batch_norm)
                c = width
            if b < len(depths):
                layers[f"pool{b}"] = nn.MaxPool2d(kernel_size=2, stride=2)
        super().__init__(layers)
        self.out_channels = c
        self.stride = 2 ** (len(depths) - 1)
