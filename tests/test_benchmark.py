"""Benchmark report shape (no timing assertions) and synthetic crowds. (That the fast
decoder and Predictor paths give the same people as the plain ones is tested in
test_decode.py and test_predict.py.)"""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf.benchmark import (REPORT_KEYS, STAGES, compare_cpu_paths, crowd_maps,
                               synthetic_crowd, synthetic_images)
from openpaf.decode import decode
from openpaf.predict import Predictor
from openpaf.runtime.precision import resolve_precision

from conftest import COCO_VAL, require


def test_benchmark_cli_writes_the_report(tmp_path):
    synthetic_images(tmp_path / "img", 2, size=(160, 120))
    out = tmp_path / "report.json"
    res = CliRunner().invoke(main, [
        "benchmark", "--fps", "--model", "tiny", "--images", str(tmp_path / "img"),
        "--height", "96", "--repeats", "1", "--warmup", "0", "--people", "1,5",
        "--decode-repeats", "1", "--device", "cpu", "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert set(report) == set(REPORT_KEYS)
    assert tuple(report["stages_ms"]) == STAGES and len(STAGES) == 8
    for v in report["stages_ms"].values():
        assert set(v) == {"median", "p90"} and v["p90"] >= v["median"] >= 0
    assert report["fps"] > 0 and report["network_gflops"] > 0 and report["gflop_per_s"] > 0
    assert set(report["decode_by_people"]) == {"1", "5"}
    assert {"cpu", "cores", "torch_threads"} <= set(report["machine"])
    assert report["torch"]["version"] == torch.__version__
    assert report["settings"]["model"] == "tiny" and report["settings"]["repeats"] == 1
    assert "network" in res.output and "images/s" in res.output


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_fps_without_model_times_the_default_model_as_infer_runs_it(tmp_path, precision):
    synthetic_images(tmp_path / "img", 1, size=(96, 64))
    out = tmp_path / "report.json"
    res = CliRunner().invoke(main, [
        "benchmark", "--fps", "--images", str(tmp_path / "img"), "--height", "64",
        "--repeats", "1", "--warmup", "0", "--people", "", "--device", "cpu",
        "--precision", precision, "--json", str(out)])
    assert res.exit_code == 0, res.output            # bf16 once ended in a traceback
    settings = json.loads(out.read_text())["settings"]
    assert settings["model"] == "LightweightPose" and settings["weights"].endswith(".pt")
    assert settings["precision"] == str(resolve_precision(precision, "cpu"))
    assert f"precision {settings['precision']}" in res.output


def test_benchmark_names_a_bad_image_in_one_line(tmp_path):
    """A folder with a bad image gave a traceback mid-benchmark."""
    synthetic_images(tmp_path / "img", 2, size=(160, 120))
    bad = sorted((tmp_path / "img").iterdir())[0]
    bad.write_bytes(b"not an image")
    res = CliRunner().invoke(main, ["benchmark", "--fps", "--model", "tiny", "--images",
                                    str(tmp_path / "img"), "--height", "96", "--repeats",
                                    "1", "--warmup", "0", "--device", "cpu"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.startswith(f"Error: {bad}: not an image")


def test_benchmark_decoder_only(tmp_path):
    out = tmp_path / "decoder.json"
    res = CliRunner().invoke(main, [
        "benchmark", "--no-network", "--ann", str(require(COCO_VAL)), "--repeats", "1",
        "--warmup", "0", "--people", "2", "--decode-repeats", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["stages_ms"]["network"] is None
    assert report["stages_ms"]["limbs"]["median"] > 0 and report["fps"] > 0


def test_synthetic_crowd_is_seeded_and_decodes():
    a, b = synthetic_crowd(5, seed=3), synthetic_crowd(5, seed=3)
    assert a.shape == (5, 18, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, synthetic_crowd(5, seed=4))
    assert synthetic_crowd(0).shape == (0, 18, 3)
    heat, paf, geo, kps = crowd_maps(5, seed=3)
    det = decode(heat, paf, scale=geo.map_scale, image_size=geo.image_size)
    assert sum(p.num_parts >= 8 for p in det.people) >= 4


def test_cpu_paths_comparison_runs_and_records_errors():
    result = compare_cpu_paths("tiny", [(32, 48)], ["eager_fp32", "channels_last",
                                                    "bn_folded", "nope"], repeats=1)
    paths = result["sizes"]["32x48"]["paths"]
    assert paths["eager_fp32"]["ratio_vs_eager_fp32"] == 1.0
    assert paths["channels_last"]["rel_diff"] < 1e-4
    assert "error" in paths["bn_folded"] and "error" in paths["nope"]


def test_runtimes_compared_in_one_run(tmp_path, one_thread):
    pytest.importorskip("onnxruntime", reason="optional extra (pip install -e '.[onnx]'); "
                        "compares torch with onnxruntime")
    from openpaf.benchmark import compare_runtimes, format_runtimes, lively_init
    from openpaf.model import create_model
    from openpaf.structures import InputNorm
    from openpaf.weights.checkpoint import save_checkpoint
    torch.manual_seed(0)
    model = create_model("tiny")
    lively_init(model, 0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model, normalisation=InputNorm(),
                           manifest={}, variant="tiny")
    paths = synthetic_images(tmp_path / "img", 2, size=(96, 64))
    report = compare_runtimes(paths, str(ckpt), runtimes=("torch", "onnxruntime", "nope"),
                              heights=(64,), ir=tmp_path / "missing.xml", repeats=2)
    rows = report["rows"]
    assert rows["torch@64"]["height"] == 64 and rows["torch@64"]["network_ms"] > 0
    assert rows["torch@64"]["reference"] == "torch"          # no IR ran: the first one
    assert rows["torch@64"]["network_speed_vs_reference"] == 1.0
    assert rows["onnxruntime@64"]["fps"] > 0
    assert "unknown runtime" in rows["nope@64"]["error"]
    text = format_runtimes(report)
    assert "onnxruntime" in text and "unknown runtime" in text


def test_video_benchmark_times_stages_and_both_pipelines(tmp_path, one_thread):
    from openpaf.benchmark import benchmark_video, format_video, make_clip
    from openpaf.model import create_model
    photos = synthetic_images(tmp_path / "img", 2, size=(96, 64))
    clip = make_clip(photos, tmp_path / "clip.mp4", frames=5, size=(96, 64))
    predictor = Predictor(create_model("tiny"), height=64, device="cpu")
    report = benchmark_video(predictor, clip, repeats=1)
    assert set(report["stages_ms"]) == {"read", "predict", "outputs"}
    assert all(v > 0 for v in report["stages_ms"].values())
    assert report["fps"]["serial"] > 0 and report["fps"]["overlap"] > 0
    slowest = max(report["stages_ms"].values())
    assert report["fps_bound_slowest_stage"] == pytest.approx(1e3 / slowest, rel=0.01)
    assert "FPS overlap" in format_video(report)


def test_bad_options_are_refused_up_front(tmp_path):
    """Issue 21 items 11, 13: --runtimes bogus, --heights 7, a missing --openvino-ir,
    --paths bogus and --threads 0 showed an error in the table (or a traceback) and
    exited 0; now each is a usage error before anything is timed."""
    from openpaf_cli.main import USAGE_EXIT
    for args, word in ((["--runtimes", "torch,bogus"], "bogus"),
                       (["--runtimes", "torch", "--heights", "7"], "multiples of 8"),
                       (["--runtimes", "openvino-ir", "--openvino-ir",
                         str(tmp_path / "missing.xml")], "missing.xml"),
                       (["--cpu-paths", "--paths", "eager_fp32,bogus"], "bogus"),
                       (["--threads", "0"], "--threads"), (["--threads", "-2"], "--threads"),
                       (["--repeats", "0"], "--repeats")):
        res = CliRunner().invoke(main, ["benchmark", *args])
        assert res.exit_code == USAGE_EXIT, (args, res.output)
        assert word in res.output and "Traceback" not in res.output, (args, res.output)


def test_a_failed_requested_measurement_exits_non_zero(tmp_path, one_thread):
    """``--cpu-paths --paths`` naming a path that cannot run printed its error and
    exited 0; ``--precision fp16`` on CPU was a traceback (it runs now, heads fp32)."""
    res = CliRunner().invoke(main, ["benchmark", "--cpu-paths", "--model", "tiny", "--sizes",
                                    "32x48", "--repeats", "1", "--paths",
                                    "eager_fp32,bn_folded", "--json",
                                    str(tmp_path / "r.json")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "1 requested measurement failed" in res.output
    assert (tmp_path / "r.json").exists()                  # the report is still written
    synthetic_images(tmp_path / "img", 1, size=(96, 64))
    res = CliRunner().invoke(main, ["benchmark", "--model", "tiny", "--images",
                                    str(tmp_path / "img"), "--height", "64", "--repeats",
                                    "1", "--warmup", "0", "--people", "", "--precision",
                                    "fp16", "--device", "cpu"])
    assert "Traceback" not in res.output, res.output
    assert res.exit_code == 0 or res.output.strip().splitlines()[-1].startswith("Error: "), \
        res.output


def test_video_stages_are_timed_on_a_worker_thread_like_the_run(tmp_path, monkeypatch):
    """Issue 21: ``benchmark --video`` timed the stages on the main thread (where torch
    ran 3-6x slower here) and the full run on worker threads, so it claimed 1228 % of
    the theoretical overlap. Both are timed off the main thread now."""
    import threading
    from types import SimpleNamespace
    from openpaf.benchmark import video
    threads = []

    def record(*args, **kwargs):       # the warm-up prediction and the stage timing
        threads.append(threading.current_thread() is threading.main_thread())
        return dict.fromkeys(video.STAGES, 1.0)
    monkeypatch.setattr(video, "stage_times", record)
    monkeypatch.setattr(video, "run_inference",      # predicts on its own worker threads
                        lambda *a, **k: SimpleNamespace(processed=1, seconds=1.0))
    monkeypatch.setattr(video, "_read_frames", lambda clip: ([np.zeros((8, 8, 3))], [1.0]))
    video.benchmark_video(record, tmp_path / "clip.mp4", repeats=1)
    assert threads and not any(threads), threads
