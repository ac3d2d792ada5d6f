"""Inputs (images, folders, globs, videos, webcams), output writers and rendering."""
from .render import VideoSink, render
from .sources import (Frame, ImageLoadError, InputError, count_inputs, iter_frames,
                      load_image)
from .writers import (CocoResultsWriter, JsonlWriter, atomic_write_bytes, atomic_write_image,
                      atomic_write_json, atomic_write_text, openpose_json,
                      read_openpose_json, validate_openpose_json, write_openpose_json)

__all__ = ["Frame", "InputError", "ImageLoadError", "iter_frames", "count_inputs",
           "load_image", "render", "VideoSink", "CocoResultsWriter", "JsonlWriter",
           "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_write_image", "openpose_json", "write_openpose_json",
           "read_openpose_json", "validate_openpose_json"]
