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


def distill_loss(outputs: Sequence[Maps], teacher: torch.Tensor) -> torch.Tensor:
    """L2 towards a teacher's maps on every cell and channel, every stage, scaled like
    ``paf_loss``: ``sum((pred - teacher)^2) / (2 B)`` per stage.

    teacher: ``(B, 19 + 38, h, w)`` float32 (heatmaps then PAFs).
    """
    scale = 0.5 / teacher.shape[0]
    total = teacher.new_zeros(())
    for heat, pafs in outputs:
        pred = torch.cat([heat.float(), pafs.float()], dim=1)
        total = total + (pred - teacher).square().sum() * scale
    return total


@torch.no_grad()
def teacher_maps(teacher: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The teacher's last-stage maps of ``images`` averaged with those of their mirrors
    (left/right swapped back): ``(B, 19 + 38, h, w)`` float32."""
    from ..predict import unflip_maps
    n = images.shape[0]
    out = teacher.predict(torch.cat([images, images.flip(-1)]))
    maps = torch.cat([out.heatmaps.float(), out.pafs.float()], dim=1)
    return (maps[:n] + unflip_maps(maps[n:])) / 2
