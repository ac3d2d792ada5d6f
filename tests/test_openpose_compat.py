"""OpenPose drop-in: COCO-18 JSON shaped as OpenPose 1.7 writes it, the BODY_25 layout, and
the OpenPose flags (--keypoint-scale, --number-people-max, --render-threshold,
--write-maps, --part-candidates, --write-json), each through ``openpaf infer``."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import openpaf_cli.infer
from openpaf_cli.main import main
from openpaf.decode import decode
from openpaf.io.maps import maps_strip
from openpaf.io.writers import (OpenPoseFormat, openpose_json, read_openpose_json,
                                validate_openpose_json)
from openpaf.runner import InferOptions
from openpaf.skeleton import (BODY25_KEYPOINTS, BODY25_MID_HIP, KEYPOINTS, NUM_KEYPOINTS,
                              OURS_TO_BODY25)
from openpaf.structures import Detections, Person

from conftest import person
from scripted import H, W, Recording, write_frames

README = Path(__file__).resolve().parents[1] / "README.md"
FLAGS = ("--openpose-layout", "--number-people-max", "--keypoint-scale",
         "--render-threshold", "--write-maps", "--part-candidates", "--write-json")
R_HIP, L_HIP = KEYPOINTS.index("right_hip"), KEYPOINTS.index("left_hip")
R_WRIST = KEYPOINTS.index("right_wrist")

# The shape of an OpenPose 1.7 file (`--model_pose COCO --part_candidates --write_json`):
# numbers are placeholders, key order and list lengths are OpenPose's.
OPENPOSE_1_7_COCO = {
    "version": 1.3,
    "people": [{"person_id": [-1], "pose_keypoints_2d": [0.0] * 54,
                "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [], "pose_keypoints_3d": [],
                "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": []}],
    "part_candidates": [{str(k): [0.0, 0.0, 0.0] for k in range(18)}],
}


def shape(obj):
    """Keys (in order), list lengths and value types, not the numbers; candidate lists
    only as 'threes'."""
    if isinstance(obj, dict):
        return [(k, shape(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        if obj and all(isinstance(v, (int, float)) for v in obj):
            return ("numbers", len(obj) if len(obj) in (54, 75) else len(obj) % 3 == 0)
        return [shape(v) for v in obj[:1]] + ([] if obj else ["empty"])
    return type(obj).__name__


class StaticPredict:
    """People of known scores and confidences, with part candidates (their points plus one
    stray peak per type); returns no maps."""

    def __init__(self, scores=(0.3, 0.9, 0.6), conf=None):
        self.scores, self.conf = scores, conf or {}
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        people = []
        for i, s in enumerate(self.scores):
            kps = person(50 + 70 * i, 100, 0.5 if len(self.scores) > 1 else 0.8,
                         missing=(16,) if i == 0 else ())
            kps[:, 2] = np.where(kps[:, 2] > 0, 0.8, 0.0)
            for k, c in self.conf.items():
                kps[k, 2] = c
            people.append(Person(kps, s))
        cands = [np.vstack([[p.keypoints[k]] for p in people if p.found[k]]
                           + [[[5.0 + k, 7.0, 0.15]]]) for k in range(NUM_KEYPOINTS)]
        return Detections(image.shape[1::-1], people, part_candidates=cands)


def infer(monkeypatch, predictor, args, src, out):
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: predictor)
    return CliRunner().invoke(main, ["infer", str(src), "-o", str(out), "-q", *args])


def load(path):
    return json.loads(Path(path).read_text())


@pytest.fixture()
def frames(tmp_path):
    return write_frames(tmp_path / "frames", 2)[0].parent


def test_infer_help_and_readme_table_list_every_openpose_flag():
    res = CliRunner().invoke(main, ["infer", "--help"])
    assert res.exit_code == 0
    table = README.read_text().split("OpenPose flag -> openpaf option")[1].split("\n\n")[1]
    for flag in FLAGS:
        assert flag in res.output, flag
        assert re.search(rf"^\|.*`{flag}\b", table, re.M), flag
    assert "BODY_25" in res.output and "pose-format" in res.output


def test_coco18_json_is_what_openpose_1_7_writes(tmp_path, monkeypatch, frames):
    rec = Recording()
    res = infer(monkeypatch, rec, ["--part-candidates"], frames, tmp_path / "out")
    assert res.exit_code == 0, res.output
    obj = load(tmp_path / "out" / "frame_000001_keypoints.json")
    validate_openpose_json(obj)
    assert shape(obj) == shape(OPENPOSE_1_7_COCO)
    assert obj["version"] == 1.3 and all(p["person_id"] == [-1] for p in obj["people"])
    det = rec.detections[1]
    cands = obj["part_candidates"][0]
    for entry, p in zip(obj["people"], det.people, strict=True):
        kps = np.reshape(entry["pose_keypoints_2d"], (NUM_KEYPOINTS, 3))
        np.testing.assert_allclose(kps, p.keypoints, atol=1e-3)
        for k in np.flatnonzero(p.found):    # every point is one of its type's candidates
            assert np.abs(np.reshape(cands[str(k)], (-1, 3)) - kps[k]).max(1).min() < 1e-3
    for k in range(NUM_KEYPOINTS):
        np.testing.assert_allclose(np.reshape(cands[str(k)], (-1, 3)),
                                   det.part_candidates[k], atol=1e-3)
    plain = infer(monkeypatch, Recording(), [], frames, tmp_path / "plain")
    assert plain.exit_code == 0
    assert list(load(tmp_path / "plain" / "frame_000001_keypoints.json")) == ["version",
                                                                              "people"]


def test_body25_json_and_part_candidates(tmp_path, monkeypatch, frames):
    rec = Recording()
    res = infer(monkeypatch, rec, ["--openpose-layout", "body25", "--part-candidates",
                                   "--json-format", "openpose,jsonl"], frames,
                tmp_path / "out")
    assert res.exit_code == 0, res.output
    obj = load(tmp_path / "out" / "frame_000000_keypoints.json")
    validate_openpose_json(obj)
    det = rec.detections[0]
    cands = obj["part_candidates"][0]
    assert list(cands) == [str(k) for k in range(len(BODY25_KEYPOINTS))]
    for j, name in enumerate(BODY25_KEYPOINTS):
        if name in KEYPOINTS:
            np.testing.assert_allclose(np.reshape(cands[str(j)], (-1, 3)),
                                       det.part_candidates[KEYPOINTS.index(name)], atol=1e-3)
        else:                                 # mid-hip and feet: not detected
            assert cands[str(j)] == []
    for entry, p in zip(obj["people"], det.people, strict=True):
        kps = np.reshape(entry["pose_keypoints_2d"], (25, 3))
        np.testing.assert_allclose(kps[list(OURS_TO_BODY25)], p.keypoints, atol=1e-3)
        hips = p.keypoints[[R_HIP, L_HIP]]
        np.testing.assert_allclose(kps[BODY25_MID_HIP],
                                   [*hips[:, :2].mean(0), hips[:, 2].min()], atol=1e-3)
        assert not kps[19:].any()
    line = json.loads((tmp_path / "out" / "openpaf_images.jsonl").read_text().splitlines()[0])
    assert [q["pose_keypoints_2d"] for q in line["people"]] == \
        [q["pose_keypoints_2d"] for q in obj["people"]]
    assert line["part_candidates"] == obj["part_candidates"]


@pytest.mark.parametrize("scale", ["unit", "signed-unit"])
def test_keypoint_scale(tmp_path, monkeypatch, frames, scale):
    args = ["--part-candidates", "--no-render"]
    assert infer(monkeypatch, StaticPredict(), args, frames, tmp_path / "px").exit_code == 0
    res = infer(monkeypatch, StaticPredict(), args + ["--keypoint-scale", scale], frames,
                tmp_path / "scaled")
    assert res.exit_code == 0, res.output
    name = "frame_000000_keypoints.json"
    px, scaled = load(tmp_path / "px" / name), load(tmp_path / "scaled" / name)
    span, lo = np.array([W - 1, H - 1], np.float64), (0.0 if scale == "unit" else -1.0)
    for a, b in zip(px["people"], scaled["people"], strict=True):
        a, b = np.reshape(a["pose_keypoints_2d"], (-1, 3)), np.reshape(b["pose_keypoints_2d"],
                                                                      (-1, 3))
        found = a[:, 2] > 0
        np.testing.assert_allclose(b[found, :2], a[found, :2] / span * (1 - lo) + lo,
                                   atol=2e-6)
        assert b[found, :2].min() >= lo and b[found, :2].max() <= 1
        assert not b[~found].any()                            # missing stays 0, 0, 0
        np.testing.assert_array_equal(b[:, 2], a[:, 2])
    c_px = np.reshape(px["part_candidates"][0]["3"], (-1, 3))
    c_sc = np.reshape(scaled["part_candidates"][0]["3"], (-1, 3))
    np.testing.assert_allclose(c_sc[:, :2], c_px[:, :2] / span * (1 - lo) + lo, atol=2e-6)
    back = read_openpose_json(tmp_path / "scaled" / name, (W, H), scale)
    np.testing.assert_allclose(back.keypoints, read_openpose_json(tmp_path / "px" / name)
                               .keypoints, atol=1e-3)
    with pytest.raises(ValueError, match="image size"):
        read_openpose_json(tmp_path / "scaled" / name, (0, 0), scale)


def test_number_people_max(tmp_path, monkeypatch, frames):
    res = infer(monkeypatch, StaticPredict((0.3, 0.9, 0.6)),
                ["--number-people-max", "2", "--json-format", "openpose,jsonl"], frames,
                tmp_path / "out")
    assert res.exit_code == 0, res.output
    xs = [e["pose_keypoints_2d"][0]
          for e in load(tmp_path / "out" / "frame_000000_keypoints.json")["people"]]
    assert xs == [120.0, 190.0]         # the 0.9 and 0.6 people, in the decoder's order
    line = json.loads((tmp_path / "out" / "openpaf_images.jsonl").read_text().splitlines()[0])
    assert [q["score"] for q in line["people"]] == [0.9, 0.6]
    det = StaticPredict((0.3, 0.9, 0.6))(np.zeros((H, W, 3), np.uint8))
    assert det.top(1).scores.tolist() == pytest.approx([0.9])
    assert all(np.array_equal(a, b) for a, b in zip(det.top(1).part_candidates,
                                                    det.part_candidates, strict=True))
    assert len(det.top(5)) == 3
    bad = infer(monkeypatch, StaticPredict(), ["--number-people-max", "0"], frames,
                tmp_path / "bad")
    assert bad.exit_code == 64


def test_render_threshold(tmp_path, monkeypatch, frames):
    def wrist_brightness(threshold):
        out = tmp_path / f"t{threshold}"
        res = infer(monkeypatch, StaticPredict((0.9,), conf={R_WRIST: 0.2}),
                    ["--render-threshold", str(threshold)], frames, out)
        assert res.exit_code == 0, res.output
        img = cv2.imread(str(out / "frame_000000_rendered.jpg")).astype(int)
        kps = StaticPredict((0.9,))(img.astype(np.uint8)).people[0].keypoints
        x, y = np.rint(kps[R_WRIST, :2]).astype(int)
        return (img[y - 1:y + 2, x - 1:x + 2] - 40).clip(0).max()

    assert wrist_brightness(0) > 100       # drawn on the grey frame
    assert wrist_brightness(0.1) > 100
    assert wrist_brightness(0.3) < 25      # neither the point nor its limb


def test_write_maps_npy(tmp_path, monkeypatch, frames):
    rec = Recording()                       # without --write-maps no maps are kept
    assert infer(monkeypatch, rec, [], frames, tmp_path / "none").exit_code == 0
    assert rec.detections[0].maps is None and not (tmp_path / "maps").exists()

    made = []
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor",
                        lambda weights, **kw: made.append(Recording(keep_maps=kw["keep_maps"]))
                        or made[-1])
    res = CliRunner().invoke(main, ["infer", str(frames), "-o", str(tmp_path / "out"), "-q",
                                    "--write-maps", str(tmp_path / "maps")])
    assert res.exit_code == 0, res.output
    for t, det in enumerate(made[0].detections):
        meta = load(tmp_path / "maps" / f"frame_{t:06d}_maps.json")
        assert meta["image_size"] == [W, H] and meta["format"] == "npy"
        heat = np.load(tmp_path / "maps" / meta["heatmaps"])
        paf = np.load(tmp_path / "maps" / meta["pafs"])
        assert heat.dtype == paf.dtype == np.float16
        assert heat.shape == (19, H // 8, W // 8) and paf.shape == (38, H // 8, W // 8)
        np.testing.assert_array_equal(heat, det.maps.heatmaps.astype(np.float16))
        np.testing.assert_array_equal(paf, det.maps.pafs.astype(np.float16))
        # The saved maps decode to the people of the JSON, in image pixels.
        again = decode(heat.astype(np.float32), paf.astype(np.float32),
                       scale=tuple(meta["scale"]), image_size=tuple(meta["image_size"]))
        written = read_openpose_json(tmp_path / "out" / f"frame_{t:06d}_keypoints.json")
        assert len(again) == len(written) == 2
        err = np.abs(again.keypoints[..., :2] - written.keypoints[..., :2]).max()
        assert err < 0.5, err


def test_write_maps_png(tmp_path, monkeypatch, frames):
    made = []
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor",
                        lambda weights, **kw: made.append(Recording(keep_maps=kw["keep_maps"]))
                        or made[-1])
    res = CliRunner().invoke(main, ["infer", str(frames), "-o", str(tmp_path / "out"), "-q",
                                    "--write-maps", str(tmp_path / "maps"),
                                    "--maps-format", "png"])
    assert res.exit_code == 0, res.output
    maps = made[0].detections[1].maps
    h, w = maps.heatmaps.shape[1:]
    heat = cv2.imread(str(tmp_path / "maps" / "frame_000001_heatmaps.png"),
                      cv2.IMREAD_UNCHANGED)
    paf = cv2.imread(str(tmp_path / "maps" / "frame_000001_pafs.png"), cv2.IMREAD_UNCHANGED)
    assert heat.shape == (h, 19 * w) and paf.shape == (h, 38 * w) and heat.dtype == np.uint8
    # channel c is the c-th tile from the left
    tiles = heat.reshape(h, 19, w).transpose(1, 0, 2) / 255.0
    assert np.abs(tiles - maps.heatmaps.clip(0, 1)).max() <= 0.5 / 255 + 1e-6
    tiles = paf.reshape(h, 38, w).transpose(1, 0, 2) / 127.5 - 1.0
    assert np.abs(tiles - maps.pafs.clip(-1, 1)).max() <= 0.5 / 127.5 + 1e-6
    assert maps_strip(np.array([[[-2.0, 0.0, 3.0]]]), -1, 1).tolist() == [[0, 128, 255]]


def test_write_maps_needs_a_predictor_that_returns_maps(tmp_path, monkeypatch, frames):
    res = infer(monkeypatch, StaticPredict(), ["--write-maps", str(tmp_path / "maps")],
                frames, tmp_path / "out")
    assert res.exit_code == 1 and "returned no maps" in res.output


def test_write_json_folder_holds_only_keypoint_files(tmp_path, monkeypatch, frames):
    res = infer(monkeypatch, StaticPredict(), ["--write-json", str(tmp_path / "json")],
                frames, tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "json").iterdir()) == \
        ["frame_000000_keypoints.json", "frame_000001_keypoints.json"]
    assert not list((tmp_path / "out").glob("*_keypoints.json"))
    resumed = StaticPredict()               # the markers of --skip-existing are there
    again = infer(monkeypatch, resumed, ["--write-json", str(tmp_path / "json"),
                                         "--skip-existing"], frames, tmp_path / "out")
    assert again.exit_code == 0 and resumed.calls == 0
    bad = infer(monkeypatch, StaticPredict(), ["--write-json", str(tmp_path / "j"),
                                               "--no-json"], frames, tmp_path / "o2")
    assert bad.exit_code == 64 and "--write-json" in bad.output


def test_resume_rereads_body25_json(tmp_path, monkeypatch, frames):
    args = ["--openpose-layout", "body25", "--part-candidates", "--json-format",
            "openpose,jsonl"]
    assert infer(monkeypatch, StaticPredict(), args, frames, tmp_path / "out").exit_code == 0
    first = (tmp_path / "out" / "openpaf_images.jsonl").read_text()
    res = infer(monkeypatch, StaticPredict(), args + ["--skip-existing", "--jsonl",
                                                      str(tmp_path / "all.jsonl")],
                frames, tmp_path / "out")
    assert res.exit_code == 0, res.output
    lines = [json.loads(s) for s in (tmp_path / "all.jsonl").read_text().splitlines()]
    for old, new in zip((json.loads(s) for s in first.splitlines()), lines, strict=True):
        assert [p["pose_keypoints_2d"] for p in old["people"]] == \
            [p["pose_keypoints_2d"] for p in new["people"]]
        assert old["part_candidates"] == new["part_candidates"]
    # JSON written without candidates (nor in BODY_25) is not reused: those images are
    # redone, so every file and JSONL line has them.
    infer(monkeypatch, StaticPredict(), ["--json-format", "openpose"], frames, tmp_path / "o2")
    res = infer(monkeypatch, StaticPredict(), args + ["--skip-existing"], frames,
                tmp_path / "o2")
    assert res.exit_code == 0 and "redid 2 input(s)" in res.output, res.output
    assert "part_candidates False -> True" in res.output
    for f in (tmp_path / "o2").glob("*_keypoints.json"):
        assert "part_candidates" in json.loads(f.read_text())
    with pytest.raises(ValueError, match="pixel"):
        InferOptions(skip_existing=True, jsonl=tmp_path / "x.jsonl",
                     openpose=OpenPoseFormat(keypoint_scale="unit"))


def test_openpose_json_reads_back_and_validates_both_layouts():
    det = StaticPredict()(np.zeros((H, W, 3), np.uint8))
    for fmt in (OpenPoseFormat(), OpenPoseFormat("body25", "signed-unit", True)):
        obj = json.loads(json.dumps(openpose_json(det, fmt)))
        validate_openpose_json(obj)
        back = read_openpose_json(obj, (W, H), fmt.keypoint_scale)
        np.testing.assert_allclose(back.keypoints, det.keypoints, atol=1e-3)
    for c, c0 in zip(back.part_candidates, det.part_candidates, strict=True):
        np.testing.assert_allclose(c, c0, atol=1e-3)
    obj["people"][0]["pose_keypoints_2d"] = [0.0] * 60
    with pytest.raises(ValueError, match="54 or 75"):
        validate_openpose_json(obj)
    obj = openpose_json(det, OpenPoseFormat(part_candidates=True))
    del obj["part_candidates"][0]["17"]
    with pytest.raises(ValueError, match="part_candidates keys"):
        validate_openpose_json(obj)
    with pytest.raises(ValueError, match="no part candidates"):
        openpose_json(Detections((W, H)), OpenPoseFormat(part_candidates=True))
    with pytest.raises(ValueError, match="layout"):
        OpenPoseFormat(layout="body_25")
