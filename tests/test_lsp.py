"""LSP joints -> a COCO file of the lsp14 skeleton, and PCK@0.2 by joint name."""
import json

import numpy as np
import pytest

from openpaf.data.lsp import lsp_to_coco, read_lsp_joints
from openpaf.evaluate import evaluate
from openpaf.pck import pck_image, torso_sizes
from openpaf.skeleton import OPENPOSE_COCO18, get_spec
from openpaf.structures import Detections, Person

from conftest import ROOT

LSP = get_spec(ROOT / "configs" / "skeletons" / "lsp14.yaml")


def _joints(n=3):
    """``(n, 14, 3)`` LSP joints of an upright figure, the right ankle unlabelled in #0."""
    base = np.array([[40, 150], [42, 120], [45, 90], [65, 90], [68, 120], [70, 150],
                     [30, 85], [35, 65], [42, 45], [68, 45], [75, 65], [80, 85],
                     [55, 40], [55, 15]], np.float64)
    out = np.stack([np.c_[base + 3 * i, np.ones(14)] for i in range(n)])
    out[0, 0] = (0, -20, 0)
    return out


def test_lsp_joints_become_a_coco_file_of_the_lsp14_skeleton(tmp_path):
    from scipy.io import savemat
    savemat(tmp_path / "joints.mat", {"joints": _joints().transpose(1, 2, 0)})
    joints = read_lsp_joints(tmp_path / "joints.mat")
    assert joints.shape == (3, 14, 3)
    doc = lsp_to_coco(joints, [(100, 170)] * 3, ["a.jpg", "b.jpg", "c.jpg"], LSP, range(1, 3))
    assert [i["id"] for i in doc["images"]] == [2, 3]
    assert doc["categories"][0]["keypoints"] == list(LSP.keypoints)
    assert doc["categories"][0]["skeleton"][0] == [13, 9]          # neck -> right_shoulder
    assert "research use only" in doc["info"]["licence"]
    first = lsp_to_coco(joints, [(100, 170)] * 3, ["a.jpg"] * 3, LSP, [0])["annotations"][0]
    assert first["keypoints"][:3] == [0, 0, 0] and first["num_keypoints"] == 13
    # the file reads back as the lsp14 skeleton, and the decoder finds its people
    doc = lsp_to_coco(joints, [(100, 170)] * 3, ["a.jpg", "b.jpg", "c.jpg"], LSP, range(3))
    ann = tmp_path / "lsp.json"
    ann.write_text(json.dumps(doc))
    report = evaluate(ann, oracle=True, progress=False)
    assert report["skeleton"] == "lsp14" and report["AP"] > 0.9, report


def test_pck_scores_shared_joints_by_name_within_a_fifth_of_the_torso():
    gt = _joints(1)[:, :, :]
    gt[..., 2] = np.where(gt[..., 2] > 0, 2, 0)
    torso = torso_sizes(gt, LSP.keypoints)[0]
    assert torso == pytest.approx(np.hypot(42 - 65, 45 - 90))
    # a COCO-18 prediction: every shared joint in place except the right wrist, which is
    # off by 0.25 torso
    pred = np.zeros((18, 3), np.float32)
    for i, name in enumerate(LSP.keypoints):
        if name in OPENPOSE_COCO18.keypoints:
            pred[OPENPOSE_COCO18.keypoints.index(name)] = (*gt[0, i, :2], 0.9)
    pred[OPENPOSE_COCO18.keypoints.index("right_wrist"), 0] += 0.25 * torso
    det = Detections((100, 170), [Person(pred, 0.9)])
    joints = [n for n in LSP.keypoints if n in OPENPOSE_COCO18.keypoints and n != "neck"]
    assert len(joints) == 12
    correct, scored = pck_image(gt, LSP.keypoints, det, joints)
    # right ankle unlabelled: 11 scored, 10 correct (not the shifted wrist)
    assert scored.sum() == 11 and correct.sum() == 10
    assert not correct[0, joints.index("right_wrist")]
    empty = pck_image(gt, LSP.keypoints, Detections((100, 170)), joints)
    assert empty[0].sum() == 0 and empty[1].sum() == 11
