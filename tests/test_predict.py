"""Predictor: preprocessing geometry, multi-scale averaging, batching (fake network)."""
import numpy as np
import pytest
import torch

from openpaf.data.targets import render_targets
from openpaf.predict import Predictor, resample_maps
from openpaf.preprocess import geometry, prepare
from openpaf.structures import InputNorm

from conftest import person

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
        return (torch.from_numpy(heat)[None].repeat(b, 1, 1, 1),
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


def test_sizes_beyond_the_input_limit_and_nan_scales_are_refused():
    """``--scales nan`` was accepted (then every image failed); ``--scales 100`` and
    ``--height 100000`` were silently capped at 4096 px."""
    from click.testing import CliRunner
    from cli.main import main
    net = OracleNet()
    for kwargs, word in (({"scales": (float("nan"),)}, "positive"),
                         ({"scales": (1.0, float("inf"))}, "positive"),
                         ({"scales": (100.0,)}, "36800 px exceeds the 4096 px input limit"),
                         ({"height": 100000}, "100000 px exceeds the 4096 px input limit")):
        with pytest.raises(ValueError, match=word):
            Predictor(net, device="cpu", **kwargs)
    res = CliRunner().invoke(main, ["infer", "x.jpg", "--scales", "nan"])
    assert res.exit_code == 2 and "scales must be positive" in res.output
