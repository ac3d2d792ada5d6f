"""Network-stream and capture-device input specs: recognising them, masking the
credentials in them, and readable output stems for them.

``mask_credentials`` is the one place that hides ``user:pass@`` of a URL; every spec a
run writes anywhere (manifest, logs, file names) goes through it.
"""
from __future__ import annotations

import re

# URL schemes read as live network streams (FFmpeg protocols).
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
_URL = re.compile(r"^(%s)://" % "|".join(STREAM_SCHEMES), re.IGNORECASE)
_DEVICE = re.compile(r"^/dev/video\d+$")
# scheme://userinfo@ anywhere in a text (userinfo: no '/', '@' or whitespace)
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
MASK = "***"
MAX_STEM = 80


def is_stream_url(spec: str) -> bool:
    """True for ``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``... specs."""
    return bool(_URL.match(str(spec)))


def is_capture_device(spec: str) -> bool:
    """True for a V4L2 capture device path ``/dev/videoN``."""
    return bool(_DEVICE.match(str(spec)))


def is_live_spec(spec: str) -> bool:
    """A network stream or a capture device (not a file)."""
    return is_stream_url(spec) or is_capture_device(spec)


def mask_credentials(text: str) -> str:
    """``text`` with the ``user:pass@`` of every URL in it replaced by ``***@``."""
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", str(text))


def stream_stem(spec: str) -> str:
    """A readable file stem for a stream spec, without credentials: host, port, path and
    query as ``[A-Za-z0-9._-]`` runs joined by ``_`` (``rtsp://u:p@cam:8554/live/1`` ->
    ``cam_8554_live_1``; ``/dev/video0`` -> ``video0``), at most ``MAX_STEM`` chars."""
    spec = str(spec)
    if is_capture_device(spec):
        return spec.rsplit("/", 1)[-1]
    rest = _URL.sub("", spec)
    rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
    stem = "_".join(p for p in re.split(r"[^A-Za-z0-9.-]+", rest) if p).strip(".")
    return stem[:MAX_STEM].rstrip("._-") or "stream"


__all__ = ["STREAM_SCHEMES", "is_stream_url", "is_capture_device", "is_live_spec",
           "mask_credentials", "stream_stem"]
