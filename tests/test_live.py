"""Live use: URL inputs against a local MJPEG server of real photos, reconnect and give
up, unreachable streams, real-time mode, ``--jsonl -`` piping, ``--show`` (window calls
faked), credentials never written.

``FakePredict`` stands in for the network (one template person per frame, optionally
slow), so the tests time the pipeline, not a model.
"""
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from openpaf.benchmark.mjpeg_server import MjpegServer, photo_frames
from openpaf.io.manifest import read_manifest
from openpaf.io.plan import plan
from openpaf.io.sources import iter_frames
from openpaf.io.stream import LiveOptions
from openpaf.io.urls import mask_credentials, stream_stem
from openpaf.runner import InferOptions, run_inference
from openpaf.structures import Detections, Person

from conftest import SHARED_DATA, person, require
from helpers import CHILD_PRELUDE

PHOTOS = SHARED_DATA / "coco" / "val"
SECRET = "s3cr3t-pw"


class FakePredict:
    """One template person in the middle of every frame, after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.calls = delay, 0

    def __call__(self, image):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        kps = person(w / 2, h / 2, size=min(h, w) / 260)
        kps[:, 2] = 0.9
        return Detections((w, h), [Person(kps, 0.9)])


@pytest.fixture(scope="module")
def frames():
    return photo_frames(require(PHOTOS), count=4, height=96)


def _cli(monkeypatch, args, predictor):
    import openpaf_cli.infer
    from openpaf_cli.main import main
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: predictor)
    return CliRunner().invoke(main, ["infer", *map(str, args)])


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://bob:{SECRET}@")


def _codec(path: Path):
    av = pytest.importorskip("av", reason="PyAV writes and reads the H.264 videos")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(video=0))
        return stream.codec_context.name, stream.codec_context.pix_fmt, n


def _no_secret_anywhere(folder: Path, *texts: str) -> None:
    for path in folder.rglob("*"):
        assert SECRET not in str(path) and "bob" not in path.name
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    for text in texts:
        assert SECRET not in text


# -- URLs -----------------------------------------------------------------------------


def test_urls_are_masked_named_and_planned():
    assert mask_credentials("x rtsp://u:p@cam:554/a and http://h/b") == \
        "x rtsp://***@cam:554/a and http://h/b"
    assert stream_stem("rtsp://u:p@cam.local:8554/live/1?ch=2") == "cam.local_8554_live_1_ch_2"
    assert stream_stem("/dev/video0") == "video0"
    units = list(plan(["rtsp://u:p@cam/x", "rtsp://cam/x", "/dev/video3", "udp://0.0.0.0:9"],
                      every=1, recursive=False, shard=None, sequences=False))
    assert [u.kind for u in units] == ["stream"] * 4
    assert [u.name for u in units] == ["cam_x", "cam_x_2", "video3", "0.0.0.0_9"]
    assert units[0].source == "rtsp://***@cam/x" and units[0].path == "rtsp://u:p@cam/x"


def test_mjpeg_url_30_frames_jsonl_and_h264(monkeypatch, tmp_path, frames):
    """The acceptance run: 30 frames of people in the JSONL and a playable H.264 MP4,
    the password nowhere in the files, names or logs."""
    out = tmp_path / "out"
    with MjpegServer(frames, fps=40) as server:
        result = _cli(monkeypatch, [_with_password(server.url), "-o", out, "--max-frames",
                                    30, "--json-format", "jsonl"], FakePredict())
    assert result.exit_code == 0, result.output
    stem = f"127.0.0.1_{server.port}_stream.mjpg"
    lines = [json.loads(l) for l in (out / f"{stem}.jsonl").read_text().splitlines()]
    assert len(lines) == 30 and all(len(l["people"]) == 1 for l in lines)
    assert all(l["latency_ms"] >= 0 and l["captured"] > 0 for l in lines)
    assert _codec(out / f"{stem}_rendered.mp4") == ("h264", "yuv420p", 30)
    rec = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "input" in r][0]
    assert rec["kind"] == "stream" and rec["live"] and rec["status"] == "stopped"
    assert rec["input"] == f"http://***@127.0.0.1:{server.port}/stream.mjpg"
    assert set(rec["latency_ms"]) == {"p50", "p90", "max"} and "dropped" in rec
    _no_secret_anywhere(out, result.output)


def test_server_stopped_mid_run_reconnects_then_ends_cleanly(monkeypatch, tmp_path, frames):
    out = tmp_path / "out"
    with MjpegServer(frames, fps=30) as server:
        threading.Timer(1.0, server.stop).start()
        result = _cli(monkeypatch, [_with_password(server.url), "-o", out, "--reconnect", 2,
                                    "--open-timeout", 1, "--json-format", "jsonl"],
                      FakePredict())
    assert result.exit_code == 2, result.output  # documented: a stream given up = failed
    assert "reconnecting (1/2)" in result.stderr and "reconnecting (2/2)" in result.stderr
    assert "gave up after 2 reconnect attempts" in result.stderr
    records = read_manifest(out / "openpaf_manifest.jsonl")
    rec = [r for r in records if r.get("kind") == "stream"][0]
    assert rec["status"] == "interrupted" and rec["state"] == "gave up"
    assert rec["reconnects"] == 2 and not any(a["ok"] for a in rec["reconnect_attempts"])
    assert records[-1]["event"] == "end" and rec["frames"] > 0
    stem = rec["name"]
    lines = (out / f"{stem}.jsonl").read_text().splitlines()
    assert len(lines) == rec["frames"] and all(json.loads(l) for l in lines)
    assert _codec(out / f"{stem}_rendered.mp4")[2] == rec["frames"]
    _no_secret_anywhere(out, result.output)


def test_unreachable_rtsp_fails_in_one_line_within_the_timeout(monkeypatch, tmp_path):
    start = time.monotonic()
    result = _cli(monkeypatch, ["rtsp://127.0.0.1:1/x", "-o", tmp_path, "--open-timeout", 2],
                  FakePredict())
    assert time.monotonic() - start < 2 + 1.5
    assert result.exit_code == 1
    errors = [l for l in result.stderr.splitlines() if "rtsp://" in l]
    assert errors == ["skipped rtsp://127.0.0.1:1/x: cannot open stream: unreachable or "
                      "not a video"]


def test_silent_server_times_out():
    """A server that accepts and never answers: given up after ``open_timeout``."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        start = time.monotonic()
        items = list(iter_frames([f"rtsp://127.0.0.1:{silent.getsockname()[1]}/x"],
                                 live=LiveOptions(open_timeout=1.0)))
    assert 0.8 < time.monotonic() - start < 3.0
    assert [i.reason for i in items] == ["cannot open stream: no answer within "
                                         "--open-timeout 1 s"]


# -- real time ------------------------------------------------------------------------


def _live_run(tmp_path, frames, realtime: bool, n: int):
    with MjpegServer(frames, fps=50, limit=n) as server:
        summary = run_inference(FakePredict(delay=0.06), [server.url], InferOptions(
            output=tmp_path / f"rt{realtime}", write_json=False, write_images=False,
            write_video=False, stream_jsonl=True, realtime=realtime,
            live=LiveOptions(reconnect=0)), progress=False)
    return summary, server.served


def test_realtime_latency_bounded_and_drops_counted_vs_every_frame(tmp_path, frames):
    """Source 50 fps, network 60 ms: real time drops frames and its latency does not
    grow with the run; --no-realtime processes every frame sent."""
    rt, sent = _live_run(tmp_path, frames, True, 100)
    assert rt.dropped > 0 and rt.processed + rt.dropped <= sent
    lat = np.array(rt.latencies)
    half = len(lat) // 2
    assert np.percentile(lat, 90) < 400
    assert np.percentile(lat[half:], 90) < np.percentile(lat[:half], 90) + 100
    every, sent = _live_run(tmp_path, frames, False, 40)
    assert every.processed == sent == 40 and every.dropped == 0


def test_realtime_file_preview_is_paced_at_its_fps(tmp_path):
    from helpers import write_video
    clip = write_video(tmp_path / "c.mp4", n=20, fps=20.0)
    start = time.monotonic()
    items = [i for i in iter_frames([str(clip)], realtime=True)]
    assert time.monotonic() - start > 0.8  # 20 frames at 20 fps ~ 1 s
    assert len(items) == 20 and all(i.captured is not None for i in items)


# -- piping ---------------------------------------------------------------------------


def test_jsonl_stdout_is_jsonl_only_and_line_buffered(tmp_path, frames):
    """A reader sees the first line while the run is still going; stdout holds nothing
    but JSON lines, the logs are on stderr."""
    child = CHILD_PRELUDE + (
        "import time, openpaf_cli.infer\n"
        "from test_live import FakePredict\n"
        "openpaf_cli.infer._build_predictor = lambda weights, **kw: FakePredict(0.1)\n"
        "from openpaf_cli.main import main\n"
        "main(sys.argv[1:], prog_name='openpaf')\n")
    with MjpegServer(frames, fps=30) as server:
        proc = subprocess.Popen([sys.executable, "-c", child, "infer", server.url, "-o",
                                 str(tmp_path), "--jsonl", "-", "--max-frames", "10"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        running = proc.poll() is None
        rest, err = proc.communicate(timeout=120)
    assert running, "the first line came only at the end"
    lines = [first] + rest.splitlines()
    assert len(lines) == 10 and all(json.loads(l)["people"] for l in lines)
    assert "10 processed" in err


# -- window ---------------------------------------------------------------------------


def test_show_without_display_fails_at_start(monkeypatch, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    predictor = FakePredict()
    result = _cli(monkeypatch, ["0", "--show", "-o", tmp_path / "out"], predictor)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --show needs a display; DISPLAY is not set"
    assert not (tmp_path / "out").exists() and predictor.calls == 0


def test_show_window_and_q_stops_like_ctrl_c(monkeypatch, tmp_path):
    from openpaf.io import window
    from helpers import write_video
    shown, keys = [], iter([-1, -1, ord("q")])
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(window, "_gui_backend", lambda: True)
    monkeypatch.setattr(window, "_imshow", lambda title, image: shown.append(image.copy()))
    monkeypatch.setattr(window, "_wait_key", lambda ms: next(keys, -1))
    monkeypatch.setattr(window, "_close", lambda title: None)
    clip = write_video(tmp_path / "c.mp4", n=10, size=(96, 64))
    out = tmp_path / "out"
    result = _cli(monkeypatch, [clip, "-o", out, "--show", "--json-format", "jsonl",
                                "--no-realtime"], FakePredict())
    assert result.exit_code == 130, result.output
    assert len(shown) == 3 and shown[0].shape == (64, 96, 3)
    rec = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "input" in r][0]
    assert rec["status"] == "interrupted" and rec["frames"] == 3
    assert len((out / "c.jsonl").read_text().splitlines()) == 3
    assert _codec(out / "c_rendered.mp4")[2] == 3


def test_live_benchmark_reports_both_modes(frames):
    from openpaf.benchmark import benchmark_live, format_live
    report = benchmark_live(FakePredict(0.05), require(PHOTOS), fps=30, seconds=1,
                            frame_height=64)
    rt, every = report["runs"]
    assert rt["realtime"] and rt["dropped"] > 0 and rt["latency_ms_p90"] is not None
    assert not every["realtime"] and every["processed"] == every["sent"] == 30
    assert "--no-realtime: 30/30 frames processed" in format_live(report)


def test_video_file_over_http_ends_without_reconnecting(tmp_path):
    """A progressive mp4 has a declared length: its end is the end, not a dropped
    connection (reopening would replay it)."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from helpers import write_video
    write_video(tmp_path / "clip.mp4", n=12)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        items = list(iter_frames([f"http://127.0.0.1:{httpd.server_address[1]}/clip.mp4"],
                                 events=True, realtime=False))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(items) == 13 and items[-1].info == {"live": True, "state": "ended",
                                                   "reconnects": 0}
