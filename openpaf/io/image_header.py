"""Image size from the header bytes alone, for every format OpenCV decodes, so an image
declaring absurd sizes is refused before the decoder allocates memory for it.

``header_size(data) -> (width, height)`` or None (not a format listed here, or a header
too broken to read; the decoder then judges it). Formats: PNG, JPEG, BMP, WebP, GIF,
TIFF and BigTIFF (first page, the one OpenCV reads), PNM/PAM/PFM, Sun raster, Radiance
HDR, JPEG 2000 (JP2 and raw codestream), AVIF/HEIF (largest ``ispe``), OpenEXR.
"""
from __future__ import annotations

import re
import struct
from typing import Callable, Optional

Size = Optional[tuple[int, int]]


def _png(d: bytes) -> Size:
    return struct.unpack(">II", d[16:24]) if d[12:16] == b"IHDR" else None


def _bmp(d: bytes) -> Size:
    w, h = struct.unpack("<ii", d[18:26])
    return abs(w), abs(h)


def _webp(d: bytes) -> Size:
    kind = d[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(d[24:27], "little"), 1 + int.from_bytes(d[27:30], "little")
    if kind == b"VP8L":
        b = int.from_bytes(d[21:25], "little")
        return 1 + (b & 0x3FFF), 1 + ((b >> 14) & 0x3FFF)
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", d[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg(d: bytes) -> Size:
    i, n = 2, len(d)
    while i + 9 < n:
        if d[i] != 0xFF:
            return None
        marker = d[i + 1]
        if marker == 0xFF:                                   # fill byte
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", d[i + 5:i + 9])
            return w, h
        else:
            i += 2 + struct.unpack(">H", d[i + 2:i + 4])[0]
    return None


def _gif(d: bytes) -> Size:
    return struct.unpack("<HH", d[6:10])


def _tiff(d: bytes) -> Size:
    """ImageWidth (256) and ImageLength (257) of the first IFD (classic or BigTIFF)."""
    e = "<" if d[:2] == b"II" else ">"
    big = struct.unpack(e + "H", d[2:4])[0] == 43
    if big:
        offset, = struct.unpack(e + "Q", d[8:16])
        count, = struct.unpack(e + "Q", d[offset:offset + 8])
        entries, size, start, value_at = count, 20, offset + 8, 12
    else:
        offset, = struct.unpack(e + "I", d[4:8])
        count, = struct.unpack(e + "H", d[offset:offset + 2])
        entries, size, start, value_at = count, 12, offset + 2, 8
    found = {}
    for k in range(min(entries, 4096)):
        at = start + k * size
        tag, kind = struct.unpack(e + "HH", d[at:at + 4])
        if tag in (256, 257):
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            found[tag], = struct.unpack(e + fmt, d[at + value_at:at + value_at
                                                  + struct.calcsize(fmt)])
    return (found[256], found[257]) if len(found) == 2 else None


_NUMBER = re.compile(rb"(?:\s|#[^\n]*\n)+(\d+)")


def _pnm(d: bytes) -> Size:
    """P1-P6 and PFM (``PF``/``Pf``): width and height after the magic, comments
    allowed; P7 (PAM): the WIDTH and HEIGHT lines."""
    head = d[:4096]
    if head[:2] == b"P7":
        w, h = re.search(rb"\nWIDTH\s+(\d+)", head), re.search(rb"\nHEIGHT\s+(\d+)", head)
        return (int(w.group(1)), int(h.group(1))) if w and h else None
    w = _NUMBER.match(head, 2)
    h = w and _NUMBER.match(head, w.end())
    return (int(w.group(1)), int(h.group(1))) if w and h else None


def _sun_raster(d: bytes) -> Size:
    return struct.unpack(">II", d[4:12])


def _hdr(d: bytes) -> Size:
    """The resolution line after the blank line ending the header: ``-Y H +X W``."""
    m = re.search(rb"\n\n([-+])([XY]) (\d+) ([-+])([XY]) (\d+)", d[:65536])
    if not m:
        return None
    first, second = int(m.group(3)), int(m.group(6))
    return (second, first) if m.group(2) == b"Y" else (first, second)


def _jp2(d: bytes) -> Size:
    """JP2: the ``ihdr`` box (height, width); raw codestream: the SIZ marker."""
    if d[:4] == b"\xff\x4f\xff\x51":
        xs, ys, xo, yo = struct.unpack(">IIII", d[8:24])
        return xs - xo, ys - yo
    at = d.find(b"ihdr", 0, 65536)
    if at < 0:
        return None
    h, w = struct.unpack(">II", d[at + 4:at + 12])
    return w, h


def _isobmff(d: bytes) -> Size:
    """AVIF/HEIF: the largest image spatial extents (``ispe``) box."""
    sizes = [struct.unpack(">II", d[m.end() + 4:m.end() + 12])
             for m in re.finditer(rb"ispe", d[:1 << 20])]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def _exr(d: bytes) -> Size:
    """OpenEXR: the ``dataWindow`` attribute (box2i: xMin, yMin, xMax, yMax)."""
    at = d.find(b"dataWindow\0box2i\0", 8, 65536)
    if at < 0:
        return None
    at += len(b"dataWindow\0box2i\0") + 4
    x0, y0, x1, y1 = struct.unpack("<iiii", d[at:at + 16])
    return x1 - x0 + 1, y1 - y0 + 1


# (test on the first bytes, reader of the header), tried in order.
_FORMATS: tuple[tuple[Callable[[bytes], bool], Callable[[bytes], Size]], ...] = (
    (lambda d: d[:8] == b"\x89PNG\r\n\x1a\n", _png),
    (lambda d: d[:2] == b"\xff\xd8", _jpeg),
    (lambda d: d[:2] == b"BM", _bmp),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda d: d[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff),
    (lambda d: d[:1] == b"P" and d[1:2] in b"1234567Ff" and d[1:2] != b"", _pnm),
    (lambda d: d[:4] == b"\x59\xa6\x6a\x95", _sun_raster),
    (lambda d: d[:10] == b"#?RADIANCE" or d[:6] == b"#?RGBE", _hdr),
    (lambda d: d[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" or d[:4] == b"\xff\x4f\xff\x51", _jp2),
    (lambda d: d[4:8] == b"ftyp", _isobmff),
    (lambda d: d[:4] == b"\x76\x2f\x31\x01", _exr),
)


def header_size(data: bytes) -> Size:
    """``(width, height)`` declared by the image header in ``data``, else None."""
    for test, read in _FORMATS:
        if test(data):
            try:
                return read(data)
            except (struct.error, ValueError, IndexError):
                return None
    return None


__all__ = ["header_size"]
