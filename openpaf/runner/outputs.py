"""What a run writes across frames: per stream (``Stream``: tracker, rendered video,
JSONL) and for the whole run (``DetectionFiles``: COCO results, the run's JSONL, the
images JSONL of frames outside streams).

An earlier file is replaced only by a complete one: a JSONL file that exists is written
beside it (``ReplacingJsonl``) and moved over it when its stream or run ends by itself;
an interrupted run leaves the earlier COCO results, JSONL and mp4 as they were."""
from __future__ import annotations

import math
import sys
from typing import Callable, Optional

from pathlib import Path

from ..errors import error_reason
from ..io.atomic import AtomicPath
from ..io.frames import Frame
from ..io.render import DEFAULT_VIDEO_FPS, VideoSink
from ..io.writers import CocoResultsWriter, JsonlWriter
from ..structures import Detections
from ..track import Tracker
from .layout import OutputLayout
from .options import InferOptions


class ReplacingJsonl:
    """A ``JsonlWriter`` on ``path``: in place when the file is new (it can be followed
    live), else beside it, replacing it at ``close(complete=True)`` only; ``"-"`` is
    standard output."""

    def __init__(self, path, fmt):
        self.path = Path(path)
        stdout = str(path) == "-"
        self.tmp = AtomicPath(self.path) if self.path.exists() and not stdout else None
        self.writer = JsonlWriter(sys.stdout if stdout else
                                  self.path if self.tmp is None else self.tmp.tmp, fmt=fmt)

    def write(self, *args, **kwargs) -> None:
        self.writer.write(*args, **kwargs)

    def close(self, complete: bool = True) -> bool:
        """Finish the file; False when an earlier file was kept (``complete`` False)."""
        self.writer.close()
        if self.tmp is None:
            return True
        if complete:
            self.tmp.commit()
        else:
            self.tmp.discard()
        return complete


class Stream:
    """Per-stream state: tracker, rendered video, JSONL file, counters."""

    def __init__(self, name: str, source: str, kind: str, tracker: Optional[Tracker]):
        self.name, self.source, self.kind, self.tracker = name, source, kind, tracker
        self.sink: Optional[VideoSink] = None
        self.jsonl: Optional[ReplacingJsonl] = None
        self.frames = self.people = self.errors = self.dropped = 0
        self.gaps: list[list[int]] = []  # [first, last] of each unreadable stretch
        self.latencies: list[float] = []  # ms, capture -> people (live/real-time frames)
        self.info: Optional[dict] = None  # live stream state (``StreamEnd.info``)
        self._last_time: Optional[float] = None

    def clock(self, frame: Frame) -> Optional[float]:
        """Strictly increasing timestamp for the tracker's smoother: the frame's time,
        or one frame period after the previous one when missing or not increasing.
        None for still-image sequences (the tracker then counts frames)."""
        if frame.video is None:
            return None
        t, last = frame.time, self._last_time
        step = 1.0 / (frame.fps or DEFAULT_VIDEO_FPS)
        if t is None or not math.isfinite(t) or (last is not None and t <= last):
            t = 0.0 if last is None else last + step
        self._last_time = t
        return t


class DetectionFiles:
    """The files that collect every frame's detections (each optional, per ``options``)."""

    def __init__(self, options: InferOptions, layout: OutputLayout):
        self.o, self.layout = options, layout
        self.coco = CocoResultsWriter(options.sharded(options.coco_json)) \
            if options.coco_json else None
        self.jsonl = ReplacingJsonl(options.sharded(options.jsonl), options.openpose) \
            if options.jsonl else None
        self.images_jsonl: Optional[ReplacingJsonl] = None

    @property
    def wanted(self) -> bool:
        """True when any of them is written (skipped frames are then re-read)."""
        return self.coco is not None or self.jsonl is not None or self.o.stream_jsonl

    def add(self, det: Detections, name: str, index: int, t: Optional[float],
            stream: Optional[Stream], extra: Optional[dict] = None) -> None:
        """Add frame ``name`` (``index`` in its stream, at time ``t``) to each file;
        ``extra``: more fields for its JSONL lines (capture time, latency)."""
        if self.coco is not None:
            self.coco.add(det, name)
        if self.jsonl is not None:
            self.jsonl.write(index, t, det, name=name, extra=extra)
        if self.o.stream_jsonl:
            if stream is not None:
                if stream.jsonl is None:
                    stream.jsonl = ReplacingJsonl(self.layout.stream_jsonl_path(stream.name),
                                                  self.o.openpose)
                stream.jsonl.write(index, t, det, name=name, extra=extra)
            else:
                if self.images_jsonl is None:
                    self.images_jsonl = ReplacingJsonl(self.layout.images_jsonl_path(),
                                                       self.o.openpose)
                self.images_jsonl.write(index, t, det, name=name)

    def close(self, fail: Callable[[str, str], None], complete: bool = True) -> list[Path]:
        """Finish every file (an incomplete run keeps the earlier ones: returned); a COCO
        file that cannot be written is reported to ``fail``."""
        kept = [w.path for w in (self.jsonl, self.images_jsonl)
                if w is not None and not w.close(complete)]
        if self.coco is not None and not complete and self.coco.path.exists():
            kept.append(self.coco.path)
        elif self.coco is not None:
            try:
                self.coco.close()
            except Exception as e:
                fail(str(self.coco.path), f"cannot write COCO results: {error_reason(e)}")
        return kept
