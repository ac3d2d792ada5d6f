"""Draw detected skeletons on images, and write rendered frames to an mp4 file."""
from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from ..skeleton import OPENPOSE_COCO18, KeypointSpec
from ..structures import Detections, Person
from .atomic import AtomicPath
from .video import verify_video

# OpenPose's COCO render colours (BGR, one per keypoint); a limb takes the colour of its
# end keypoint, as in OpenPose. Other skeletons draw with their spec's colours.
KEYPOINT_COLOURS: tuple[tuple[int, int, int], ...] = OPENPOSE_COCO18.colors
LIMB_COLOURS: tuple[tuple[int, int, int], ...] = OPENPOSE_COCO18.limb_colors
# Id labels go above the highest of these (the head), lifted by a fraction of neck-nose.
_HEAD_NAMES = ("nose", "right_eye", "left_eye", "right_ear", "left_ear", "neck", "head_top",
               "head")


def _head(spec: KeypointSpec) -> tuple[tuple[int, ...], int | None, int | None]:
    """(head point indices, nose, neck) of ``spec``, by name (None where it has none)."""
    def index(n):
        return spec.keypoints.index(n) if n in spec.keypoints else None
    return (tuple(i for i in map(index, _HEAD_NAMES) if i is not None), index("nose"),
            index("neck"))


DEFAULT_VIDEO_FPS = 30.0


def id_colour(person_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour for a track id (golden-ratio hue steps)."""
    hue = (person_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _auto_thickness(person: Person, width: int, height: int) -> int:
    """OpenPose's rule: sqrt(image area) / 75, scaled down for people that are small
    relative to the image, at least 2 pixels."""
    x0, y0, x1, y1 = person.bbox()
    ratio = min(1.0, max((x1 - x0) / max(width, 1), (y1 - y0) / max(height, 1)))
    return max(int(round(np.sqrt(width * height) / 75.0 * ratio)), 2)


BACKGROUNDS = ("image", "black", "white")


@dataclass(frozen=True)
class RenderStyle:
    """How skeletons are drawn (the defaults draw as before these options existed).

    line_width: limb width in pixels; None: OpenPose's rule (image and person size).
    point_radius: keypoint dot radius in pixels; None: matched to the line width.
    background: "image" (draw on the frame), "black" or "white" (skeletons only).
    draw_ids: write each tracked person's id (``id >= 0``) beside its head.
    alpha: opacity of the skeleton over the background, in (0, 1].
    """

    line_width: Optional[int] = None
    point_radius: Optional[int] = None
    background: str = "image"
    draw_ids: bool = False
    alpha: float = 1.0

    def __post_init__(self):
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, "
                             f"got {self.background!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        for name in ("line_width", "point_radius"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 pixel, got {value}")


def _background(image: np.ndarray, kind: str) -> np.ndarray:
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if kind != "image":
        out[...] = 0 if kind == "black" else 255
    return out


def render(image: np.ndarray, detections: Detections, *, thickness: Optional[int] = None,
           colour_by_id: bool = False, threshold: float = 0.0,
           style: Optional[RenderStyle] = None) -> np.ndarray:
    """Draw every person of ``detections`` on a copy of ``image``.

    image: ``(H, W, 3)`` uint8 BGR (not modified).
    thickness: limb line width in pixels (``style.line_width`` wins when set); None =
        OpenPose's rule (image size and person size based, at least 2 px). Keypoint dots
        get a matching radius unless ``style.point_radius`` is set.
    colour_by_id: colour each tracked person (``id >= 0``) by a stable colour from its id
        and write the id next to the head; untracked people keep the per-limb colours.
    threshold: draw only keypoints whose confidence exceeds this, and limbs whose two ends
        both do (OpenPose's ``--render_threshold``); 0 draws every found keypoint.
    style: background, sizes, id labels and opacity (``RenderStyle``; None: defaults).
    Returns the rendered ``(H, W, 3)`` uint8 BGR copy.
    """
    style = style or RenderStyle()
    base = _background(image, style.background)
    out = base.copy()
    thickness = style.line_width if style.line_width is not None else thickness
    for person in detections.people:
        _draw_person(out, person, detections.spec, thickness, colour_by_id, threshold, style)
    if style.alpha < 1.0:
        drawn = (out != base).any(axis=2)
        mixed = cv2.addWeighted(out, style.alpha, base, 1.0 - style.alpha, 0.0)
        out[drawn] = mixed[drawn]
    return out


def _draw_person(out: np.ndarray, person: Person, spec: KeypointSpec,
                 thickness: Optional[int], colour_by_id: bool, threshold: float,
                 style: RenderStyle) -> None:
    """Limbs, keypoints and (id colouring or ``draw_ids``) the id label of one person."""
    h, w = out.shape[:2]
    kps = person.keypoints
    found = (kps[:, 2] > max(threshold, 0.0)) & np.isfinite(kps).all(axis=1)
    if not found.any():
        return
    t = thickness if thickness is not None else _auto_thickness(person, w, h)
    line = max(1, int(round(t if thickness is not None else t * 0.75)))
    radius = style.point_radius or max(1, int(round(t * 0.6)))
    own = id_colour(person.id) if colour_by_id and person.id >= 0 else None
    pts = np.rint(np.where(found[:, None], kps[:, :2], 0)).astype(np.int64)
    pts = np.clip(pts, -10 * max(w, h), 10 * max(w, h))  # keep cv2 within int range
    limb_colours = spec.limb_colors
    for k in spec.render_limbs:
        a, b = spec.limbs[k]
        if found[a] and found[b]:
            cv2.line(out, tuple(map(int, pts[a])), tuple(map(int, pts[b])),
                     own or limb_colours[k], line, cv2.LINE_AA)
    for i in np.flatnonzero(found):
        cv2.circle(out, tuple(map(int, pts[i])), radius, own or spec.colors[i], -1,
                   cv2.LINE_AA)
    if person.id >= 0 and (own is not None or style.draw_ids):
        _draw_id(out, person.id, pts, found, radius, t, own or (255, 255, 255), spec)


def _draw_id(out: np.ndarray, person_id: int, pts: np.ndarray, found: np.ndarray,
             radius: int, t: int, colour, spec: KeypointSpec) -> None:
    """The id above the person's head (outlined in black)."""
    head_points, nose, neck = _head(spec)
    head = [i for i in head_points if found[i]] or list(np.flatnonzero(found))
    top = min(head, key=lambda i: pts[i, 1])
    lift = 2 * radius + 4
    if nose is not None and neck is not None and found[nose] and found[neck]:
        lift = max(lift, int(0.6 * np.hypot(*(pts[neck] - pts[nose]))))
    scale = max(0.4, t / 5.0)
    text = str(person_id)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(pts[top, 0]) - tw // 2
    y = max(th + 2, int(pts[top, 1]) - lift)
    stroke = max(1, int(round(scale * 2)))
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                stroke + 2, cv2.LINE_AA)
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, stroke,
                cv2.LINE_AA)


class VideoSink:
    """Write BGR frames to an mp4 (``mp4v``) with ``cv2.VideoWriter``.

    The file is written under a temporary name in the same folder and moved onto ``path``
    by ``close()``, so an existing video is only replaced by a finished one that reads back
    with every frame (``io.video.verify_video``; else ``close()`` raises ``OSError``). The
    frame size is fixed by the first frame (later frames of another size are resized to
    it). A sink that received no frame writes nothing. ``fps`` None or <= 0 means 30.
    """

    def __init__(self, path: Union[str, os.PathLike], fps: Optional[float] = None,
                 fourcc: str = "mp4v"):
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_VIDEO_FPS
        self.fourcc = fourcc
        self.frames = 0
        self._size: Optional[tuple[int, int]] = None
        self._writer = None
        self._tmp: Optional[AtomicPath] = None

    def write(self, frame: np.ndarray, t: Optional[float] = None) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame (``t`` ignored: mp4v plays at fps)."""
        if self._writer is None:
            h, w = frame.shape[:2]
            self._size = (w, h)
            self._tmp = AtomicPath(self.path)
            self._writer = cv2.VideoWriter(str(self._tmp.tmp),
                                           cv2.VideoWriter_fourcc(*self.fourcc),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                self._tmp.discard()
                raise OSError(f"cannot open a {self.fourcc} video writer for {self.path}")
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frames += 1

    def close(self) -> Optional[Path]:
        """Finish the file; returns its path, or None when no frame was written."""
        if self._writer is None:
            return None
        writer, self._writer = self._writer, None
        try:
            writer.release()  # (an encoder may fail here, e.g. on a full disk)
            verify_video(self._tmp.tmp, self.frames)  # (an earlier file is kept if not)
        except BaseException:
            self._tmp.discard()
            raise
        return self._tmp.commit()

    def abort(self) -> None:
        """Stop without producing (or replacing) the output file."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.release()
            except Exception:  # (the file is dropped anyway)
                pass
            finally:
                self._tmp.discard()

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()  # also on errors: the frames written so far are still a valid video
        return False


__all__ = ["render", "RenderStyle", "BACKGROUNDS", "VideoSink", "id_colour", "KEYPOINT_COLOURS",
           "LIMB_COLOURS"]
