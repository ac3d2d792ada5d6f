"""The inference run loop and the ``openpaf infer`` CLI, driven by a fake predictor."""
import json
import os
import shutil
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from openpaf.io.manifest import read_manifest
from openpaf.io.writers import validate_openpose_json
from openpaf.runner import InferOptions, RunSummary, run_inference
from openpaf.skeleton import NUM_KEYPOINTS
from openpaf.structures import Detections, Person

import helpers

COCO_VAL = Path("/work/shared/data/coco/val")
REAL = ["000000000139.jpg", "000000000785.jpg"]


class FakePredict:
    """Returns one person laid out relative to the image size; counts its calls."""

    def __init__(self, fail_on=None, interrupt_on=None):
        self.calls = 0
        self.fail_on, self.interrupt_on = fail_on, interrupt_on

    def __call__(self, image):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls += 1
        if self.calls == self.interrupt_on:
            raise KeyboardInterrupt
        if self.fail_on is not None and self.fail_on(image):
            raise RuntimeError("model exploded\nwith a second line")
        h, w = image.shape[:2]
        kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        kps[:, 0] = np.linspace(0.3, 0.7, NUM_KEYPOINTS) * w
        kps[:, 1] = np.linspace(0.1, 0.9, NUM_KEYPOINTS) * h
        kps[:, 2] = 0.9
        return Detections((w, h), [Person(kps, 0.75)])


def _synthetic_jpg(path, seed, size=(120, 160)):
    img = np.random.default_rng(seed).integers(0, 255, size + (3,), dtype=np.uint8)
    cv2.imwrite(str(path), img)


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for i, name in enumerate(REAL):
        if (COCO_VAL / name).exists():
            shutil.copy(COCO_VAL / name, d / name)
        else:
            _synthetic_jpg(d / name, i)
    good = (d / REAL[0]).read_bytes()
    (d / "empty.jpg").write_bytes(b"")
    (d / "half.jpg").write_bytes(good[:len(good) // 2])
    (d / "text.jpg").write_text("not an image")
    (d / "readme.txt").write_text("ignored: not an image extension")
    return d


def _grey(i, size):
    return np.full((size[1], size[0], 3), 25 * i % 256, np.uint8)


write_video = partial(helpers.write_video, n=8, size=(80, 60), fps=12.0, frame=_grey)


def _video_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _no_temp_files(folder):
    return [f for f in os.listdir(folder) if f.startswith(".") or "tmp" in f] == []


def test_folder_good_and_bad(folder, tmp_path, capfd):
    out = tmp_path / "out"
    fake = FakePredict()
    opts = InferOptions(output=out, coco_json=out / "coco.json")
    s = run_inference(fake, [str(folder)], opts, progress=False)
    assert isinstance(s, RunSummary)
    assert (s.processed, s.skipped_existing, s.people, len(s.failed)) == (2, 0, 2, 3)
    assert s.exit_code == 2 and s.seconds > 0 and not s.interrupted
    assert {Path(src).name for src, _ in s.failed} == {"empty.jpg", "half.jpg", "text.jpg"}
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith(f"skipped {folder}") for line in lines)
    assert "Traceback" not in err
    assert any("truncated JPEG" in line for line in lines)
    for name in REAL:
        stem = Path(name).stem
        obj = json.loads((out / f"{stem}_keypoints.json").read_text())
        validate_openpose_json(obj)
        assert len(obj["people"]) == 1
        rendered = cv2.imread(str(out / f"{stem}_rendered.jpg"))
        assert rendered.shape == cv2.imread(str(folder / name)).shape
    assert sorted(os.listdir(out)) == sorted(
        ["coco.json", "openpaf_manifest.jsonl"] + [f"{Path(n).stem}_{k}" for n in REAL
                                                   for k in ("keypoints.json",
                                                             "rendered.jpg")])
    records = read_manifest(out / "openpaf_manifest.jsonl")
    assert records[0]["event"] == "start" and records[-1]["event"] == "end"
    status = {Path(r["input"]).name: r["status"] for r in records if "input" in r}
    assert status == {"empty.jpg": "failed", "half.jpg": "failed", "text.jpg": "failed",
                      REAL[0]: "done", REAL[1]: "done"}
    coco = json.loads((out / "coco.json").read_text())
    assert sorted(r["image_id"] for r in coco) == [139, 785]
    assert "2 processed" in s.line() and "3 failed" in s.line()


def test_predict_exception_is_one_line(folder, tmp_path, capfd):
    shape = cv2.imread(str(folder / REAL[1])).shape
    fake = FakePredict(fail_on=lambda im: im.shape == shape)
    s = run_inference(fake, [str(folder / n) for n in REAL],
                      InferOptions(output=tmp_path / "o"), progress=False)
    assert (s.processed, len(s.failed)) == (1, 1) and s.exit_code == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "predict failed: RuntimeError: model exploded with a second line" in err
    assert not (tmp_path / "o" / f"{Path(REAL[1]).stem}_keypoints.json").exists()


def test_skip_existing_redoes_nothing(folder, tmp_path, capfd):
    out = tmp_path / "out"
    opts = InferOptions(output=out, skip_existing=True, coco_json=tmp_path / "c.json")
    first = run_inference(FakePredict(), [str(folder)], opts, progress=False)
    assert first.processed == 2
    def stamps():  # (the manifest is appended to by every run)
        return {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)
                if f != "openpaf_manifest.jsonl"}
    before = stamps()
    fake = FakePredict()
    again = run_inference(fake, [str(folder)], opts, progress=False)
    assert fake.calls == 0
    assert (again.processed, again.skipped_existing, len(again.failed)) == (0, 2, 3)
    assert stamps() == before
    runs = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "event" in r]
    assert [r["event"] for r in runs] == ["start", "end", "start", "end"]
    assert runs[-1]["skipped_existing"] == 2 and runs[-1]["processed"] == 0
    # COCO results still cover the skipped images (read back from their JSON).
    assert len(json.loads((tmp_path / "c.json").read_text())) == 2
    capfd.readouterr()


def test_video_input(tmp_path, capfd):
    video = write_video(tmp_path / "walk.mp4", n=8, fps=12.0)
    out = tmp_path / "out"
    opts = InferOptions(output=out, jsonl=out / "stream.jsonl")
    s = run_inference(FakePredict(), [str(video)], opts, progress=True)
    assert (s.processed, s.people, s.failed) == (8, 8, [])
    assert s.exit_code == 0
    names = sorted(os.listdir(out))
    assert names == sorted([f"walk_{i:06d}_keypoints.json" for i in range(8)]
                           + ["walk_rendered.mp4", "stream.jsonl", "openpaf_manifest.jsonl"])
    for i in range(8):
        validate_openpose_json(json.loads((out / f"walk_{i:06d}_keypoints.json").read_text()))
    cap = cv2.VideoCapture(str(out / "walk_rendered.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) \
        == (80, 60)
    cap.release()
    assert _video_frames(out / "walk_rendered.mp4") == 8
    lines = [json.loads(x) for x in (out / "stream.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(8))
    assert lines[3]["time"] == pytest.approx(3 / 12.0, abs=1e-3)
    assert "Traceback" not in capfd.readouterr().err

    # Re-running with skip_existing calls predict for nothing and keeps a full video.
    fake = FakePredict()
    again = run_inference(fake, [str(video)], InferOptions(output=out, skip_existing=True),
                          progress=False)
    assert fake.calls == 0 and again.skipped_existing == 8
    assert _video_frames(out / "walk_rendered.mp4") == 8
    assert _no_temp_files(out)
    # (that skipped the whole video from the manifest; with a run-level JSONL the frames'
    # detections are needed: it resumes frame by frame, re-reading each frame's JSON)
    os.remove(out / "walk_rendered.mp4")
    fake = FakePredict()
    again = run_inference(fake, [str(video)], InferOptions(output=out, skip_existing=True,
                                                           jsonl=out / "again.jsonl"),
                          progress=False)
    assert fake.calls == 0 and again.skipped_existing == 8
    assert _video_frames(out / "walk_rendered.mp4") == 8  # re-rendered from the JSON
    assert len((out / "again.jsonl").read_text().splitlines()) == 8

    sub = run_inference(FakePredict(), [str(video)],
                        InferOptions(output=tmp_path / "every", every=3, max_frames=2),
                        progress=False)
    assert sub.processed == 2
    assert sorted(os.listdir(tmp_path / "every"))[1:3] == ["walk_000000_keypoints.json",
                                                          "walk_000003_keypoints.json"]


def test_keyboard_interrupt_stops_cleanly(folder, tmp_path, capfd):
    video = write_video(tmp_path / "v.mp4", n=6)
    out = tmp_path / "out"
    fake = FakePredict(interrupt_on=3)
    s = run_inference(fake, [str(video), str(folder)],
                      InferOptions(output=out, coco_json=out / "coco.json"), progress=False)
    assert s.interrupted and s.exit_code == 130 and s.processed == 2
    assert s.line().startswith("interrupted:")
    assert len(json.loads((out / "coco.json").read_text())) == 2
    assert _video_frames(out / "v_rendered.mp4") == 2  # the video is finished, not corrupt
    assert _no_temp_files(out)
    assert "Traceback" not in capfd.readouterr().err


def test_no_outputs_and_missing_inputs(tmp_path, capfd):
    s = run_inference(FakePredict(), [str(tmp_path / "nope.jpg"), "99"],
                      InferOptions(output=tmp_path / "out", write_json=False,
                                   write_images=False, write_video=False), progress=False)
    assert s.processed == 0 and len(s.failed) == 2 and s.exit_code == 1
    err = capfd.readouterr().err.splitlines()
    assert err == [f"skipped {tmp_path / 'nope.jpg'}: no such file or directory",
                   "skipped webcam:99: cannot open webcam 99"]
    assert not (tmp_path / "out").exists()


def test_options_validate():
    with pytest.raises(ValueError):
        InferOptions(every=0)
    assert InferOptions().output == Path("openpaf_out")


# ---------------------------------------------------------------------------------------
# CLI


def _cli():
    from openpaf_cli.main import main
    return main


def test_cli_help():
    result = CliRunner().invoke(_cli(), ["infer", "--help"])
    assert result.exit_code == 0, result.output
    for flag in ("--weights", "--height", "--scales", "--device", "--preset", "--no-json",
                 "--no-render", "--coco-json", "--skip-existing", "--every", "--max-frames",
                 "--quiet", "Exit codes", "--track", "--smooth", "--json-format", "--shard",
                 "--jsonl", "torchrun", "openpaf_manifest.jsonl"):
        assert flag in result.output


def test_cli_exit_codes_with_fake_predictor(folder, tmp_path, monkeypatch):
    import openpaf_cli.infer
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: FakePredict())
    runner = CliRunner()
    good = str(folder / REAL[0])
    r = runner.invoke(_cli(), ["infer", good, "-o", str(tmp_path / "a"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / f"{Path(REAL[0]).stem}_keypoints.json").exists()
    r = runner.invoke(_cli(), ["infer", str(folder), "-o", str(tmp_path / "b")])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "2 processed" in r.output
    r = runner.invoke(_cli(), ["infer", str(folder / "text.jpg"), "-o", str(tmp_path / "c"),
                               "--no-render", "--no-json", "-q"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"skipped {folder / 'text.jpg'}: not an image (cannot decode)"]
    r = runner.invoke(_cli(), ["infer", good, "--scales", "0.5,x"])
    assert r.exit_code == 64 and "scales" in r.output
    for bad, word in ((["--json-format", "openpose,xml"], "xml"), (["--device", "gpu"],
                                                                   "device")):
        r = runner.invoke(_cli(), ["infer", good, *bad])
        assert r.exit_code == 64 and word in r.output, r.output
    r = runner.invoke(_cli(), ["infer", good, "-o", str(tmp_path / "d"), "-q", "--no-json",
                               "--json-format", "jsonl", "--json-format", "coco",
                               "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path / "d")) == sorted([
        "coco_results.json", "openpaf_images.jsonl", "openpaf_manifest.jsonl",
        f"{Path(REAL[0]).stem}_rendered.jpg"])


def test_cli_missing_weights_is_one_line_error(folder, tmp_path, monkeypatch):
    """Needs openpaf.predict: a missing checkpoint gives one line and exit code 1."""
    missing = tmp_path / "no_such_weights.pt"
    monkeypatch.setenv("OPENPAF_WEIGHTS", str(missing))
    r = CliRunner().invoke(_cli(), ["infer", str(folder / REAL[0]), "-o", str(tmp_path / "o"),
                                    "--device", "cpu", "-q"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.output
    assert "No module named" not in r.output  # i.e. openpaf.predict exists and ran
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------
# Hardening (issue 15): no input destroyed, every input accounted for


def _jpg_bytes(seed):
    img = np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_non_utf8_file_names_round_trip(tmp_path, monkeypatch):
    """Defect 2: ``bad\\xff\\xfe.jpg`` stopped the manifest (rc 2), or gave a traceback
    and a 0-byte manifest when given by name."""
    d = tmp_path / "in"
    d.mkdir()
    bad = d / os.fsdecode(b"bad\xff\xfe.jpg")
    bad.write_bytes(_jpg_bytes(0))
    (d / "good.jpg").write_bytes(_jpg_bytes(1))
    out = tmp_path / "out"
    s = run_inference(FakePredict(), [str(d)], InferOptions(output=out), progress=False)
    assert (s.exit_code, s.processed, s.failed) == (0, 2, [])
    manifest = out / "openpaf_manifest.jsonl"
    manifest.read_bytes().decode("utf-8")                      # valid UTF-8 on disk
    records = read_manifest(manifest)
    assert {r["input"] for r in records if "input" in r} == {str(bad), str(d / "good.jpg")}
    assert records[-1]["event"] == "end" and records[-1]["processed"] == 2
    import openpaf_cli.infer
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: FakePredict())
    r = CliRunner().invoke(_cli(), ["infer", str(bad), "-o", str(tmp_path / "o2"), "-q"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    (rec,) = [x for x in read_manifest(tmp_path / "o2" / "openpaf_manifest.jsonl")
              if "input" in x]
    assert rec["input"] == str(bad) and rec["status"] == "done"


def test_a_video_named_like_a_run_file_gets_its_own_files(tmp_path):
    """Defect 4: ``openpaf_manifest.mp4`` with jsonl output wrote into the run manifest."""
    out = tmp_path / "out"
    for stem in ("openpaf_manifest", "openpaf_images"):
        write_video(tmp_path / f"{stem}.mp4", n=3)
    (tmp_path / "still.jpg").write_bytes(_jpg_bytes(0))
    specs = [str(tmp_path / "openpaf_manifest.mp4"), str(tmp_path / "openpaf_images.mp4"),
             str(tmp_path / "still.jpg")]
    opts = InferOptions(output=out, stream_jsonl=True)
    assert run_inference(FakePredict(), specs, opts, progress=False).exit_code == 0
    records = read_manifest(out / "openpaf_manifest.jsonl")
    assert [r.get("event") for r in records if "event" in r] == ["start", "end"]
    assert all("frame" not in r for r in records)              # no stream line in it
    assert len((out / "openpaf_manifest_2.jsonl").read_text().splitlines()) == 3
    assert len((out / "openpaf_images_2.jsonl").read_text().splitlines()) == 3
    assert [json.loads(x)["name"] for x in
            (out / "openpaf_images.jsonl").read_text().splitlines()] == ["still"]


@pytest.mark.parametrize("option", ["jsonl", "coco_json"])
def test_an_output_file_is_never_an_input(tmp_path, option):
    """Defect 5: ``--jsonl victim.jpg`` emptied the image; ``--coco-json victim.jpg``
    overwrote it with rc 0. Refused before anything is opened."""
    from openpaf.io.paths import OutputError
    victim = tmp_path / "victim.jpg"
    victim.write_bytes(_jpg_bytes(0))
    before = victim.read_bytes()
    data = tmp_path / "data.bin"          # an input under a name no extension rule catches
    data.write_bytes(before)
    out = tmp_path / "out"
    for target, words in ((victim, "image/video file name"), (data, "is one of the inputs")):
        with pytest.raises(OutputError, match=words):
            run_inference(FakePredict(), [str(victim), str(data)],
                          InferOptions(output=out, **{option: target}), progress=False)
    assert victim.read_bytes() == before and data.read_bytes() == before
    assert not out.exists()
    with pytest.raises(OutputError, match="also the manifest"):
        run_inference(FakePredict(), [str(victim)], InferOptions(
            output=out, **{option: out / "openpaf_manifest.jsonl"}), progress=False)
    with pytest.raises(OutputError, match="cannot write"):     # found before any input
        run_inference(FakePredict(), [str(victim)], InferOptions(
            output=out, **{option: victim / "sub" / "r.json"}), progress=False)


def test_cli_refuses_an_input_as_output_file(folder, tmp_path, monkeypatch):
    import openpaf_cli.infer
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: FakePredict())
    victim = folder / REAL[0]
    before = victim.read_bytes()
    r = CliRunner().invoke(_cli(), ["infer", str(folder), "-o", str(tmp_path / "o"), "-q",
                                    "--coco-json", str(victim)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.startswith("Error: --coco-json") and victim.read_bytes() == before


def test_output_folder_inside_the_input_folder(folder, tmp_path):
    """Defect 9: ``infer dir -o dir`` twice fed its own renders back in as inputs."""
    counts = []
    for _ in range(3):
        s = run_inference(FakePredict(), [str(folder)], InferOptions(output=folder),
                          progress=False)
        counts.append(s.processed)
    assert counts == [2, 2, 2]
    s = run_inference(FakePredict(), [f"{folder}/*.jpg"],
                      InferOptions(output=folder, skip_existing=True), progress=False)
    assert (s.processed, s.skipped_existing) == (0, 2)
    fresh = shutil.copytree(folder, tmp_path / "fresh",
                            ignore=shutil.ignore_patterns("*_*", "openpaf*"))
    nested = fresh / "out"
    for _ in range(2):
        s = run_inference(FakePredict(), [str(fresh)],
                          InferOptions(output=nested, recursive=True), progress=False)
        assert s.processed == 2


def test_two_runs_into_one_output_folder(folder, tmp_path):
    """Defect 10: two unsharded runs into one folder tore openpaf_images.jsonl; the
    second is now refused while the first holds the folder; shards have their own."""
    from openpaf.io.paths import OutputError, output_lock
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out):
        with pytest.raises(OutputError, match=f"in use by another openpaf run .pid {os.getpid()}"):
            run_inference(FakePredict(), [str(folder)],
                          InferOptions(output=out, stream_jsonl=True), progress=False)
        s = run_inference(FakePredict(), [str(folder)],
                          InferOptions(output=out, shard=(0, 2)), progress=False)
        assert s.processed >= 1
    s = run_inference(FakePredict(), [str(folder)], InferOptions(output=out),
                      progress=False)
    assert s.processed == 2 and not [f for f in os.listdir(out) if f.startswith(".")]


def test_a_damaged_video_has_one_record_with_its_gaps(tmp_path):
    """Defect 3: the frames after a damaged stretch are processed, and the video has one
    manifest record naming the real gap (not a failed record per stretch)."""
    video = write_video(tmp_path / "clip.mp4", n=40, fps=10.0)
    data = bytearray(video.read_bytes())
    n = len(data)
    data[n // 3:n // 2] = bytes(n // 2 - n // 3)
    video.write_bytes(bytes(data))
    out = tmp_path / "out"
    s = run_inference(FakePredict(), [str(video)], InferOptions(output=out), progress=False)
    assert s.exit_code == 2 and len(s.failed) == 1 and s.processed >= 25
    assert (out / "clip_000039_keypoints.json").exists()
    (rec,) = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "input" in r]
    (gap,) = rec["gaps"]
    assert rec["status"] == "done" and rec["errors"] == 1
    assert rec["frames"] == 40 - (gap[1] - gap[0] + 1) == s.processed


def test_resume_redoes_corrupt_markers_and_removes_a_killed_runs_temp_files(folder, tmp_path):
    """``--skip-existing`` trusted an empty or corrupt ``_keypoints.json``; temp files a
    ``kill -9`` left (``.*.tmp.mp4``) were never cleaned."""
    import subprocess
    out = tmp_path / "out"
    run_inference(FakePredict(), [str(folder)], InferOptions(output=out), progress=False)
    stems = [Path(n).stem for n in REAL]
    (out / f"{stems[0]}_keypoints.json").write_text("")
    (out / f"{stems[1]}_keypoints.json").write_text('{"version": 1.3, "people": [{')
    dead = subprocess.Popen(["true"])
    dead.wait()                                     # a pid that no longer runs
    stale = out / f".v_rendered.mp4.{dead.pid}.abcd1234.tmp.mp4"
    stale.write_bytes(b"half a video")
    live = out / f".w_rendered.mp4.{os.getpid()}.abcd1234.tmp.mp4"  # a live writer's
    live.write_bytes(b"being written")
    fake = FakePredict()
    s = run_inference(fake, [str(folder)], InferOptions(output=out, skip_existing=True),
                      progress=False)
    assert fake.calls == 2 and (s.processed, s.skipped_existing) == (2, 0)
    for stem in stems:
        validate_openpose_json(json.loads((out / f"{stem}_keypoints.json").read_text()))
    assert not stale.exists() and live.exists()


def test_predict_runs_a_frame_ahead_in_its_own_thread(tmp_path):
    """overlap: the network works in its own thread while the caller writes; the outputs
    are the same as predicting in the calling thread, in the same order."""
    import threading
    video = write_video(tmp_path / "walk.mp4", n=6, fps=12.0)
    outputs = {}
    for overlap in (True, False):
        fake, threads = FakePredict(), []
        def predict(image, fake=fake, threads=threads):
            threads.append(threading.current_thread().name)
            return fake(image)
        out = tmp_path / f"out{overlap}"
        s = run_inference(predict, [str(video)], InferOptions(
            output=out, jsonl=out / "walk.jsonl", overlap=overlap), progress=False)
        assert s.processed == 6 and s.exit_code == 0
        assert set(threads) == ({"openpaf-predict"} if overlap else {"MainThread"})
        outputs[overlap] = [{k: v for k, v in json.loads(line).items() if k != "time"}
                            for line in (out / "walk.jsonl").read_text().splitlines()]
    assert outputs[True] == outputs[False] and len(outputs[True]) == 6


def test_overlap_defaults_to_the_core_count(monkeypatch):
    """Predicting a frame ahead in its own thread costs on 2 cores (the writer thread takes
    a core from the network): it is on by default only with more than 2 cores."""
    import openpaf.runner.options as options
    for cores, expected in ((2, False), (1, False), (8, True)):
        monkeypatch.setattr(options.os, "cpu_count", lambda: cores)
        assert InferOptions().overlap is expected
    assert InferOptions(overlap=True).overlap is True
