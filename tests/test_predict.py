"""Predictor: preprocessing geometry, multi-scale and flip averaging, batching, and its
fast paths (torch peaks, BN folding, channels_last, precision) giving the same people."""
import numpy as np
import pytest
import torch

from openpaf.benchmark import crowd_maps, lively_init
from openpaf.data.targets import render_targets
from openpaf.decode import find_peaks
from openpaf.model import create_model, fold_batchnorm
from openpaf.predict import Predictor, find_peaks_torch, resample_maps, unflip_maps
from openpaf.skeleton import FLIP
from openpaf.preprocess import geometry, prepare
from openpaf.structures import InputNorm, Maps

from conftest import person
from helpers import random_crowd_maps

IMAGE_H, IMAGE_W = 368, 496
TRUTH = [person(150, 180), person(340, 200, 0.9)]


class OracleNet(torch.nn.Module):
    """Stands in for a network: renders the true people's maps at whatever scale the
    padded input implies (image is 368 high, so the input height / 368 is the factor)."""

    stride = 8

    def __init__(self):
        super().__init__()
        self.calls = []

    def predict(self, x):
        self.calls.append(tuple(x.shape))
        f = x.shape[2] / IMAGE_H
        kps = np.stack(TRUTH).copy()
        kps[..., :2] = (kps[..., :2] + 0.5) * f - 0.5
        heat, paf = render_targets(kps, (x.shape[2] // 8, x.shape[3] // 8))
        b = x.shape[0]
        return Maps(torch.from_numpy(heat)[None].repeat(b, 1, 1, 1),
                    torch.from_numpy(paf)[None].repeat(b, 1, 1, 1))


def blank():
    return np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8)


def max_error(det):
    errs = []
    for t in TRUTH:
        errs.append(min(np.abs(p.keypoints[:, :2] - t[:, :2]).max() for p in det.people))
    return max(errs)


@pytest.mark.parametrize("scales", [(1.0,), (0.5, 1.0, 2.0), (1.5,)])
def test_multiscale_average_is_a_mean_and_lands_on_the_people(scales):
    pred = Predictor(OracleNet(), height=368, scales=scales, device="cpu")
    (heat, paf, geo), = pred.maps([blank()])
    assert geo.map_size == (46, 62)
    # A mean of maps that each peak at <= 1 stays <= 1 (a sum, or pytorch-openpose's
    # `avg += avg + m / n`, would exceed it); resampled narrow peaks lose some height.
    assert 0.6 < heat[:18].max() <= 1.0 + 1e-5
    np.testing.assert_allclose(heat[18], heat[18].clip(0, 1))
    det = pred(blank())
    assert len(det) == 2
    assert max_error(det) < (1.5 if scales == (1.0,) else 4.0)
    assert set(pred.last_timings) >= {"preprocess", "network", "resize", "peaks", "limbs",
                                      "assembly"}


def test_same_size_images_run_as_one_batch():
    net = OracleNet()
    pred = Predictor(net, scales=(1.0, 0.5), device="cpu")
    dets = pred.predict_batch([blank(), blank(), blank()])
    assert len(dets) == 3 and all(len(d) == 2 for d in dets)
    assert sorted(c[0] for c in net.calls) == [3, 3]          # one batch per scale


def test_resample_maps_aligns_cell_centres():
    g1, g2 = geometry((IMAGE_W, IMAGE_H), 368, 1.0), geometry((IMAGE_W, IMAGE_H), 368, 2.0)
    kps = np.stack([person(150, 180)])
    heat1, _ = render_targets(kps, g1.map_size)
    k2 = kps.copy()
    k2[..., :2] = g2.image_to_input(k2[..., :2])
    heat2, _ = render_targets(k2, g2.map_size)
    down = resample_maps(torch.from_numpy(heat2)[None], g2, g1)[0].numpy()
    assert down.shape == heat1.shape
    for k in range(18):
        assert np.unravel_index(down[k].argmax(), down[k].shape) == \
            np.unravel_index(heat1[k].argmax(), heat1[k].shape)


def test_geometry_and_prepare():
    geo = geometry((640, 427), 368)
    assert geo.input_size == (552, 368) and geo.padded_size == (552, 368)
    assert geo.map_size == (46, 69)
    odd = geometry((641, 480), 368, 0.75)
    assert odd.padded_size[0] % 8 == 0 and odd.padded_size[1] % 8 == 0
    x = prepare(np.full((427, 640, 3), 128, np.uint8), geo, InputNorm())
    assert x.shape == (3, 368, 552) and x.dtype == np.float32
    np.testing.assert_allclose(x, 0.0)                         # grey -> 0 with CMU norm
    with pytest.raises(ValueError):
        geometry((0, 10))
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10), np.uint8), geo)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="multiple of 8"):
        Predictor(OracleNet(), height=370, device="cpu")
    with pytest.raises(ValueError, match="scales"):
        Predictor(OracleNet(), scales=(0,), device="cpu")


def _mirror(kps: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the mirrored image: x -> width - 1 - x, left/right labels swapped."""
    out = kps[:, list(FLIP)].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def test_unflip_maps_of_a_mirrored_image_gives_the_original_maps():
    kps = np.stack(TRUTH)
    map_size = (IMAGE_H // 8, IMAGE_W // 8)
    heat, paf = render_targets(kps, map_size)
    heat_m, paf_m = render_targets(_mirror(kps, IMAGE_W), map_size)
    mirrored = torch.from_numpy(np.concatenate([heat_m, paf_m]))[None]
    back = unflip_maps(mirrored)[0].numpy()
    np.testing.assert_allclose(back[:19], heat, atol=1e-5)
    np.testing.assert_allclose(back[19:], paf, atol=1e-5)
    # without the channel swap the arms would land on the wrong side
    assert np.abs(np.flip(heat_m, -1) - heat).max() > 0.5


def test_flip_averages_the_plain_and_the_mirrored_pass(one_thread):
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    lively_init(model, 0)
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    plain = Predictor(model, height=64, device="cpu", optimize=False)
    flipped = Predictor(model, height=64, device="cpu", optimize=False, flip=True)
    (h0, p0, _), = plain.maps([image])
    (hm, pm, _), = plain.maps([np.ascontiguousarray(image[:, ::-1])])
    back = unflip_maps(torch.from_numpy(np.concatenate([hm, pm]))[None])[0].numpy()
    (hf, pf, _), = flipped.maps([image])
    np.testing.assert_allclose(hf, (h0 + back[:19]) / 2, atol=1e-5)
    np.testing.assert_allclose(pf, (p0 + back[19:]) / 2, atol=1e-5)
    assert flipped.flip and not plain.flip


def test_sizes_beyond_the_input_limit_and_nan_scales_are_refused():
    """``--scales nan`` was accepted (then every image failed); ``--scales 100`` and
    ``--height 100000`` were silently capped at 4096 px."""
    from click.testing import CliRunner
    from openpaf_cli.main import main
    net = OracleNet()
    for kwargs, word in (({"scales": (float("nan"),)}, "positive"),
                         ({"scales": (1.0, float("inf"))}, "positive"),
                         ({"scales": (100.0,)}, "36800 px exceeds the 4096 px input limit"),
                         ({"height": 100000}, "100000 px exceeds the 4096 px input limit")):
        with pytest.raises(ValueError, match=word):
            Predictor(net, device="cpu", **kwargs)
    res = CliRunner().invoke(main, ["infer", "x.jpg", "--scales", "nan"])
    assert res.exit_code == 64 and "scales must be positive" in res.output


def test_torch_peaks_equal_numpy_peaks():
    for heat, _, _ in random_crowd_maps():
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
    opt = Predictor(model, height=64, device="cpu", precision="fp32")
    plain = Predictor(model, height=64, device="cpu", optimize=False, precision="fp32")
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
        Predictor(model, device="cpu", precision="int4")
