"""Benchmark report shape (no timing assertions), synthetic crowds, and the speed-ups of
the decoder and Predictor giving the same people as the plain implementations."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import main
from openpaf.benchmark import (REPORT_KEYS, STAGES, compare_cpu_paths, crowd_maps,
                               lively_init, synthetic_crowd, synthetic_images)
from openpaf.decode import decode, find_peaks, get_params
from openpaf.decode.limbs import _PAF_X, _PAF_Y, candidate_pairs, match_greedy, score_limbs
from openpaf.decode.peaks import peaks_from_candidates
from openpaf.model import create_model
from openpaf.model import fold_batchnorm
from openpaf.predict import Predictor, find_peaks_torch
from openpaf.structures import Maps

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


# --- the optimised decoder equals the straightforward implementation ------------------

def _reference_find_peaks(heatmaps, threshold, max_peaks):
    from scipy.ndimage import maximum_filter
    hm = np.ascontiguousarray(heatmaps[:18], dtype=np.float32)
    is_peak = (hm > threshold) & (hm >= maximum_filter(hm, size=(1, 3, 3), mode="constant"))
    k, y, x = np.nonzero(is_peak)
    return peaks_from_candidates(k, y, x, hm[k, y, x], max_peaks=max_peaks,
                                 neighbours=lambda kk, yy, xx: np.stack([
                                     hm[kk, yy, xx], hm[kk, yy, np.maximum(xx - 1, 0)],
                                     hm[kk, yy, np.minimum(xx + 1, hm.shape[2] - 1)],
                                     hm[kk, np.maximum(yy - 1, 0), xx],
                                     hm[kk, np.minimum(yy + 1, hm.shape[1] - 1), xx]]))


def _reference_score_limbs(peaks, pafs, params, scale, image_height):
    """Every candidate sampled at every point, 3-D fancy indexing (the first version)."""
    def bilinear(maps, ch, x, y):
        _, h, w = maps.shape
        x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
        x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
        y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
        fx, fy = x - x0, y - y0
        x1, y1 = x0 + 1, y0 + 1
        return ((maps[ch, y0, x0] * (1 - fx) + maps[ch, y0, x1] * fx) * (1 - fy)
                + (maps[ch, y1, x0] * (1 - fx) + maps[ch, y1, x1] * fx) * fy)
    limb, a, b = candidate_pairs(peaks)
    pa, pb = peaks.xy[a].astype(np.float64), peaks.xy[b].astype(np.float64)
    d = pb - pa
    norm = np.hypot(d[:, 0], d[:, 1])
    unit = d / np.maximum(norm, 1e-6)[:, None]
    t = np.linspace(0.0, 1.0, params.num_samples)
    sx, sy = pa[:, 0:1] + t * d[:, 0:1], pa[:, 1:2] + t * d[:, 1:2]
    dots = (bilinear(pafs, _PAF_X[limb][:, None], sx, sy) * unit[:, 0:1]
            + bilinear(pafs, _PAF_Y[limb][:, None], sx, sy) * unit[:, 1:2])
    score = dots.mean(axis=1)
    length_px = np.maximum(np.hypot(d[:, 0] * scale[0], d[:, 1] * scale[1]), 1e-6)
    score = score + np.minimum(0.5 * image_height / length_px - 1.0, 0.0)
    passed = ((dots > params.paf_threshold).sum(axis=1)
              >= params.min_pass_ratio * params.num_samples - 1e-9)
    keep = passed & (score > 0) & (norm > 1e-6)
    return match_greedy(limb[keep], a[keep], b[keep], score[keep].astype(np.float32))


def _random_crowd_maps():
    rng = np.random.default_rng(7)
    for trial, n in enumerate([0, 1, 3, 8, 20, 30, 12]):
        heat, paf, geo, _ = crowd_maps(n, seed=100 + trial)
        if trial % 2:
            heat = heat + rng.normal(0, 0.05, heat.shape).astype(np.float32)
            paf = paf + rng.normal(0, 0.2, paf.shape).astype(np.float32)
        yield heat, paf, geo


@pytest.mark.parametrize("preset", ["cvpr2017", "openpose"])
def test_optimised_decoder_equals_reference_on_random_crowds(preset):
    params = get_params(preset)
    for heat, paf, geo in _random_crowd_maps():
        peaks = find_peaks(heat, params.peak_threshold, max_peaks=params.max_peaks)
        ref = _reference_find_peaks(heat, params.peak_threshold, params.max_peaks)
        for f in ("xy", "score", "part", "offsets"):
            np.testing.assert_array_equal(getattr(peaks, f), getattr(ref, f))
        got = score_limbs(peaks, paf, params, geo.map_scale, float(geo.image_size[1]))
        want = _reference_score_limbs(peaks, paf, params, geo.map_scale,
                                      float(geo.image_size[1]))
        assert len(want) > 0 or len(peaks) < 2
        for f in ("limb", "a", "b", "score"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f))


def test_torch_peaks_equal_numpy_peaks():
    for heat, _, _ in _random_crowd_maps():
        for refine, cap in ((True, 64), (False, 64), (True, 3)):
            a = find_peaks(heat, 0.1, max_peaks=cap, refine=refine)
            b = find_peaks_torch(torch.from_numpy(heat), 0.1, max_peaks=cap, refine=refine)
            for f in ("xy", "score", "part", "offsets"):
                np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


# --- Predictor options give the same people -------------------------------------------

class CrowdNet(torch.nn.Module):
    """Returns a synthetic crowd's oracle maps at the input's map size."""

    stride = 8

    def predict(self, x):
        heat, paf, _, _ = crowd_maps(6, (x.shape[3], x.shape[2]), x.shape[2], seed=5)
        b = x.shape[0]
        return Maps(torch.from_numpy(heat)[None].repeat(b, 1, 1, 1),
                    torch.from_numpy(paf)[None].repeat(b, 1, 1, 1))


def _same_people(a, b, atol=1e-4):
    assert len(a) == len(b)
    for p, q in zip(a.people, b.people):
        np.testing.assert_allclose(p.keypoints, q.keypoints, atol=atol)


def test_gpu_peak_path_gives_identical_people_on_cpu_tensors():
    image = np.zeros((368, 656, 3), np.uint8)
    plain = Predictor(CrowdNet(), device="cpu", gpu_peaks=False)(image)
    torch_peaks = Predictor(CrowdNet(), device="cpu", gpu_peaks=True)
    assert torch_peaks.gpu_peaks
    det = torch_peaks(image)
    assert len(plain) >= 5
    _same_people(plain, det, atol=0)
    assert set(torch_peaks.last_timings) >= {"preprocess", "network", "resize", "peaks",
                                             "limbs", "assembly"}


def test_optimize_and_batchnorm_folding_keep_outputs():
    torch.manual_seed(0)
    model = create_model("tiny", batch_norm=True).eval()
    lively_init(model)
    x = torch.rand(2, 3, 64, 96) - 0.5
    ref = model.predict(x)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # untouched
    for a, b in zip(folded.predict(x), ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    opt = Predictor(model, height=64, device="cpu")
    plain = Predictor(model, height=64, device="cpu", optimize=False)
    assert opt.optimized and not plain.optimized
    (h1, p1, _), = opt.maps([image])
    (h2, p2, _), = plain.maps([image])
    assert h1.flags.c_contiguous and p1.flags.c_contiguous
    np.testing.assert_allclose(h1, h2, atol=1e-4 * np.abs(h2).max())
    np.testing.assert_allclose(p1, p2, atol=1e-4 * np.abs(p2).max())


def test_precision_option():
    model = create_model("tiny")
    pred = Predictor(model, height=64, device="cpu", precision="bf16")
    (heat, paf, _), = pred.maps([np.zeros((64, 64, 3), np.uint8)])
    assert heat.dtype == np.float32 and paf.dtype == np.float32
    with pytest.raises(ValueError, match="precision"):
        Predictor(model, device="cpu", precision="int8")


def test_runtimes_compared_in_one_run(tmp_path, one_thread):
    from openpaf.benchmark import compare_runtimes, format_runtimes
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
