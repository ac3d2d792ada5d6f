"""The one EXIF orientation rule, for every reader of images with annotations.

Images are used upright: JPEGs decode with their EXIF orientation applied (as ``infer``
and every viewer show them). An annotation holds ``width``/``height``; when they are the
decoded size (or its aspect, for a shrunk copy) its coordinates are upright too. When
they are the size of the pixels as stored, before a transposing orientation (5-8), its
coordinates are of the stored pixels and ``orientation_matrix`` maps them upright: they
are rotated, never stretched. The non-transposing orientations (2-4) keep the size, so
their annotations are taken as upright.
"""
from __future__ import annotations

import os
import struct
from typing import Union

import numpy as np

PathLike = Union[str, os.PathLike]
TRANSPOSING = (5, 6, 7, 8)


def _tiff_orientation(t: bytes) -> int:
    """Tag 0x0112 of IFD0 of the TIFF structure ``t`` (an EXIF block), else 1."""
    e = "<" if t[:2] == b"II" else ">"
    offset, = struct.unpack(e + "I", t[4:8])
    count, = struct.unpack(e + "H", t[offset:offset + 2])
    for k in range(count):
        at = offset + 2 + 12 * k
        tag, kind = struct.unpack(e + "HH", t[at:at + 4])
        if tag == 0x0112 and kind == 3:
            value, = struct.unpack(e + "H", t[at + 8:at + 10])
            return value if 1 <= value <= 8 else 1
    return 1


def exif_orientation(head: bytes) -> int:
    """EXIF orientation (1-8) of JPEG bytes ``head`` (its first segments suffice); 1 when
    there is none or the data is not a JPEG (OpenCV applies it to JPEGs only)."""
    if head[:2] != b"\xff\xd8":
        return 1
    i = 2
    try:
        while i + 4 <= len(head) and head[i] == 0xFF:
            marker, size = head[i + 1], struct.unpack(">H", head[i + 2:i + 4])[0]
            if marker == 0xE1 and head[i + 4:i + 10] == b"Exif\0\0":
                return _tiff_orientation(head[i + 10:i + 2 + size])
            if marker == 0xDA:                                # image data: no EXIF
                return 1
            i += 2 + size
    except struct.error:
        pass
    return 1


def read_orientation(path: PathLike) -> int:
    """``exif_orientation`` of the file at ``path`` (reads its first 128 KiB)."""
    try:
        with open(path, "rb") as fh:
            return exif_orientation(fh.read(1 << 17))
    except OSError:
        return 1


def orientation_matrix(orientation: int, size: tuple[int, int]) -> np.ndarray:
    """3x3 affine from stored pixel coordinates (pixel centres) of an image of stored
    ``size`` ``(W, H)`` to upright ones, as OpenCV orients EXIF ``orientation``."""
    w, h = size[0] - 1, size[1] - 1
    rows = {1: ((1, 0, 0), (0, 1, 0)), 2: ((-1, 0, w), (0, 1, 0)),
            3: ((-1, 0, w), (0, -1, h)), 4: ((1, 0, 0), (0, -1, h)),
            5: ((0, 1, 0), (1, 0, 0)), 6: ((0, -1, h), (1, 0, 0)),
            7: ((0, -1, h), (-1, 0, w)), 8: ((0, 1, 0), (-1, 0, w))}[orientation]
    return np.array([*rows, (0, 0, 1)], np.float64)


def annotation_frame(decoded: tuple[int, int], annotated: tuple[int, int],
                     orientation: int) -> str:
    """Which pixels an annotation of size ``annotated`` ``(W, H)`` refers to, for an image
    decoded upright at ``decoded`` ``(W, H)`` (maybe shrunk): ``"upright"`` (same aspect),
    ``"stored"`` (the stored pixels of a transposing orientation) or ``"other"``."""
    (w, h), (aw, ah) = decoded, annotated

    def same_aspect(a, b):
        return abs(a[0] * b[1] - a[1] * b[0]) <= 0.02 * a[0] * b[1]
    if same_aspect((w, h), (aw, ah)):
        return "upright"
    if orientation in TRANSPOSING and same_aspect((w, h), (ah, aw)):
        return "stored"
    return "other"


__all__ = ["annotation_frame", "exif_orientation", "orientation_matrix", "read_orientation"]
