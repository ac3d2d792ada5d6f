"""A real consumer of OpenPose JSON: pose-format reads openpaf's BODY_25 output.

pose-format's ``load_openpose_directory`` always reads ``pose_keypoints_2d`` as BODY_25:
fed COCO-18, our right hip silently becomes its mid-hip and every later joint shifts.
Here ``openpaf infer --openpose-layout body25`` runs (real Predictor and decoder on a
scripted network, ``tests/scripted.py``) over a synthetic video and a folder of frames;
pose-format loads the JSON folder, and its named joints must sit where openpaf found them.
"""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from pose_format.utils.openpose import BODY_POINTS, load_openpose_directory

import openpaf_cli.infer
from openpaf_cli.main import main
from openpaf.skeleton import BODY25_KEYPOINTS, KEYPOINTS

from conftest import SHARED_DATA, require
from scripted import Recording, write_frames, write_video

N_FRAMES = 5
CHECKED = ("Nose", "Neck", "RWrist", "LWrist", "MidHip", "RHip", "LAnkle")


def pose_format_name(ours: str) -> str:
    """Our snake_case name in pose-format's spelling: right_big_toe -> RBigToe."""
    words = ours.split("_")
    side = {"left": "L", "right": "R"}.get(words[0])
    return (side or "") + "".join(w.capitalize() for w in words[1 if side else 0:])


def test_body25_order_is_pose_formats():
    assert [pose_format_name(n) for n in BODY25_KEYPOINTS] == BODY_POINTS


def expected(person_kps: np.ndarray, joint: str) -> np.ndarray:
    """``[x, y, c]`` that openpaf found for a pose-format joint name (mid-hip: the mean of
    the hips, the smaller confidence)."""
    if joint == "MidHip":
        r, l = (person_kps[KEYPOINTS.index(n)] for n in ("right_hip", "left_hip"))
        return np.array([*(r[:2] + l[:2]) / 2, min(r[2], l[2])])
    return person_kps[[pose_format_name(n) for n in KEYPOINTS].index(joint)]


@pytest.mark.parametrize("kind", ["video", "frames"])
def test_pose_format_reads_body25_joints_where_openpaf_found_them(tmp_path, monkeypatch,
                                                                  kind):
    rec = Recording()
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: rec)
    src = write_video(tmp_path / "clip.mp4", N_FRAMES) if kind == "video" \
        else write_frames(tmp_path / "frames", N_FRAMES)[0].parent
    json_dir = tmp_path / "json"
    res = CliRunner().invoke(main, ["infer", str(src), "-o", str(tmp_path / "out"), "-q",
                                    "--openpose-layout", "body25", "--write-json",
                                    str(json_dir)])
    assert res.exit_code == 0, res.output
    assert len(rec.detections) == N_FRAMES
    assert all(p.name.endswith("_keypoints.json") for p in json_dir.iterdir())

    pose = load_openpose_directory(str(json_dir))
    data, conf = pose.body.data, pose.body.confidence     # (frames, people, points, 2)
    assert data.shape[:2] == (N_FRAMES, 2) and data.shape[2] >= len(BODY_POINTS)
    worst = 0.0
    for f, det in enumerate(rec.detections):
        assert len(det.people) == 2
        for i, p in enumerate(det.people):
            for joint in CHECKED:
                want = expected(p.keypoints, joint)
                assert want[2] > 0, (f, i, joint)               # the scene shows them all
                j = BODY_POINTS.index(joint)
                worst = max(worst, float(np.abs(data.data[f, i, j] - want[:2]).max()))
                assert conf[f, i, j] == pytest.approx(want[2], abs=1e-4)
            feet = [BODY_POINTS.index(n) for n in BODY_POINTS[19:]]
            assert (conf[f, i, feet] == 0).all() and data.mask[f, i, feet].all()
    print(f"pose-format read-back, {kind}: max error {worst:.6f} px")
    assert worst < 0.5


def test_body25_on_real_coco_photos(tmp_path, monkeypatch):
    """The default model on a shared COCO photo: 75 values per person, and pose-format's
    mid-hip is the mean of its hips wherever both exist (zeros otherwise)."""
    photos = require(SHARED_DATA / "coco" / "val")
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos / "000000000785.jpg", folder / "photo_0.jpg")  # (frame id _0_)
    monkeypatch.delenv("OPENPAF_WEIGHTS", raising=False)
    res = CliRunner().invoke(main, ["infer", str(folder), "-o", str(tmp_path / "out"), "-q",
                                    "--no-render", "--openpose-layout", "body25",
                                    "--write-json", str(tmp_path / "json")])
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "json").iterdir())
    assert len(files) == 1
    people = [p for f in files for p in json.loads(f.read_text())["people"]]
    assert people and all(len(p["pose_keypoints_2d"]) == 75 for p in people)

    pose = load_openpose_directory(str(tmp_path / "json"))
    data, conf = pose.body.data.data, pose.body.confidence
    mid, r, l = (BODY_POINTS.index(n) for n in ("MidHip", "RHip", "LHip"))
    both = (conf[..., r] > 0) & (conf[..., l] > 0)
    assert both.any()                    # at least one person with both hips found
    np.testing.assert_allclose(data[both][:, mid], (data[both][:, r] + data[both][:, l]) / 2,
                               atol=1e-3)
    np.testing.assert_allclose(conf[both][:, mid], np.minimum(conf[both][:, r],
                                                              conf[both][:, l]), atol=1e-4)
    assert not conf[~both][:, mid].any()
