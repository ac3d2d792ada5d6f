"""Large batches: interrupt/kill and resume, shards, broken inputs, the prefetch thread.

The CLI runs in a subprocess with a slow fake predictor (``CHILD`` below swaps
``openpaf_cli.infer._build_predictor`` before calling the real ``openpaf`` command), so
SIGINT and SIGKILL hit a real process mid-run.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from openpaf.io import sources
from openpaf.io.manifest import read_manifest
from openpaf.io.prefetch import Prefetcher
from openpaf.io.writers import validate_openpose_json
from openpaf.runner import InferOptions, run_inference
from openpaf.skeleton import NUM_KEYPOINTS
from openpaf.structures import Detections, Person

from helpers import CHILD_PRELUDE, write_video

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 30

CHILD = CHILD_PRELUDE + r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
import numpy as np
import openpaf_cli.infer
from openpaf_cli.main import main
from openpaf.structures import Detections, Person
DELAY = float(os.environ["FAKE_PREDICT_SECONDS"])
LOAD = float(os.environ.get("FAKE_LOAD_SECONDS", "0"))
if LOAD:  # slow disk: the main thread mostly waits on the prefetch queue
    import openpaf.io.sources as sources
    real_load = sources.load_image
    def slow_load(path):
        time.sleep(LOAD)
        return real_load(path)
    sources.load_image = slow_load
def predict(image):
    time.sleep(DELAY)
    h, w = image.shape[:2]
    kps = np.zeros((18, 3), np.float32)
    kps[:, 0], kps[:, 1], kps[:, 2] = w / 2, np.linspace(0, h - 1, 18), 0.9
    return Detections((w, h), [Person(kps, 0.9)])
openpaf_cli.infer._build_predictor = lambda weights, **kw: predict
main(sys.argv[1:], prog_name="openpaf")
"""


def fake_detections(image) -> Detections:
    h, w = image.shape[:2]
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[:, 0], kps[:, 1], kps[:, 2] = w / 2, np.linspace(0, h - 1, NUM_KEYPOINTS), 0.9
    return Detections((w, h), [Person(kps, 0.9)])


class Counting:
    def __init__(self, delay=0.0):
        self.calls, self.delay = 0, delay

    def __call__(self, image):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return fake_detections(image)


def make_images(folder: Path, n=N_IMAGES, prefix="img") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        img = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{prefix}{i}.jpg"), img)
        names.append(f"{prefix}{i}")
    return names


def _noise(i, size):
    return np.random.default_rng(100 + i).integers(0, 255, (size[1], size[0], 3),
                                                   dtype=np.uint8)


make_video = partial(write_video, n=12, size=(64, 48), fps=10.0, frame=_noise)


def keypoint_files(out: Path) -> list[str]:
    return sorted(f for f in os.listdir(out) if f.endswith("_keypoints.json"))


def temp_files(out: Path) -> list[str]:
    return [f for f in os.listdir(out) if f.startswith(".") or ".tmp" in f]


def start_child(args, delay=0.12, load=0.0):
    env = dict(os.environ, FAKE_PREDICT_SECONDS=str(delay), FAKE_LOAD_SECONDS=str(load),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", CHILD, "infer", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_outputs(proc, out: Path, count: int, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"child ended early ({proc.returncode}): {proc.communicate()}")
        if out.is_dir() and len(keypoint_files(out)) >= count:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail("child made no progress")


def check_complete_outputs(out: Path, names) -> None:
    for name in names:
        validate_openpose_json(json.loads((out / f"{name}_keypoints.json").read_text()))
        assert cv2.imread(str(out / f"{name}_rendered.jpg")) is not None, name


def resume(folder: Path, out: Path, done: list[str]):
    """Re-run with --skip-existing in-process; return the predictor (for its count)."""
    import openpaf_cli.infer
    from openpaf_cli.main import main
    stamps = {f: os.stat(out / f).st_mtime_ns for f in done}
    fake = Counting()
    orig = openpaf_cli.infer._build_predictor
    openpaf_cli.infer._build_predictor = lambda weights, **kw: fake
    try:
        r = CliRunner().invoke(main, ["infer", str(folder), "-o", str(out), "--skip-existing",
                                      "--json-format", "openpose,coco"])
    finally:
        openpaf_cli.infer._build_predictor = orig
    assert r.exit_code == 0, r.output
    assert {f: os.stat(out / f).st_mtime_ns for f in done} == stamps  # nothing redone
    return fake, r


# ---------------------------------------------------------------------------------------
# Interrupt, kill, resume


@pytest.mark.parametrize("predict_s, load_s", [(0.12, 0.0), (0.01, 0.12)],
                         ids=["slow-predict", "slow-decode"])
def test_sigint_stops_cleanly_and_resume_finishes(tmp_path, predict_s, load_s):
    folder, out = tmp_path / "in", tmp_path / "out"
    names = make_images(folder)
    proc = start_child([folder, "-o", out, "--json-format", "openpose,coco"],
                       delay=predict_s, load=load_s)
    wait_for_outputs(proc, out, 6)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    summary = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(summary) == 1 and "processed" in summary[0], stderr
    # No partial or temporary file; every output written is complete.
    assert temp_files(out) == []
    done_json = keypoint_files(out)
    assert 6 <= len(done_json) < N_IMAGES
    done = [f[:-len("_keypoints.json")] for f in done_json]
    check_complete_outputs(out, done)  # (the JSON marker is written after the render)
    assert len(json.loads((out / "coco_results.json").read_text())) == len(done)
    # The manifest is valid, ends with the interrupted run's summary, lists what was done.
    lines = (out / "openpaf_manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert records[0]["event"] == "start" and records[-1]["event"] == "end"
    assert records[-1]["interrupted"] is True and records[-1]["processed"] == len(done)
    listed = sorted(r["name"] for r in records if r.get("status") == "done")
    assert listed == sorted(done)

    fake, r = resume(folder, out, done_json + [f"{n}_rendered.jpg" for n in done])
    assert fake.calls == N_IMAGES - len(done)  # only the rest
    assert f"{len(done)} skipped (existing)" in r.output
    check_complete_outputs(out, names)
    assert len(json.loads((out / "coco_results.json").read_text())) == N_IMAGES
    assert temp_files(out) == []


def test_sigkill_leaves_no_partial_json_and_resume_finishes(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    names = make_images(folder)
    proc = start_child([folder, "-o", out], delay=0.08)
    wait_for_outputs(proc, out, 8)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_json = keypoint_files(out)
    assert 8 <= len(done_json) < N_IMAGES
    for f in done_json:  # no partial JSON, whatever the moment of the kill
        validate_openpose_json(json.loads((out / f).read_text()))
    done = [f[:-len("_keypoints.json")] for f in done_json]
    check_complete_outputs(out, done)
    # The manifest of a killed run: every complete line parses; no end record.
    records = read_manifest(out / "openpaf_manifest.jsonl")
    raw = (out / "openpaf_manifest.jsonl").read_text()
    assert len(records) == raw.count("\n")
    assert records[0]["event"] == "start" and all(r.get("event") != "end" for r in records)

    fake, _ = resume(folder, out, done_json + [f"{n}_rendered.jpg" for n in done])
    assert fake.calls == N_IMAGES - len(done)
    check_complete_outputs(out, names)
    # (a temp file of the killed write may remain, hidden; it is never taken as output)
    assert all(f.startswith(".") for f in temp_files(out))
    runs = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "event" in r]
    assert [r["event"] for r in runs] == ["start", "start", "end"]


# ---------------------------------------------------------------------------------------
# Shards


def test_three_shards_cover_every_input_once(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    make_images(a, 10)
    make_images(b, 5)             # same file names as in a: img0 -> img0_2 etc.
    make_video(a / "clip.mp4")    # (not in a folder listing: images only)
    video = make_video(tmp_path / "walk.mp4")
    specs = [str(a), str(b), str(a / "clip.mp4"), str(video), str(tmp_path / "missing.jpg")]

    whole = tmp_path / "whole"
    run_inference(Counting(), specs, InferOptions(output=whole, write_images=False),
                  progress=False)
    expected = keypoint_files(whole)
    assert len(expected) == 10 + 5 + 12 + 12

    out = tmp_path / "sharded"
    calls = []
    for i in range(3):
        fake = Counting()
        s = run_inference(fake, specs, InferOptions(output=out, write_images=False,
                                                    coco_json=out / "coco.json",
                                                    shard=(i, 3)), progress=False)
        calls.append(fake.calls)
        assert s.processed == fake.calls
        coco = json.loads((out / f"coco.shard{i}of3.json").read_text())  # one file each
        assert len(coco) == fake.calls
    assert sum(calls) == len(expected) and min(calls) > 0
    assert keypoint_files(out) == expected  # same names as unsharded: no clashes
    per_shard = []
    for i in range(3):
        recs = read_manifest(out / f"openpaf_manifest.shard{i}of3.jsonl")
        assert recs[0]["shard"] == [i, 3]
        per_shard.append({r["input"] for r in recs if "input" in r})
    everything = set().union(*per_shard)
    assert sum(len(p) for p in per_shard) == len(everything)  # disjoint
    assert len(everything) == 10 + 5 + 2 + 1                    # images, videos, missing
    # Whole videos: all frames of a video come from the shard that owns it.
    for v in ("clip", "walk"):
        owners = [i for i in range(3) if any(r.get("name") == v and r.get("status") == "done"
                                             for r in read_manifest(
                                                 out / f"openpaf_manifest.shard{i}of3.jsonl"))]
        assert len(owners) == 1
        assert len([f for f in expected if f.startswith(f"{v}_")]) == 12

    # --shard auto reads torchrun's RANK/WORLD_SIZE; a multi-process launch without
    # --shard is refused.
    import openpaf_cli.infer
    from openpaf_cli.main import main
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: Counting())
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    r = CliRunner().invoke(main, ["infer", *specs, "-o", str(tmp_path / "auto"), "-q",
                                  "--shard", "auto", "--no-render"])
    auto = {x["input"] for x in read_manifest(tmp_path / "auto" /
                                             "openpaf_manifest.shard1of3.jsonl")
            if "input" in x}
    assert auto == per_shard[1]
    assert r.exit_code == (2 if specs[-1] in auto else 0), r.output  # (missing.jpg fails)
    r = CliRunner().invoke(main, ["infer", str(a), "-o", str(tmp_path / "x"), "-q"])
    assert r.exit_code == 64 and "--shard auto" in r.output
    monkeypatch.delenv("RANK")
    r = CliRunner().invoke(main, ["infer", str(a), "--shard", "auto"])
    assert r.exit_code == 64 and "RANK" in r.output
    for bad in ("3/3", "1", "a/b", "-1/2"):
        r = CliRunner().invoke(main, ["infer", str(a), "--shard", bad])
        assert r.exit_code == 64 and "shard" in r.output, bad


# ---------------------------------------------------------------------------------------
# Broken inputs


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def test_fuzz_folder_every_broken_input_is_one_line(tmp_path, capfd):
    import struct
    import zlib
    d = tmp_path / "fuzz"
    good = make_images(d, 3, prefix="good")
    jpg = (d / "good0.jpg").read_bytes()
    (d / "a_truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (d / "b_random.jpg").write_bytes(np.random.default_rng(7).bytes(3000))
    (d / "c_zero.png").write_bytes(b"")
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (d / "d_huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                                   + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
                                   + _png_chunk(b"IEND", b""))
    (d / "e_text.jpg").write_text("definitely not a JPEG\n" * 20)
    png = cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))[1].tobytes()
    (d / "f_cut.png").write_bytes(png[: len(png) // 2])
    cv2.imwrite(str(d / "tiny.png"), np.array([[[9, 9, 9]]], np.uint8))  # 1x1: valid
    vids = tmp_path / "vids"
    vids.mkdir()
    data = make_video(vids / "ok.mp4", n=20).read_bytes()
    (vids / "half.mp4").write_bytes(data[: len(data) // 2])        # index at the end: gone
    damaged = bytearray(data)
    damaged[len(data) // 2: len(data) // 2 + 3000] = bytes(3000)   # broken frames inside
    (vids / "damaged.mp4").write_bytes(bytes(damaged))
    (vids / "junk.mp4").write_bytes(np.random.default_rng(8).bytes(5000))
    (vids / "empty.mp4").write_bytes(b"")
    specs = [str(d), *(str(vids / f"{v}.mp4") for v in ("half", "damaged", "junk", "empty",
                                                           "ok")),
             "97", str(tmp_path / "nope.png")]

    out = tmp_path / "out"
    fake = Counting()
    s = run_inference(fake, specs, InferOptions(output=out), progress=False)
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert "Traceback" not in err and all(line.startswith("skipped ") for line in lines), err
    broken = ["a_truncated.jpg", "b_random.jpg", "c_zero.png", "d_huge.png", "e_text.jpg",
              "f_cut.png", "half.mp4", "damaged.mp4", "junk.mp4", "empty.mp4", "webcam:97",
              "nope.png"]
    for name in broken:  # exactly one line each, in input order
        assert len([x for x in lines if re.match(rf"skipped \S*{re.escape(name)}[: ]",
                                                 x)]) == 1, (name, err)
    order = [next(i for i, x in enumerate(lines) if name in x) for name in broken]
    assert order == sorted(order) and len(lines) == len(broken)
    assert len(s.failed) == len(broken) and s.exit_code == 2
    # Good inputs all processed, including the 1x1 image and the damaged video's readable
    # frames (20 minus the range its one line names).
    span = re.search(r"damaged\.mp4: frame (\d+)(?:-(\d+))?", err)
    lost = int(span.group(2) or span.group(1)) - int(span.group(1)) + 1
    assert fake.calls == s.processed == len(good) + 1 + 20 + (20 - lost)
    for name in good + ["tiny"]:
        assert (out / f"{name}_keypoints.json").exists()
    assert len([f for f in keypoint_files(out) if f.startswith("damaged_")]) == 20 - lost
    records = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "input" in r]
    failed = [r for r in records if r.get("status") == "failed"]
    assert len(failed) == len(broken) - 1 and all(r["reason"] for r in failed)
    (video,) = [r for r in records if r["input"].endswith("damaged.mp4")]  # one outcome
    assert video["status"] == "done" and video["errors"] == 1 and len(video["gaps"]) == 1
    assert temp_files(out) == []


# ---------------------------------------------------------------------------------------
# The prefetch thread


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "openpaf-prefetch"]


def test_prefetcher_overlaps_and_keeps_order():
    def slow_source(n):
        for i in range(n):
            time.sleep(0.05)
            yield i

    start = time.perf_counter()
    got = []
    with Prefetcher(slow_source(10), size=3) as items:
        for i in items:
            time.sleep(0.05)
            got.append(i)
    wall = time.perf_counter() - start
    assert got == list(range(10))
    assert wall < 0.8 * 10 * (0.05 + 0.05), wall
    assert _prefetch_threads() == []


def test_prefetcher_passes_errors_and_stops_on_consumer_exception():
    baseline = threading.active_count()

    def failing():
        yield 1
        yield 2
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke"):
        list(Prefetcher(failing()))
    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)  # the generator is closed by its own thread

    with pytest.raises(RuntimeError):
        with Prefetcher(endless(), size=2) as items:
            for i in items:
                if i == 5:
                    raise RuntimeError("consumer broke")
    assert closed == [True]
    assert threading.active_count() == baseline and _prefetch_threads() == []
    assert list(Prefetcher(iter([1, 2, 3]), size=0)) == [1, 2, 3]  # no thread at all


def test_run_overlaps_decoding_with_predict(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    make_images(folder, 10)
    real = sources.load_image

    def slow_load(path):
        time.sleep(0.05)
        return real(path)

    monkeypatch.setattr(sources, "load_image", slow_load)
    serial = 10 * (0.05 + 0.05)
    walls = {}
    for prefetch in (4, 0):
        opts = InferOptions(output=tmp_path / f"o{prefetch}", prefetch=prefetch,
                            write_images=False, manifest=False)
        start = time.perf_counter()
        s = run_inference(Counting(delay=0.05), [str(folder)], opts, progress=False)
        walls[prefetch] = time.perf_counter() - start
        assert s.processed == 10
    assert walls[4] < 0.8 * serial, walls
    assert walls[0] >= 0.95 * serial, walls  # (the measurement tells the two apart)


class Boom(BaseException):
    """Not an Exception: escapes the per-frame error handling, like a crash would."""


def test_exceptions_in_predict_shut_the_worker_down(tmp_path, capfd):
    folder = tmp_path / "in"
    make_images(folder, 12)
    video = make_video(tmp_path / "v.mp4", n=20)
    baseline = threading.active_count()
    for exc in (KeyboardInterrupt, Boom):
        fake = Counting()

        def predict(image, fake=fake, exc=exc):
            if fake.calls == 15:  # inside the video, with the worker decoding ahead
                raise exc()
            return fake(image)

        out = tmp_path / exc.__name__
        opts = InferOptions(output=out, stream_jsonl=True)
        if exc is KeyboardInterrupt:
            s = run_inference(predict, [str(folder), str(video)], opts, progress=False)
            assert s.interrupted and s.exit_code == 130
        else:
            with pytest.raises(Boom):
                run_inference(predict, [str(folder), str(video)], opts, progress=False)
        assert threading.active_count() == baseline and _prefetch_threads() == []
        assert temp_files(out) == []
        # The stream open at the time is finalised: 3 frames in its mp4 and JSONL.
        cap = cv2.VideoCapture(str(out / "v_rendered.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
        cap.release()
        assert len((out / "v.jsonl").read_text().splitlines()) == 3
        end = read_manifest(out / "openpaf_manifest.jsonl")[-1]
        assert end["event"] == "end"
        assert end.get("error") == (None if exc is KeyboardInterrupt else "Boom")
    capfd.readouterr()
