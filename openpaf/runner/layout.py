"""Where a run's outputs go, and the resume rules: what an earlier run into the same
folder already did (``skip_existing``), and the run's manifest.

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

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from .. import __version__
from ..io.manifest import ManifestWriter, latest_records, manifest_files, manifest_path
from ..io.paths import IMAGES_STEM, output_lock, remove_stale_temp_files
from ..io.writers import read_openpose_json
from .options import InferOptions

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

    def __init__(self, options: InferOptions):
        self.o = options
        self.previous: dict[str, dict] = {}     # input source -> its latest record

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
            self.previous = latest_records(manifest_files(o.output))
        if not o.manifest:
            return None
        return ManifestWriter(
            self.manifest_path, version=__version__, inputs=specs[:MANIFEST_MAX_SPECS],
            num_inputs=len(specs), shard=o.shard,
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
        return out

    # -- skip decisions ------------------------------------------------------------------
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
        """True when still image ``name`` was done by an earlier run."""
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

    def done_frames(self, source: str) -> int:
        """Frames of ``source`` that the earlier run's record counts."""
        return int(self.previous.get(source, {}).get("frames", 0) or 0)
