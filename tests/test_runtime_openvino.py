"""--backend openvino: the same maps as torch, conversions cached (needs openvino)."""
import numpy as np
import pytest
import torch

ov = pytest.importorskip("openvino", reason="openvino not installed (pip install "
                         "openpaf[openvino]); the openvino backend is optional")

from openpaf.benchmark import lively_init  # noqa: E402
from openpaf.model import create_model  # noqa: E402
from openpaf.predict import Predictor  # noqa: E402
from openpaf.structures import InputNorm  # noqa: E402
from openpaf.weights.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENPAF_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    lively_init(model, 0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, normalisation=InputNorm(), manifest={}, variant="tiny")
    return path


def test_openvino_backend_gives_torch_maps(tiny_checkpoint, tmp_path, one_thread):
    image = np.random.default_rng(0).integers(0, 255, (70, 100, 3), dtype=np.uint8)
    ref = Predictor.from_checkpoint(tiny_checkpoint, device="cpu", height=64,
                                    precision="fp32")
    ovp = Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", height=64)
    assert type(ovp.model).__name__ == "OpenVinoModel"
    (h0, p0, _), = ref.maps([image])
    (h1, p1, _), = ovp.maps([image])
    scale = max(np.abs(h0).max(), np.abs(p0).max())
    assert np.abs(h1 - h0).max() <= 1e-4 * scale
    assert np.abs(p1 - p0).max() <= 1e-4 * scale
    cached = list((tmp_path / "cache" / "openvino").glob("cmu_vgg-*.xml"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", height=64)
    assert cached[0].stat().st_mtime_ns == mtime          # reused, not converted again


def test_openvino_backend_refuses_gpu_and_onnx(tiny_checkpoint):
    from openpaf.weights import CheckpointError
    with pytest.raises(CheckpointError, match="onnxruntime"):
        Predictor.from_checkpoint("model.onnx", backend="openvino")
    with pytest.raises(ValueError, match="CPU|CUDA"):   # no GPU here: that error comes first
        Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", device="cuda:0")


def test_openvino_backend_runs_the_requested_precision(tiny_checkpoint, one_thread):
    image = np.random.default_rng(1).integers(0, 255, (70, 100, 3), dtype=np.uint8)
    ref = Predictor.from_checkpoint(tiny_checkpoint, device="cpu", height=64)
    bf16 = Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", height=64,
                                     precision="bf16")
    hint = bf16.model.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert "bfloat16" in str(hint) and bf16.precision == "bf16"
    (h0, _, _), = ref.maps([image])
    (h1, _, _), = bf16.maps([image])
    assert 0 < np.abs(h1 - h0).max() <= 0.05 * np.abs(h0).max()   # bf16: close, not equal
    with pytest.raises(ValueError, match="calibration"):          # only the default ships one
        Predictor.from_checkpoint(tiny_checkpoint, backend="openvino", precision="int8")
