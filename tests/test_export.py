"""ONNX export: outputs match torch at two sizes, metadata round trip, Predictor on the
exported model finds the same people, backend selection and clear errors."""
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"onnx/onnxruntime not importable ({exc}); pip install openpaf[onnx]",
                allow_module_level=True)

from openpaf_cli.main import main
from openpaf.benchmark import lively_init
from openpaf.weights.checkpoint import CheckpointError, save_checkpoint
from openpaf.decode import get_params
from openpaf.export import export_onnx
from openpaf.runtime.onnxruntime import (METADATA_KEYS, OnnxModel, OnnxUnavailableError,
                                         read_metadata)
from openpaf.model import create_model
from openpaf.predict import Predictor
from openpaf.structures import InputNorm

from conftest import COCO_VAL, require

NORM = InputNorm("RGB", 1 / 255, -0.4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    lively_init(model)                        # O(1) outputs, so differences mean something
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    report = export_onnx(model, path, normalisation=NORM, height=64, width=96)
    return model, path, report


def test_export_matches_torch_at_two_sizes(exported):
    model, path, report = exported
    assert [c["size"] for c in report.checks] == [[64, 96], [128, 160]]
    assert report.rel_diff < 1e-3
    onnx_model = OnnxModel(path)
    for shape in [(1, 3, 64, 96), (2, 3, 120, 80)]:       # dynamic batch, height, width
        x = torch.rand(shape) - 0.5
        got = onnx_model.predict(x)
        ref = model.predict(x)
        for g, r in zip(got, ref):
            assert g.shape == r.shape and g.dtype == torch.float32
            assert float((g - r).abs().max()) <= 1e-3 * float(r.abs().max())


def test_metadata_round_trip(exported):
    model, path, _ = exported
    meta = read_metadata(path)
    assert set(METADATA_KEYS.values()) <= set(meta)
    onnx_model = OnnxModel(path)
    assert onnx_model.normalisation == NORM
    assert onnx_model.stride == 8
    assert onnx_model.config == model.config


def test_predictor_on_onnx_finds_the_same_people(exported, tmp_path):
    model, path, _ = exported
    from openpaf.io.sources import load_image
    image = load_image(sorted(require(COCO_VAL).parent.joinpath("val").glob("*.jpg"))[0])
    # Random weights: relax the person rules so the comparison is not vacuous.
    params = get_params("cvpr2017", min_parts=2, min_mean_score=0.0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model, normalisation=NORM,
                           manifest={})
    by_torch = Predictor.from_checkpoint(ckpt, device="cpu", decode_params=params,
                                         height=128, precision="fp32")
    by_onnx = Predictor.from_checkpoint(path, device="cpu", decode_params=params,
                                        height=128)
    assert isinstance(by_onnx.model, OnnxModel) and by_onnx.normalisation == NORM
    a, b = by_torch(image), by_onnx(image)
    assert len(a) > 0 and len(a) == len(b)
    for p, q in zip(a.people, b.people):
        np.testing.assert_allclose(p.keypoints, q.keypoints, atol=1e-2)


def test_backend_selection_errors(exported, tmp_path):
    _, path, _ = exported
    assert isinstance(Predictor.from_checkpoint(path, backend="onnxruntime",
                                                device="cpu").model, OnnxModel)
    with pytest.raises(CheckpointError, match="onnxruntime"):
        Predictor.from_checkpoint(path, backend="torch", device="cpu")
    with pytest.raises(CheckpointError, match="openpaf export"):
        Predictor.from_checkpoint(tmp_path / "model.pt", backend="onnxruntime", device="cpu")
    with pytest.raises(ValueError, match="backend"):
        Predictor.from_checkpoint(path, backend="tensorrt", device="cpu")
    with pytest.raises(ValueError, match="precision"):
        Predictor.from_checkpoint(path, device="cpu", precision="bf16")
    with pytest.raises(CheckpointError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")


def test_half_export_within_fp16_tolerance(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    lively_init(model)
    report = export_onnx(model, tmp_path / "half.onnx", height=64, width=64, half=True)
    assert report.half and 0 < report.rel_diff < 2e-2
    assert read_metadata(tmp_path / "half.onnx")[METADATA_KEYS["precision"]] == "fp16"


def test_export_cli(tmp_path):
    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(main, ["export", "--onnx", str(out), "--model", "tiny",
                                    "--height", "64", "--width", "64"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "max abs diff" in res.output
    res = CliRunner().invoke(main, ["export", "--onnx", str(out), "--height", "60",
                                    "--model", "tiny"])
    assert res.exit_code != 0 and "multiples of 8" in res.output
    assert "Traceback" not in res.output


def test_missing_onnxruntime_is_a_clear_error(monkeypatch, exported):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(OnnxUnavailableError, match=r"pip install openpaf\[onnx\]"):
        OnnxModel(exported[1])


def test_bad_metadata_is_refused_in_one_line(exported, tmp_path):
    """ONNX metadata was not validated: stride 0, -8 or 3, or a skeleton that is not
    JSON, gave a traceback or a silently wrong model."""
    import onnx
    from openpaf.weights.checkpoint import CheckpointError
    _, path, _ = exported
    for key, value, word in (("stride", "0", "power of two"), ("stride", "-8", "power of two"),
                             ("stride", "3", "power of two"),
                             ("skeleton", "{not json", "bad openpaf metadata"),
                             ("skeleton", '{"keypoints": []}', "skeleton mismatch")):
        proto = onnx.load(str(path))
        for entry in proto.metadata_props:
            if entry.key == METADATA_KEYS[key]:
                entry.value = value
        bad = tmp_path / f"{key}{len(value)}.onnx"
        onnx.save(proto, str(bad))
        with pytest.raises(CheckpointError, match=word) as err:
            OnnxModel(bad)
        assert "\n" not in str(err.value)
