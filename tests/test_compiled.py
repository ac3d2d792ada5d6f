"""Compiled execution: equals eager, the when-to-compile rule, shape buckets, and the
eager fallback without a C++ compiler."""
import pytest
import torch

from openpaf.model import create_model
from openpaf.runtime import compiled
from openpaf.runtime.compiled import CompiledNetwork, bucket_shape, should_compile


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENPAF_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    return tmp_path


def _model():
    torch.manual_seed(0)
    return create_model("lightweight_tiny").eval()


def test_rule_compiles_only_once_frames_repay_the_compile_time():
    assert not should_compile(1, eager_s=0.1, compile_s=10.0, saving=0.3)    # one photo
    assert not should_compile(300, eager_s=0.1, compile_s=10.0, saving=0.3)
    assert should_compile(334, eager_s=0.1, compile_s=10.0, saving=0.3)


def test_buckets_round_the_width_up():
    assert bucket_shape(456, 608) == (456, 640)
    assert bucket_shape(448, 344, 64) == (448, 384)


def test_cache_root_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENPAF_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiled.cache_root() == tmp_path / "openpaf"


def test_single_frames_run_eager_by_the_rule(cache, monkeypatch):
    net = CompiledNetwork(_model())
    monkeypatch.setattr(net, "_compile", lambda x, shape: pytest.fail("compiled"))
    x = torch.randn(1, 3, 64, 64)
    for _ in range(3):                         # far fewer frames than a compile costs
        out = net(x)
    assert out.heatmaps.shape == (1, 19, 8, 8) and not net.ready


def test_without_a_cpp_compiler_it_says_why_and_runs_eager(cache, monkeypatch):
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    said = []
    net = CompiledNetwork(_model(), always=True, say=said.append)
    x = torch.randn(1, 3, 64, 64)
    out = net(x)
    assert len(said) == 1 and "no C++ compiler" in said[0]
    assert torch.equal(out.heatmaps, _model().predict(x).heatmaps) and not net.ready


def test_compiled_output_equals_eager(cache):
    if compiled.compiler_missing():
        pytest.skip(f"torch.compile unavailable: {compiled.compiler_missing()}")
    model = _model()
    said = []
    net = CompiledNetwork(model, always=True, say=said.append)
    x = torch.randn(1, 3, 64, 128)                          # a whole bucket: no padding
    with torch.inference_mode():
        out, ref = net(x), model.predict(x)
    if said:
        pytest.skip(f"torch.compile unavailable here: {said[0]}")
    assert net.ready == {(1, 3, 64, 128)}
    torch.testing.assert_close(out.heatmaps, ref.heatmaps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.pafs, ref.pafs, rtol=1e-4, atol=1e-5)
    assert compiled.CompileIndex().data                      # compile time recorded
