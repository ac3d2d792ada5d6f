"""openpaf checkpoint files: round trips, strict loading, one-line errors."""
import os
import re

import pytest
import torch

from openpaf.weights import checkpoint as ckpt_mod
from openpaf.weights.checkpoint import (CheckpointError, default_weights_path, describe,
                                format_norm, load_checkpoint, load_default,
                                read_checkpoint, save_checkpoint)
from openpaf.model import create_model, get_config
from openpaf.structures import InputNorm


def _save(path, name="tiny", **kw):
    torch.manual_seed(0)
    model = create_model(name)
    kw.setdefault("normalisation", InputNorm())
    kw.setdefault("manifest", {"source": "unit test", "epochs": 0})
    save_checkpoint(path, model, **kw)
    return model


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_round_trip_fp32(tmp_path, name):
    path = tmp_path / "m.pt"
    model = _save(path, name, extra={"step": 7})
    loaded = load_checkpoint(path)
    assert not loaded.model.training
    assert loaded.config == get_config(name)
    assert loaded.normalisation == InputNorm()
    assert loaded.manifest == {"source": "unit test", "epochs": 0}
    assert loaded.extra == {"step": 7}
    assert loaded.path == path
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    x = torch.randn(1, 3, 32, 40)
    torch.testing.assert_close(loaded.model.predict(x), model.eval().predict(x))
    assert list(tmp_path.iterdir()) == [path]          # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "openpaf" and raw["version"] == 2 and raw["arch"] == "cmu_vgg"
    assert set(raw) >= {"config", "skeleton", "normalisation", "state_dict", "manifest",
                        "pretrained_cfg"}
    assert raw["skeleton"]["keypoints"][1] == "neck"


def test_round_trip_half(tmp_path):
    path = tmp_path / "half.pt"
    model = _save(path, normalisation=InputNorm("RGB", 1 / 255, 0.0), half=True)
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]["stages.0.paf.out.weight"].dtype == torch.float16
    loaded = load_checkpoint(path)
    assert loaded.normalisation == InputNorm("RGB", 1 / 255, 0.0)
    for k, v in loaded.model.state_dict().items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, model.state_dict()[k].half().float())


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    _save(path)
    before = path.read_bytes()

    def boom(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", boom)
    with pytest.raises(OSError):
        _save(path)
    assert path.read_bytes() == before                 # old file untouched
    assert list(tmp_path.iterdir()) == [path]          # temp file cleaned up


def test_strict_state_dict(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["stages.0.extra.weight"] = torch.zeros(1)
    del raw["state_dict"]["stages.0.paf.out.bias"]
    torch.save(raw, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = _one_line(e)
    assert "missing 1 (stages.0.paf.out.bias)" in msg
    assert "unexpected 1 (stages.0.extra.weight)" in msg


def test_wrong_shape(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    raw = torch.load(path, weights_only=True)
    raw["config"]["stage_channels"] = 8                # config no longer fits the weights
    torch.save(raw, path)
    expected = "wrong shape 24 (stages.0.paf.layers.0.conv.weight (16, 16, 3, 3) != (8, 16"
    with pytest.raises(CheckpointError, match=re.escape(expected)) as e:
        load_checkpoint(path)
    _one_line(e)


def test_skeleton_mismatch(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    raw = torch.load(path, weights_only=True)
    raw["skeleton"]["limbs"] = raw["skeleton"]["limbs"][:-1]
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="skeleton mismatch") as e:
        load_checkpoint(path)
    _one_line(e)


def test_not_openpaf_cmu_hint(tmp_path):
    path = tmp_path / "body_pose_model.pth"
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match="openpaf weights import") as e:
        load_checkpoint(path)
    assert "not an openpaf checkpoint" in _one_line(e)


def test_garbage_and_missing_file(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="cannot read") as e:
        load_checkpoint(junk)
    _one_line(e)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("url", ["https://example.com/w.pt", "http://x/y.pt"])
def test_url_is_refused(url):
    with pytest.raises(CheckpointError, match="downloading is not supported") as e:
        load_checkpoint(url)
    assert "pass its path" in _one_line(e)


def test_default_weights_path(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENPAF_WEIGHTS", raising=False)
    path = default_weights_path()
    assert path.parts[-2:] == ("weights", "default.pt")
    assert (path.parents[1] / "openpaf" / "__init__.py").is_file()
    monkeypatch.setenv("OPENPAF_WEIGHTS", str(tmp_path / "w.pt"))
    assert default_weights_path() == tmp_path / "w.pt"


def test_missing_default_weights_message(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENPAF_WEIGHTS", str(tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError) as e:
        load_default()
    msg = _one_line(e)
    assert "--weights" in msg and "openpaf weights import" in msg and "openpaf train" in msg


def test_load_default_from_env(monkeypatch, tmp_path):
    path = tmp_path / "w.pt"
    _save(path)
    monkeypatch.setenv("OPENPAF_WEIGHTS", os.fspath(path))
    assert load_default().config == get_config("tiny")


def test_describe(tmp_path):
    path = tmp_path / "m.pt"
    _save(path)
    text = "\n".join(describe(load_checkpoint(path)))
    assert "parameters: " in text and "source: unit test" in text
    assert "normalisation: BGR, x / 256 - 0.5" in text
    assert format_norm(InputNorm("RGB", 0.017, 0.0)) == "RGB, x * 0.017"
    assert format_norm(InputNorm("RGB", 1 / 255, 0.5)) == "RGB, x / 255 + 0.5"


def test_file_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        _save(tmp_path / "m.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "m.pt").stat().st_mode & 0o777 == 0o644


def test_version_1_files_load_as_the_vgg_family(tmp_path):
    """Files written before network families (no arch, no pretrained_cfg) still load."""
    path = tmp_path / "v1.pt"
    model = _save(path)
    raw = torch.load(path, weights_only=True)
    for key in ("arch", "pretrained_cfg"):
        del raw[key]
    raw["version"] = 1
    torch.save(raw, path)
    loaded = load_checkpoint(path)
    assert loaded.model.arch == "cmu_vgg" and loaded.pretrained.height == 368
    x = torch.randn(1, 3, 32, 40)
    torch.testing.assert_close(loaded.model.predict(x), model.eval().predict(x))
    raw["version"] = 3
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="version 3 is not supported"):
        load_checkpoint(path)


def test_refusing_an_unsafe_file_does_not_advise_loading_it_unsafely(tmp_path):
    """torch's message says to retry with ``weights_only=False``: openpaf must not pass
    that advice on."""
    import argparse
    from openpaf.weights.formats import import_weights
    path = tmp_path / "objects.pt"
    torch.save({"format": "openpaf", "x": argparse.Namespace(a=1)}, path)
    for load in (read_checkpoint, lambda p: import_weights(p, tmp_path / "o.pt")):
        with pytest.raises(CheckpointError) as err:
            load(path)
        msg = str(err.value)
        assert "refusing to load" in msg and "argparse.Namespace" in msg, msg
        assert "weights_only" not in msg and "can still be loaded" not in msg
        assert "\n" not in msg and "\x1b" not in msg


def test_torch_load_errors_always_give_a_reason():
    """Issue 21: ``cannot read as a torch file ()`` had an empty reason; a junk file gave
    a bare ``(101)``."""
    from openpaf.weights.checkpoint import torch_load_error
    for exc in (RuntimeError("Weights only load failed. WeightsUnpickler error: \n"),
                RuntimeError("\x1b[0m"), EOFError(), KeyError(101)):
        text = torch_load_error(exc)
        assert not text.endswith("()") and re.search(r"\(\w[^)]*\)$", text), text
        assert type(exc).__name__ in text or "WeightsUnpickler" in str(exc), text
