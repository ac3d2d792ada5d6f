"""Where a run's outputs go, and the resume rules: what an earlier run into the same
folder already did (``skip_existing``), and the run's manifest.

Resuming (``skip_existing``): every input's manifest record says what produced its outputs
(``runner.provenance``: the source's stamp, the run's ``settings_id``, the outputs
written). An input is reused only when an earlier ``done`` record of its output name has
the same source file (path, size, mtime), the same settings (weights sha256, network,
decoder, layout, keypoint scale, ...) and at least the outputs wanted, and those files
exist; otherwise it is redone and ``redo`` holds why (one line). A still image is then
skipped undecoded. A video or tracked sequence is skipped whole, undecoded, also only when
its mp4/JSONL exist and ``coco_json``/``jsonl`` do not need its detections. Otherwise an
untracked video whose earlier record (also ``stopped``/``interrupted``) matches is resumed
frame by frame (frames with a valid JSON marker are re-read so the mp4 and side outputs
stay complete) and a tracked stream is redone from its first frame (ids must come from one
tracker pass).
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from .. import __version__
from ..io.manifest import (ManifestWriter, latest_records, manifest_files, manifest_path,
                           recorded_settings)
from ..io.paths import IMAGES_STEM, output_lock, remove_stale_temp_files
from ..io.writers import read_openpose_json
from .options import InferOptions
from .provenance import differences, file_stamp, files_stamp, settings_id, stamp_difference

IMAGES_JSONL = f"{IMAGES_STEM}.jsonl"
# The manifest's start record lists at most this many input specs (a shell-expanded glob
# can pass millions); ``num_inputs`` has the count.
MANIFEST_MAX_SPECS = 100


def run_files(o: InferOptions) -> dict[str, Optional[Path]]:
    """The run-level files ``o`` writes, by what they are (``check_output_files``)."""
    folder = o.writes_folder
    return {"manifest": manifest_path(o.output, o.shard) if folder and o.manifest else None,
            "images JSONL": o.sharded(o.output / IMAGES_JSONL) if o.stream_jsonl else None,
            "--coco-json": o.coco_json and o.sharded(o.coco_json),
            "--jsonl": o.jsonl and str(o.jsonl) != "-" and o.sharded(o.jsonl) or None}


class OutputLayout:
    """The output paths of a run with ``options``, and its skip decisions.

    ``open`` takes the output folder (created, locked, stale temp files removed) and, with
    ``skip_existing``, reads the manifests earlier runs left there. The skip methods only
    read, so the prefetch thread may call them.
    """

    def __init__(self, options: InferOptions, settings: Optional[dict] = None):
        self.o = options
        self.previous: dict[str, dict] = {}     # output name -> its latest record
        self.settings = settings if settings is not None else {}
        self.settings_id = settings_id(self.settings)
        self.earlier_settings: dict[str, dict] = {}  # settings_id -> settings
        self.stamps: dict[str, Optional[dict]] = {}  # output name -> source stamp
        self.redo: dict[str, str] = {}      # output name -> why an earlier output is redone
        self.resumable: dict[str, bool] = {}  # stream name -> its frames may be reused

    def open(self, held: ExitStack, specs: list[str]) -> Optional[ManifestWriter]:
        """Prepare the output folder (its lock is released with ``held``); returns the
        run's manifest writer (None when there is no folder or no manifest)."""
        o = self.o
        if not o.writes_folder:
            return None
        o.output.mkdir(parents=True, exist_ok=True)
        held.enter_context(output_lock(o.output, o.shard))
        remove_stale_temp_files(o.output)   # left by a killed run
        if o.skip_existing:
            self.previous = latest_records(manifest_files(o.output), key="name", statuses=(
                "done", "stopped", "interrupted", "failed"))  # (a failed write: redo)
            self.earlier_settings = recorded_settings(manifest_files(o.output))
        if not o.manifest:
            return None
        return ManifestWriter(
            self.manifest_path, version=__version__, inputs=specs[:MANIFEST_MAX_SPECS],
            num_inputs=len(specs), shard=o.shard,
            settings=self.settings, settings_id=self.settings_id,
            requested=o.requested,
            options={"every": o.every, "max_frames": o.max_frames, "track": o.track,
                     "smooth": o.smooth, "skip_existing": o.skip_existing,
                     "outputs": self.outputs("video") + (["coco"] if o.coco_json else [])})

    # -- paths ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.o.output, self.o.shard)

    def json_path(self, name: str) -> Path:
        return (self.o.json_dir or self.o.output) / f"{name}_keypoints.json"

    def image_path(self, name: str) -> Path:
        return self.o.output / f"{name}_rendered.jpg"

    def video_path(self, stream: str) -> Path:
        return self.o.output / f"{stream}_rendered.mp4"

    def stream_jsonl_path(self, stream: str) -> Path:
        return self.o.output / f"{stream}.jsonl"

    def images_jsonl_path(self) -> Path:
        return self.o.sharded(self.o.output / IMAGES_JSONL)

    def outputs(self, kind: str) -> list[str]:
        """Per-stream output kinds this run writes for a stream of ``kind``."""
        o = self.o
        out = ["openpose"] if o.write_json else []
        if (o.write_video if kind in ("video", "webcam", "stream") else o.write_images):
            out.append("render")
        if o.stream_jsonl:
            out.append("jsonl")
        if o.write_maps is not None:
            out.append("maps")
        if kind == "video-frames":  # (the mp4 and JSONL are remade from the frames)
            out = [k for k in out if k not in ("render", "jsonl")]
        return out

    def reserved_names(self) -> set[str]:
        """Output names whose files a run-level file (``run_files``) takes, e.g. ``a`` for
        ``--coco-json OUT/a_keypoints.json``: the plan never gives them."""
        o = self.o
        kinds = [(o.json_dir or o.output, "_keypoints.json"), (o.output, "_rendered.jpg"),
                 (o.output, "_rendered.mp4"), (o.output, ".jsonl")]
        if o.write_maps is not None:
            kinds += [(o.write_maps, f"_{k}") for k in ("heatmaps.npy", "pafs.npy",
                                                        "heatmaps.png", "pafs.png",
                                                        "maps.json")]
        out = set()
        for path in filter(None, run_files(o).values()):
            folder = os.path.realpath(Path(path).parent)
            for where, suffix in kinds:
                if path.name.endswith(suffix) and folder == os.path.realpath(where):
                    out.add(path.name[:-len(suffix)])
        return out

    # -- skip decisions ------------------------------------------------------------------
    def stamp(self, name: str, source: str, files: Optional[list] = None) -> Optional[dict]:
        """The source stamp of output ``name`` (computed once, kept for its record)."""
        if name not in self.stamps:
            self.stamps[name] = file_stamp(source) if files in (None, [source]) \
                else files_stamp(files)
        return self.stamps[name]

    def marker(self, name: str) -> Optional[Path]:
        """The output that marks frame ``name`` as written (``<name>_keypoints.json``, or
        its render without JSON output) when it exists and is valid."""
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

    def _why_redo(self, name: str, stamp: Optional[dict], kind: str,
                  statuses=("done",)) -> Optional[str]:
        """Why the outputs of ``name`` cannot be reused (None: they can); also kept in
        ``redo`` when an earlier run wrote them."""
        rec = self.previous.get(name)
        if rec is None:
            why = "no record of the run that wrote it"
        elif rec.get("status") not in statuses:
            why = f"the earlier run {rec.get('status')} it"
        else:
            why = stamp_difference(rec.get("stamp"), stamp)
            if why is None and rec.get("settings_id") != self.settings_id:
                why = differences(self.earlier_settings.get(rec.get("settings_id")),
                                  self.settings)
            missing = [k for k in self.outputs(kind) if k not in rec.get("outputs", ())]
            if why is None and missing:
                why = f"{', '.join(missing)} not written before"
        if why is not None and (rec is not None or self.marker(name)):
            self.redo[name] = why
        return why

    def skip_still(self, name: str, source: str) -> bool:
        """True when still image ``name`` (from ``source``) was done by an earlier run
        from the same file, with the same settings and at least the outputs wanted."""
        stamp = self.stamp(name, source)
        if not self.o.skip_existing or self._why_redo(name, stamp, "image") is not None:
            return False
        wanted = [self.image_path(name)] if self.o.write_images else []
        if self.o.write_maps is not None:
            wanted.append(self.o.write_maps / f"{name}_maps.json")  # (written last)
        if (self.o.write_json and self.marker(name) is None) or \
                not all(p.exists() for p in wanted):
            self.redo[name] = "an output of it is missing"
            return False
        return True

    def skip_stream(self, name: str, source: str, files: Optional[list] = None) -> bool:
        """True when an earlier run finished this video/sequence from the same files, with
        the same settings and what we want (``files``: a sequence's images)."""
        o = self.o
        stamp = self.stamp(name, source, files)
        if not o.skip_existing or o.coco_json is not None or o.jsonl is not None:
            return False
        rec = self.previous.get(name)
        kind = (rec or {}).get("kind", "video")
        if self._why_redo(name, stamp, kind) is not None:
            return False
        if ("jsonl" in self.outputs(kind) and not self.stream_jsonl_path(name).exists()) \
                or ("render" in self.outputs(kind) and kind == "video"
                    and rec.get("frames", 0) > 0 and not self.video_path(name).exists()):
            self.redo[name] = "an output of it is missing"
            return False
        return True

    def resumed_frame(self, frame) -> Optional[Path]:
        """The marker of a video frame an earlier run of the same video and settings
        wrote (an untracked video is resumed frame by frame), else None."""
        stream = frame.video
        if not self.o.skip_existing or stream is None:
            return None
        if stream not in self.resumable:
            stamp = self.stamp(stream, frame.stream_source or frame.source)
            self.resumable[stream] = self._why_redo(
                stream, stamp, "video-frames", ("done", "stopped", "interrupted")) is None
            if self.resumable[stream]:  # (resumed, not redone)
                self.redo.pop(stream, None)
        return self.marker(frame.name) if self.resumable[stream] else None

    def done_frames(self, name: str) -> int:
        """Frames of stream ``name`` that the earlier run's record counts."""
        return int(self.previous.get(name, {}).get("frames", 0) or 0)
