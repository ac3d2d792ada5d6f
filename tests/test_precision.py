"""Precision policy: what ``auto`` picks from the device and CPU flags, and that the
layers a family declares precision sensitive stay float32 under it, in every family."""
import numpy as np
import pytest
import torch

from openpaf.model import create_model
from openpaf.predict import Predictor
from openpaf.runtime import precision
from openpaf.runtime.precision import apply_precision, kept_modules, resolve_precision

FAMILIES = ["lightweight_tiny", "tiny", "tfpose_mobilenet_v2_small"]


def test_auto_is_fp32_on_a_cpu_without_bf16_flags(monkeypatch):
    monkeypatch.setattr(precision.hardware, "cpu_model", lambda: ("old CPU", ["avx2"]))
    choice = resolve_precision("auto", "cpu")
    assert choice.kind == "fp32" and choice.dtype == torch.float32
    assert "without" in str(choice)


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_auto_is_bf16_with_fp32_heads_on_a_bf16_cpu(monkeypatch, flag):
    monkeypatch.setattr(precision.hardware, "cpu_model", lambda: ("new CPU", ["avx2", flag]))
    choice = resolve_precision("auto", "cpu")
    assert (choice.kind, choice.dtype, choice.fp32_heads) == ("bf16", torch.bfloat16, True)
    assert str(choice) == f"bf16 ({flag}), heads and first conv fp32"


def test_explicit_precisions_stay_explicit():
    assert resolve_precision("bf16", "cpu", flags=[]).fp32_heads is False   # whole model
    assert resolve_precision("fp32", "cpu", flags=["amx_bf16"]).kind == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", "cpu")


@pytest.mark.parametrize("name", FAMILIES)
def test_heads_stay_fp32_under_auto_and_the_body_is_bf16(name):
    model = create_model(name).eval()
    choice = resolve_precision("auto", "cpu", flags=["amx_bf16"])
    converted = apply_precision(model, choice)
    heads = kept_modules(converted, choice)
    assert heads and all(p.dtype == torch.float32 for m in heads for p in m.parameters())
    assert set(map(id, converted.fp32_modules())) < set(map(id, heads))   # + first conv
    kept = {id(p) for m in heads for p in m.parameters()}
    body = [p for p in converted.parameters() if id(p) not in kept]
    assert body and all(p.dtype == torch.bfloat16 for p in body)
    assert all(p.dtype == torch.float32 for p in model.parameters())   # caller's untouched


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_runs_under_auto_close_to_fp32(name, monkeypatch):
    monkeypatch.setattr(precision.hardware, "cpu_model", lambda: ("CPU", ["avx512_bf16"]))
    torch.manual_seed(0)
    model = create_model(name)
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    ref = Predictor(model, height=64, precision="fp32", device="cpu").maps([image])[0]
    auto = Predictor(model, height=64, device="cpu")          # precision="auto" default
    assert auto.precision_choice.kind == "bf16" and auto.precision_choice.fp32_heads
    heat, paf, _ = auto.maps([image])[0]
    assert heat.dtype == np.float32 and heat.shape == ref[0].shape
    scale = max(np.abs(ref[0]).max(), np.abs(ref[1]).max(), 1e-12)
    assert np.abs(heat - ref[0]).max() <= 0.05 * scale
    assert np.abs(paf - ref[1]).max() <= 0.05 * scale
