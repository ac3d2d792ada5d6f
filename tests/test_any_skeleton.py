"""Any skeleton (issue 20): a 5-point, 4-limb toy skeleton goes from a COCO file through
training, checkpoint, inference, eval, writers, rendering and tracking with K = 5
everywhere; a COCO-18 network carries its matching head channels over to new keypoints."""
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from openpaf.data.augment import AugmentParams
from openpaf.data.coco import DatasetSpec, PoseDataset
from openpaf.decode import decode
from openpaf.evaluate import evaluate, oracle_maps
from openpaf.io.render import render
from openpaf.io.writers import (JsonlWriter, OpenPoseFormat, coco_results, openpose_json,
                                read_openpose_json)
from openpaf.model import create_model
from openpaf.predict import Predictor
from openpaf.preprocess import geometry
from openpaf.skeleton import OPENPOSE_COCO18, get_spec, spec_from_coco_category
from openpaf.track import Tracker
from openpaf.train import TrainConfig, train
from openpaf.train.heads import carry_over
from openpaf.structures import InputNorm
from openpaf.weights.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from openpaf_cli.main import main

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = {"id": 3, "name": "toy", "supercategory": "toy",
       "keypoints": ["head", "left_hand", "right_hand", "hip", "tail"],
       "skeleton": [[1, 2], [1, 3], [1, 4], [4, 5]]}
SPEC = spec_from_coco_category(TOY)
# A figure of the toy shape, relative to its hip, in units of its height.
SHAPE = np.array([[0, -0.5], [0.3, -0.25], [-0.3, -0.25], [0, 0], [0, 0.4]])


def _toy_image(rng, size=(192, 160)):
    """A grey image with 1-2 toy figures drawn as limbs and joints; their ``(N, 5, 3)``
    keypoints [x, y, v=2]."""
    w, h = size
    image = np.full((h, w, 3), 90, np.uint8)
    people = []
    for cx in rng.permutation([0.28, 0.72])[:rng.integers(1, 3)]:
        height = rng.uniform(0.55, 0.75) * h
        xy = SHAPE * height + [cx * w + rng.uniform(-8, 8), 0.52 * h]
        for a, b in SPEC.limbs:
            cv2.line(image, tuple(map(int, xy[a])), tuple(map(int, xy[b])), (230, 230, 230), 4)
        for i, p in enumerate(xy):
            cv2.circle(image, tuple(map(int, p)), 5, SPEC.colors[i], -1)
        people.append(np.concatenate([xy, np.full((5, 1), 2.0)], 1))
    return image, np.array(people, np.float32)


def _toy_coco(tmp_path, n=4):
    """``n`` toy images and a COCO file whose category carries the toy skeleton."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    doc = {"images": [], "annotations": [], "categories": [TOY]}
    for i in range(n):
        image, people = _toy_image(rng)
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), image)
        doc["images"].append({"id": i + 1, "file_name": f"{i}.png", "width": 192,
                              "height": 160})
        for kps in people:
            x0, y0 = kps[:, :2].min(0) - 6
            x1, y1 = kps[:, :2].max(0) + 6
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": i + 1, "category_id": 3,
                "keypoints": [round(float(v), 2) for v in kps.ravel()], "num_keypoints": 5,
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": float((x1 - x0) * (y1 - y0)), "iscrowd": 0})
    ann = tmp_path / "toy.json"
    ann.write_text(json.dumps(doc))
    return ann, tmp_path / "images"


def test_toy_skeleton_trains_and_gives_five_keypoints_everywhere(tmp_path):
    ann, images = _toy_coco(tmp_path)
    # the decoder on the training targets (eval --oracle) finds the toy people
    oracle = evaluate(ann, oracle=True, progress=False)
    assert oracle["skeleton"] == "toy" and oracle["AP"] > 0.9, oracle

    # a few steps of a tiny network: the spec comes from the COCO category
    augment = AugmentParams.none(input_size=96, target_size=0.7)
    config = TrainConfig(model="tiny", model_overrides={"batch_norm": True}, input_size=96,
                         batch_size=2, lr=1e-3, max_steps=3, workers=0, augment=augment,
                         log_every=1, checkpoint_every=0, device="cpu")
    result = train(config, [DatasetSpec(str(ann), str(images))], tmp_path / "run",
                   progress=False, log=lambda _: None)
    assert read_checkpoint(result.last)["skeleton"] == SPEC.to_dict()
    loaded = load_checkpoint(result.last)
    assert loaded.spec == SPEC and loaded.model.spec == SPEC
    maps = loaded.model.predict(torch.zeros(1, 3, 64, 64))
    assert maps.heatmaps.shape[1] == 6 and maps.pafs.shape[1] == 8

    # inference needs no flag: the spec comes from the weights (flip tables included)
    predictor = Predictor.from_checkpoint(result.last, device="cpu", height=96, flip=True)
    image = cv2.imread(str(images / "0.png"))
    heat, paf, _ = predictor.maps([image])[0]
    det = predictor(image)
    assert heat.shape[0] == 6 and paf.shape[0] == 8
    assert det.spec == SPEC and det.keypoints.shape[1:] == (5, 3)
    assert len(det.part_candidates) == 5
    report = evaluate(ann, images, predictor=predictor, progress=False)
    assert report["skeleton"] == "toy" and report["images"] == 4

    # writers, rendering and tracking on the people decoded from oracle maps
    geo = geometry((192, 160), 160)
    people = json.loads(ann.read_text())["annotations"][:2]
    kps = np.array([p["keypoints"] for p in people], np.float32).reshape(-1, 5, 3)
    det = decode(*oracle_maps(kps, geo, spec=SPEC), scale=geo.map_scale,
                 image_size=geo.image_size, spec=SPEC)
    assert len(det) >= 1 and det.keypoints.shape[1:] == (5, 3)
    obj = openpose_json(det)
    assert all(len(p["pose_keypoints_2d"]) == 15 for p in obj["people"])
    again = read_openpose_json(obj, spec=SPEC)
    np.testing.assert_allclose(again.keypoints[..., :2], det.keypoints[..., :2], atol=1e-3)
    with pytest.raises(ValueError, match="body25 layout needs OpenPose COCO-18"):
        openpose_json(det, OpenPoseFormat(layout="body25"))
    results = coco_results(1, det, category_id=3)
    assert all(len(r["keypoints"]) == 15 and r["category_id"] == 3 for r in results)
    with JsonlWriter(tmp_path / "toy.jsonl") as jsonl:
        jsonl.write(0, None, det)
    line = json.loads((tmp_path / "toy.jsonl").read_text())
    assert line["keypoint_names"] == list(SPEC.keypoints)
    assert len(line["people"][0]["pose_keypoints_2d"]) == 15
    drawn = render(np.zeros((160, 192, 3), np.uint8), det, thickness=3)
    a, b = SPEC.limbs[3]                                   # hip -> tail, in the tail's colour
    mid = np.rint((det.people[0].keypoints[a, :2] + det.people[0].keypoints[b, :2]) / 2)
    assert drawn[int(mid[1]), int(mid[0])].tolist() == list(SPEC.limb_colors[3])
    assert [p.id for p in Tracker().update(det).people] == list(range(len(det)))


def test_infer_cli_writes_the_weights_keypoints_and_eval_refuses_another_skeleton(
        tmp_path):
    ann, images = _toy_coco(tmp_path, n=1)
    model = create_model("tiny", spec=SPEC)
    weights = save_checkpoint(tmp_path / "toy.pt", model, normalisation=InputNorm(),
                              manifest={"name": "toy"})
    res = CliRunner().invoke(main, ["infer", str(images / "0.png"), "-o", str(tmp_path / "out"),
                                    "--weights", str(weights), "--height", "64",
                                    "--json-format", "openpose,jsonl", "--part-candidates"])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "out" / "0_keypoints.json").read_text())
    assert sorted(written["part_candidates"][0]) == ["0", "1", "2", "3", "4"]
    line = json.loads((tmp_path / "out" / "openpaf_images.jsonl").read_text().splitlines()[0])
    assert line["keypoint_names"] == list(SPEC.keypoints)
    res = CliRunner().invoke(main, ["infer", str(images / "0.png"), "-o", str(tmp_path / "o2"),
                                    "--weights", str(weights), "--openpose-layout", "body25"])
    assert res.exit_code != 0 and "body25 layout needs OpenPose COCO-18" in res.output
    assert len(res.output.strip().splitlines()) == 1
    coco = tmp_path / "coco17.json"
    doc = json.loads(ann.read_text())
    for a in doc["annotations"]:
        a["keypoints"] = (a["keypoints"] * 4)[:51]
    coco.write_text(json.dumps({**doc, "categories": [
        {"id": 3, "name": "person", "keypoints": list(OPENPOSE_COCO18.dataset_keypoints),
         "skeleton": []}]}))
    res = CliRunner().invoke(main, ["eval", "--ann", str(coco), "--images", str(images),
                                    "--weights", str(weights), "-q"])
    assert res.exit_code != 0 and "is not the model's 'toy'" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_coco_file_with_an_invalid_skeleton_fails_in_one_line(tmp_path):
    ann, images = _toy_coco(tmp_path, n=1)
    doc = json.loads(ann.read_text())
    for skeleton, says in (([[1, 2], [1, 3], [1, 4], [4, 9]], "join points that do not exist"),
                           ([[1, 2], [1, 3], [1, 4]], "leave {tail} unconnected")):
        doc["categories"] = [{**TOY, "skeleton": skeleton}]
        ann.write_text(json.dumps(doc))
        res = CliRunner().invoke(main, ["eval", "--ann", str(ann), "--oracle", "-q"])
        assert res.exit_code != 0 and says in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1


def test_a_coco18_network_carries_matching_head_channels_over_to_new_keypoints():
    lsp = get_spec(ROOT / "configs" / "skeletons" / "lsp14.yaml")
    torch.manual_seed(0)
    source = create_model("tiny")
    fresh = create_model("tiny", spec=lsp)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    model = carry_over(fresh, source, OPENPOSE_COCO18)
    ours, theirs = model.state_dict(), source.state_dict()
    out_heat = [k for k, v in ours.items() if v.ndim == 4 and v.shape[0] == lsp.num_heatmaps]
    assert out_heat
    for key in out_heat:
        wrist = OPENPOSE_COCO18.keypoints.index("right_wrist")
        assert torch.equal(ours[key][lsp.keypoints.index("right_wrist")], theirs[key][wrist])
        assert torch.equal(ours[key][-1], theirs[key][-1])               # background
        top = lsp.keypoints.index("head_top")                              # new: fresh
        assert torch.equal(ours[key][top], before[key][top])
    # a limb joining the same named points keeps its PAF channels
    k_new = lsp.limbs.index((lsp.keypoints.index("right_shoulder"),
                             lsp.keypoints.index("right_elbow")))
    k_old = OPENPOSE_COCO18.limbs.index((2, 3))
    out_paf = [k for k, v in ours.items() if v.ndim == 4 and v.shape[0] == lsp.num_pafs]
    for key in out_paf:
        for c_new, c_old in zip(lsp.paf_channels[k_new], OPENPOSE_COCO18.paf_channels[k_old]):
            assert torch.equal(ours[key][c_new], theirs[key][c_old])
    # the trunk is copied whole
    same = [k for k, v in theirs.items() if k in ours and ours[k].shape == v.shape
            and "backbone" in k]
    assert same and all(torch.equal(ours[k], theirs[k]) for k in same)


def test_datasets_mixed_in_one_run_are_mapped_onto_one_spec_by_keypoint_name(tmp_path):
    ann, images = _toy_coco(tmp_path, n=2)
    doc = json.loads(ann.read_text())
    order = [4, 3, 0, 2, 1]                                # the same points, shuffled
    other = tmp_path / "shuffled.json"
    other.write_text(json.dumps({**doc, "categories": [{**TOY, "keypoints": [
        TOY["keypoints"][i] for i in order], "skeleton": []}], "annotations": [
        {**a, "keypoints": np.reshape(a["keypoints"], (5, 3))[order].ravel().tolist()}
        for a in doc["annotations"]]}))
    first = PoseDataset(DatasetSpec(str(ann), str(images)))
    mapped = PoseDataset(DatasetSpec(str(other), str(images)), keypoint_spec=first.keypoint_spec)
    assert mapped.keypoint_spec == SPEC
    np.testing.assert_allclose(mapped.records[0]["keypoints"], first.records[0]["keypoints"])
    # COCO-17 people read as LSP's 14 joints: the face is dropped, neck and head_top unknown
    lsp = get_spec(ROOT / "configs" / "skeletons" / "lsp14.yaml")
    coco = tmp_path / "coco17.json"
    coco.write_text(json.dumps({**doc, "categories": [{"id": 3, "name": "person", "keypoints":
                                                       list(OPENPOSE_COCO18.dataset_keypoints)}],
                                "annotations": [{**a, "keypoints": (a["keypoints"] * 4)[:51]}
                                                for a in doc["annotations"]]}))
    ds = PoseDataset(DatasetSpec(str(coco), str(images), skeleton=str(
        ROOT / "configs" / "skeletons" / "lsp14.yaml")))
    assert ds.keypoint_spec == lsp and ds.records[0]["keypoints"].shape[1:] == (14, 3)
    assert {lsp.keypoints[k] for k in ds.unknown} == {"neck", "head_top"}
    heat_w, paf_w = ds[0]["heat_weight"], ds[0]["paf_weight"]
    assert heat_w.shape == (15,) and paf_w.shape == (30,) and heat_w[-1] == 0
