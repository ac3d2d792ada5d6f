"""What every network family shares: ``FamilyConfig`` and the ``PafModel`` interface.

A family is one file in this package with a config dataclass (``FamilyConfig``
subclass, ``arch`` names the family) and a network (``PafModel`` subclass). Every family
returns the same thing, so predict, export, train and benchmark never branch on it:
``forward(x)`` gives one :class:`~openpaf.structures.Maps` ``(heatmaps, pafs)`` per stage.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from ..structures import Maps


@dataclasses.dataclass(frozen=True)
class FamilyConfig:
    """Base of the per-family architecture configs (frozen dataclasses)."""

    arch: ClassVar[str] = ""

    def to_dict(self) -> dict:
        """Plain dict (tuples become lists) for checkpoints and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FamilyConfig":
        """Inverse of ``to_dict``; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s): {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def head_sizes(spec: KeypointSpec) -> dict:
    """The family config fields that size the heads for ``spec``:
    ``{"num_heatmaps": K + 1, "num_pafs": 2 L}`` (every family has both)."""
    return {"num_heatmaps": spec.num_heatmaps, "num_pafs": spec.num_pafs}


class PafModel(nn.Module):
    """A PAF network: ``(B, 3, H, W)`` normalised input -> ``list[Maps]``, one per stage.

    Maps are at ``(H // stride, W // stride)``; heatmaps ``(B, 19, ., .)``, PAFs
    ``(B, 38, ., .)``. Subclasses set ``config_cls`` and build their layers in
    ``__init__(config)`` after calling ``super().__init__(config)``.
    """

    config_cls: ClassVar[type[FamilyConfig]] = FamilyConfig

    def __init__(self, config: FamilyConfig):
        super().__init__()
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{type(self).__name__} needs a {self.config_cls.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        self.stride: int = 8
        self.num_heatmaps: int = getattr(config, "num_heatmaps", OPENPOSE_COCO18.num_heatmaps)
        self.num_pafs: int = getattr(config, "num_pafs", OPENPOSE_COCO18.num_pafs)
        # The keypoints the heads predict (not in the state_dict: checkpoints store it).
        self.spec: KeypointSpec = OPENPOSE_COCO18

    @property
    def arch(self) -> str:
        return self.config_cls.arch

    @property
    def num_stages(self) -> int:
        """How many ``Maps`` ``forward`` returns (one per stage)."""
        return len(self.stages)

    def forward(self, x: torch.Tensor) -> list[Maps]:  # pragma: no cover - abstract
        raise NotImplementedError

    def fp32_modules(self) -> list[nn.Module]:
        """The layers that stay float32 when the rest runs in bf16/fp16
        (``openpaf.runtime.precision``): each stage's output convs, whose rounding moves
        heatmap peaks and PAF line integrals. Every family declares its own."""
        raise NotImplementedError(f"{type(self).__name__} does not declare fp32_modules()")

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> Maps:
        """The last stage's ``Maps``, without gradients."""
        return self.forward(x)[-1]
