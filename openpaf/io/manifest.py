"""The run manifest: one JSON line per finished input, appended as a run goes.

``<output>/openpaf_manifest.jsonl`` (``openpaf_manifest.shard<i>of<n>.jsonl`` for a
sharded run, so processes never share a file). Each run appends::

    {"event": "start", "time": "2024-05-01T12:00:00Z", "pid": 123, "version": "0.1.0",
     "inputs": [...], "shard": [i, n] | null, "options": {...}}
    {"input": "a.jpg", "kind": "image", "name": "a", "status": "done", "people": 2,
     "stamp": {"file": "/data/a.jpg", "size": 123, "mtime_ns": ...},
     "settings_id": "...", "outputs": ["openpose", "render"]}
    {"input": "b.jpg", "status": "failed", "reason": "truncated JPEG (no end-of-image marker)"}
    {"input": "c.jpg", "kind": "image", "name": "c", "status": "skipped",
     "reason": "existing output"}
    {"input": "v.mp4", "kind": "video", "name": "v", "status": "done", "frames": 300,
     "people": 512, "errors": 0, "outputs": ["openpose", "render", "jsonl"],
     "every": 1, "track": true, "smooth": false}
    ...
    {"event": "end", "time": ..., "processed": ..., "skipped_existing": ..., "failed": ...,
     "people": ..., "seconds": ..., "interrupted": false}

The start record also holds the run's ``settings`` (weights sha256, network, decoder
and output settings; ``runner.provenance``), its ``settings_id``, and the model options as
``requested``. Each input's record names its source (``stamp``) and the ``settings_id``
that produced its outputs; a resumed run skips it only when both still match.
A file reached again through a link or a repeated spec gets a ``duplicate`` record
(``of``: the path processed).

Statuses: ``done``; ``failed`` (with ``reason``; for a frame of a video the record also
has ``frame`` when known, and the video still gets its own record when it ends; frames a
video could not decode are not records of their own but ``errors`` and ``gaps``
(``[[first, last], ...]``) in the video's one record);
``skipped`` (already done by an earlier run); for streams also ``stopped`` (cut short by
``max_frames``) and ``interrupted`` (Ctrl-C: the frames so far are written). Paths that are
not valid UTF-8 are written as JSON ``\\udcXX`` escapes and read back unchanged. Every line
is written with one ``write`` call and flushed, so a run killed at any point leaves a
manifest whose complete lines are all valid; ``read_manifest`` ignores a torn last line.
An interrupted or killed run simply has no ``end`` record.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Union

from .paths import MANIFEST_STEM, is_reserved_stem, shard_suffix
from .urls import mask_credentials

PathLike = Union[str, os.PathLike]


def manifest_path(output: PathLike, shard: Optional[tuple[int, int]] = None) -> Path:
    """``<output>/openpaf_manifest.jsonl``, or ``...shard<i>of<n>.jsonl`` for a shard."""
    return Path(output) / f"{MANIFEST_STEM}{shard_suffix(shard)}.jsonl"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clean(value):
    """JSON-safe copy: paths -> str, tuples -> lists, non-finite floats -> None, URL
    credentials masked."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, (int, bool)) or value is None:
        return value
    return mask_credentials(str(value))


class ManifestWriter:
    """Append records to a manifest file, one flushed line each (see module doc).

    Opening an existing manifest appends to it (after a newline if a killed run left a
    torn last line). ``close(**end)`` writes the ``end`` record, fsyncs and closes.
    """

    def __init__(self, path: PathLike, **start):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+b", buffering=0)  # one write() per line
        self._fh.seek(0, os.SEEK_END)
        if self._fh.tell() > 0:
            self._fh.seek(-1, os.SEEK_END)
            if self._fh.read(1) != b"\n":
                self._fh.write(b"\n")
        self.records = 0
        self.record(event="start", time=_now(), pid=os.getpid(), **start)

    def record(self, **fields) -> None:
        """Append one record (keys in the given order)."""
        if self._fh.closed:
            raise ValueError("manifest is closed")
        line = json.dumps(_clean(fields), separators=(",", ":"), allow_nan=False,
                          ensure_ascii=False) + "\n"
        # A path that is not valid UTF-8 holds lone surrogates (surrogateescape): written
        # as JSON escapes (\udcff), which json.loads turns back into the same str.
        self._fh.write(line.encode("utf-8", "backslashreplace"))
        self.records += 1

    def close(self, **end) -> None:
        """Write the ``end`` record with the fields ``end``, fsync and close (idempotent)."""
        if self._fh.closed:
            return
        try:
            self.record(event="end", time=_now(), **end)
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()


def read_manifest(path: PathLike) -> list[dict]:
    """All valid records of one manifest file, in order. Lines that are not a JSON object
    (a torn last line of a killed run) are skipped. Missing file: ``[]``."""
    records = []
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return records
    for raw in data.split(b"\n"):
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def manifest_files(output: PathLike) -> list[Path]:
    """Every manifest in ``output`` (all shards), sorted by name."""
    folder = Path(output)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{MANIFEST_STEM}*.jsonl")
                  if is_reserved_stem(p.stem) and p.is_file())


def latest_records(paths: Iterable[PathLike], key: str = "input",
                   statuses=("done", "stopped", "interrupted")) -> dict[str, dict]:
    """``record[key] -> last record`` over the given manifests (``key``: "input", or
    "name" for the output name), for inputs with one of ``statuses`` (a later record
    wins; files are read in the given order)."""
    out: dict[str, dict] = {}
    for path in paths:
        for rec in read_manifest(path):
            if key in rec and rec.get("status") in statuses:
                out[str(rec[key])] = rec
    return out


def recorded_settings(paths: Iterable[PathLike]) -> dict[str, dict]:
    """``settings_id -> settings`` of every run's start record in the given manifests."""
    out: dict[str, dict] = {}
    for path in paths:
        for rec in read_manifest(path):
            if rec.get("event") == "start" and isinstance(rec.get("settings"), dict):
                out[str(rec.get("settings_id"))] = rec["settings"]
    return out


__all__ = ["ManifestWriter", "read_manifest", "manifest_path", "manifest_files",
           "latest_records", "recorded_settings", "MANIFEST_STEM"]
