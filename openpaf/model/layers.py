"""Layers and tools shared by every network family: ``ConvAct``, BatchNorm folding,
parameter and FLOP counting.

``ConvAct`` is the one conv building block: conv -> optional BatchNorm -> optional
activation. Its state-dict keys are ``conv.weight``, ``conv.bias`` (when it has a bias)
and ``bn.*`` (with ``norm=True``); family files and weight formats rely on them.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "elu": lambda: nn.ELU(inplace=True),
               "relu6": lambda: nn.ReLU6(inplace=True)}


class ConvAct(nn.Module):
    """``k x k`` conv -> optional BatchNorm -> optional activation.

    padding: None gives ``dilation * (k // 2)`` ("same" at stride 1).
    act: "relu", "elu", "relu6" or None. bias: None means ``not norm``.
    ``(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, groups: int = 1,
                 padding: int | None = None, norm: bool = False, act: str | None = "relu",
                 bias: bool | None = None):
        super().__init__()
        if act is not None and act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(ACTIVATIONS)} or None, got {act!r}")
        pad = dilation * (kernel_size // 2) if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=pad, dilation=dilation, groups=groups,
                              bias=(not norm) if bias is None else bias)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.act = ACTIVATIONS[act]() if act is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``ConvAct`` BatchNorms are folded into their convs.

    Works for any family built from ``ConvAct``. Inference only (running statistics);
    outputs equal the original's up to float rounding; ``model`` itself is unchanged.
    """
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, ConvAct) or m.bn is None:
                continue
            conv, bn = m.conv, m.bn
            k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(k.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - bn.running_mean) * k + bn.bias)
            m.bn = None
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, height: int, width: int) -> float:
    """FLOPs of one forward pass of ``model`` on a ``(1, 3, height, width)`` input.

    Counted by ``torch.utils.flop_counter`` on meta tensors (no compute, any family):
    2 x multiply-adds of convs and matmuls; activations, BN and pools are not counted.
    CMU's 6-stage VGG19 at 368x368: ~272 GFLOP.
    """
    from torch.utils.flop_counter import FlopCounterMode
    meta = copy.deepcopy(model).to("meta")
    dtype = next(meta.parameters()).dtype        # a bf16 model counts on bf16 inputs
    x = torch.empty(1, 3, int(height), int(width), device="meta", dtype=dtype)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x)
    return float(counter.get_total_flops())
