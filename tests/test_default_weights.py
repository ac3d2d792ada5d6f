"""The shipped default model: loads with no flags, stays small, and its manifest, its JSON
copy and the README agree on what it is and how well it does."""
import json
import subprocess
import sys

import pytest
import torch

from openpaf.weights.checkpoint import default_weights_path, load_default, read_checkpoint

from conftest import COCO_TRAIN, ROOT, require

WEIGHTS = ROOT / "weights" / "default.pt"
MANIFEST = ROOT / "weights" / "default.json"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv("OPENPAF_WEIGHTS", raising=False)


@pytest.fixture(scope="module")
def manifest():
    return read_checkpoint(WEIGHTS)["manifest"]


def test_default_weights_are_shipped_small_and_load():
    assert default_weights_path() == WEIGHTS
    assert WEIGHTS.stat().st_size < 60e6
    loaded = load_default()
    assert not loaded.model.training
    ckpt = read_checkpoint(WEIGHTS)
    assert "extra" not in ckpt                          # no optimizer state shipped
    assert {v.dtype for v in ckpt["state_dict"].values()
            if v.is_floating_point()} == {torch.float16}


def test_manifest_says_data_training_accuracy_and_licence(manifest):
    assert json.loads(MANIFEST.read_text()) == manifest
    assert {d["name"] for d in manifest["data"]} >= {"train", "lspet_face_pseudo"}
    t = manifest["training"]
    assert t["complete"] and t["steps"] == sum(r["steps"] for r in t["runs"]) > 0
    assert t["wall_time_s"] > 0 and t["hardware"]
    assert t["runs"][0]["init"] == "scratch"
    (ev,) = [e for e in manifest["eval"] if e["annotations"].endswith("coco/val.json")]
    assert ev["images"] == 114 and ev["people"] == 358 and 0 < ev["AP"] < 1
    assert "research use" in manifest["licence"]


def test_readme_quotes_the_manifest(manifest):
    readme = (ROOT / "README.md").read_text()
    (ev,) = [e for e in manifest["eval"] if e["annotations"].endswith("coco/val.json")]
    assert f"AP {ev['AP']:.3f}" in readme and f"AP50 {ev['AP50']:.3f}" in readme
    assert f"{manifest['training']['steps']:,} steps" in readme


def test_infer_with_no_flags_uses_the_default_model(tmp_path):
    image = require(COCO_TRAIN).parent / "train" / "000000000474.jpg"
    r = subprocess.run([sys.executable, "-m", "cli.main", "infer", str(image), "-o",
                        str(tmp_path), "--device", "cpu"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"model: {WEIGHTS}" in r.stderr
    doc = json.loads((tmp_path / "000000000474_keypoints.json").read_text())
    assert doc["version"] == 1.3 and isinstance(doc["people"], list)
    assert (tmp_path / "000000000474_rendered.jpg").stat().st_size > 0
