"""Still images: decoding any file OpenCV reads into ``(H, W, 3)`` uint8 BGR, with the
checks that turn a bad file into a one-line ``ImageLoadError`` (missing, empty, not an
image, truncated JPEG, a header of any format declaring absurd sizes: ``image_header``)."""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Optional, Union

import cv2
import numpy as np

from ..errors import one_line
from .image_header import header_size

# Images declaring more pixels than this are refused before decoding (a 20000 x 20000
# header would otherwise make the decoder allocate gigabytes).
MAX_IMAGE_PIXELS = 100_000_000
# Held while file descriptor 2 is silenced around a decode call (``quiet_stderr``). A
# thread that must not lose what it writes to stderr (e.g. one-line error reports while a
# prefetch thread decodes) takes it around the write.
STDERR_LOCK = threading.RLock()

try:  # OpenCV's own log lines ("[ WARN:0@...] ...") would break one-line error reports.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass


class ImageLoadError(Exception):
    """An image file that cannot be used; ``str(err)`` is a one-line reason."""


@contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (libpng/libjpeg print straight to it, bypassing OpenCV's
    log level). Process-wide while active, so only wrapped around single decode calls, and
    done holding ``STDERR_LOCK`` (writers to stderr in other threads take it too)."""
    with STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all
            yield
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def to_bgr_uint8(img: np.ndarray) -> np.ndarray:
    """Any decoded array -> ``(H, W, 3)`` uint8 BGR, C-contiguous (see ``load_image``)."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ImageLoadError(f"unsupported image layout {img.shape}")
    # Depth first, so alpha compositing happens in [0, 1] floats.
    if img.dtype == np.uint8:
        f = None
    elif img.dtype == np.uint16:
        f = img.astype(np.float32) / 65535.0
    elif img.dtype in (np.int8, np.int16, np.int32):
        # Signed integer TIFFs: assume the non-negative part of the type's range.
        f = np.clip(img.astype(np.float32) / float(np.iinfo(img.dtype).max), 0.0, 1.0)
    elif np.issubdtype(img.dtype, np.floating):
        f = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        if f.size and float(f.max()) > 1.0:  # looks like 0..255 data, not 0..1
            f = f / 255.0
        f = np.clip(f, 0.0, 1.0)
    else:
        raise ImageLoadError(f"unsupported pixel type {img.dtype}")
    channels = img.shape[2]
    if channels in (2, 4):  # colour + alpha: composite on white
        if f is None:
            f = img.astype(np.float32) / 255.0
        alpha = f[:, :, -1:]
        f = f[:, :, :-1] * alpha + (1.0 - alpha)
    if f is not None:
        img = np.rint(f * 255.0).astype(np.uint8)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> ``(H, W, 3)`` uint8 BGR. Raises ``ImageLoadError``.

    See ``load_image`` for the conversions applied.
    """
    if len(data) == 0:
        raise ImageLoadError("empty file")
    size = header_size(data)
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            raise ImageLoadError(f"invalid image size {w}x{h} in header")
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageLoadError(f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP, "
                                 f"limit {MAX_IMAGE_PIXELS / 1e6:.0f} MP)")
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if is_jpeg and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageLoadError("truncated JPEG (no end-of-image marker)")
    # JPEGs are 8-bit without alpha: IMREAD_COLOR also applies the EXIF orientation.
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        with quiet_stderr():
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        msg = str(e).lower()
        if "pixels" in msg or "limit" in msg or "too" in msg:
            raise ImageLoadError("image too large for the decoder") from None
        raise ImageLoadError("not an image (cannot decode)") from None
    if img is None or img.size == 0:
        raise ImageLoadError("not an image (cannot decode)")
    return to_bgr_uint8(img)


def load_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 BGR (C-contiguous).

    Raises ``ImageLoadError`` with a one-line reason for: a missing/unreadable file, an
    empty file, bytes no decoder accepts, a truncated JPEG (no ``FFD9`` end marker after
    stripping trailing zero bytes), or a header declaring more than ``MAX_IMAGE_PIXELS``.

    Conversions: bytes are read by Python (so non-ASCII paths work) and decoded with
    ``cv2.imdecode`` (JPEG: EXIF orientation applied); grayscale -> BGR by repetition;
    an alpha channel is composited onto a white background (transparent = white);
    16-bit -> 8-bit by ``round(v / 257)``; float images are taken as 0..1 (or 0..255 when
    their maximum exceeds 1), clipped and scaled to 0..255.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageLoadError("no such file") from None
    except IsADirectoryError:
        raise ImageLoadError("is a directory") from None
    except OSError as e:
        raise ImageLoadError(one_line(f"cannot read file ({e.strerror or e})", 200)) from None
    return decode_image(data)


__all__ = ["ImageLoadError", "MAX_IMAGE_PIXELS", "STDERR_LOCK", "decode_image", "header_size",
           "load_image", "quiet_stderr", "to_bgr_uint8"]
