"""The training loss: masked L2 over every stage, as Caffe's EuclideanLoss."""
from __future__ import annotations

from typing import Sequence

import torch

from ..structures import Maps


def paf_loss(outputs: Sequence[Maps],
             batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked L2 over every stage: ``(total, per-stage losses (S,) detached)``.

    outputs: per stage ``Maps(heatmaps (B, 19, h, w), pafs (B, 38, h, w))``. The weight of a
    cell is ``mask (B, 1, h, w) x channel weight (B, C)``; each stage's loss is
    ``sum(weight * (pred - target)^2) / (2 B)``.
    """
    mask = batch["mask"]
    w_paf = mask * batch["paf_weight"][:, :, None, None]
    w_heat = mask * batch["heat_weight"][:, :, None, None]
    scale = 0.5 / mask.shape[0]
    per_stage = []
    for heat, pafs in outputs:
        loss = ((pafs.float() - batch["pafs"]).square() * w_paf).sum()
        loss = loss + ((heat.float() - batch["heatmaps"]).square() * w_heat).sum()
        per_stage.append(loss * scale)
    return torch.stack(per_stage).sum(), torch.stack([p.detach() for p in per_stage])
