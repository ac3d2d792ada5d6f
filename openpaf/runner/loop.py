"""The inference run loop: inputs -> predict -> (track) -> OpenPose JSON / JSONL / renders /
COCO results, plus a run manifest.

Library code (no click): ``cli/infer.py`` only parses options into ``InferOptions``.
``predict`` is any callable ``image (H, W, 3) uint8 BGR -> Detections``, so the loop can
be driven by ``openpaf.predict.Predictor`` or by a stand-in in tests.

Threads, a pipeline in input order: images and video frames are decoded in a background
thread (``io.prefetch.Prefetcher``, ``InferOptions.prefetch`` frames ahead); ``predict``
runs in a second one, a frame ahead (``InferOptions.overlap``); tracking, drawing,
writing and reporting happen in the calling thread. So decoding, the network and the
outputs of consecutive frames overlap.

Streams: the frames of one video or webcam (and, with ``track``, the images of one
folder/glob, see ``io.sources``) form a *stream*. A stream gets a fresh ``Tracker``
(``track``), one rendered ``<stem>_rendered.mp4`` (videos/webcams, at the source fps
divided by ``every``) and one ``<stem>.jsonl`` (``stream_jsonl``). When a run is
interrupted (Ctrl-C) the open stream is *finalised*: its mp4 and JSONL hold the frames
processed so far and are valid files; its manifest record says ``interrupted``, so a
``skip_existing`` run redoes it.
Resuming (``skip_existing``): see ``runner.layout``.

Live use: URLs and ``/dev/videoN`` are streams too (``io.stream``). In real-time mode
(``InferOptions.realtime``; on by default for live sources) a capture thread hands over
only the newest frame (``io.realtime``) and no frames wait in the prefetch queues, so the
latency from capture to people stays bounded; dropped frames and the latencies go to the
JSONL lines (``captured``, ``latency_ms``, ``dropped``), the stream's manifest record and
the summary. ``show`` puts every rendered frame in a window (``io.window``); q/Esc there
ends the run like Ctrl-C.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..errors import error_reason, one_line
from ..io.atomic import atomic_write_image
from ..io.frames import Duplicate, Frame, InputError, Skipped, StreamEnd
from ..io.images import STDERR_LOCK
from ..io.maps import write_maps
from ..io.paths import check_output_files
from ..io.prefetch import Prefetcher
from ..io.render import DEFAULT_VIDEO_FPS, VideoSink, render
from ..io.sources import count_inputs, input_keys, iter_frames
from ..io.urls import is_live_spec, mask_credentials
from ..io.video_writer import open_video_writer
from ..io.window import Window, check_display
from ..io.writers import read_openpose_json, write_openpose_json
from ..structures import Detections
from ..track import Tracker
from .concurrency import (Terminated, predict_ahead, raise_late, sigint_deferred,
                          sigterm_interrupts)
from .layout import OutputLayout, run_files
from .outputs import DetectionFiles, Stream
from .options import InferOptions, RunSummary, latency_stats
from .provenance import run_settings

Predict = Callable[[np.ndarray], Detections]


class _Run:
    """State of one ``run_inference`` call (streams, writers, manifest, counters)."""

    def __init__(self, predict: Predict, options: InferOptions, specs: list[str]):
        self.predict, self.o = predict, options
        self.layout = OutputLayout(options, run_settings(predict, options))
        self.redo_reasons: Counter = Counter()
        self.bar: Optional[tqdm] = None
        self.summary = RunSummary()
        self.stream: Optional[Stream] = None
        self.files = DetectionFiles(options, self.layout)
        self.crash: Optional[str] = None  # the exception that ended the run, if any
        self.window = Window() if options.show else None
        self._drawn: tuple = (None, None)  # (frame, its rendering), drawn once
        self.held = ExitStack()  # the output folder's lock
        self.manifest = self.layout.open(self.held, specs)
        if options.writes_folder:
            self.summary.output = options.output
        if self.manifest is not None:
            self.summary.manifest = self.manifest.path

    # -- reporting -----------------------------------------------------------------------
    def say(self, text: str) -> None:
        """One line on stderr, never swallowed by a decode silencing fd 2 meanwhile."""
        with STDERR_LOCK:
            tqdm.write(mask_credentials(text), file=sys.stderr)
            sys.stderr.flush()

    def record(self, **fields) -> None:
        if self.manifest is not None:
            try:
                self.manifest.record(**fields)
            except (OSError, ValueError) as e:
                self.manifest = None
                self.fail(str(self.layout.manifest_path),
                          f"cannot write manifest: {error_reason(e)}")

    def fail(self, source: str, reason: str, frame: Optional[int] = None,
             record: bool = True, name: Optional[str] = None) -> None:
        """Report and record a failure (``name``: the output name whose files it may have
        left half-written, so that a resumed run redoes it)."""
        reason = one_line(reason)
        label = source if frame is None else f"{source} frame {frame}"
        self.summary.failed.append((label, reason))
        self.say(f"skipped {label}: {reason}")
        if record:
            extra = {} if frame is None else {"frame": frame}
            extra.update({} if name is None else {"name": name})
            self.record(input=source, status="failed", reason=reason, **extra)

    def provenance(self, name: str) -> dict:
        """The record fields saying what produced ``name``'s outputs (and why an earlier
        run's were redone)."""
        fields = {"stamp": self.layout.stamps.pop(name, None),
                  "settings_id": self.layout.settings_id}
        why = self.layout.redo.pop(name, None)
        if why is not None:
            fields["redo"] = why
            self.redo_reasons[why] += 1
            self.summary.redone += 1
        return fields

    def kept(self, path: Path) -> None:
        self.say(f"kept the earlier {path}: this run did not finish it")

    def tick(self, n: int = 1) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    # -- items ---------------------------------------------------------------------------
    def handle(self, item, predicted=None) -> None:
        """One item of the input stream; ``predicted``: its ``Detections`` or the exception
        ``predict`` raised, when predicted ahead (None: predict now, if needed)."""
        if isinstance(item, Frame):
            self.frame(item, predicted)
            self.tick()
        elif isinstance(item, InputError):
            # unreadable frames of the open stream go into its one manifest record
            ours = self.stream is not None and item.source == self.stream.source
            if ours:
                self.stream.errors += 1
                if item.frames is not None:
                    self.stream.gaps.append(list(item.frames))
            self.fail(item.source, item.reason, record=not ours)
            self.tick()
        elif isinstance(item, Skipped):
            self.skipped(item)
        elif isinstance(item, StreamEnd):
            self.end_stream(item)
        elif isinstance(item, Duplicate):
            self.say(f"duplicate {item.source}: the same file as {item.of}, read once")
            self.record(input=item.source, status="duplicate", of=item.of)

    def skipped(self, item: Skipped) -> None:
        self.layout.stamps.pop(item.name, None)  # (its earlier record stands)
        if item.kind == "image":
            self.summary.skipped_existing += 1
            self.tick()
            done = self.layout.marker(item.name)
            if done is not None and self.files.wanted:
                det = self._reread(done, (0, 0))
                if det is not None:
                    self.files.add(det, item.name, item.index, None, None)
            self.record(input=item.source, kind="image", name=item.name, status="skipped",
                        reason="existing output")
            return
        frames = self.layout.done_frames(item.name)
        self.summary.skipped_existing += frames
        self.tick(frames)
        self.record(input=item.source, kind=item.kind, name=item.name, status="skipped",
                    frames=frames, reason="done by an earlier run")

    def _reread(self, path: Path, size) -> Optional[Detections]:
        if path.suffix != ".json":
            return None
        try:
            det = read_openpose_json(path, size, self.o.openpose.keypoint_scale)
            if self.o.openpose.part_candidates and det.part_candidates is None:
                raise ValueError("it has no part_candidates")
            return det
        except (OSError, ValueError) as e:
            self.fail(str(path), f"cannot re-read existing output ({error_reason(e)})")
            return None

    # -- streams -------------------------------------------------------------------------
    def _stream_for(self, frame: Frame) -> Optional[Stream]:
        key = frame.sequence
        if self.stream is not None and self.stream.name != key:
            self.finish_stream("interrupted")  # (a StreamEnd normally comes first)
        if key is None:
            return None
        if self.stream is None:
            kind = ("webcam" if frame.source.startswith("webcam:") else "stream"
                    if is_live_spec(frame.source) else "video") \
                if frame.video is not None else "sequence"
            tracker = Tracker(self.o.tracker_params()) if self.o.track else None
            self.stream = Stream(key, frame.stream_source or frame.source, kind, tracker)
        return self.stream

    def _sink(self, stream: Optional[Stream], frame: Frame) -> Optional[VideoSink]:
        if stream is None or frame.video is None or not self.o.write_video:
            return None
        if stream.sink is None:
            fps = (frame.fps or DEFAULT_VIDEO_FPS) / self.o.every
            stream.sink = open_video_writer(self.layout.video_path(stream.name), fps)
        return stream.sink

    def end_stream(self, item: StreamEnd) -> None:
        if self.stream is not None and self.stream.name == item.name:
            self.stream.info = item.info
            gave_up = (item.info or {}).get("state") == "gave up"
            self.finish_stream("interrupted" if gave_up else
                               "done" if item.complete else "stopped")
        elif item.frames == 0:  # nothing reached us (every frame failed, or none)
            self.record(input=item.source, kind=item.kind, name=item.name,
                        status="done" if item.complete else "stopped", frames=0, people=0,
                        outputs=[], every=self.o.every, track=self.o.track,
                        smooth=self.o.smooth, **self.provenance(item.name))

    def finish_stream(self, status: str) -> None:
        """Finalise the open stream (video and JSONL kept, also when interrupted) and
        record it in the manifest."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        complete = status != "interrupted"
        if stream.sink is not None and not complete and stream.sink.path.exists():
            stream.sink.abort()
            self.kept(stream.sink.path)
        elif stream.sink is not None:
            try:
                stream.sink.close()
            except Exception as e:
                self.fail(str(stream.sink.path), f"cannot finish video: {error_reason(e)}")
                status = "failed" if status == "done" else status
        if stream.jsonl is not None and not stream.jsonl.close(complete):
            self.kept(stream.jsonl.path)
        self.record(input=stream.source, kind=stream.kind, name=stream.name, status=status,
                    frames=stream.frames, people=stream.people, errors=stream.errors,
                    **({"gaps": stream.gaps} if stream.gaps else {}),
                    outputs=self.layout.outputs(stream.kind), every=self.o.every,
                    track=self.o.track, smooth=self.o.smooth, **self._live_fields(stream),
                    **self.provenance(stream.name))

    @staticmethod
    def _live_fields(stream: Stream) -> dict:
        """A live or real-time stream's state, dropped frames and latency (manifest)."""
        out = dict(stream.info or {})
        lat = latency_stats(stream.latencies)
        if lat is not None:
            out.update(dropped=stream.dropped, latency_ms=lat)
        return out

    # -- one frame -----------------------------------------------------------------------
    def frame(self, frame: Frame, predicted=None) -> None:
        stream = self._stream_for(frame)
        frame_no = None if frame.video is None else frame.index
        sink = self._sink(stream, frame)
        h, w = frame.image.shape[:2]
        tracker = stream.tracker if stream is not None else None
        # Untracked frames of a stream may be resumed one by one; tracked streams are
        # redone whole (still images outside streams were dropped before decoding).
        done = self._resumable(frame) if tracker is None else None
        if done is not None:
            self.summary.skipped_existing += 1
            det = self._reread(done, (w, h))
            if det is not None:
                self.files.add(det, frame.name, frame.index, frame.time, stream)
            if sink is not None:
                self._write_video(sink, frame, det or Detections((w, h)), frame_no)
            if stream is not None:
                stream.frames += 1
                stream.people += 0 if det is None else len(det.people)
            return
        try:
            det = self.predict(frame.image) if predicted is None else predicted
            if isinstance(det, Exception):
                raise det
        except Exception as e:  # one bad image must not end the run
            self.fail(frame.source, f"predict failed: {error_reason(e)}", frame_no)
            if stream is not None:
                stream.errors += 1
            return
        if self.o.number_people_max is not None:
            det = det.top(self.o.number_people_max)
        if tracker is not None:
            det = tracker.update(det, time=stream.clock(frame))
        extra = self._timing(frame, stream)
        # Ctrl-C waits until the frame's outputs and its manifest record are all written,
        # so the manifest and the files on disk always agree.
        with sigint_deferred() as late:
            self._emit(frame, det, stream, sink, frame_no, extra)
        if self.window is not None and not self.window.show(self._draw(frame, det)):
            raise KeyboardInterrupt  # q/Esc: finalised as on Ctrl-C
        raise_late(late)

    def _timing(self, frame: Frame, stream: Optional[Stream]) -> Optional[dict]:
        """Count a live/real-time frame's drops and capture -> people latency; its JSONL
        fields (None for other frames)."""
        if frame.captured is None:
            return None
        ms = (time.time() - frame.captured) * 1000.0
        self.summary.latencies.append(ms)
        self.summary.dropped += frame.dropped
        if stream is not None:
            stream.latencies.append(ms)
            stream.dropped += frame.dropped
        return {"captured": round(frame.captured, 6), "latency_ms": round(ms, 2),
                "dropped": frame.dropped}

    def needs_predict(self, item) -> bool:
        """Whether ``item`` is a frame ``frame()`` will predict (not resumed from disk);
        safe to call from the predict-ahead thread (reads files, changes no state)."""
        return isinstance(item, Frame) and (
            self.o.track or self._resumable(item) is None)

    def _resumable(self, frame: Frame) -> Optional[Path]:
        """The earlier run's output of ``frame``; never for live sources (their frame
        numbers restart with every run)."""
        live = frame.source.startswith("webcam:") or is_live_spec(frame.source)
        return None if live else self.layout.resumed_frame(frame)

    def _emit(self, frame: Frame, det: Detections, stream, sink, frame_no,
              extra: Optional[dict] = None) -> None:
        """Write one predicted frame's outputs, then count and record it."""
        try:
            if frame.video is None and self.o.write_images:
                atomic_write_image(self.layout.image_path(frame.name), self._draw(frame, det))
            if self.o.write_maps is not None:
                if det.maps is None:
                    raise ValueError("the predictor returned no maps to write")
                write_maps(self.o.write_maps, frame.name, det.maps, det.image_size,
                           self.o.maps_format)
            if self.o.write_json:  # the resume marker: written last
                write_openpose_json(self.layout.json_path(frame.name), det, self.o.openpose)
            self.files.add(det, frame.name, frame.index, frame.time, stream, extra)
        except Exception as e:
            self.fail(frame.source, f"cannot write output: {error_reason(e)}", frame_no,
                      name=frame.name)
            if stream is not None:
                stream.errors += 1
            return
        if sink is not None and not self._write_video(sink, frame, det, frame_no):
            return
        self.summary.processed += 1
        self.summary.people += len(det.people)
        if stream is not None:
            stream.frames += 1
            stream.people += len(det.people)
        if frame.video is None:
            extra = {} if stream is None else {"sequence": stream.name}
            self.record(input=frame.source, kind="image", name=frame.name, status="done",
                        people=len(det.people), **extra,
                        outputs=self.layout.outputs("image"), **self.provenance(frame.name))

    def _draw(self, frame: Frame, det: Detections) -> np.ndarray:
        if self._drawn[0] is not frame:
            self._drawn = (frame, render(frame.image, det, threshold=self.o.render_threshold,
                                         colour_by_id=self.o.colour_by_id or self.o.track,
                                         style=self.o.style))
        return self._drawn[1]

    def _write_video(self, sink: VideoSink, frame: Frame, det: Detections,
                     frame_no: Optional[int]) -> bool:
        try:
            # real-time frames are shown at their capture times (dropped ones left out)
            sink.write(self._draw(frame, det), frame.time if frame.captured else None)
            return True
        except Exception as e:
            self.fail(frame.source, f"cannot write video: {error_reason(e)}", frame_no)
            return False

    def close(self) -> None:
        """Finish everything (open stream, JSONL files, COCO results, manifest, lock,
        window)."""
        with self.held:
            self._close()
        if self.window is not None:
            self.window.close()

    def _close(self) -> None:
        self.finish_stream("interrupted" if self.summary.interrupted or self.crash
                           else "stopped")
        for path in self.files.close(self.fail, complete=not self.summary.interrupted
                                     and not self.crash):
            self.kept(path)
        if self.redo_reasons:
            why = "; ".join(f"{r} ({n})" for r, n in self.redo_reasons.most_common())
            self.say(f"redid {self.summary.redone} input(s) an earlier run did otherwise: "
                     f"{why}")
        if self.manifest is not None:
            s = self.summary
            try:
                self.manifest.close(processed=s.processed,
                                    skipped_existing=s.skipped_existing,
                                    failed=len(s.failed), people=s.people,
                                    seconds=round(s.seconds, 3), interrupted=s.interrupted,
                                    **({"dropped": s.dropped, "latency_ms": s.latency()}
                                       if s.latencies else {}),
                                    **({"error": self.crash} if self.crash else {}))
            except OSError as e:
                self.fail(str(self.manifest.path), f"cannot write manifest: "
                                                   f"{error_reason(e)}", record=False)


def run_inference(predict: Predict, specs: Sequence[str], options: InferOptions,
                  progress: bool = True) -> RunSummary:
    """Run ``predict`` over every input of ``specs`` and write the outputs of ``options``.

    Bad inputs, unreadable video frames and exceptions raised by ``predict`` for one frame
    are each reported as one line ``skipped <source>: <reason>`` on stderr, recorded in
    the manifest, counted in ``RunSummary.failed``, and the run goes on. Ctrl-C
    (KeyboardInterrupt) stops the run cleanly: the prefetch thread is stopped, the open
    stream's video and JSONL are finalised, the COCO/JSONL files and the manifest are
    finished, no temporary file is left, and the summary has ``interrupted=True``. Any
    other exception also stops the thread and closes the files, then propagates. A tqdm
    progress bar goes to stderr unless ``progress=False``. Raises ``OSError`` only when
    the output folder or the manifest cannot be created, ``io.window.DisplayError``
    (before anything is written) for ``show`` without a display, and ``io.paths.OutputError``,
    before anything is written, for an output file that is an input (or is named like
    one, or is another output's file, or cannot be written) and for an output folder
    another run is writing.
    """
    specs = [str(s) for s in specs]
    start = time.perf_counter()
    o = options
    run: Optional[_Run] = None
    frames: Optional[Prefetcher] = None
    ahead: Optional[Prefetcher] = None
    bar: Optional[tqdm] = None
    interrupted = terminated = False
    realtime = o.realtime if o.realtime is not None else any(map(_live_input, specs))
    signals = ExitStack()
    try:
        signals.enter_context(sigterm_interrupts())
        if o.show:
            check_display()
        check_output_files(run_files(o), input_keys(specs, recursive=o.recursive,
                                                    output=o.output))
        run = _Run(predict, o, specs)
        total = count_inputs(specs, every=o.every, max_frames=o.max_frames,
                             recursive=o.recursive, shard=o.shard, sequences=o.track,
                             output=o.output) if progress else None
        if progress:  # (tqdm >= 4.70 starts its monitor thread even for disabled bars)
            bar = run.bar = tqdm(total=total, file=sys.stderr, unit="frame",
                                 dynamic_ncols=True)
        frames = Prefetcher(iter_frames(specs, every=o.every, max_frames=o.max_frames,
                                        recursive=o.recursive, skip=run.layout.skip_still,
                                        skip_stream=run.layout.skip_stream, shard=o.shard,
                                        sequences=o.track, events=True, output=o.output,
                                        live=o.live, realtime=o.realtime,
                                        reserved=run.layout.reserved_names()),
                               size=0 if realtime else o.prefetch)  # no stale frames queued
        ahead = (Prefetcher(predict_ahead(frames, predict, run.needs_predict),
                            size=1 if realtime else 2,
                            name="openpaf-predict") if o.overlap else None)
        for item, predicted in ahead or ((item, None) for item in frames):
            run.handle(item, predicted)
    except KeyboardInterrupt as e:
        interrupted, terminated = True, isinstance(e, Terminated)
    except BaseException as e:  # closed below, then raised on
        if run is not None:
            run.crash = error_reason(e)
        raise
    finally:
        with sigint_deferred() as late:
            if ahead is not None:
                ahead.close()
            if frames is not None:
                frames.close()
            terminated = terminated or signal.SIGTERM in late
            if run is not None:
                run.summary.interrupted = interrupted or bool(late)
                run.summary.terminated = terminated
                run.summary.seconds = time.perf_counter() - start
                run.close()
            if bar is not None:
                bar.close()
        signals.close()  # (after sigint_deferred put our SIGTERM handler back)
        summary = run.summary if run is not None else RunSummary(interrupted=interrupted)
        summary.interrupted = summary.interrupted or bool(late)
        summary.terminated = terminated
        summary.seconds = time.perf_counter() - start
    return summary


def _live_input(spec: str) -> bool:
    """A URL, /dev/videoN or webcam index (real-time by default)."""
    return is_live_spec(spec) or (spec.isdigit() and not os.path.exists(spec))


__all__ = ["run_inference"]
