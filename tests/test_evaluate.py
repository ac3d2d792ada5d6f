"""COCO evaluation: ground truth scores AP 1.0, oracle maps reach the decoder target."""
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf.data.records import gt_keypoints, load_ground_truth
from openpaf.evaluate import coco_stats, evaluate, failure_classes
from openpaf.io.writers import coco_results
from openpaf.structures import Detections, Person

from conftest import COCO_VAL, require

REPORT_KEYS = {"AP", "AP50", "AP75", "APm", "APl", "AR", "images", "people", "decode_ms"}


def test_ground_truth_written_as_results_scores_ap_one():
    coco = load_ground_truth(require(COCO_VAL))
    results = []
    for image_id in coco.getImgIds():
        people = [Person(k, score=1.0) for k in gt_keypoints(coco, image_id)]
        results += coco_results(image_id, Detections((1, 1), people))
    stats, _ = coco_stats(coco, results)
    assert stats["AP"] > 0.999 and stats["AR"] > 0.999


def test_no_detections_gives_zero_not_crash():
    coco = load_ground_truth(require(COCO_VAL))
    stats, ev = coco_stats(coco, [])
    assert stats["AP"] == 0.0
    f = failure_classes(coco, ev)
    assert f["matched"] == 0 and f["missed"] == 358           # every person counts as missed
    assert f["missed"] == f["few_keypoints"] + f["no_neck"] + f["other"]


def test_oracle_on_val_meets_target():
    report = evaluate(require(COCO_VAL), oracle=True, progress=False)
    assert REPORT_KEYS <= set(report)
    assert report["images"] == 114 and report["people"] > 300
    assert report["AP"] >= 0.75, report
    assert set(report["decode_ms"]) == {"median", "p90", "max"}
    f = report["failures"]
    assert f["matched"] + f["missed"] == report["people"]
    assert f["missed"] == f["few_keypoints"] + f["no_neck"] + f["other"]


def test_eval_cli_oracle_json(tmp_path):
    out = tmp_path / "report.json"
    res = CliRunner().invoke(main, ["eval", "--ann", str(require(COCO_VAL)), "--oracle",
                                    "--max-images", "10", "--json", str(out), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert REPORT_KEYS <= set(report) and report["images"] == 10
    f = report["failures"]
    assert f["matched"] + f["missed"] == report["people"]     # only the 10 images count
    assert "AP" in res.output and "decode ms" in res.output


def test_eval_cli_needs_images_without_oracle():
    res = CliRunner().invoke(main, ["eval", "--ann", str(require(COCO_VAL))])
    assert res.exit_code != 0 and "--images" in res.output
    assert "Traceback" not in res.output


# ---------------------------------------------------------------------------------------
# Hardening (issue 15): no real-looking score from unreadable images or empty sets


def _tiny_checkpoint(path):
    import torch
    from openpaf.weights.checkpoint import save_checkpoint
    from openpaf.model import create_model
    from openpaf.structures import InputNorm
    torch.manual_seed(0)
    model = create_model("tiny")
    return save_checkpoint(path, model, normalisation=InputNorm(),
                           manifest={"name": "tiny"})


def test_unreadable_images_are_left_out_or_refused(tmp_path):
    """Defect 6: ``eval --images <wrong folder>`` printed AP 0.000 with rc 0."""
    from test_data import synthetic_people
    data = synthetic_people(tmp_path, n_images=3, size=96)
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    base = ["eval", "--ann", data.annotations, "--weights", str(ckpt), "--height", "96",
            "--device", "cpu", "-q"]
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    res = CliRunner().invoke(main, base + ["--images", str(wrong)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "3 of 3 images unreadable" in res.output and "AP 0.000" not in res.output
    first = sorted(Path(data.images).iterdir())[0]
    first.write_bytes(b"not a jpeg")
    res = CliRunner().invoke(main, base + ["--images", data.images])
    assert res.exit_code == 2, res.output
    assert "2 images, 2 people" in res.output and "unreadable images: 1" in res.output
    res = CliRunner().invoke(main, base + ["--images", data.images, "--strict"])
    assert res.exit_code == 1 and "1 of 3 images unreadable" in res.output


def test_edge_values_are_refused(tmp_path):
    """``--max-images -1`` dropped one image; no images gave AP 0.000; no people AP -1;
    a negative ``--oracle-noise`` was accepted; empty/truncated/odd files gave tracebacks."""
    ann = require(COCO_VAL)
    doc = json.loads(ann.read_text())
    cases = {"empty.json": "", "truncated.json": ann.read_text()[:500],
             "noimages.json": json.dumps({**doc, "images": [], "annotations": []}),
             "nopeople.json": json.dumps({**doc, "annotations": []}),
             "nocats.json": json.dumps({k: v for k, v in doc.items() if k != "categories"}),
             "strid.json": json.dumps({**doc, "images": [{**doc["images"][0], "id": "x"}]}),
             "nobox.json": json.dumps({**doc, "annotations": [
                 {k: v for k, v in a.items() if k != "bbox"} for a in doc["annotations"]]})}
    words = {"empty.json": "not a JSON file", "truncated.json": "not a JSON file",
             "noimages.json": "no images", "nopeople.json": "no annotated people",
             "nocats.json": "no 'categories' list", "strid.json": "'id' must be an integer",
             "nobox.json": "'bbox' must be 4 finite numbers"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        res = CliRunner().invoke(main, ["eval", "--ann", str(tmp_path / name), "--oracle",
                                        "-q"])
        assert res.exit_code == 1 and "Traceback" not in res.output, (name, res.output)
        assert words[name] in res.output and str(tmp_path / name) in res.output, res.output
    for extra, word in ((["--max-images", "-1"], "max_images"),
                        (["--max-images", "0"], "max_images"),
                        (["--oracle-noise", "-0.1"], "oracle_noise")):
        res = CliRunner().invoke(main, ["eval", "--ann", str(ann), "--oracle", "-q", *extra])
        assert res.exit_code == 1 and word in res.output, res.output
