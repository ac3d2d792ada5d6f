"""Image -> network input: resize to a target height, normalise, pad to the stride.

Also the geometry that maps the network's stride-8 maps back to image pixels, and the
multi-scale map averaging.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .structures import InputNorm

PAD_VALUE = 128  # default pad (grey, 0 after CMU's x/256 - 0.5); variants set their own


@dataclass(frozen=True)
class Geometry:
    """Where one image lands in the network input (padding at the bottom/right only).

    image_size: ``(W, H)`` original pixels. input_size: ``(w, h)`` after resizing.
    padded_size: ``(w, h)`` rounded up to the stride. factor: ``(fx, fy)`` = input / image.
    """

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    padded_size: tuple[int, int]
    stride: int = 8

    @property
    def factor(self) -> tuple[float, float]:
        return (self.input_size[0] / self.image_size[0], self.input_size[1] / self.image_size[1])

    @property
    def map_size(self) -> tuple[int, int]:
        """``(H, W)`` of the stride-``stride`` output maps."""
        return (self.padded_size[1] // self.stride, self.padded_size[0] // self.stride)

    @property
    def map_scale(self) -> tuple[float, float]:
        """Image pixels per map cell, ``(sx, sy)``: what ``decode(scale=...)`` takes."""
        fx, fy = self.factor
        return (self.stride / fx, self.stride / fy)

    def image_to_input(self, xy: np.ndarray) -> np.ndarray:
        """Image pixel coordinates ``(..., 2)`` -> network-input pixel coordinates."""
        f = np.array(self.factor, dtype=np.float32)
        return (np.asarray(xy, dtype=np.float32) + 0.5) * f - 0.5


def geometry(image_size: tuple[int, int], height: int = 368, scale: float = 1.0,
             stride: int = 8, max_side: int | None = None) -> Geometry:
    """Resize so the input is ``height * scale`` pixels high (aspect kept), pad to stride.

    ``max_side`` caps the longer side of the input (very wide panoramas).
    """
    w, h = int(image_size[0]), int(image_size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    f = height * scale / h
    if max_side is not None and max(w, h) * f > max_side:
        f = max_side / max(w, h)
    iw, ih = max(1, round(w * f)), max(1, round(h * f))
    pw, ph = -(-iw // stride) * stride, -(-ih // stride) * stride
    return Geometry((w, h), (iw, ih), (pw, ph), stride)


def prepare(image: np.ndarray, geo: Geometry, norm: InputNorm = InputNorm(),
            pad_value: int = PAD_VALUE) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR image -> ``(3, h, w)`` float32 network input, padded at the
    bottom/right with ``pad_value`` (uint8, before normalisation)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}")
    interp = cv2.INTER_AREA if geo.input_size[1] < image.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(image, geo.input_size, interpolation=interp)
    pw, ph = geo.padded_size
    padded = np.full((ph, pw, 3), pad_value, dtype=np.uint8)
    padded[:resized.shape[0], :resized.shape[1]] = resized
    if norm.channel_order == "RGB":
        padded = padded[:, :, ::-1]
    x = padded.transpose(2, 0, 1).astype(np.float32)
    x *= norm.scale
    x += norm.offset
    return x
