"""Writers: OpenPose JSON schema, atomic writes, COCO results via pycocotools, JSON Lines."""
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from openpaf.io import atomic
from openpaf.io.atomic import (AtomicPath, atomic_write_bytes, atomic_write_image,
                               atomic_write_json, atomic_write_text)
from openpaf.io.writers import (CocoResultsWriter, JsonlWriter, openpose_json,
                                read_openpose_json, validate_openpose_json,
                                write_openpose_json)
from openpaf.skeleton import NUM_KEYPOINTS, coco_to_ours
from openpaf.structures import Detections, Person

VAL_JSON = Path("/work/shared/data/coco/val.json")
OPENPOSE_KEYS = ["person_id", "pose_keypoints_2d", "face_keypoints_2d",
                 "hand_left_keypoints_2d", "hand_right_keypoints_2d", "pose_keypoints_3d",
                 "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d"]


def make_person(x0=10.0, y0=20.0, pid=-1, missing=(3,), score=0.8):
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[:, 0] = x0 + np.arange(NUM_KEYPOINTS) * 2.5
    kps[:, 1] = y0 + np.arange(NUM_KEYPOINTS) * 4.25
    kps[:, 2] = 0.5 + np.arange(NUM_KEYPOINTS) / 40
    kps[list(missing)] = 0
    return Person(kps, score, id=pid)


def test_openpose_json_layout():
    det = Detections((640, 480), [make_person(), make_person(100, 50, pid=7, missing=())])
    obj = openpose_json(det)
    validate_openpose_json(obj)
    assert obj["version"] == 1.3 and len(obj["people"]) == 2
    a, b = obj["people"]
    assert list(a) == OPENPOSE_KEYS
    assert a["person_id"] == [-1] and b["person_id"] == [7]
    assert len(a["pose_keypoints_2d"]) == 54
    assert a["pose_keypoints_2d"][9:12] == [0.0, 0.0, 0.0]  # missing keypoint 3
    assert a["pose_keypoints_2d"][:3] == [10.0, 20.0, 0.5]
    assert b["pose_keypoints_2d"][3:6] == [102.5, 54.25, 0.525]
    assert all(a[k] == [] for k in OPENPOSE_KEYS[2:])
    validate_openpose_json(json.loads(json.dumps(obj)))  # survives a JSON round trip
    empty = openpose_json(Detections((1, 1)))
    assert empty == {"version": 1.3, "people": []}
    validate_openpose_json(empty)


def test_non_finite_keypoints_become_missing():
    p = make_person(missing=())
    p.keypoints[2, 0] = np.nan
    p.keypoints[4, 2] = np.inf
    flat = openpose_json(Detections((9, 9), [p]))["people"][0]["pose_keypoints_2d"]
    assert flat[6:9] == [0, 0, 0] and flat[12:15] == [0, 0, 0]
    json.dumps(flat, allow_nan=False)


@pytest.mark.parametrize("mutate, words", [
    (lambda o: o.pop("version"), "version"),
    (lambda o: o.update(people={}), "people"),
    (lambda o: o["people"][0].pop("face_keypoints_2d"), "face_keypoints_2d"),
    (lambda o: o["people"][0].update(person_id=-1), "person_id"),
    (lambda o: o["people"][0]["pose_keypoints_2d"].pop(), "54"),
    (lambda o: o["people"][0]["pose_keypoints_2d"].__setitem__(0, "1"), "finite"),
    (lambda o: o["people"][0]["pose_keypoints_2d"].__setitem__(2, -0.1), "confidence"),
])
def test_validate_rejects(mutate, words):
    obj = openpose_json(Detections((5, 5), [make_person()]))
    mutate(obj)
    with pytest.raises(ValueError, match=words):
        validate_openpose_json(obj)


def test_write_and_read_openpose_json(tmp_path):
    det = Detections((64, 48), [make_person(pid=3), make_person(1, 2)])
    path = write_openpose_json(tmp_path / "sub" / "x_keypoints.json", det)
    assert os.listdir(path.parent) == ["x_keypoints.json"]
    back = read_openpose_json(path, (64, 48))
    assert back.image_size == (64, 48) and [p.id for p in back] == [3, -1]
    np.testing.assert_allclose(back.keypoints, det.keypoints, atol=1e-3)


def test_atomic_writes_leave_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second ü")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "j.json", {"a": [1, 2]})
    atomic_write_image(tmp_path / "i.jpg", np.zeros((8, 8, 3), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["b.bin", "i.jpg", "j.json", "out.txt"]
    assert target.read_text(encoding="utf-8") == "second ü"
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2]}
    assert (os.stat(target).st_mode & 0o777) == (0o666 & ~atomic._UMASK)

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(target, "third")
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "second ü"  # old content intact
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "nan.json", {"x": float("nan")})
    with pytest.raises(RuntimeError):
        with AtomicPath(tmp_path / "v.mp4") as ap:
            assert ap.tmp.suffix == ".mp4" and ap.tmp.parent == tmp_path
            raise RuntimeError("writer crashed")
    assert sorted(os.listdir(tmp_path)) == ["b.bin", "i.jpg", "j.json", "out.txt"]


def _tiny_gt():
    """Two images, three people (one with an unlabelled keypoint), one crowd region."""
    images = [{"id": 139, "file_name": "000000000139.jpg", "width": 640, "height": 480},
              {"id": 7, "file_name": "000000000007.jpg", "width": 320, "height": 240}]
    anns, rng = [], np.random.default_rng(0)
    for aid, (img, x, y) in enumerate([(139, 100, 50), (139, 400, 60), (7, 30, 20)], 1):
        kps = np.zeros((17, 3))
        kps[:, 0] = x + rng.uniform(0, 80, 17).round()
        kps[:, 1] = y + rng.uniform(0, 160, 17).round()
        kps[:, 2] = 2
        if aid == 2:
            kps[5] = 0
        anns.append({"id": aid, "image_id": img, "category_id": 1, "iscrowd": 0,
                     "keypoints": kps.reshape(-1).tolist(),
                     "num_keypoints": int((kps[:, 2] > 0).sum()),
                     "bbox": [x, y, 80, 160], "area": 80 * 160.0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}


def _coco_eval(gt_dict, results_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(str(results_path))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = sorted({a["image_id"] for a in gt_dict["annotations"]})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dt, ev.stats


def _detections_from_gt(gt_dict):
    by_image = {}
    for a in gt_dict["annotations"]:
        if a.get("iscrowd") or a.get("num_keypoints", 0) == 0:
            continue
        kps = coco_to_ours(np.array(a["keypoints"], np.float32).reshape(17, 3))
        kps[:, 2] = (kps[:, 2] > 0).astype(np.float32)
        by_image.setdefault(a["image_id"], []).append(Person(kps, 1.0))
    files = {im["id"]: im["file_name"] for im in gt_dict["images"]}
    return {files[i]: Detections((0, 0), people) for i, people in by_image.items()}


def test_coco_results_roundtrip_ap_1(tmp_path):
    gt = _tiny_gt()
    path = tmp_path / "results.json"
    with CocoResultsWriter(path) as w:
        for name, det in _detections_from_gt(gt).items():
            w.add(det, name)
    results = json.loads(path.read_text())
    assert len(results) == 3
    r = results[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score"}
    assert r["category_id"] == 1 and len(r["keypoints"]) == 51 and r["image_id"] == 139
    assert all(isinstance(v, float) for v in r["keypoints"])
    dt, stats = _coco_eval(gt, path)
    assert len(dt.getAnnIds()) == 3
    assert stats[0] == pytest.approx(1.0)


@pytest.mark.skipif(not VAL_JSON.exists(), reason="COCO val subset not present")
def test_coco_results_real_val_ground_truth(tmp_path):
    gt = json.loads(VAL_JSON.read_text())
    path = tmp_path / "results.json"
    w = CocoResultsWriter(path)
    for name, det in _detections_from_gt(gt).items():
        w.add(det, name)
    w.close()
    _, stats = _coco_eval(gt, path)
    assert stats[0] == pytest.approx(1.0)


def test_coco_image_ids(tmp_path):
    w = CocoResultsWriter(tmp_path / "r.json")
    assert w.image_id(42) == 42
    assert w.image_id("000000000139.jpg") == 139
    assert w.image_id("000000000139") == 139
    assert w.image_id("holiday.jpg") == 0
    assert w.image_id("clip_000003") == 1
    assert w.image_id("holiday.jpg") == 0  # stable
    assert w.add(Detections((1, 1), [make_person()]), "x") == 2
    assert w.close() == tmp_path / "r.json"
    assert os.listdir(tmp_path) == ["r.json"]
    empty = CocoResultsWriter(tmp_path / "e.json")
    empty.close()
    assert json.loads((tmp_path / "e.json").read_text()) == []


def test_jsonl_stream(tmp_path):
    path = tmp_path / "s.jsonl"
    w = JsonlWriter(path)
    for i in range(4):
        det = Detections((9, 9), [make_person(pid=i)] * (i % 3))
        w.write(i, None if i == 0 else i / 30, det, name=f"f{i}")
        assert len(path.read_text().splitlines()) == i + 1  # flushed per line
    w.close()
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert len(lines) == 4 == w.lines
    assert [len(r["people"]) for r in lines] == [0, 1, 2, 0]
    assert lines[0]["time"] is None and lines[1]["time"] == pytest.approx(1 / 30, abs=1e-6)
    for i, rec in enumerate(lines):
        assert set(rec) == {"frame", "time", "name", "people"} and rec["frame"] == i
        for p in rec["people"]:
            assert set(p) == {"person_id", "pose_keypoints_2d", "score"}
            assert p["person_id"] == i and len(p["pose_keypoints_2d"]) == 54
            assert p["score"] == pytest.approx(0.8)
    buf = io.StringIO()
    with JsonlWriter(buf) as w2:
        w2.write(0, 0.0, Detections((1, 1)))
    assert json.loads(buf.getvalue()) == {"frame": 0, "time": 0.0, "name": None, "people": []}


# ---------------------------------------------------------------------------------------
# Rendering


def test_render_draws_a_copy():
    from openpaf.io.render import KEYPOINT_COLOURS, LIMB_COLOURS, id_colour, render
    from openpaf.skeleton import LIMBS
    image = np.zeros((200, 300, 3), np.uint8)
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    a, b = LIMBS[0]  # neck -> right shoulder, drawn in the shoulder's colour
    kps[a] = (100, 100, 1)
    kps[b] = (200, 100, 1)
    det = Detections((300, 200), [Person(kps, 1.0)])
    out = render(image, det, thickness=3)
    assert out.shape == image.shape and out.dtype == np.uint8 and image.max() == 0
    assert out[100, 150].tolist() == list(LIMB_COLOURS[0]) == list(KEYPOINT_COLOURS[b])
    assert out[150, 150].tolist() == [0, 0, 0]
    tracked = Detections((300, 200), [Person(kps, 1.0, id=5)])
    coloured = render(image, tracked, colour_by_id=True)
    assert coloured[100, 150].tolist() == list(id_colour(5)) != list(LIMB_COLOURS[0])
    assert (coloured[:95] > 0).any()  # the id label above the head
    assert id_colour(5) != id_colour(6) and id_colour(5) == id_colour(5)
    # Nothing found, points far outside, an empty image list: no crash, nothing drawn.
    assert render(image, Detections((300, 200), [Person(np.zeros((18, 3)), 0.0)])).max() == 0
    far = kps.copy()
    far[b] = (1e9, -1e9, 1)
    render(image, Detections((300, 200), [Person(far, 1.0)]))
    # Automatic thickness grows with the image size.
    big = render(np.zeros((2000, 3000, 3), np.uint8),
                 Detections((3000, 2000), [Person(kps * (10, 10, 1), 1.0)]))
    small = render(image, det)
    assert (big > 0).sum() / big[..., 0].size > (small > 0).sum() / small[..., 0].size / 10


def test_video_sink(tmp_path):
    import cv2
    from openpaf.io.render import VideoSink
    path = tmp_path / "v.mp4"
    with VideoSink(path, fps=15) as sink:
        for i in range(5):
            sink.write(np.full((48, 64, 3), 40 * i, np.uint8))
        sink.write(np.zeros((30, 30, 3), np.uint8))  # other size: resized
    assert os.listdir(tmp_path) == ["v.mp4"]
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(15)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (48, 64, 3)
        n += 1
    assert n == 6
    assert VideoSink(tmp_path / "none.mp4").close() is None
    aborted = VideoSink(tmp_path / "a.mp4")
    aborted.write(np.zeros((8, 8, 3), np.uint8))
    aborted.abort()
    assert os.listdir(tmp_path) == ["v.mp4"]


# ---------------------------------------------------------------------------------------
# Run manifest


def test_manifest_append_torn_line_and_latest(tmp_path):
    from openpaf.io.manifest import (ManifestWriter, latest_records, manifest_files,
                                     manifest_path, read_manifest)
    path = manifest_path(tmp_path)
    assert path.name == "openpaf_manifest.jsonl"
    assert manifest_path(tmp_path, (2, 8)).name == "openpaf_manifest.shard2of8.jsonl"
    m = ManifestWriter(path, inputs=[tmp_path / "a"], shard=None)
    m.record(input="a.jpg", status="done", people=float("nan"))
    assert len(path.read_text().splitlines()) == 2  # written through, no buffering
    m.record(input="v.mp4", status="interrupted", frames=3)
    # A killed run: no end record, and a torn last line.
    with open(path, "ab") as fh:
        fh.write(b'{"input": "b.jpg", "sta')
    recs = read_manifest(path)
    assert [r.get("event") or r["input"] for r in recs] == ["start", "a.jpg", "v.mp4"]
    assert recs[0]["inputs"] == [str(tmp_path / "a")] and recs[1]["people"] is None
    m2 = ManifestWriter(path)  # a resumed run appends after a newline
    m2.record(input="v.mp4", status="done", frames=10)
    m2.record(input="b.jpg", status="failed", reason="bad")
    m2.close(processed=1)
    m2.close()  # idempotent
    recs = read_manifest(path)
    assert [r.get("event") or r["input"] for r in recs] == [
        "start", "a.jpg", "v.mp4", "start", "v.mp4", "b.jpg", "end"]
    latest = latest_records(manifest_files(tmp_path))
    assert set(latest) == {"a.jpg", "v.mp4"} and latest["v.mp4"]["frames"] == 10
    with pytest.raises(ValueError):
        m2.record(input="x", status="done")
    assert read_manifest(tmp_path / "missing.jsonl") == []
