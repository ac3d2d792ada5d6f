"""Training augmentation: one affine matrix per sample for image, mask and keypoints.

The matrix maps source-image pixels to network-input pixels (pixel centres at integers,
as in ``cv2.warpAffine`` and :mod:`openpaf.data.targets`)::

    M = Flip · T(input centre + jitter) · R(angle) · S(scale) · T(-person centre)

``scale`` brings the main person's size (the longer side of its box) to ``target_size *
input_size``, times a random factor in ``scale_range``. A horizontal flip mirrors x
(``x' = size - 1 - x``) *and* renames left/right keypoints via the spec's ``flip``, so the
person's right wrist stays labelled ``right_wrist`` wherever it lands. Every random draw
comes from the ``np.random.Generator`` passed in, in a fixed order: same generator state,
same sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..preprocess import PAD_VALUE
from ..skeleton import OPENPOSE_COCO18


@dataclass(frozen=True)
class AugmentParams:
    """input_size: square crop side, input pixels (multiple of the stride).
    target_size: main person's box side as a fraction of ``input_size`` before jitter.
    scale_range: random factor on that scale (CMU: 0.5 .. 1.1).
    rotate: max |rotation|, degrees. centre_jitter: max shift of the person centre, input px.
    flip: probability of a horizontal flip.
    brightness/contrast/saturation: max relative change (0 = off)."""

    input_size: int = 368
    target_size: float = 0.6
    scale_range: tuple[float, float] = (0.5, 1.1)
    rotate: float = 30.0
    centre_jitter: float = 40.0
    flip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25

    def __post_init__(self):
        object.__setattr__(self, "scale_range", tuple(float(s) for s in self.scale_range))
        if self.input_size <= 0:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")

    @classmethod
    def none(cls, input_size: int = 368, target_size: float = 0.6) -> "AugmentParams":
        """No randomness: fixed scale, no rotation, jitter, flip or colour change."""
        return cls(input_size=input_size, target_size=target_size, scale_range=(1.0, 1.0),
                   rotate=0.0, centre_jitter=0.0, flip=0.0, brightness=0.0, contrast=0.0,
                   saturation=0.0)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def random_matrix(centre: tuple[float, float], person_size: float, params: AugmentParams,
                  rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """``(3, 3)`` float64 source -> input matrix and whether it flips.

    centre: main person's centre ``(x, y)`` in source pixels; person_size: its size in
    source pixels (> 0).
    """
    lo, hi = params.scale_range
    scale = params.target_size * params.input_size / max(float(person_size), 1.0)
    scale *= rng.uniform(lo, hi)
    angle = math.radians(rng.uniform(-params.rotate, params.rotate))
    jitter = rng.uniform(-params.centre_jitter, params.centre_jitter, size=2)
    flip = bool(rng.random() < params.flip)
    c = (params.input_size - 1) / 2.0
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]], np.float64)
    rot_scale = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], np.float64)
    place = np.array([[1, 0, c + jitter[0]], [0, 1, c + jitter[1]], [0, 0, 1]], np.float64)
    m = place @ rot_scale @ to_origin
    if flip:
        mirror = np.array([[-1, 0, params.input_size - 1], [0, 1, 0], [0, 0, 1]], np.float64)
        m = mirror @ m
    return m, flip


def transform_points(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a ``(3, 3)`` or ``(2, 3)`` affine matrix to points ``(..., 2)``."""
    xy = np.asarray(xy, np.float64)
    m = np.asarray(matrix, np.float64)[:2]
    return xy @ m[:, :2].T + m[:, 2]


def transform_keypoints(matrix: np.ndarray, keypoints: np.ndarray, flip: bool,
                        flip_map: tuple[int, ...] = OPENPOSE_COCO18.flip) -> np.ndarray:
    """``(N, K, 3)`` keypoints through ``matrix``; if ``flip``, left/right are swapped
    (``out[:, i] = in[:, flip_map[i]]``, the spec's ``flip``). Unlabelled keypoints (v=0)
    stay zero."""
    kps = np.array(keypoints, np.float32, copy=True)
    labelled = kps[..., 2] > 0
    kps[..., :2] = np.where(labelled[..., None], transform_points(matrix, kps[..., :2]), 0.0)
    if flip:
        kps = kps[:, list(flip_map)]
    return kps


def warp(image: np.ndarray, matrix: np.ndarray, size: int, border, linear: bool = True):
    """``cv2.warpAffine`` onto a ``size x size`` canvas filled with ``border`` outside."""
    flags = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    return cv2.warpAffine(image, np.asarray(matrix, np.float64)[:2], (size, size), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def colour_jitter(image: np.ndarray, params: AugmentParams,
                  rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation of a ``(H, W, 3)`` uint8 BGR image.

    Always draws three numbers (so later draws do not depend on the settings).
    """
    b, c, s = rng.uniform(-1.0, 1.0, size=3)
    b, c, s = 1 + b * params.brightness, 1 + c * params.contrast, 1 + s * params.saturation
    if b == c == s == 1.0:
        return image
    x = image.astype(np.float32) * b
    grey = x @ np.array([0.114, 0.587, 0.299], np.float32)       # BGR luma, (H, W)
    x = grey[..., None] + (x - grey[..., None]) * s
    x = (x - grey.mean()) * c + grey.mean()
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def augment(image: np.ndarray, keypoints: np.ndarray, mask: np.ndarray | None,
            centre: tuple[float, float], person_size: float, params: AugmentParams,
            rng: np.random.Generator, mask_matrix: np.ndarray | None = None,
            flip_map: tuple[int, ...] = OPENPOSE_COCO18.flip):
    """Augment one sample.

    image: ``(H, W, 3)`` uint8 BGR. keypoints: ``(N, K, 3)`` in image pixels (``flip_map``:
    the spec's ``flip``). mask:
    ``(h, w)`` float32 ignore mask (1 = train) or None; ``mask_matrix`` (3, 3) maps the
    mask's pixels to the image's (default identity, for masks at another resolution).
    Returns ``(image (S, S, 3) uint8, keypoints (N, K, 3) input px, mask (S, S) float32,
    matrix (3, 3) image -> input, flipped)`` with ``S = params.input_size``.
    """
    s = params.input_size
    matrix, flipped = random_matrix(centre, person_size, params, rng)
    image = colour_jitter(image, params, rng)
    out = warp(image, matrix, s, (PAD_VALUE,) * 3)
    kps = transform_keypoints(matrix, keypoints, flipped, flip_map)
    if mask is None:
        out_mask = np.ones((s, s), np.float32)
    else:
        mm = matrix if mask_matrix is None else matrix @ mask_matrix
        out_mask = warp(mask.astype(np.float32), mm, s, 1.0)
    return out, kps, out_mask, matrix, flipped
