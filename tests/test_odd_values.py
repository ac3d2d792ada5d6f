"""Issue 21, "Low" items: odd values refused in one line, clear errors (each failed
before its fix)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from openpaf_cli.main import USAGE_EXIT, main
from openpaf.decode import decode
from openpaf.predict import Predictor

from conftest import COCO_VAL, ROOT, require

IR = (ROOT.parent / "shared" / "models" / "openvino" / "human-pose-estimation-0001"
      / "FP16-INT8" / "human-pose-estimation-0001.xml")


def test_decode_refuses_a_scale_of_zero():
    heat, paf = np.zeros((19, 8, 8), np.float32), np.zeros((38, 8, 8), np.float32)
    for bad in (0, -1, float("nan"), (1, 0)):
        with pytest.raises(ValueError, match="scale"):
            decode(heat, paf, scale=bad)


def test_predictor_needs_a_model_and_scales_a_map_cell_wide():
    with pytest.raises(TypeError, match="from_checkpoint"):
        Predictor(None)
    from openpaf.model import create_model
    with pytest.raises(ValueError, match="scale"):
        Predictor(create_model("tiny"), height=64, scales=(1e-9, 1), device="cpu")


def test_cli_refuses_nan_and_tiny_values():
    for args, code, word in ((["infer", "x.jpg", "--render-threshold", "nan"], USAGE_EXIT,
                              "--render-threshold"),
                             (["train", "--teacher-weight", "inf"], USAGE_EXIT,
                              "--teacher-weight"),
                             (["eval", "--ann", str(require(COCO_VAL)), "--oracle",
                               "--oracle-noise", "inf", "-q"], 1, "oracle_noise")):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == code and word in res.output, (args, res.output)
        assert "Traceback" not in res.output


def test_a_fifo_input_is_named_as_such(tmp_path):
    from openpaf.io.plan import expand
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    [err] = list(expand(str(fifo), False, set()))
    assert "no such file" not in str(err.reason) and "FIFO" in str(err.reason)


def test_openpaf_weights_accepts_what_weights_accepts(monkeypatch):
    from openpaf.weights import load_default
    monkeypatch.setenv("OPENPAF_WEIGHTS", str(require(IR)))
    loaded = load_default()
    assert loaded.model.arch and loaded.path == IR


def test_eval_refuses_people_it_would_score_zero(tmp_path):
    doc = json.loads(require(COCO_VAL).read_text())
    person = next(a for a in doc["annotations"] if a.get("num_keypoints", 0) > 0)
    for name, change, word in (("area0.json", {"area": 0}, "'area'"),
                               ("cat2.json", {"category_id": 2}, "category_id")):
        bad = {**doc, "annotations": [{**a, **change} if a is person else a
                                      for a in doc["annotations"]]}
        (tmp_path / name).write_text(json.dumps(bad))
        res = CliRunner().invoke(main, ["eval", "--ann", str(tmp_path / name), "--oracle",
                                        "-q"])
        assert res.exit_code == 1 and word in res.output, (name, res.output)


def test_weights_info_on_a_nan_normalisation_is_one_line(tmp_path):
    """Issue 21 item 11: ``weights info`` on a checkpoint whose normalisation holds NaN
    was a traceback."""
    from openpaf.model import create_model
    from openpaf.structures import InputNorm
    from openpaf.weights.checkpoint import save_checkpoint
    with pytest.raises(ValueError, match="finite"):
        InputNorm(scale=float("nan"))
    path = save_checkpoint(tmp_path / "ok.pt", create_model("tiny"), normalisation=InputNorm(),
                           manifest={}, variant="tiny")
    ckpt = torch.load(path, weights_only=True)
    ckpt["normalisation"]["scale"] = float("nan")
    if "pretrained_cfg" in ckpt:
        ckpt["pretrained_cfg"]["normalisation"]["scale"] = float("nan")
    torch.save(ckpt, tmp_path / "nan.pt")
    res = CliRunner().invoke(main, ["weights", "info", str(tmp_path / "nan.pt")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "finite" in res.output
