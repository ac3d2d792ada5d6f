"""The inference run loop: inputs -> predict -> OpenPose JSON / renders / COCO results.

Library code (no click): ``cli/infer.py`` only parses options into ``InferOptions``.
``predict`` is any callable ``image (H, W, 3) uint8 BGR -> Detections``, so the loop can
be driven by ``openpaf.predict.Predictor`` or by a stand-in in tests.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from .io.render import VideoSink, render
from .io.sources import Frame, InputError, count_inputs, iter_frames
from .io.writers import (CocoResultsWriter, JsonlWriter, atomic_write_image,
                         read_openpose_json, write_openpose_json)
from .structures import Detections

Predict = Callable[[np.ndarray], Detections]

# Exit codes of a run (also used by the CLI).
EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class InferOptions:
    """What a run writes, and which frames it reads.

    output: folder for ``<name>_keypoints.json``, ``<name>_rendered.jpg`` and
        ``<video stem>_rendered.mp4`` (created when something is written into it).
    write_json: write OpenPose JSON per frame.
    write_images: write a rendered jpg per still image.
    write_video: write one rendered mp4 per video/webcam stream (at the source fps).
    coco_json: also write all detections as one COCO keypoint-results JSON list here.
    jsonl: also stream one JSON line per frame here (see ``io.writers.JsonlWriter``).
    skip_existing: skip frames whose ``<name>_keypoints.json`` exists (or, without JSON
        output, whose ``<name>_rendered.jpg`` exists). Skipped video frames are still read
        and re-rendered from their JSON so the mp4 stays complete; skipped frames' JSON
        feeds ``coco_json``/``jsonl`` (person score = mean keypoint confidence there, as
        OpenPose JSON stores no score).
    every: process every N-th frame of videos and every N-th image of folders/globs.
    max_frames: stop after this many frames in total.
    recursive: descend into sub-folders of folder inputs.
    colour_by_id: render tracked people in per-id colours with their id.
    """

    output: Path = Path("openpaf_out")
    write_json: bool = True
    write_images: bool = True
    write_video: bool = True
    coco_json: Optional[Path] = None
    jsonl: Optional[Path] = None
    skip_existing: bool = False
    every: int = 1
    max_frames: Optional[int] = None
    recursive: bool = False
    colour_by_id: bool = False

    def __post_init__(self):
        self.output = Path(self.output)
        self.coco_json = None if self.coco_json is None else Path(self.coco_json)
        self.jsonl = None if self.jsonl is None else Path(self.jsonl)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {self.max_frames}")


@dataclass
class RunSummary:
    """Counts of one run. ``failed`` holds ``(source, one-line reason)`` per failure."""

    processed: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    people: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    output: Optional[Path] = None

    @property
    def exit_code(self) -> int:
        """0 all good; 2 some inputs failed but others were done; 1 every input failed
        (nothing processed or skipped); 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if not self.failed:
            return EXIT_OK
        return EXIT_SOME_FAILED if self.processed + self.skipped_existing else EXIT_FATAL

    def line(self) -> str:
        """One human-readable summary line."""
        rate = f" ({self.processed / self.seconds:.1f} frames/s)" \
            if self.processed and self.seconds > 0 else ""
        parts = [f"{self.processed} processed", f"{self.people} people"]
        if self.skipped_existing:
            parts.append(f"{self.skipped_existing} skipped (existing)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        head = "interrupted: " if self.interrupted else ""
        where = f" -> {self.output}" if self.output is not None else ""
        return f"{head}{', '.join(parts)} in {self.seconds:.1f} s{rate}{where}"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _error_reason(exc: BaseException) -> str:
    msg = _one_line(str(exc))
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class _Run:
    """State of one ``run_inference`` call (sinks, writers, counters)."""

    def __init__(self, predict: Predict, options: InferOptions, bar: tqdm):
        self.predict, self.o, self.bar = predict, options, bar
        self.summary = RunSummary()
        self.coco = CocoResultsWriter(options.coco_json) if options.coco_json else None
        self.jsonl = JsonlWriter(options.jsonl) if options.jsonl else None
        self.sink: Optional[VideoSink] = None
        self.sink_stream: Optional[str] = None
        writes_folder = options.write_json or options.write_images or options.write_video
        if writes_folder:
            self.summary.output = options.output
            options.output.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------
    def json_path(self, name: str) -> Path:
        return self.o.output / f"{name}_keypoints.json"

    def image_path(self, name: str) -> Path:
        return self.o.output / f"{name}_rendered.jpg"

    def video_path(self, stream: str) -> Path:
        return self.o.output / f"{stream}_rendered.mp4"

    def existing(self, name: str) -> Optional[Path]:
        """The output that marks ``name`` as done, if skip_existing and it exists."""
        if not self.o.skip_existing:
            return None
        if self.o.write_json:
            path = self.json_path(name)
        elif self.o.write_images:
            path = self.image_path(name)
        else:
            return None
        return path if path.exists() else None

    # -- reporting -----------------------------------------------------------------------
    def fail(self, source: str, reason: str) -> None:
        reason = _one_line(reason)
        self.summary.failed.append((source, reason))
        tqdm.write(f"skipped {source}: {reason}", file=sys.stderr)

    # -- per item ------------------------------------------------------------------------
    def skip_still(self, name: str) -> bool:
        """``iter_frames`` callback: True drops an already-done still image undecoded."""
        done = self.existing(name)
        if done is None:
            return False
        self.summary.skipped_existing += 1
        self.bar.update(1)
        if self.coco is not None or self.jsonl is not None:
            det = self._reread(done, name, (0, 0))
            if det is not None:
                self._side_outputs(det, name, 0, None)
        return True

    def _reread(self, path: Path, name: str, size) -> Optional[Detections]:
        if path.suffix != ".json":
            return None
        try:
            return read_openpose_json(path, size)
        except (OSError, ValueError) as e:
            self.fail(str(path), f"cannot re-read existing output ({_error_reason(e)})")
            return None

    def _side_outputs(self, det: Detections, name: str, index: int,
                      t: Optional[float]) -> None:
        if self.coco is not None:
            self.coco.add(det, name)
        if self.jsonl is not None:
            self.jsonl.write(index, t, det, name=name)

    def _stream_sink(self, frame: Frame) -> Optional[VideoSink]:
        if frame.video is None or not self.o.write_video:
            self.close_sink()
            return None
        if self.sink_stream != frame.video:
            self.close_sink()
            self.sink = VideoSink(self.video_path(frame.video), fps=frame.fps)
            self.sink_stream = frame.video
        return self.sink

    def frame(self, frame: Frame) -> None:
        label = frame.source if frame.video is None else f"{frame.source} frame {frame.index}"
        sink = self._stream_sink(frame)
        h, w = frame.image.shape[:2]
        done = self.existing(frame.name)  # still images were dropped before decoding
        if done is not None:
            self.summary.skipped_existing += 1
            det = self._reread(done, frame.name, (w, h))
            if det is not None:
                self._side_outputs(det, frame.name, frame.index, frame.time)
            if sink is not None:
                self._write_video(sink, frame, det or Detections((w, h)), label)
            return
        try:
            det = self.predict(frame.image)
        except Exception as e:  # one bad image must not end the run
            self.fail(label, f"predict failed: {_error_reason(e)}")
            return
        try:
            if self.o.write_json:
                write_openpose_json(self.json_path(frame.name), det)
            if frame.video is None and self.o.write_images:
                atomic_write_image(self.image_path(frame.name),
                                   render(frame.image, det, colour_by_id=self.o.colour_by_id))
            self._side_outputs(det, frame.name, frame.index, frame.time)
        except Exception as e:
            self.fail(label, f"cannot write output: {_error_reason(e)}")
            return
        if sink is not None and not self._write_video(sink, frame, det, label):
            return
        self.summary.processed += 1
        self.summary.people += len(det.people)

    def _write_video(self, sink: VideoSink, frame: Frame, det: Detections, label: str) -> bool:
        try:
            sink.write(render(frame.image, det, colour_by_id=self.o.colour_by_id))
            return True
        except Exception as e:
            self.fail(label, f"cannot write video: {_error_reason(e)}")
            return False

    def close_sink(self) -> None:
        if self.sink is not None:
            sink, self.sink, self.sink_stream = self.sink, None, None
            try:
                sink.close()
            except Exception as e:
                self.fail(str(sink.path), f"cannot finish video: {_error_reason(e)}")

    def close(self) -> None:
        self.close_sink()
        if self.jsonl is not None:
            self.jsonl.close()
        if self.coco is not None:
            try:
                self.coco.close()
            except Exception as e:
                self.fail(str(self.coco.path), f"cannot write COCO results: "
                                               f"{_error_reason(e)}")


def run_inference(predict: Predict, specs: Sequence[str], options: InferOptions,
                  progress: bool = True) -> RunSummary:
    """Run ``predict`` over every input of ``specs`` and write the outputs of ``options``.

    Bad inputs, unreadable video frames and exceptions raised by ``predict`` for one frame
    are each reported as one line ``skipped <source>: <reason>`` on stderr, counted in
    ``RunSummary.failed``, and the run goes on. Ctrl-C (KeyboardInterrupt) stops the run
    cleanly: open videos and the COCO/JSONL files are finished, and the summary has
    ``interrupted=True``. A tqdm progress bar goes to stderr unless ``progress=False``.
    Raises ``OSError`` only when the output folder cannot be created.
    """
    specs = [str(s) for s in specs]
    start = time.perf_counter()
    total = None
    if progress:
        total = count_inputs(specs, every=options.every, max_frames=options.max_frames,
                             recursive=options.recursive)
    bar = tqdm(total=total, file=sys.stderr, disable=not progress, unit="frame",
               dynamic_ncols=True)
    run = _Run(predict, options, bar)
    try:
        items = iter_frames(specs, every=options.every, max_frames=options.max_frames,
                            recursive=options.recursive, skip=run.skip_still)
        for item in items:
            if isinstance(item, InputError):
                run.fail(item.source, item.reason)
            else:
                run.frame(item)
            bar.update(1)
    except KeyboardInterrupt:
        run.summary.interrupted = True
    finally:
        run.close()
        bar.close()
        run.summary.seconds = time.perf_counter() - start
    return run.summary


__all__ = ["InferOptions", "RunSummary", "run_inference", "EXIT_OK", "EXIT_FATAL",
           "EXIT_SOME_FAILED", "EXIT_INTERRUPTED"]
