"""Resuming ``infer`` (``--skip-existing``) and what a re-run leaves on disk: outputs are
reused only for the same source and settings, names never collide, earlier complete files
survive a failed or interrupted re-run, SIGTERM finalises like Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from openpaf.io.manifest import read_manifest
from openpaf.runner import InferOptions, run_inference
from openpaf.skeleton import NUM_KEYPOINTS

import helpers
from test_runner import FakePredict


class Fake(FakePredict):
    """``FakePredict`` with the settings a real predictor reports (weights file, height)."""

    def __init__(self, weights=None, height=None, interrupt_on=None, **_):
        super().__init__(interrupt_on=interrupt_on)
        self.weights_path = None if weights is None else Path(weights)
        self.height = height or 456
        self.manifest: dict = {}


def _jpg(path, seed, size=(48, 64)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, size + (3,), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def _cli(monkeypatch, made):
    import openpaf_cli.infer
    from openpaf_cli.main import main

    def build(weights, **kw):
        made.append(Fake(weights, **kw))
        return made[-1]
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", build)
    return lambda *args: CliRunner().invoke(main, ["infer", "-q", *map(str, args)])


def _records(out):
    return [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "input" in r]


def test_resume_redoes_what_changed_weights_height_layout_scale(tmp_path, monkeypatch):
    """Changing the weights, --height, --openpose-layout or --keypoint-scale redoes every
    input and says why in one line; nothing changed redoes nothing."""
    for i in range(3):
        _jpg(tmp_path / "in" / f"im{i}.jpg", i)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first weights")
    made: list = []
    infer = _cli(monkeypatch, made)
    base = [tmp_path / "in", "-o", tmp_path / "out", "-w", weights, "--skip-existing"]
    r = infer(*base)
    assert r.exit_code == 0 and made[-1].calls == 3, r.output
    r = infer(*base)
    assert r.exit_code == 0 and made[-1].calls == 0 and "redid" not in r.output, r.output
    weights.write_bytes(b"retrained weights")
    steps = [([], "weights changed"), (["--height", 368], "height 456 -> 368"),
             (["--height", 368, "--openpose-layout", "body25"], "layout coco18 -> body25"),
             (["--height", 368, "--openpose-layout", "body25", "--keypoint-scale", "unit"],
              "keypoint_scale pixels -> unit")]
    for extra, why in steps:
        r = infer(*base, *extra)
        assert r.exit_code == 0 and made[-1].calls == 3, r.output
        said = [line for line in r.output.splitlines() if line.startswith("redid")]
        assert len(said) == 1 and "redid 3 input(s)" in said[0] and why in said[0], r.output
        assert all(rec.get("redo", "").startswith(why) for rec in _records(tmp_path / "out")[-3:])
        r = infer(*base, *extra)
        assert made[-1].calls == 0 and "redid" not in r.output, r.output
    obj = json.loads((tmp_path / "out" / "im0_keypoints.json").read_text())
    assert len(obj["people"][0]["pose_keypoints_2d"]) == 75
    assert max(obj["people"][0]["pose_keypoints_2d"]) <= 1.0


def test_skip_existing_never_takes_another_inputs_results(tmp_path):
    """A different photo.jpg / v10.mp4 from another folder is processed, not given the
    earlier input's keypoints."""
    a = _jpg(tmp_path / "a" / "photo.jpg", 1, size=(40, 50))
    b = _jpg(tmp_path / "b" / "photo.jpg", 2, size=(90, 120))
    va = helpers.write_video(tmp_path / "a" / "v10.mp4", n=3, size=(64, 48))
    vb = helpers.write_video(tmp_path / "b" / "v10.mp4", n=4, size=(96, 64))
    out = tmp_path / "out"
    opts = InferOptions(output=out, skip_existing=True, coco_json=out / "coco.json")
    assert run_inference(Fake(), [str(a), str(va)], opts, progress=False).processed == 4
    fake = Fake()
    s = run_inference(fake, [str(b), str(vb)], opts, progress=False)
    assert fake.calls == 5 and s.processed == 5 and s.skipped_existing == 0
    xs = json.loads((out / "photo_keypoints.json").read_text())["people"][0]["pose_keypoints_2d"]
    assert xs[-3] == pytest.approx(0.7 * 120, abs=0.01)   # b's width, not a's
    recs = _records(out)[-2:]
    assert {r["redo"].split(" (")[0] for r in recs} == {"another source"}
    assert len(json.loads((out / "coco.json").read_text())) == 5
    third = run_inference(fake, [str(b), str(vb)], opts, progress=False)
    # (COCO needs the video's detections: its frames are re-read from their JSON)
    assert fake.calls == 5 and (third.processed, third.skipped_existing) == (0, 5)


def test_resume_writes_what_the_earlier_run_did_not(tmp_path):
    """Renders a --no-render run did not write are written; JSON written in unit scale is
    redone, not read as pixels into COCO; a folder never mixes BODY_25 and COCO-18."""
    for i in range(2):
        _jpg(tmp_path / "in" / f"im{i}.jpg", i)
    out = tmp_path / "out"
    unit = InferOptions(output=out, write_images=False,
                        openpose=InferOptions().openpose.__class__("body25", "unit"))
    run_inference(Fake(), [str(tmp_path / "in")], unit, progress=False)
    assert not (out / "im0_rendered.jpg").exists()
    fake = Fake()
    again = InferOptions(output=out, skip_existing=True, coco_json=out / "coco.json")
    s = run_inference(fake, [str(tmp_path / "in")], again, progress=False)
    assert fake.calls == 2 and s.redone == 2
    assert (out / "im0_rendered.jpg").exists()
    coco = json.loads((out / "coco.json").read_text())
    assert max(max(r["keypoints"]) for r in coco) > 10     # pixels, not [0, 1]
    for i in range(2):
        kps = json.loads((out / f"im{i}_keypoints.json").read_text())["people"][0]
        assert len(kps["pose_keypoints_2d"]) == 3 * NUM_KEYPOINTS


# ``openpaf ARGS`` in a child process with a fake predictor (sleeping $FAKE_SLEEP s per
# frame), under a file-size limit of $FSIZE_LIMIT bytes when set (writes past it fail).
_FAKE_CLI = helpers.CHILD_PRELUDE + """
import os, resource, signal, time, numpy as np
import openpaf_cli.infer as infer
from openpaf.structures import Detections, Person
if os.environ.get("FSIZE_LIMIT"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(os.environ["FSIZE_LIMIT"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
def fake(image):
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    h, w = image.shape[:2]
    kps = np.full((18, 3), 0.9, np.float32); kps[:, 0] *= w / 2; kps[:, 1] *= h / 2
    return Detections((w, h), [Person(kps, 0.8)])
infer._build_predictor = lambda weights, **kw: fake
from openpaf_cli.main import main
main(sys.argv[1:], prog_name="openpaf")
"""


def _child(*args, **env):
    return subprocess.Popen([sys.executable, "-c", _FAKE_CLI, "infer", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **{k: str(v) for k, v in env.items()}})


def _noise(i, size):
    return np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)


def test_a_video_that_cannot_be_written_never_replaces_a_good_one(tmp_path):
    """Re-rendering a video under a file-size limit (as on a full disk): the earlier mp4
    is kept, the video gets a failed record and the exit code is not 0."""
    video = helpers.write_video(tmp_path / "clip.mp4", n=12, size=(160, 120), frame=_noise)
    out = tmp_path / "out"
    first = _child(video, "-o", out, "-q")
    assert first.wait(120) == 0, first.communicate()[0]
    good = (out / "clip_rendered.mp4").read_bytes()
    assert len(good) > 60_000
    again = _child(video, "-o", out, FSIZE_LIMIT=40_000)
    output = again.communicate(timeout=120)[0]
    assert again.returncode == 2, output
    assert "clip_rendered.mp4" in output and "Traceback" not in output
    assert (out / "clip_rendered.mp4").read_bytes() == good
    assert [f for f in os.listdir(out) if f.startswith(".")] == []
    recs = _records(out)
    assert any(r["status"] == "failed" and r["input"].endswith("clip_rendered.mp4")
               for r in recs)
    assert recs[-1]["status"] == "failed" and recs[-1]["input"] == str(video)


def test_sigterm_finalises_like_ctrl_c_and_exits_143(tmp_path):
    """SIGTERM mid-video: the mp4 so far, the COCO file and the manifest's end record are
    written, and the exit code is 143."""
    video = helpers.write_video(tmp_path / "clip.mp4", n=200, size=(64, 48))
    out = tmp_path / "out"
    child = _child(video, "-o", out, "-q", "--json-format", "openpose,coco", FAKE_SLEEP=0.05)
    deadline = time.monotonic() + 120
    while not (out / "clip_000003_keypoints.json").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[0]
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    output = child.communicate(timeout=120)[0]
    assert child.returncode == 143, output
    assert "Traceback" not in output
    cap = cv2.VideoCapture(str(out / "clip_rendered.mp4"))
    assert cap.isOpened() and 4 <= cap.get(cv2.CAP_PROP_FRAME_COUNT) < 200
    cap.release()
    assert len(json.loads((out / "coco_results.json").read_text())) >= 4
    records = read_manifest(out / "openpaf_manifest.jsonl")
    assert records[-1]["event"] == "end" and records[-1]["interrupted"] is True
    assert [r["status"] for r in records if "input" in r] == ["interrupted"]


def test_an_interrupted_rerun_keeps_the_earlier_complete_files(tmp_path):
    """Ctrl-C in a re-run leaves the earlier complete COCO file, rendered mp4, stream
    JSONL and --jsonl file as they were (a first run still finalises what it did)."""
    video = helpers.write_video(tmp_path / "clip.mp4", n=10, size=(64, 48))
    out = tmp_path / "out"
    opts = InferOptions(output=out, stream_jsonl=True, coco_json=out / "coco.json",
                        jsonl=out / "all.jsonl", overlap=False)
    first = run_inference(Fake(interrupt_on=5), [str(video)], opts, progress=False)
    assert first.interrupted and len(json.loads((out / "coco.json").read_text())) == 4
    assert run_inference(Fake(), [str(video)], opts, progress=False).processed == 10
    files = ["coco.json", "clip_rendered.mp4", "clip.jsonl", "all.jsonl"]
    before = {f: (out / f).read_bytes() for f in files}
    assert len(json.loads(before["coco.json"])) == 10
    s = run_inference(Fake(interrupt_on=4), [str(video)], opts, progress=False)
    assert s.interrupted and s.processed == 3
    assert {f: (out / f).read_bytes() for f in files} == before
    assert [f for f in os.listdir(out) if f.startswith(".")] == []


def test_video_frames_and_stills_never_share_a_name(tmp_path):
    """Video a.mp4 frame 1 and a still a_000001.jpg (ffmpeg's a_%06d.jpg) in one run get
    separate files, in either order."""
    still = _jpg(tmp_path / "in" / "a_000001.jpg", 1, size=(30, 40))
    helpers.write_video(tmp_path / "in" / "a.mp4", n=3, size=(64, 48))
    for k, specs in enumerate(([tmp_path / "in"], [still, tmp_path / "in" / "a.mp4"])):
        out = tmp_path / f"out{k}"
        s = run_inference(Fake(), [str(p) for p in specs], InferOptions(output=out),
                          progress=False)
        assert s.processed == 4 and not s.failed
        names = [r["name"] for r in _records(out) if r.get("kind") == "image"]
        stems = {r["name"] for r in _records(out) if r.get("kind") == "video"}
        frames = {f"{v}_{i:06d}" for v in stems for i in range(3)}
        assert len(names) == 1 and names[0] not in frames
        jsons = sorted(out.glob("*_keypoints.json"))
        assert len(jsons) == 4
        still_json = json.loads((out / f"{names[0]}_keypoints.json").read_text())
        assert still_json["people"][0]["pose_keypoints_2d"][-3] == pytest.approx(0.7 * 40)


def test_a_run_level_file_never_takes_a_frames_name(tmp_path):
    """--coco-json OUT/im0_keypoints.json and --jsonl OUT/clip.jsonl: the image and the
    video's outputs take other names, so neither file overwrites the other."""
    im = _jpg(tmp_path / "in" / "im0.jpg", 0)
    clip = helpers.write_video(tmp_path / "in" / "clip.mp4", n=2, size=(64, 48))
    out = tmp_path / "out"
    opts = InferOptions(output=out, coco_json=out / "im0_keypoints.json",
                        jsonl=out / "clip.jsonl", stream_jsonl=True)
    s = run_inference(Fake(), [str(im), str(clip)], opts, progress=False)
    assert s.processed == 3 and not s.failed
    assert len(json.loads((out / "im0_keypoints.json").read_text())) == 3   # COCO list
    assert len((out / "clip.jsonl").read_text().splitlines()) == 3          # the run's
    names = {r["name"] for r in _records(out)}
    assert "im0" not in names and "clip" not in names and len(names) == 2
    for name in names:
        assert (out / f"{name}_rendered.jpg").exists() or (out / f"{name}.jsonl").exists()


def test_linked_inputs_are_recorded_as_duplicates(tmp_path, capfd):
    """A symlink and a hard link of one file (also named again): processed once, each
    other path gets a manifest line and a message naming the file processed."""
    a = _jpg(tmp_path / "in" / "a.jpg", 0)
    os.symlink(a, tmp_path / "in" / "b.jpg")
    os.link(a, tmp_path / "in" / "c.jpg")
    out = tmp_path / "out"
    fake = Fake()
    s = run_inference(fake, [str(tmp_path / "in"), str(a)], InferOptions(output=out),
                      progress=False)
    assert fake.calls == 1 and s.processed == 1 and s.exit_code == 0
    dup = {Path(r["input"]).name: r for r in _records(out) if r["status"] == "duplicate"}
    assert sorted(dup) == ["b.jpg", "c.jpg"] and len(_records(out)) == 3
    assert all(r["of"] == str(a) for r in dup.values())
    err = capfd.readouterr().err
    assert sum(f"same file as {a}" in line for line in err.splitlines()) == 2, err


def test_an_input_whose_write_failed_is_redone(tmp_path, monkeypatch):
    """A re-run from another photo.jpg that rendered, then failed to write its JSON: the
    render on disk is no longer the first photo's, so resuming the first redoes it."""
    a = _jpg(tmp_path / "a" / "photo.jpg", 1)
    b = _jpg(tmp_path / "b" / "photo.jpg", 2)
    out = tmp_path / "out"
    opts = InferOptions(output=out, skip_existing=True)
    run_inference(Fake(), [str(a)], opts, progress=False)
    import openpaf.runner.loop as loop

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(loop, "write_openpose_json", full_disk)
        assert len(run_inference(Fake(), [str(b)], opts, progress=False).failed) == 1
    fake = Fake()
    s = run_inference(fake, [str(a)], opts, progress=False)
    assert fake.calls == 1 and s.redone == 1
    assert _records(out)[-1]["redo"] == "the earlier run failed it"


def test_a_resumed_video_counts_every_frames_people_and_images_keep_their_index(tmp_path):
    """A resumed video's manifest counted only the new frames' people, and images re-read
    from an earlier run got ``"frame": 0`` in the images JSONL."""
    video = helpers.write_video(tmp_path / "clip.mp4", n=6)
    stills = tmp_path / "stills"
    for i in range(3):
        _jpg(stills / f"s{i}.jpg", i)
    out = tmp_path / "out"
    opts = InferOptions(output=out, skip_existing=True, stream_jsonl=True, overlap=False)
    run_inference(Fake(interrupt_on=4), [str(video)], opts, progress=False)  # 3 frames
    s = run_inference(Fake(), [str(video)], opts, progress=False)
    assert s.processed == 3 and s.skipped_existing == 3
    end = [r for r in _records(out) if r.get("kind") == "video" and r.get("status") == "done"]
    assert end[-1]["frames"] == 6 and end[-1]["people"] == 6
    run_inference(Fake(), [str(stills)], opts, progress=False)
    first = [json.loads(line) for line in (out / "openpaf_images.jsonl").read_text().splitlines()]
    run_inference(Fake(), [str(stills)], opts, progress=False)      # all re-read
    again = [json.loads(line) for line in (out / "openpaf_images.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in again] == [r["frame"] for r in first] == [0, 1, 2]
