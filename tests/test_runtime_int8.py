"""--precision int8 (runtime.int8): the default weights quantized with their shipped
calibration give maps close to float32 on real photos; calibrations are checked against
the weights; without torchao the error is one line."""
import sys

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, require

PHOTOS = ("000000000036.jpg",)                        # coco/train
HEIGHT = 128                                          # small crops keep the test fast
# Tolerance of INT8 maps against float32 (maps in [0, 1]), at this small height (the
# calibration was made at 456): measured MEAN / MAX abs difference, and at each joint's
# strongest cell, PEAK.
MEAN_TOL, MAX_TOL, PEAK_TOL = 0.01, 0.3, 0.15


def _inputs(loaded):
    from openpaf.runtime.int8 import photo_inputs
    folder = require(SHARED_DATA / "coco" / "train")
    pre = loaded.pretrained
    return list(photo_inputs([folder / p for p in PHOTOS], pre.normalisation, HEIGHT,
                             pre.pad_value))


def test_int8_maps_close_to_fp32_on_real_photos(one_thread):
    pytest.importorskip("torchao", reason="torchao not installed (pip install "
                        "openpaf[int8]); INT8 is optional")
    from openpaf.runtime.int8 import quantize_int8, shipped_calibration
    from openpaf.weights import load_default
    loaded = load_default("cpu")
    model = loaded.model.float().eval()
    calibration = shipped_calibration(model)
    assert calibration is not None and "coco/train" in calibration.info["images"]
    xs = _inputs(loaded)
    int8 = quantize_int8(model, xs[0], calibration, compile=False)
    for x in xs:
        with torch.no_grad():
            ref = model(x)[-1]
            heat, paf = int8(x)
        for got, want in ((heat, ref.heatmaps), (paf, ref.pafs)):
            err = (got - want).abs()
            print("int8 vs fp32 abs diff: mean", float(err.mean()), "max", float(err.max()))
            assert err.mean() < MEAN_TOL and err.max() < MAX_TOL
        strongest = ref.heatmaps[0, :18].flatten(1).max(1)      # per joint
        at_peak = heat[0, :18].flatten(1).gather(1, strongest.indices[:, None])[:, 0]
        assert (at_peak - strongest.values).abs().max() < PEAK_TOL

def test_calibration_round_trip_and_weights_check(tmp_path, one_thread):
    pytest.importorskip("torchao", reason="torchao not installed (pip install "
                        "openpaf[int8]); INT8 is optional")
    from openpaf.model import create_model
    from openpaf.runtime.int8 import Int8Calibration, calibrate, quantize_int8
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    x = torch.randn(1, 3, 32, 40)
    cal = calibrate(model, [x, x.flip(-1)], fp32_modules=(), info={"images": "test"})
    cal.save(tmp_path / "cal.pt")
    back = Int8Calibration.load(tmp_path / "cal.pt")
    assert back.weights == cal.weights and back.info == {"images": "test"}
    assert all(torch.equal(back.state[k], v) for k, v in cal.state.items())
    other = create_model("tiny").eval()
    with pytest.raises(ValueError, match="other weights"):
        quantize_int8(other, x, back, compile=False)


def test_int8_without_torchao_says_what_to_install(monkeypatch):
    from openpaf.model import create_model
    from openpaf.predict import Predictor
    from openpaf.runtime.int8 import Int8UnavailableError
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e.quantize_pt2e", None)
    with pytest.raises(Int8UnavailableError, match=r'pip install "openpaf\[int8\]"'):
        Predictor(create_model("tiny"), precision="int8", device="cpu")
