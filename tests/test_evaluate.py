"""COCO evaluation: ground truth scores AP 1.0, oracle maps reach the decoder target."""
import json

import numpy as np
from click.testing import CliRunner

from cli.main import main
from openpaf.evaluate import (coco_results, coco_stats, evaluate, failure_classes,
                              gt_keypoints, load_ground_truth)
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
