"""Inputs (images, folders, globs, videos, webcams), output writers, rendering, the run
manifest and the prefetch thread."""
from .manifest import ManifestWriter, latest_records, manifest_path, read_manifest
from .prefetch import Prefetcher
from .render import VideoSink, render
from .sources import (Frame, ImageLoadError, InputError, Skipped, StreamEnd, count_inputs,
                      iter_frames, load_image, parse_shard)
from .atomic import atomic_write_bytes, atomic_write_image, atomic_write_json, atomic_write_text
from .writers import (CocoResultsWriter, JsonlWriter, openpose_json, read_openpose_json,
                      validate_openpose_json, write_openpose_json)

__all__ = ["Frame", "InputError", "ImageLoadError", "Skipped", "StreamEnd", "iter_frames",
           "count_inputs", "load_image", "parse_shard", "render", "VideoSink",
           "CocoResultsWriter", "JsonlWriter", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json", "atomic_write_image", "openpose_json", "write_openpose_json",
           "read_openpose_json", "validate_openpose_json", "Prefetcher", "ManifestWriter",
           "read_manifest", "manifest_path", "latest_records"]
