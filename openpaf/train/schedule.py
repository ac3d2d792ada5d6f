"""Optimizer and learning-rate schedule of a run (per optimizer step)."""
from __future__ import annotations

import math

import torch

from .config import TrainConfig


def lr_factor(step: int, config: TrainConfig, total_steps: int) -> float:
    """Multiplier of ``config.lr`` for optimizer step ``step`` (0-based)."""
    f = 1.0
    if config.warmup_steps > 0:
        f = min(1.0, (step + 1) / config.warmup_steps)
    if config.schedule == "cosine":
        t = min(step, total_steps) / max(total_steps, 1)
        f *= config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    elif config.schedule == "step":
        f *= config.gamma ** (step // config.step_size)
    return f


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD (momentum); no weight decay on biases and BatchNorm parameters."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(groups, lr=config.lr)


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps of the whole run: ``max_steps`` or ``epochs``, the smaller."""
    limits = [x for x in (config.max_steps,
                          config.epochs * steps_per_epoch if config.epochs else None) if x]
    if not limits:
        raise ValueError("set max_steps or epochs")
    return int(min(limits))
