"""What an inference run writes and reads (``InferOptions``) and what it did
(``RunSummary``, exit codes)."""
from __future__ import annotations

import os

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from ..io.maps import MAPS_FORMATS
from ..io.plan import check_shard
from ..io.render import RenderStyle
from ..io.stream import LiveOptions
from ..io.writers import OpenPoseFormat
from ..track import TrackerParams

# Exit codes of a run (also used by the CLI).
EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process SIGTERM ended


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
    jsonl: also stream one JSON line per frame of the whole run here ("-": stdout, one
        flushed line per frame; everything else goes to stderr).
    skip_existing: resume: skip what an earlier run into ``output`` finished (``layout``).
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
    overlap: run ``predict`` in its own thread, one frame ahead of the outputs, so the
        network works while the previous frame is drawn and written (video rate near
        1 / slowest stage instead of 1 / sum of stages); False: predict in the calling
        thread. None (default): overlap on machines with more than 2 cores only; on 2
        cores the drawing and writing thread takes a core from the network's two threads
        (`openpaf infer` over the 114 coco/val photos at the defaults, interleaved: 6.6
        images/s in one thread against 5.6 overlapped).
    openpose: layout (coco18 | body25), keypoint scale and part candidates of the OpenPose
        JSON and of every JSONL file (``io.writers.OpenPoseFormat``).
    json_dir: write ``<name>_keypoints.json`` here instead of ``output``, so the folder
        holds nothing else (readers such as pose-format load every file of a folder).
    number_people_max: keep only this many highest-scoring people per frame (None: all).
    render_threshold: draw only keypoints above this confidence (and limbs with both ends
        above it).
    write_maps: save each predicted frame's heatmaps and PAFs in this folder
        (``io.maps.write_maps``; the predictor must return them, e.g.
        ``Predictor(keep_maps=True)``), as ``maps_format`` "npy" (float16) or "png".
    realtime: read each stream in a capture thread that hands over only its newest frame
        (stale frames dropped and counted; video files play at their fps); None: on for
        live sources (webcams, URLs, /dev/videoN) only; False: every frame, in order.
    live: how URLs and devices are opened and reopened (``io.stream.LiveOptions``).
    show: show rendered frames in a window (``io.window``); q/Esc stops the run as
        Ctrl-C does.
    style: how skeletons are drawn (``io.render.RenderStyle``).
    requested: the model options as the user gave them (weights, height, precision...),
        recorded in the manifest's start record for reference; resuming compares the
        settings the predictor resolved (``runner.provenance``).
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
    overlap: Optional[bool] = None
    openpose: OpenPoseFormat = OpenPoseFormat()
    json_dir: Optional[Path] = None
    number_people_max: Optional[int] = None
    render_threshold: float = 0.0
    write_maps: Optional[Path] = None
    maps_format: str = "npy"
    realtime: Optional[bool] = None
    live: LiveOptions = LiveOptions()
    show: bool = False
    style: RenderStyle = RenderStyle()
    requested: Optional[dict] = None

    def __post_init__(self):
        self.output = Path(self.output)
        if self.overlap is None:
            self.overlap = (os.cpu_count() or 1) > 2
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
        if self.shard is None or str(path) == "-":
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
    terminated: bool = False   # stopped by SIGTERM (``interrupted`` is set too)
    redone: int = 0            # inputs an earlier run did otherwise, done again
    output: Optional[Path] = None
    manifest: Optional[Path] = None
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, capture -> people

    def latency(self) -> Optional[dict]:
        """``{"p50", "p90", "max"}`` of the capture -> people latencies (ms), or None."""
        return latency_stats(self.latencies)

    @property
    def exit_code(self) -> int:
        """0 all good; 2 some inputs failed but others were done; 1 every input failed
        (nothing processed or skipped); 130 interrupted; 143 terminated (SIGTERM)."""
        if self.terminated:
            return EXIT_TERMINATED
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
        if self.redone:
            parts.append(f"{self.redone} redone (earlier outputs did not match)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        lat = self.latency()
        if lat is not None:
            parts.append(f"latency p50/p90 {lat['p50']:.0f}/{lat['p90']:.0f} ms, "
                         f"{self.dropped} dropped")
        head = "terminated: " if self.terminated else \
            "interrupted: " if self.interrupted else ""
        where = f" -> {self.output}" if self.output is not None else ""
        return f"{head}{', '.join(parts)} in {self.seconds:.1f} s{rate}{where}"


def latency_stats(ms: list[float]) -> Optional[dict]:
    """``{"p50", "p90", "max"}`` of latencies in ms (rounded to 0.1), None when empty."""
    if not ms:
        return None
    p50, p90, top = np.percentile(np.asarray(ms, np.float64), [50, 90, 100])
    return {"p50": round(float(p50), 1), "p90": round(float(p90), 1),
            "max": round(float(top), 1)}
