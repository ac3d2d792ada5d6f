"""The on-screen window (``--show``): rendered frames as they are made, ``q``/Esc to stop.

``check_display()`` runs before a run starts and raises ``DisplayError`` (one line) when
no window can open: no ``DISPLAY``/``WAYLAND_DISPLAY`` on Linux, or an OpenCV built
without a GUI (``opencv-python-headless``). ``Window.show(image)`` returns False once
the user pressed ``q`` or Esc. The two OpenCV calls go through ``_imshow``/``_wait_key``
so tests can fake them.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

TITLE = "openpaf"
STOP_KEYS = (ord("q"), ord("Q"), 27)  # q, Q, Esc


class DisplayError(RuntimeError):
    """No window can be shown here (one-line reason)."""


def _gui_backend() -> bool:
    """Whether this OpenCV has a GUI backend (GTK, Qt, Win32, Cocoa...)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("", "NONE")
    return True


def check_display() -> None:
    """Raise ``DisplayError`` unless ``Window`` can open (see module doc)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError("--show needs a display; DISPLAY is not set")
    if not _gui_backend():
        raise DisplayError("--show needs OpenCV with a GUI (pip install opencv-python; "
                           "this one is opencv-python-headless)")


def _imshow(title: str, image: np.ndarray) -> None:
    cv2.imshow(title, image)


def _wait_key(ms: int) -> int:
    return cv2.waitKey(ms)


def _close(title: str) -> None:
    try:
        cv2.destroyWindow(title)
    except cv2.error:
        pass


class Window:
    """One window showing BGR frames; ``show`` -> False once q/Esc was pressed."""

    def __init__(self, title: str = TITLE):
        self.title, self.shown, self.open = title, 0, False

    def show(self, image: np.ndarray) -> bool:
        _imshow(self.title, image)
        self.open, self.shown = True, self.shown + 1
        return (_wait_key(1) & 0xFF) not in STOP_KEYS

    def close(self) -> None:
        if self.open:
            _close(self.title)
            self.open = False


__all__ = ["DisplayError", "Window", "check_display"]
