"""Issue 21 item 15: every format's header size is read before decoding, so a small file
declaring a huge image (a 30000x30000 TIFF of 8.5 MB used 3.9 GB) is refused at once."""
import struct

import cv2
import numpy as np
import pytest

from openpaf.io.image_header import header_size
from openpaf.io.images import ImageLoadError, decode_image

FLOAT_FORMATS = (".pfm", ".hdr")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".gif", ".tiff", ".ppm",
                                 ".pgm", ".pam", ".pfm", ".ras", ".hdr", ".avif"])
def test_header_size_is_the_decoded_size(ext):
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    if ext == ".pgm":
        img = img[:, :, 0]
    try:
        ok, buf = cv2.imencode(ext, img.astype(np.float32) / 255 if ext in FLOAT_FORMATS
                               else img)
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip(f"this OpenCV build cannot write {ext}")
    data = buf.tobytes()
    assert header_size(data) == (53, 37), ext
    assert decode_image(data).shape == (37, 53, 3)


def _tiff(w, h, big_endian=False):
    e, magic = (">", b"MM\0*") if big_endian else ("<", b"II*\0")
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h),
               (279, 4, 1, w * h)]
    ifd = struct.pack(e + "H", len(entries)) + b"".join(
        struct.pack(e + "HHI" + ("HH" if kind == 3 else "I"), tag, kind, n,
                    *((v, 0) if kind == 3 else (v,))) for tag, kind, n, v in entries)
    return magic + struct.pack(e + "I", 8 + 64) + b"\0" * 64 + ifd + struct.pack(e + "I", 0)


HUGE = {
    "tiff": _tiff(30000, 30000),
    "tiff-be": _tiff(30000, 30000, big_endian=True),
    "pgm": b"P5\n# a comment\n30000 30000\n255\n" + b"\0" * 64,
    "ppm": b"P6 30000\n30000 255\n" + b"\0" * 64,
    "pam": b"P7\nWIDTH 30000\nHEIGHT 30000\nDEPTH 3\nMAXVAL 255\nENDHDR\n" + b"\0" * 64,
    "pfm": b"PF\n30000 30000\n-1\n" + b"\0" * 64,
    "gif": b"GIF89a" + struct.pack("<HH", 30000, 30000) + b"\0" * 64,
    "ras": b"\x59\xa6\x6a\x95" + struct.pack(">IIII", 30000, 30000, 24, 0) + b"\0" * 64,
    "hdr": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n" + b"\0" * 64,
}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_a_huge_declared_size_is_refused_before_decoding(name):
    assert header_size(HUGE[name]) == (30000, 30000), name
    with pytest.raises(ImageLoadError, match="image too large"):
        decode_image(HUGE[name])
