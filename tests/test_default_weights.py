"""The shipped default model: loads with no flags, stays small, and its manifest, its JSON
copy, its licence file and the README agree on what it is and how well it does."""
import json
import subprocess

import pytest
import torch

from openpaf.weights.checkpoint import default_weights_path, load_default, read_checkpoint

from conftest import COCO_TRAIN, ROOT, require
from helpers import CLI

WEIGHTS = ROOT / "weights" / "default.pt"
MANIFEST = ROOT / "weights" / "default.json"
OMZ_SHA256 = {  # ../shared/models/README.md (= the OMZ 2021.2 release manifest)
    "human-pose-estimation-0001.xml":
        "c3a47de94906e6b3256eb16af7274141b2fc9f6c7889a02d96ef430b9bc321d3",
    "human-pose-estimation-0001.bin":
        "fc7e9dde0f4a34876cfbbd266388a59526a8c8c1bc9394ce4827b7a007d20f82"}


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
    assert loaded.model.arch == "lightweight" and loaded.variant == "lightweight_mobilenet_v1"
    ckpt = read_checkpoint(WEIGHTS)
    assert "extra" not in ckpt                          # no optimizer state shipped
    assert {v.dtype for v in ckpt["state_dict"].values()
            if v.is_floating_point()} == {torch.float16}
    defaults = ckpt["manifest"]["inference_defaults"]
    assert (loaded.pretrained.height, loaded.pretrained.flip) == (defaults["height"],
                                                                  defaults["flip"])


def test_manifest_says_source_conversion_accuracy_and_licence(manifest):
    assert json.loads(MANIFEST.read_text()) == manifest
    origin = manifest["origin"]
    assert "human-pose-estimation-0001" in origin["source"] and "2021.2" in origin["source"]
    assert origin["source_sha256"] == OMZ_SHA256
    assert "FakeQuantize" in origin["conversion"]
    assert manifest["licence"] == origin["licence"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "weights" / "LICENSE-Apache-2.0.txt").read_text()
    (ev,) = [e for e in manifest["eval"] if e["annotations"].endswith("coco/val.json")]
    assert ev["images"] == 114 and ev["people"] == 358 and ev["AP"] >= 0.38
    d = manifest["inference_defaults"]
    assert (ev["height"], ev["flip"], ev["scales"]) == (d["height"], d["flip"], [1.0])


def test_readme_quotes_the_manifest(manifest):
    readme = (ROOT / "README.md").read_text()
    (ev,) = [e for e in manifest["eval"] if e["annotations"].endswith("coco/val.json")]
    assert f"AP {ev['AP']:.3f}" in readme and f"AP50 {ev['AP50']:.3f}" in readme
    assert "Apache-2.0" in readme and "human-pose-estimation-0001" in readme


def test_infer_with_no_flags_uses_the_default_model(tmp_path):
    image = require(COCO_TRAIN).parent / "train" / "000000000474.jpg"
    r = subprocess.run(CLI + ["infer", str(image), "-o", str(tmp_path), "--device", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"model: {WEIGHTS}" in r.stderr and "openpaf-lightweight-omz" in r.stderr
    doc = json.loads((tmp_path / "000000000474_keypoints.json").read_text())
    assert doc["version"] == 1.3 and len(doc["people"]) >= 1
    assert (tmp_path / "000000000474_rendered.jpg").stat().st_size > 0
