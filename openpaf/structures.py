"""Small typed structures that cross module boundaries (decoder -> tracker -> writers)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Optional

import numpy as np

from .skeleton import OPENPOSE_COCO18, KeypointSpec


@dataclass
class Person:
    """One detected person.

    keypoints: ``(K, 3)`` float32 ``[x, y, confidence]`` in image pixels (pixel centres at
        integer coordinates, as OpenPose writes them); confidence 0 means not found. K is
        the spec's (18 for OpenPose COCO-18).
    score: ranking score of the whole person (higher is better), in [0, 1].
    limb_scores: ``(L,)`` float32 PAF score of each limb, 0 where the limb was not found.
    id: track id across video frames, -1 when not tracked.
    """

    keypoints: np.ndarray
    score: float
    limb_scores: np.ndarray = field(
        default_factory=lambda: np.zeros(OPENPOSE_COCO18.num_limbs, np.float32))
    id: int = -1

    def __post_init__(self):
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.limb_scores = np.asarray(self.limb_scores, dtype=np.float32)
        if self.keypoints.ndim != 2 or self.keypoints.shape[1:] != (3,) \
                or not len(self.keypoints):
            raise ValueError(f"Person.keypoints must be (K, 3), got {self.keypoints.shape}")
        if self.limb_scores.ndim != 1:
            raise ValueError(f"Person.limb_scores must be (L,), got {self.limb_scores.shape}")

    @property
    def found(self) -> np.ndarray:
        """``(K,)`` bool: which keypoints were found."""
        return self.keypoints[:, 2] > 0

    @property
    def num_parts(self) -> int:
        return int(self.found.sum())

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` around the found keypoints, in image pixels."""
        xy = self.keypoints[self.found, :2]
        if len(xy) == 0:
            return (0.0, 0.0, 0.0, 0.0)
        (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
        return (float(x0), float(y0), float(x1), float(y1))

    def coco_keypoints(self, spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
        """``(D, 3)`` in the dataset's order (``spec.to_dataset``: COCO-17 for COCO-18);
        found points get v=2 (COCO results ignore v)."""
        kps = spec.to_dataset(self.keypoints).copy()
        kps[:, 2] = np.where(kps[:, 2] > 0, 2.0, 0.0)
        return kps


@dataclass
class ImageMaps:
    """One image's network output (averaged over scales), on the scale-1 map grid.

    heatmaps: ``(K + 1, h, w)`` float32, K keypoints in spec order + background.
    pafs: ``(2 L, h, w)`` float32, channel layout of the spec's ``paf_channels``.
    scale: ``(sx, sy)`` image pixels per map cell; cell ``c`` lands at image pixel
        ``(c + 0.5) * s - 0.5`` (what ``decode(scale=...)`` takes).
    """

    heatmaps: np.ndarray
    pafs: np.ndarray
    scale: tuple[float, float]

    def __post_init__(self):
        if self.heatmaps.ndim != 3 or self.pafs.ndim != 3 or self.pafs.shape[0] % 2 \
                or self.heatmaps.shape[1:] != self.pafs.shape[1:]:
            raise ValueError(f"ImageMaps must be (K + 1, h, w) heatmaps and (2 L, h, w) PAFs, "
                             f"got {self.heatmaps.shape} and {self.pafs.shape}")


@dataclass
class Detections:
    """All people found in one image. ``image_size`` is ``(width, height)`` in pixels.

    part_candidates: optional, every keypoint candidate (heatmap peak) before people were
        assembled: K ``(n_k, 3)`` float32 arrays ``[x, y, score]`` in image pixels, one
        per keypoint type (set by ``decode``).
    maps: optional, the maps the people were decoded from (``Predictor(keep_maps=True)``).
    spec: the keypoints the people have (K = ``spec.num_keypoints``); the weights'.
    """

    image_size: tuple[int, int]
    people: list[Person] = field(default_factory=list)
    part_candidates: Optional[list[np.ndarray]] = None
    maps: Optional[ImageMaps] = None
    spec: KeypointSpec = OPENPOSE_COCO18

    def __post_init__(self):
        if self.part_candidates is not None:
            self.part_candidates = [np.asarray(c, np.float32).reshape(-1, 3)
                                    for c in self.part_candidates]
            if len(self.part_candidates) != self.spec.num_keypoints:
                raise ValueError(f"part_candidates must hold {self.spec.num_keypoints} arrays, "
                                 f"got {len(self.part_candidates)}")
        bad = [p.keypoints.shape for p in self.people
               if p.keypoints.shape[0] != self.spec.num_keypoints]
        if bad:
            raise ValueError(f"people must have the {self.spec.num_keypoints} keypoints of "
                             f"skeleton '{self.spec.name}', got {bad[0]}")

    def top(self, n: int) -> "Detections":
        """The ``n`` highest-scoring people (in their original order); the rest of the
        fields are shared."""
        keep = np.sort(np.argsort(-self.scores, kind="stable")[:max(int(n), 0)])
        return replace(self, people=[self.people[i] for i in keep])

    def __len__(self) -> int:
        return len(self.people)

    def __iter__(self):
        return iter(self.people)

    @property
    def keypoints(self) -> np.ndarray:
        """``(N, K, 3)`` float32 stack of every person's keypoints."""
        if not self.people:
            return np.zeros((0, self.spec.num_keypoints, 3), np.float32)
        return np.stack([p.keypoints for p in self.people])

    @property
    def scores(self) -> np.ndarray:
        return np.array([p.score for p in self.people], dtype=np.float32)


class Maps(NamedTuple):
    """One stage's network output, the same type for every network family.

    heatmaps: ``(B, K + 1, h, w)`` K keypoints + background, stride 8 (19 for COCO-18).
    pafs: ``(B, 2 L, h, w)`` part affinity fields in the spec's channel layout (CMU's COCO
        layout, 38, for COCO-18). Tensors (torch) or arrays (numpy, exported runtimes).
    """

    heatmaps: Any
    pafs: Any


@dataclass(frozen=True)
class InputNorm:
    """How a checkpoint expects its input: ``x = image[..., order] * scale + offset``.

    ``channel_order`` is "BGR" (OpenCV's and CMU's order) or "RGB". CMU: BGR, 1/256, -0.5.
    """

    channel_order: str = "BGR"
    scale: float = 1.0 / 256.0
    offset: float = -0.5

    def __post_init__(self):
        if self.channel_order not in ("BGR", "RGB"):
            raise ValueError(f"channel_order must be BGR or RGB, got {self.channel_order!r}")
        if not (math.isfinite(self.scale) and self.scale != 0 and math.isfinite(self.offset)):
            raise ValueError(f"normalisation scale and offset must be finite (scale not 0), "
                             f"got {self.scale}, {self.offset}")

    def to_dict(self) -> dict:
        return {"channel_order": self.channel_order, "scale": self.scale,
                "offset": self.offset}
