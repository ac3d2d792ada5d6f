"""Input sources: image files, folders, glob patterns, videos and webcams, as frames.

``iter_frames(specs)`` turns command-line style input specs into a stream of ``Frame``
(a decoded BGR image plus where it came from) and ``InputError`` (a bad input, with a
one-line reason). Bad inputs never raise: the caller reports them and goes on.

Spec kinds, tried in this order:
  * an existing file: a video if its extension is in ``VIDEO_EXTENSIONS``, else an image;
  * an existing folder: its images and videos (``IMAGE_EXTENSIONS`` (GIF: its first
    frame), ``VIDEO_EXTENSIONS``, case-insensitive; hidden ``.*`` files skipped, like
    glob does), in natural sort order (``img2`` before
    ``img10``), non-recursive unless ``recursive=True``;
  * a stream URL (``rtsp://``, ``http(s)://``, ``udp://``, ``tcp://``...) or a capture
    device ``/dev/videoN``: a live stream (``io.stream``; credentials masked in every
    source name, output stem from ``io.urls.stream_stem``);
  * all digits (and no such file): a webcam index for ``cv2.VideoCapture``;
  * containing ``* ? [``: a glob pattern (``**`` recurses, but not into links to
    folders); matching images and videos;
  * anything else: an ``InputError`` ("no such file or directory").

A file is read once however often the specs reach it (same real file: links, repeated
specs; other paths to it, links, come as ``Duplicate`` with ``events=True``), and the
rendered outputs in the run's ``output`` folder are never inputs (see ``io.paths``). Output names
are assigned over the whole expansion of all specs (so they do not depend on ``shard``),
and never take the stem of a run-level file (``openpaf_manifest``, ``openpaf_images``)
(see ``io.plan.Names``). With ``events=True`` the stream also carries
``Skipped`` (an input dropped by a ``skip``/``skip_stream`` callback) and ``StreamEnd``
(the last frame of a video, webcam or still-image sequence has been yielded) markers, for
consumers that keep per-stream state, and ``Duplicate`` (a path that is the same file as
one read before, with the path read).

Units: each still image, video, webcam and stream is one unit; with ``sequences=True`` the images
of one folder or glob spec (or of a run of consecutive image-file specs in one folder, as
the shell expands ``frames/*.jpg``) form one *sequence* unit instead. ``shard=(i, n)``
keeps the units whose position in the expansion (after ``every``, counting expansion
errors) is ``i`` modulo ``n``: n processes given the same specs and files split the work
with every unit in exactly one shard, and a video or sequence is never split.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

from ..errors import one_line
from .frames import Duplicate, Frame, InputError, Item, Skipped, StreamEnd
from .images import (MAX_IMAGE_PIXELS, STDERR_LOCK, ImageLoadError, decode_image,
                     load_image)
from .paths import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from .plan import StillSequence, Unit, check_shard, input_keys, parse_shard, plan
from .realtime import newest_only
from .stream import LiveOptions, StreamState, stream_items
from .video import video_items, video_length


def iter_frames(specs: list[str], *, every: int = 1, max_frames: Optional[int] = None,
                recursive: bool = False,
                skip: Optional[Callable[[str], bool]] = None,
                skip_stream: Optional[Callable[[str, str], bool]] = None,
                shard: Optional[tuple[int, int]] = None, sequences: bool = False,
                events: bool = False, output=None, live: Optional[LiveOptions] = None,
                realtime: Optional[bool] = None, reserved=()) -> Iterator[Item]:
    """Yield ``Frame`` / ``InputError`` for every input spec, in order (see module doc).

    every: keep every N-th frame of each video/webcam and every N-th image of each
        folder/glob listing (frame/listing index ``% every == 0``).
    max_frames: stop after this many ``Frame``s in total (errors do not count).
    recursive: descend into sub-folders of folder specs.
    skip: called with each still image's output name and path before decoding; True drops the
        image without decoding it (used to skip already-processed outputs cheaply).
        Video frames are always decoded and yielded (a video is read sequentially).
    skip_stream: called with ``(stem, stream source, files)`` of each video and still-image
        sequence before opening it (``files``: the video, or the sequence's images); True
        drops the whole stream (webcams never).
    shard: ``(i, n)``: only the units of shard i of n (see module doc).
    sequences: group still images into sequences (``Frame.sequence``, see module doc).
    events: also yield ``Skipped`` and ``StreamEnd`` markers.
    output: the run's output folder: its rendered outputs are never inputs.
    live: how live streams are opened and reopened (None: ``LiveOptions()``).
    realtime: read streams in a capture thread that hands over only the newest frame
        (``io.realtime``; video files then play at their fps). None: for live sources
        (webcams, streams) only; False: every frame, in order.
    reserved: output names not to give (their files are taken by run-level files).
    Callbacks run in the thread that iterates.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    check_shard(shard)
    budget = _Budget(max_frames)
    for unit in plan(list(specs), every=every, recursive=recursive, shard=shard,
                     sequences=sequences, output=output, reserved=reserved):
        if budget.spent:
            return
        if isinstance(unit, InputError):
            yield unit
        elif isinstance(unit, Duplicate):
            if events:
                yield unit
        elif isinstance(unit, StillSequence):
            yield from _sequence_items(unit, budget, skip_stream, events)
        elif unit.kind == "image":
            yield from _image_items(unit, budget, skip, events)
        else:
            yield from _stream_items(unit, budget, every, skip_stream, events,
                                     live or LiveOptions(), realtime)


class _Budget:
    """Frames yielded so far against ``max_frames`` (None: no limit)."""

    def __init__(self, limit: Optional[int]):
        self.limit, self.used = limit, 0

    @property
    def spent(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def left(self) -> Optional[int]:
        return None if self.limit is None else self.limit - self.used

    def count(self, item: Item) -> Item:
        self.used += isinstance(item, Frame)
        return item


def _load_frame(path, **fields) -> "Frame | InputError":
    """A still image as a ``Frame`` (``fields`` as in ``Frame``), or its one-line error."""
    try:
        image = load_image(path)
    except ImageLoadError as e:
        return InputError(path, one_line(str(e), 200))
    return Frame(image=image, source=path, **fields)


def _image_items(unit: Unit, budget: _Budget, skip, events: bool) -> Iterator[Item]:
    if skip is not None and skip(unit.name, unit.path):
        if events:
            yield Skipped(unit.path, unit.name, "image", 1, unit.index)
        return
    yield budget.count(_load_frame(unit.path, name=unit.name, index=unit.index))


def _sequence_items(unit: StillSequence, budget: _Budget, skip_stream,
                    events: bool) -> Iterator[Item]:
    if skip_stream is not None and skip_stream(unit.name, unit.source,
                                               [i.path for i in unit.images]):
        if events:
            yield Skipped(unit.source, unit.name, "sequence", len(unit.images))
        return
    count, cut = 0, False
    for inp in unit.images:
        if budget.spent:
            cut = True
            break
        item = budget.count(_load_frame(inp.path, name=inp.name, index=inp.index,
                                        sequence=unit.name, stream_source=unit.source))
        yield item
        count += isinstance(item, Frame)
    if events:
        yield StreamEnd(unit.source, unit.name, "sequence", count, not cut)


def _reader(unit: Unit, every: int, limit: Optional[int], live: LiveOptions,
            realtime: Optional[bool]) -> Iterator[Item]:
    """The item generator of a video, webcam or stream (see ``iter_frames``)."""
    live_source = unit.kind != "video"
    newest = realtime if realtime is not None else live_source
    inner_limit = None if newest else limit
    if unit.kind == "stream":
        items = stream_items(unit, every, inner_limit, live)
    else:
        items = video_items(unit, every, inner_limit)
    return newest_only(items, limit, pace=not live_source) if newest else items


def _stream_items(unit: Unit, budget: _Budget, every: int, skip_stream,
                  events: bool, live: LiveOptions,
                  realtime: Optional[bool]) -> Iterator[Item]:
    """A video's, webcam's or stream's items, then (``events``) its ``StreamEnd``."""
    source = unit.source
    if unit.kind == "video" and skip_stream is not None and \
            skip_stream(unit.name, source, [source]):
        if events:
            yield Skipped(source, unit.name, "video", None)
        return
    count, complete, info = 0, None, None
    items = _reader(unit, every, budget.left(), live, realtime)
    try:
        while True:
            try:
                item = next(items)
            except StopIteration as stop:
                complete = stop.value
                if isinstance(complete, StreamState):
                    complete, info = complete.complete, complete.record()
                elif complete is False and unit.kind == "stream":
                    info = StreamState("stopped").record()
                break
            count += isinstance(item, Frame)
            yield budget.count(item)
    finally:
        items.close()  # releases the capture when we are closed early
    if events and complete is not None:
        yield StreamEnd(source, unit.name, unit.kind, count, complete, info)


def count_inputs(specs: list[str], *, every: int = 1, max_frames: Optional[int] = None,
                 recursive: bool = False, shard: Optional[tuple[int, int]] = None,
                 sequences: bool = False, output=None) -> Optional[int]:
    """Number of items ``iter_frames`` will yield (frames + expansion errors), for a
    progress-bar total. Cheap: lists folders and reads video headers only. Video lengths
    come from ``CAP_PROP_FRAME_COUNT`` (can be approximate). None when a webcam or stream is
    involved (endless) and ``max_frames`` is not set.
    """
    errors, frames, endless = 0, 0, False
    for unit in plan(list(specs), every=every, recursive=recursive, shard=shard,
                      sequences=sequences, output=output):
        if isinstance(unit, InputError):
            errors += 1
        elif isinstance(unit, Duplicate):
            continue
        elif isinstance(unit, StillSequence):
            frames += len(unit.images)
        elif unit.kind == "image":
            frames += 1
        elif unit.kind in ("webcam", "stream"):
            endless = True
        else:
            n = video_length(unit.path)
            frames += (n + every - 1) // every
            errors += n == 0  # unreadable (one error item) or unknown length
    if max_frames is not None:
        return errors + (max_frames if endless else min(frames, max_frames))
    return None if endless else errors + frames


__all__ = ["Frame", "InputError", "Skipped", "StreamEnd", "Item", "ImageLoadError",
           "iter_frames", "count_inputs", "input_keys", "video_length", "parse_shard",
           "check_shard", "STDERR_LOCK", "load_image", "decode_image", "IMAGE_EXTENSIONS",
           "VIDEO_EXTENSIONS", "MAX_IMAGE_PIXELS"]
