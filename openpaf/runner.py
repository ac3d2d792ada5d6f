"""The inference run loop: inputs -> predict -> (track) -> OpenPose JSON / JSONL / renders /
COCO results, plus a run manifest.

Library code (no click): ``cli/infer.py`` only parses options into ``InferOptions``.
``predict`` is any callable ``image (H, W, 3) uint8 BGR -> Detections``, so the loop can
be driven by ``openpaf.predict.Predictor`` or by a stand-in in tests.

Threads: images and video frames are decoded in a background thread
(``io.prefetch.Prefetcher``, ``InferOptions.prefetch`` frames ahead) while ``predict``
runs in the calling thread; everything else (writing, tracking, reporting) happens in the
calling thread, in input order.

Streams: the frames of one video or webcam (and, with ``track``, the images of one
folder/glob, see ``io.sources``) form a *stream*. A stream gets a fresh ``Tracker``
(``track``), one rendered ``<stem>_rendered.mp4`` (videos/webcams, at the source fps
divided by ``every``) and one ``<stem>.jsonl`` (``stream_jsonl``). When a run is
interrupted (Ctrl-C) the open stream is *finalised*: its mp4 and JSONL hold the frames
processed so far and are valid files; its manifest record says ``interrupted``, so a
``skip_existing`` run redoes it.

Resuming (``skip_existing``): a still image is skipped when its marker output exists
(``<name>_keypoints.json``, or ``<name>_rendered.jpg`` without JSON output), written last
so that a marker implies the image's other outputs. A video or tracked sequence is skipped
whole, undecoded, when a manifest in the output folder records it ``done`` with the same
``every``/``track``/``smooth`` and at least the requested outputs (and its mp4/JSONL
exist), unless ``coco_json``/``jsonl`` need its detections. Otherwise an untracked video is
resumed frame by frame (skipped frames are re-read from their JSON so the mp4 and side
outputs stay complete) and a tracked stream is redone from its first frame (ids must come
from one tracker pass).
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from . import __version__
from .io.manifest import ManifestWriter, latest_records, manifest_files, manifest_path
from .io.paths import (IMAGES_STEM, check_output_files, output_lock,
                       remove_stale_temp_files)
from .io.prefetch import Prefetcher
from .io.render import DEFAULT_VIDEO_FPS, VideoSink, render
from .io.sources import (STDERR_LOCK, Frame, InputError, Skipped, StreamEnd, check_shard,
                         count_inputs, input_keys, iter_frames)
from .io.writers import (MAPS_FORMATS, CocoResultsWriter, JsonlWriter, OpenPoseFormat,
                         atomic_write_image, read_openpose_json, write_maps,
                         write_openpose_json)
from .structures import Detections
from .track import Tracker, TrackerParams

Predict = Callable[[np.ndarray], Detections]

# Exit codes of a run (also used by the CLI).
EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130

IMAGES_JSONL = f"{IMAGES_STEM}.jsonl"
# The manifest's start record lists at most this many input specs (a shell-expanded glob
# can pass millions); ``num_inputs`` has the count.
MANIFEST_MAX_SPECS = 100


@dataclass
class InferOptions:
    """What a run writes, and which frames it reads.

    output: folder for ``<name>_keypoints.json``, ``<name>_rendered.jpg``,
        ``<stem>_rendered.mp4``, ``<stem>.jsonl`` and the manifest (created when something
        is written into it).
    write_json: write OpenPose JSON per frame (``person_id`` = track id, -1 untracked).
    write_images: write a rendered jpg per still image.
    write_video: write one rendered mp4 per video/webcam stream, at the source fps divided
        by ``every`` (so it plays at the right speed).
    stream_jsonl: write ``<stem>.jsonl`` per video/webcam/tracked sequence, one line per
        processed frame (``{"frame", "time", "name", "people"}``, see
        ``io.writers.JsonlWriter``); untracked still images go to one
        ``openpaf_images.jsonl``.
    coco_json: also write all detections as one COCO keypoint-results JSON list here.
    jsonl: also stream one JSON line per frame of the whole run here.
    skip_existing: resume: skip what an earlier run into ``output`` finished (module doc).
        Skipped frames' JSON feeds ``coco_json``/``jsonl`` (person score = mean keypoint
        confidence there, as OpenPose JSON stores no score).
    every: process every N-th frame of videos and every N-th image of folders/globs.
    max_frames: stop after this many frames in total (per process when sharded).
    recursive: descend into sub-folders of folder inputs.
    colour_by_id: render tracked people in per-id colours with their id (on with track).
    track: give people stable ids across the frames of each video/webcam with a fresh
        ``Tracker`` per stream, and treat the sorted images of each folder/glob spec (or a
        run of image arguments from one folder) as a sequence to track over.
    smooth: One-Euro-smooth tracked keypoints, clocked by the stream's timestamps
        (implies ``track``).
    tracker: tracker settings (None = ``TrackerParams()`` defaults; ``smooth`` wins over
        its ``smooth`` field).
    shard: ``(i, n)``: process only shard i of n of the inputs (see ``io.sources``); run
        level files (manifest, ``coco_json``, ``jsonl``, ``openpaf_images.jsonl``) get a
        ``.shard<i>of<n>`` suffix so shards writing into one folder never share a file.
    manifest: append ``openpaf_manifest.jsonl`` in ``output`` (see ``io.manifest``) when
        the run writes anything into ``output``.
    prefetch: frames decoded ahead in a background thread (0 = decode in the calling
        thread).
    openpose: layout (coco18 | body25), keypoint scale and part candidates of the OpenPose
        JSON and of every JSONL file (``io.writers.OpenPoseFormat``).
    json_dir: write ``<name>_keypoints.json`` here instead of ``output``, so the folder
        holds nothing else (readers such as pose-format load every file of a folder).
    number_people_max: keep only this many highest-scoring people per frame (None: all).
    render_threshold: draw only keypoints above this confidence (and limbs with both ends
        above it).
    write_maps: save each predicted frame's heatmaps and PAFs in this folder
        (``io.writers.write_maps``; the predictor must return them, e.g.
        ``Predictor(keep_maps=True)``), as ``maps_format`` "npy" (float16) or "png".
    """

    output: Path = Path("openpaf_out")
    write_json: bool = True
    write_images: bool = True
    write_video: bool = True
    stream_jsonl: bool = False
    coco_json: Optional[Path] = None
    jsonl: Optional[Path] = None
    skip_existing: bool = False
    every: int = 1
    max_frames: Optional[int] = None
    recursive: bool = False
    colour_by_id: bool = False
    track: bool = False
    smooth: bool = False
    tracker: Optional[TrackerParams] = None
    shard: Optional[tuple[int, int]] = None
    manifest: bool = True
    prefetch: int = 4
    openpose: OpenPoseFormat = OpenPoseFormat()
    json_dir: Optional[Path] = None
    number_people_max: Optional[int] = None
    render_threshold: float = 0.0
    write_maps: Optional[Path] = None
    maps_format: str = "npy"

    def __post_init__(self):
        self.output = Path(self.output)
        self.json_dir = None if self.json_dir is None else Path(self.json_dir)
        self.write_maps = None if self.write_maps is None else Path(self.write_maps)
        if self.number_people_max is not None and self.number_people_max < 1:
            raise ValueError(f"number_people_max must be >= 1, got {self.number_people_max}")
        if self.maps_format not in MAPS_FORMATS:
            raise ValueError(f"maps_format must be one of {', '.join(MAPS_FORMATS)}, "
                             f"got {self.maps_format!r}")
        if self.skip_existing and self.openpose.keypoint_scale != "pixels" and (
                self.coco_json or self.jsonl or self.stream_jsonl):
            raise ValueError("skip_existing re-reads skipped images' JSON for the COCO/JSONL "
                             "outputs, which needs pixel coordinates: use keypoint scale "
                             "pixels, or no COCO/JSONL output")
        self.coco_json = None if self.coco_json is None else Path(self.coco_json)
        self.jsonl = None if self.jsonl is None else Path(self.jsonl)
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {self.max_frames}")
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {self.prefetch}")
        if self.shard is not None:
            self.shard = tuple(self.shard)
        check_shard(self.shard)
        if self.smooth:
            self.track = True

    def sharded(self, path: Path) -> Path:
        """``path`` with ``.shard<i>of<n>`` before its suffix when sharded."""
        if self.shard is None:
            return Path(path)
        path = Path(path)
        return path.with_name(f"{path.stem}.shard{self.shard[0]}of{self.shard[1]}"
                              f"{path.suffix}")

    @property
    def writes_folder(self) -> bool:
        return self.write_json or self.write_images or self.write_video or self.stream_jsonl

    def tracker_params(self) -> TrackerParams:
        return replace(self.tracker or TrackerParams(), smooth=self.smooth)


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
    manifest: Optional[Path] = None

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


class _Stream:
    """Per-stream state: tracker, rendered video, JSONL file, counters."""

    def __init__(self, name: str, source: str, kind: str, tracker: Optional[Tracker]):
        self.name, self.source, self.kind, self.tracker = name, source, kind, tracker
        self.sink: Optional[VideoSink] = None
        self.jsonl: Optional[JsonlWriter] = None
        self.frames = self.people = self.errors = 0
        self.gaps: list[list[int]] = []  # [first, last] of each unreadable stretch
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


class _Run:
    """State of one ``run_inference`` call (streams, writers, manifest, counters)."""

    def __init__(self, predict: Predict, options: InferOptions, specs: list[str]):
        self.predict, self.o = predict, options
        self.bar: Optional[tqdm] = None
        self.summary = RunSummary()
        self.stream: Optional[_Stream] = None
        self.images_jsonl: Optional[JsonlWriter] = None
        self.coco = CocoResultsWriter(options.sharded(options.coco_json)) \
            if options.coco_json else None
        self.jsonl = JsonlWriter(options.sharded(options.jsonl), fmt=options.openpose) \
            if options.jsonl else None
        self.previous: dict[str, dict] = {}
        self.manifest: Optional[ManifestWriter] = None
        self.crash: Optional[str] = None  # the exception that ended the run, if any
        self.held = ExitStack()  # the output folder's lock
        if options.writes_folder:
            self.summary.output = options.output
            options.output.mkdir(parents=True, exist_ok=True)
            self.held.enter_context(output_lock(options.output, options.shard))
            remove_stale_temp_files(options.output)   # left by a killed run
            if options.skip_existing:
                self.previous = latest_records(manifest_files(options.output))
            if options.manifest:
                self.manifest = ManifestWriter(
                    manifest_path(options.output, options.shard), version=__version__,
                    inputs=specs[:MANIFEST_MAX_SPECS], num_inputs=len(specs),
                    shard=options.shard,
                    options={"every": options.every, "max_frames": options.max_frames,
                             "track": options.track, "smooth": options.smooth,
                             "skip_existing": options.skip_existing,
                             "outputs": self.outputs("video") + (
                                 ["coco"] if options.coco_json else [])})
                self.summary.manifest = self.manifest.path

    # -- paths ---------------------------------------------------------------------------
    def json_path(self, name: str) -> Path:
        return (self.o.json_dir or self.o.output) / f"{name}_keypoints.json"

    def image_path(self, name: str) -> Path:
        return self.o.output / f"{name}_rendered.jpg"

    def video_path(self, stream: str) -> Path:
        return self.o.output / f"{stream}_rendered.mp4"

    def stream_jsonl_path(self, stream: str) -> Path:
        return self.o.output / f"{stream}.jsonl"

    def outputs(self, kind: str) -> list[str]:
        """Per-stream output kinds this run writes for a stream of ``kind``."""
        out = ["openpose"] if self.o.write_json else []
        if (self.o.write_video if kind in ("video", "webcam") else self.o.write_images):
            out.append("render")
        if self.o.stream_jsonl:
            out.append("jsonl")
        if self.o.write_maps is not None:
            out.append("maps")
        return out

    # -- skip decisions (called from the prefetch thread: read-only) ---------------------
    def existing(self, name: str) -> Optional[Path]:
        """The output that marks frame ``name`` as done, if skip_existing and it exists."""
        if not self.o.skip_existing:
            return None
        if self.o.write_json:
            path = self.json_path(name)
        elif self.o.write_images:
            path = self.image_path(name)
        else:
            return None
        if not path.exists():
            return None
        if path.suffix == ".json":   # an empty or corrupt marker means: not done
            try:
                read_openpose_json(path)
            except (OSError, ValueError):
                return None
        return path

    def skip_still(self, name: str) -> bool:
        return self.existing(name) is not None

    def skip_stream(self, name: str, source: str) -> bool:
        """True when an earlier run finished this video/sequence with what we want."""
        o = self.o
        if not o.skip_existing or o.coco_json is not None or o.jsonl is not None:
            return False
        rec = self.previous.get(source)
        if rec is None or rec.get("status") != "done" or rec.get("name") != name:
            return False
        if (rec.get("every"), bool(rec.get("track")), bool(rec.get("smooth"))) != \
                (o.every, o.track, o.smooth):
            return False
        kind = rec.get("kind", "video")
        wanted = self.outputs(kind)
        if not set(wanted) <= set(rec.get("outputs", ())):
            return False
        if "jsonl" in wanted and not self.stream_jsonl_path(name).exists():
            return False
        if "render" in wanted and kind == "video" and rec.get("frames", 0) > 0 \
                and not self.video_path(name).exists():
            return False
        return True

    # -- reporting -----------------------------------------------------------------------
    def say(self, text: str) -> None:
        """One line on stderr, never swallowed by a decode silencing fd 2 meanwhile."""
        with STDERR_LOCK:
            tqdm.write(text, file=sys.stderr)
            sys.stderr.flush()

    def record(self, **fields) -> None:
        if self.manifest is not None:
            try:
                self.manifest.record(**fields)
            except (OSError, ValueError) as e:
                self.manifest = None
                self.fail(str(manifest_path(self.o.output, self.o.shard)),
                          f"cannot write manifest: {_error_reason(e)}")

    def fail(self, source: str, reason: str, frame: Optional[int] = None,
             record: bool = True) -> None:
        reason = _one_line(reason)
        label = source if frame is None else f"{source} frame {frame}"
        self.summary.failed.append((label, reason))
        self.say(f"skipped {label}: {reason}")
        if record:
            extra = {} if frame is None else {"frame": frame}
            self.record(input=source, status="failed", reason=reason, **extra)

    def tick(self, n: int = 1) -> None:
        if self.bar is not None and n:
            self.bar.update(n)

    # -- items ---------------------------------------------------------------------------
    def handle(self, item) -> None:
        if isinstance(item, Frame):
            self.frame(item)
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

    def skipped(self, item: Skipped) -> None:
        if item.kind == "image":
            self.summary.skipped_existing += 1
            self.tick()
            done = self.existing(item.name)
            if done is not None and self._wants_side_outputs():
                det = self._reread(done, (0, 0))
                if det is not None:
                    self._side_outputs(det, item.name, 0, None, None)
            self.record(input=item.source, kind="image", name=item.name, status="skipped",
                        reason="existing output")
            return
        rec = self.previous.get(item.source, {})
        frames = int(rec.get("frames", 0) or 0)
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
            self.fail(str(path), f"cannot re-read existing output ({_error_reason(e)})")
            return None

    def _wants_side_outputs(self) -> bool:
        return self.coco is not None or self.jsonl is not None or self.o.stream_jsonl

    def _side_outputs(self, det: Detections, name: str, index: int, t: Optional[float],
                      stream: Optional[_Stream]) -> None:
        if self.coco is not None:
            self.coco.add(det, name)
        if self.jsonl is not None:
            self.jsonl.write(index, t, det, name=name)
        if self.o.stream_jsonl:
            if stream is not None:
                if stream.jsonl is None:
                    stream.jsonl = JsonlWriter(self.stream_jsonl_path(stream.name),
                                               fmt=self.o.openpose)
                stream.jsonl.write(index, t, det, name=name)
            else:
                if self.images_jsonl is None:
                    self.images_jsonl = JsonlWriter(
                        self.o.sharded(self.o.output / IMAGES_JSONL), fmt=self.o.openpose)
                self.images_jsonl.write(index, t, det, name=name)

    # -- streams -------------------------------------------------------------------------
    def _stream_for(self, frame: Frame) -> Optional[_Stream]:
        key = frame.sequence
        if self.stream is not None and self.stream.name != key:
            self.finish_stream("interrupted")  # (a StreamEnd normally comes first)
        if key is None:
            return None
        if self.stream is None:
            kind = ("webcam" if frame.source.startswith("webcam:") else "video") \
                if frame.video is not None else "sequence"
            tracker = Tracker(self.o.tracker_params()) if self.o.track else None
            self.stream = _Stream(key, frame.stream_source or frame.source, kind, tracker)
        return self.stream

    def _sink(self, stream: Optional[_Stream], frame: Frame) -> Optional[VideoSink]:
        if stream is None or frame.video is None or not self.o.write_video:
            return None
        if stream.sink is None:
            fps = (frame.fps or DEFAULT_VIDEO_FPS) / self.o.every
            stream.sink = VideoSink(self.video_path(stream.name), fps=fps)
        return stream.sink

    def end_stream(self, item: StreamEnd) -> None:
        if self.stream is not None and self.stream.name == item.name:
            self.finish_stream("done" if item.complete else "stopped")
        elif item.frames == 0:  # nothing reached us (every frame failed, or none)
            self.record(input=item.source, kind=item.kind, name=item.name,
                        status="done" if item.complete else "stopped", frames=0, people=0,
                        outputs=[], every=self.o.every, track=self.o.track,
                        smooth=self.o.smooth)

    def finish_stream(self, status: str) -> None:
        """Finalise the open stream (video and JSONL kept, also when interrupted) and
        record it in the manifest."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        if stream.sink is not None:
            try:
                stream.sink.close()
            except Exception as e:
                self.fail(str(stream.sink.path), f"cannot finish video: {_error_reason(e)}")
                status = "failed" if status == "done" else status
        if stream.jsonl is not None:
            stream.jsonl.close()
        self.record(input=stream.source, kind=stream.kind, name=stream.name, status=status,
                    frames=stream.frames, people=stream.people, errors=stream.errors,
                    **({"gaps": stream.gaps} if stream.gaps else {}), outputs=self.outputs(stream.kind), every=self.o.every,
                    track=self.o.track, smooth=self.o.smooth)

    # -- one frame -----------------------------------------------------------------------
    def frame(self, frame: Frame) -> None:
        stream = self._stream_for(frame)
        frame_no = None if frame.video is None else frame.index
        sink = self._sink(stream, frame)
        h, w = frame.image.shape[:2]
        tracker = stream.tracker if stream is not None else None
        # Untracked frames of a stream may be resumed one by one; tracked streams are
        # redone whole (still images outside streams were dropped before decoding).
        done = self.existing(frame.name) if tracker is None else None
        if done is not None:
            self.summary.skipped_existing += 1
            det = self._reread(done, (w, h))
            if det is not None:
                self._side_outputs(det, frame.name, frame.index, frame.time, stream)
            if sink is not None:
                self._write_video(sink, frame, det or Detections((w, h)), frame_no)
            if stream is not None:
                stream.frames += 1
            return
        try:
            det = self.predict(frame.image)
        except Exception as e:  # one bad image must not end the run
            self.fail(frame.source, f"predict failed: {_error_reason(e)}", frame_no)
            if stream is not None:
                stream.errors += 1
            return
        if self.o.number_people_max is not None:
            det = det.top(self.o.number_people_max)
        if tracker is not None:
            det = tracker.update(det, time=stream.clock(frame))
        # Ctrl-C waits until the frame's outputs and its manifest record are all written,
        # so the manifest and the files on disk always agree.
        with _sigint_deferred() as late:
            self._emit(frame, det, stream, sink, frame_no)
        if late:
            raise KeyboardInterrupt

    def _emit(self, frame: Frame, det: Detections, stream, sink, frame_no) -> None:
        """Write one predicted frame's outputs, then count and record it."""
        try:
            if frame.video is None and self.o.write_images:
                atomic_write_image(self.image_path(frame.name), self._draw(frame, det))
            if self.o.write_maps is not None:
                if det.maps is None:
                    raise ValueError("the predictor returned no maps to write")
                write_maps(self.o.write_maps, frame.name, det.maps, det.image_size,
                           self.o.maps_format)
            if self.o.write_json:  # the resume marker: written last
                write_openpose_json(self.json_path(frame.name), det, self.o.openpose)
            self._side_outputs(det, frame.name, frame.index, frame.time, stream)
        except Exception as e:
            self.fail(frame.source, f"cannot write output: {_error_reason(e)}", frame_no)
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
                        people=len(det.people), **extra)

    def _draw(self, frame: Frame, det: Detections) -> np.ndarray:
        return render(frame.image, det, colour_by_id=self.o.colour_by_id or self.o.track,
                      threshold=self.o.render_threshold)

    def _write_video(self, sink: VideoSink, frame: Frame, det: Detections,
                     frame_no: Optional[int]) -> bool:
        try:
            sink.write(self._draw(frame, det))
            return True
        except Exception as e:
            self.fail(frame.source, f"cannot write video: {_error_reason(e)}", frame_no)
            return False

    def close(self) -> None:
        """Finish everything (open stream, JSONL files, COCO results, manifest, lock)."""
        with self.held:
            self._close()

    def _close(self) -> None:
        self.finish_stream("interrupted" if self.summary.interrupted or self.crash
                           else "stopped")
        for writer in (self.jsonl, self.images_jsonl):
            if writer is not None:
                writer.close()
        if self.coco is not None:
            try:
                self.coco.close()
            except Exception as e:
                self.fail(str(self.coco.path), f"cannot write COCO results: "
                                               f"{_error_reason(e)}")
        if self.manifest is not None:
            s = self.summary
            try:
                self.manifest.close(processed=s.processed,
                                    skipped_existing=s.skipped_existing,
                                    failed=len(s.failed), people=s.people,
                                    seconds=round(s.seconds, 3), interrupted=s.interrupted,
                                    **({"error": self.crash} if self.crash else {}))
            except OSError as e:
                self.fail(str(self.manifest.path), f"cannot write manifest: "
                                                   f"{_error_reason(e)}", record=False)


@contextmanager
def _sigint_deferred():
    """Hold off Ctrl-C while cleaning up (main thread only); yields a list that gets an
    entry per SIGINT received meanwhile."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    try:
        old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    except (ValueError, OSError):  # pragma: no cover - e.g. signals unavailable
        yield got
        return
    try:
        yield got
    finally:
        signal.signal(signal.SIGINT, old)


def run_files(o: InferOptions) -> dict[str, Optional[Path]]:
    """The run-level files ``o`` writes, by what they are (``check_output_files``)."""
    folder = o.writes_folder
    return {"manifest": manifest_path(o.output, o.shard) if folder and o.manifest else None,
            "images JSONL": o.sharded(o.output / IMAGES_JSONL) if o.stream_jsonl else None,
            "--coco-json": o.coco_json and o.sharded(o.coco_json),
            "--jsonl": o.jsonl and o.sharded(o.jsonl)}


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
    the output folder or the manifest cannot be created, and ``io.paths.OutputError``,
    before anything is written, for an output file that is an input (or is named like
    one, or is another output's file, or cannot be written) and for an output folder
    another run is writing.
    """
    specs = [str(s) for s in specs]
    start = time.perf_counter()
    o = options
    run: Optional[_Run] = None
    frames: Optional[Prefetcher] = None
    bar: Optional[tqdm] = None
    interrupted = False
    try:
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
                                        recursive=o.recursive, skip=run.skip_still,
                                        skip_stream=run.skip_stream, shard=o.shard,
                                        sequences=o.track, events=True, output=o.output),
                               size=o.prefetch)
        for item in frames:
            run.handle(item)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as e:  # closed below, then raised on
        if run is not None:
            run.crash = _error_reason(e)
        raise
    finally:
        with _sigint_deferred() as late:
            if frames is not None:
                frames.close()
            if run is not None:
                run.summary.interrupted = interrupted or bool(late)
                run.summary.seconds = time.perf_counter() - start
                run.close()
            if bar is not None:
                bar.close()
        summary = run.summary if run is not None else RunSummary(interrupted=interrupted)
        summary.interrupted = summary.interrupted or bool(late)
        summary.seconds = time.perf_counter() - start
    return summary


__all__ = ["InferOptions", "RunSummary", "run_inference", "EXIT_OK", "EXIT_FATAL",
           "EXIT_SOME_FAILED", "EXIT_INTERRUPTED"]
