"""``openpaf weights pack``: lineage across fine-tuning runs, fp16 storage, recorded AP."""
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf.weights.checkpoint import load_checkpoint, read_checkpoint
from openpaf.data.augment import AugmentParams
from openpaf.data.coco import LSPET_LICENCE, DatasetSpec
from openpaf.weights.pack import training_lineage
from openpaf.train import TrainConfig, train

from test_data import synthetic_people

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A 3-step run from scratch, then a 2-step fine-tune of it with another lr."""
    tmp = tmp_path_factory.mktemp("runs")
    data = synthetic_people(tmp, n_images=3, size=96)
    spec = DatasetSpec(data.annotations, data.images, licence=LSPET_LICENCE)
    base = dict(model="tiny", model_overrides={"batch_norm": True}, input_size=64,
                batch_size=2, workers=0, log_every=1, checkpoint_every=0,
                augment=AugmentParams(input_size=64))
    first = train(TrainConfig(lr=1e-3, max_steps=3, **base), [spec], tmp / "a",
                  progress=False, log=lambda _: None)
    second = train(TrainConfig(lr=5e-4, max_steps=2, init=f"checkpoint:{first.last}", **base),
                   [spec], tmp / "b", progress=False, log=lambda _: None)
    return tmp, data, first.last, second.last


def test_pack_records_lineage_fp16_and_measured_ap(two_runs, tmp_path):
    tmp, data, first, second = two_runs
    out, js = tmp_path / "default.pt", tmp_path / "default.json"
    res = CliRunner().invoke(main, ["weights", "pack", str(second), "-o", str(out),
                                    "--eval", f"{data.annotations}:{data.images}",
                                    "--name", "test-model", "--manifest-json", str(js), "-q"])
    assert res.exit_code == 0, res.output
    assert "2 training run(s), 5 steps" in res.output
    ckpt = read_checkpoint(out)
    assert "extra" not in ckpt                          # no optimizer / RNG state shipped
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values()
               if v.is_floating_point())
    manifest = ckpt["manifest"]
    assert json.loads(js.read_text()) == manifest
    t = manifest["training"]
    assert [r["lr"] for r in t["runs"]] == [1e-3, 5e-4]
    assert [r["init"] for r in t["runs"]] == ["scratch", "checkpoint"]
    assert t["steps"] == 5 and t["images_seen"] == 10 and t["complete"]
    assert t["wall_time_s"] == pytest.approx(sum(r["wall_time_s"] for r in t["runs"]), abs=0.2)
    assert manifest["name"] == "test-model" and manifest["storage"] == "fp16"
    assert manifest["licence"] == LSPET_LICENCE
    assert manifest["data"][0]["images"] == 3
    (ev,) = manifest["eval"]
    assert ev["images"] == 3 and ev["people"] == 3 and 0.0 <= ev["AP"] <= 1.0
    assert ev["height"] == 368 and ev["scales"] == [1.0] and ev["precision"] == "fp32"
    # the packed weights are the trained ones, rounded to fp16
    a, b = load_checkpoint(second).model, load_checkpoint(out).model
    x = torch.rand(1, 3, 64, 64) - 0.5
    for ya, yb in zip(a.predict(x), b.predict(x)):
        assert torch.allclose(ya, yb, atol=2e-2)
    info = CliRunner().invoke(main, ["weights", "info", str(out)])
    assert info.exit_code == 0 and "test-model" in info.output and '"steps": 5' in info.output


def test_lineage_stops_at_a_changed_or_missing_parent(two_runs, tmp_path):
    tmp, _, first, second = two_runs
    assert len(training_lineage(second)) == 2
    moved = tmp_path / "b.pt"
    shutil.copy(second, moved)
    backup = tmp_path / "a.pt"
    shutil.copy(first, backup)
    try:
        first.write_bytes(first.read_bytes() + b"\0")          # parent changed after the run
        runs = training_lineage(moved)
        assert "changed" in runs[0]["gap"] and runs[1]["steps"] == 2
        first.unlink()
        runs = training_lineage(moved)
        assert "no longer exists" in runs[0]["gap"]
        res = CliRunner().invoke(main, ["weights", "pack", str(moved), "-o",
                                        str(tmp_path / "x.pt")])
        assert res.exit_code == 0 and "gap" in res.output
        assert read_checkpoint(tmp_path / "x.pt")["manifest"]["training"]["complete"] is False
    finally:
        shutil.copy(backup, first)


def test_pack_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    res = CliRunner().invoke(main, ["weights", "pack", str(bad), "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 1 and "cannot read as a torch file" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["weights", "pack", str(bad), "-o", str(tmp_path / "o.pt"),
                                    "--eval", "nope.json"])
    assert res.exit_code == 64 and "--eval" in res.output


# ---------------------------------------------------------------------------------------
# Hardening (issue 15)


def test_repacking_a_packed_file_keeps_its_history(two_runs, tmp_path):
    """Defect 7: packing a packed file gave an empty name, no data, 0 steps, no eval."""
    tmp, data, _, second = two_runs
    first = tmp_path / "first.pt"
    res = CliRunner().invoke(main, ["weights", "pack", str(second), "-o", str(first),
                                    "--name", "m", "--description", "d", "-q",
                                    "--eval", f"{data.annotations}:{data.images}"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["weights", "pack", str(first), "-o",
                                    str(tmp_path / "again.pt"), "-q"])
    assert res.exit_code == 0 and "5 steps" in res.output, res.output
    old = read_checkpoint(first)["manifest"]
    new = read_checkpoint(tmp_path / "again.pt")["manifest"]
    for key in ("name", "description", "model", "data", "training", "eval"):
        assert new[key] == old[key], key
    assert new["name"] == "m" and new["training"]["steps"] == 5 and len(new["eval"]) == 1
    assert new["packed_from"] == old["source"]
    res = CliRunner().invoke(main, ["weights", "pack", str(first), "-o",
                                    str(tmp_path / "fp32.pt"), "--fp32", "-q"])
    assert read_checkpoint(tmp_path / "fp32.pt")["manifest"]["eval"] == []  # not re-measured


def test_pack_refuses_a_score_from_unreadable_images_and_nan_weights(two_runs, tmp_path):
    """Defect 6: ``pack --eval ann:wrong_folder`` stored AP 0.0 in the shipped manifest."""
    tmp, data, _, second = two_runs
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    out = tmp_path / "o.pt"
    res = CliRunner().invoke(main, ["weights", "pack", str(second), "-o", str(out), "-q",
                                    "--eval", f"{data.annotations}:{wrong}"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "3 of 3 images unreadable" in res.output and "no score recorded" in res.output
    assert "AP 0.0" not in res.output and not out.exists()
    ckpt = read_checkpoint(second)
    ckpt["state_dict"] = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, tmp_path / "nan.pt")
    res = CliRunner().invoke(main, ["weights", "pack", str(tmp_path / "nan.pt"), "-o",
                                    str(tmp_path / "n.pt"), "-q"])
    assert res.exit_code == 1 and "NaN" in res.output and not (tmp_path / "n.pt").exists()
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((64, 64, 3), np.uint8))
    res = CliRunner().invoke(main, ["infer", str(tmp_path / "a.jpg"), "-o",
                                        str(tmp_path / "o"), "-w", str(tmp_path / "nan.pt"),
                                        "--device", "cpu", "-q"])
    assert res.exit_code == 1 and "NaN" in res.output, res.output     # not 0 people, rc 0


def test_pack_writes_the_weights_and_the_manifest_json_or_neither(tmp_path):
    """Issue 21: an unwritable --manifest-json replaced the output .pt, then exited 1.
    And weights/pack.py no longer reaches up to openpaf.predict: the caller passes the
    evaluation."""
    import ast
    from pathlib import Path
    import torch
    from openpaf.model import create_model
    from openpaf.structures import InputNorm
    from openpaf.weights.checkpoint import save_checkpoint
    from openpaf.weights.pack import pack
    source = ast.parse(Path(pack.__code__.co_filename).read_text())
    imported = {n.module or "" for n in ast.walk(source) if isinstance(n, ast.ImportFrom)}
    assert not any(m.endswith(("predict", "evaluate")) for m in imported), imported
    torch.manual_seed(0)
    src = save_checkpoint(tmp_path / "src.pt", create_model("tiny"), normalisation=InputNorm(),
                          manifest={"name": "tiny"}, variant="tiny")
    out = tmp_path / "out.pt"
    out.write_bytes(b"the earlier file")
    (tmp_path / "file.txt").write_text("not a folder")
    with pytest.raises(OSError):
        pack(src, out, manifest_json=tmp_path / "file.txt" / "m.json")
    assert out.read_bytes() == b"the earlier file"
    seen = []
    manifest = pack(src, out, manifest_json=tmp_path / "m.json",
                    score=lambda path: seen.append(Path(path).is_file()) or [
                        {"annotations": "a.json", "AP": 0.5, "images": 1, "people": 1}])
    assert seen == [True] and manifest["eval"][0]["AP"] == 0.5
    assert json.loads((tmp_path / "m.json").read_text())["eval"][0]["AP"] == 0.5
