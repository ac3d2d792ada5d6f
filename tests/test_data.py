"""Training data: shapes, flip, augmentation geometry, ignore masks, unknown-keypoint masks."""
import json

import cv2
import numpy as np
import pytest

from openpaf.data.augment import AugmentParams, transform_points
from openpaf.data.coco import (LSPET_LICENCE, DatasetSpec, MixSampler, PoseDataset,
                               parse_data_arg)
from openpaf.data.masks import FACE, ignore_mask
from openpaf.skeleton import (BACKGROUND, FLIP, KEYPOINTS, NUM_KEYPOINTS, limbs_touching,
                              ours_to_coco, paf_channels_of)

from conftest import SHARED_DATA, person, require

R_WRIST, L_WRIST = KEYPOINTS.index("right_wrist"), KEYPOINTS.index("left_wrist")
L_ANKLE, R_ANKLE = KEYPOINTS.index("left_ankle"), KEYPOINTS.index("right_ankle")


def coco_person(kps18: np.ndarray, bbox, **extra) -> dict:
    """A COCO annotation (17 keypoints) from our ``(18, 3)`` keypoints."""
    k = ours_to_coco(kps18).astype(float)
    return {"category_id": 1, "iscrowd": 0, "bbox": [float(v) for v in bbox],
            "area": float(bbox[2] * bbox[3]), "num_keypoints": int((k[:, 2] > 0).sum()),
            "keypoints": k.ravel().tolist(), **extra}


def write_coco(tmp_path, images: list[tuple[np.ndarray, list[dict]]], name="ann") -> DatasetSpec:
    """Write ``(image, annotations)`` pairs as PNGs + a COCO JSON; returns its spec."""
    folder = tmp_path / f"{name}_images"
    folder.mkdir(exist_ok=True)
    doc = {"images": [], "annotations": [],
           "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}]}
    for i, (image, anns) in enumerate(images, start=1):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
        doc["images"].append({"id": i, "file_name": f"{i:04d}.png",
                              "width": image.shape[1], "height": image.shape[0]})
        for a in anns:
            doc["annotations"].append({**a, "id": len(doc["annotations"]) + 1, "image_id": i})
    ann = tmp_path / f"{name}.json"
    ann.write_text(json.dumps(doc))
    return DatasetSpec(str(ann), str(folder))


def synthetic_people(tmp_path, n_images=3, size=160, missing=(), name="ann", seed=0):
    """``n_images`` noise images with one template person each (~1 x size tall)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n_images):
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        kps = person(size / 2, size / 2 + 8, size / 230, missing=missing)
        pairs.append((image, [coco_person(kps, [size * 0.3, size * 0.1, size * 0.4, size * 0.8])]))
    return write_coco(tmp_path, pairs, name)


def test_item_shapes_and_dtypes(tmp_path):
    spec = synthetic_people(tmp_path, n_images=2)
    ds = PoseDataset(spec, AugmentParams(input_size=128))
    assert len(ds) == 2
    item = ds[(1, 5)]
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes == {"image": (3, 128, 128), "heatmaps": (19, 16, 16), "pafs": (38, 16, 16),
                      "mask": (1, 16, 16), "heat_weight": (19,), "paf_weight": (38,)}
    assert all(str(v.dtype) == "torch.float32" for v in item.values())
    assert -0.5 <= float(item["image"].min()) and float(item["image"].max()) < 0.5
    assert float(item["heatmaps"][:NUM_KEYPOINTS].max()) > 0.9
    # same draw -> same sample; another draw -> another augmentation
    assert all((item[k] == ds[(1, 5)][k]).all() for k in item)
    assert not (item["image"] == ds[(1, 6)]["image"]).all()


def _peak(channel: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(channel)), channel.shape)
    return int(x), int(y)


def test_flip_swaps_left_and_right(tmp_path):
    """A right wrist on the image's left lands on the right half, labelled left_wrist."""
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[R_WRIST] = (20, 60, 2)
    kps[L_ANKLE] = (100, 100, 2)
    image = np.zeros((128, 128, 3), np.uint8)
    spec = write_coco(tmp_path, [(image, [coco_person(kps, [0, 0, 128, 128])])])
    plain = AugmentParams.none(input_size=128, target_size=1.0)     # identity transform
    for flip, wrist, ankle in ((0.0, R_WRIST, L_ANKLE), (1.0, L_WRIST, R_ANKLE)):
        ds = PoseDataset(spec, AugmentParams(**{**plain.to_dict(), "flip": flip}))
        sample = ds.sample(0, ds.rng(0))
        heat = ds.targets(sample)["heatmaps"]
        assert sample.flipped == bool(flip)
        x, y = _peak(heat[wrist])
        if flip:
            assert x >= 8 and heat[R_WRIST].max() == 0.0      # right half, renamed
            assert sample.keypoints[0, L_WRIST, 0] == pytest.approx(127 - 20)
            assert _peak(heat[R_ANKLE])[0] < 8 and heat[L_ANKLE].max() == 0.0
        else:
            assert x < 8 and heat[L_WRIST].max() == 0.0
            assert _peak(heat[L_ANKLE])[0] >= 8
        assert y == 60 // 8


def test_augmentation_keeps_keypoints_on_image_content(tmp_path):
    """A bright dot drawn at a keypoint is found where the augmented keypoint says."""
    size, k = 200, KEYPOINTS.index("left_elbow")
    xy = np.array([111.3, 87.6])
    yy, xx = np.mgrid[:size, :size]
    blob = 255 * np.exp(-((xx - xy[0]) ** 2 + (yy - xy[1]) ** 2) / (2 * 2.0 ** 2))
    image = np.repeat(blob[..., None], 3, axis=2).round().astype(np.uint8)
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[k] = (*xy, 2)
    box = [xy[0] - 40, xy[1] - 50, 80, 100]
    spec = write_coco(tmp_path, [(image, [coco_person(kps, box)])])
    params = AugmentParams(input_size=128, target_size=0.7, scale_range=(0.6, 1.3),
                           rotate=30, centre_jitter=30, flip=0.5, brightness=0, contrast=0,
                           saturation=0)
    ds = PoseDataset(spec, params)
    flips = set()
    for draw in range(8):
        sample = ds.sample(0, ds.rng(draw))
        flips.add(sample.flipped)
        channel = FLIP[k] if sample.flipped else k
        expected = sample.keypoints[0, channel, :2]
        assert expected == pytest.approx(transform_points(sample.matrix, xy), abs=1e-3)
        w = np.clip(sample.image[..., 0].astype(np.float64) - 128, 0, None)
        ys, xs = np.mgrid[:128, :128]
        found = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
        assert np.hypot(*(found - expected)) < 1.5, (draw, found, expected)
    assert flips == {True, False}


def test_ignore_mask_box_and_polygon():
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "width": 100, "height": 80}], "annotations": [],
                    "categories": [{"id": 1, "name": "person"}]}
    coco.createIndex()
    crowd = {"image_id": 1, "iscrowd": 1, "bbox": [10, 10, 20, 20], "num_keypoints": 0}
    nokp = {"image_id": 1, "iscrowd": 0, "num_keypoints": 0, "bbox": [60, 40, 30, 30],
            "segmentation": [[60, 40, 90, 40, 90, 70, 60, 70]]}
    labelled = {"image_id": 1, "iscrowd": 0, "num_keypoints": 3, "bbox": [0, 0, 5, 5]}
    assert ignore_mask(coco, [labelled], 80, 100) is None
    mask = ignore_mask(coco, [crowd, nokp, labelled], 80, 100)
    assert mask.shape == (80, 100)
    assert (mask[10:30, 10:30] == 0).all() and (mask[42:68, 62:88] == 0).all()
    near = np.zeros_like(mask, bool)
    near[10:30, 10:30] = near[39:72, 59:92] = True                 # the regions +- 1 px
    assert ((mask == 0) <= near).all() and (mask[~near] == 1).all()


def test_crowd_and_zero_keypoint_people_are_masked_in_items(tmp_path):
    """Identity crop: target-mask cells inside the crowd box / polygon are 0, others 1."""
    image = np.full((192, 192, 3), 90, np.uint8)
    anns = [coco_person(person(95.5, 95.5, 0.25), [64, 64, 64, 64]),
            {"category_id": 1, "iscrowd": 1, "bbox": [0, 0, 56, 56], "num_keypoints": 0,
             "keypoints": [0] * 51},
            {"category_id": 1, "iscrowd": 0, "bbox": [136, 136, 48, 48], "num_keypoints": 0,
             "keypoints": [0] * 51,
             "segmentation": [[136, 136, 184, 136, 184, 184, 136, 184]]}]
    spec = write_coco(tmp_path, [(image, anns)])
    ds = PoseDataset(spec, AugmentParams.none(input_size=192, target_size=64 / 192))
    item = ds[0]
    mask = item["mask"][0].numpy()                                  # (24, 24), stride 8
    assert mask.shape == (24, 24)
    assert (mask[:7, :7] == 0).all()                                # crowd box 0..56
    assert (mask[17:23, 17:23] == 0).all()                          # polygon 136..184
    keep = np.ones_like(mask, bool)
    keep[:7, :7] = keep[17:23, 17:23] = False
    assert (mask[keep] == 1).all()
    assert float(item["heatmaps"][:NUM_KEYPOINTS].max()) > 0.9      # the person is there


FACE_PAFS = set(paf_channels_of(limbs_touching(FACE)))


def _zero_channels(weights) -> set:
    return set(np.flatnonzero(np.asarray(weights) == 0).tolist())


def test_never_labelled_face_is_unknown_and_masked(tmp_path):
    spec = synthetic_people(tmp_path, n_images=2, missing=FACE)
    ds = PoseDataset(spec, AugmentParams(input_size=64))
    assert ds.unknown == tuple(sorted(FACE))
    item = ds[0]
    assert _zero_channels(item["heat_weight"]) == set(FACE) | {BACKGROUND}
    assert _zero_channels(item["paf_weight"]) == FACE_PAFS and len(FACE_PAFS) == 14
    # a dataset with faces labelled masks nothing
    full = PoseDataset(synthetic_people(tmp_path, n_images=1, name="full"),
                       AugmentParams(input_size=64))
    assert full.unknown == () and _zero_channels(full[0]["heat_weight"]) == set()


def test_explicit_unknown_keypoints_follow_the_flip(tmp_path):
    base = synthetic_people(tmp_path, n_images=1)
    spec = DatasetSpec(base.annotations, base.images, unknown_keypoints=("left_ankle",))
    for flip, masked in ((0.0, L_ANKLE), (1.0, R_ANKLE)):
        ds = PoseDataset(spec, AugmentParams(input_size=64, flip=flip))
        assert _zero_channels(ds[0]["heat_weight"]) == {masked, BACKGROUND}
        assert _zero_channels(ds[0]["paf_weight"]) == set(paf_channels_of(
            limbs_touching([masked])))


def test_pseudo_face_files_mask_faces_per_image(tmp_path):
    """People without "face_source" have unknown faces; images with any such person get
    their face channels masked, the others keep them."""
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)  # noqa: E731
    box = [40, 10, 80, 140]
    with_face = coco_person(person(80, 88, 0.6), box, face_source="mediapipe")
    no_face = coco_person(person(80, 88, 0.6, missing=FACE), box)
    spec = write_coco(tmp_path, [(img(), [with_face]), (img(), [no_face]),
                                 (img(), [with_face, no_face])])
    ds = PoseDataset(spec, AugmentParams(input_size=64))
    assert ds.unknown == () and ds.faces_partly_unknown == 2
    assert _zero_channels(ds[0]["heat_weight"]) == set()
    for i in (1, 2):
        assert _zero_channels(ds[i]["heat_weight"]) == set(FACE) | {BACKGROUND}
        assert _zero_channels(ds[i]["paf_weight"]) == FACE_PAFS


def test_lspet_files_on_shared_data():
    root = require(SHARED_DATA / "lspet")
    plain = PoseDataset(DatasetSpec(str(root / "train.json"), str(root / "images")))
    assert plain.unknown == tuple(sorted(FACE)) and plain.spec.licence == LSPET_LICENCE
    pseudo = PoseDataset(DatasetSpec(str(root / "train_face_pseudo.json"), str(root / "images")))
    assert pseudo.unknown == () and pseudo.faces_partly_unknown == 10000 - 6829


def test_data_arguments_and_yaml(tmp_path):
    (spec,) = parse_data_arg("a/ann.json:a/images:2.5")
    assert (spec.annotations, spec.images, spec.weight) == ("a/ann.json", "a/images", 2.5)
    assert parse_data_arg("x.json:imgs")[0].weight is None
    (tmp_path / "d").mkdir()
    yml = tmp_path / "d" / "mix.yaml"
    yml.write_text("datasets:\n  - {annotations: ../a.json, images: ../imgs, weight: 3}\n"
                   "  - {annotations: /abs/b.json, images: /abs/im, unknown_keypoints: [nose]}\n")
    a, b = parse_data_arg(str(yml))
    assert a.annotations == str(tmp_path / "a.json") and a.weight == 3
    assert b.images == "/abs/im" and b.unknown_keypoints == ("nose",) and b.weight is None
    assert [s.weight for s in parse_data_arg(f"{yml}:0.5")] == [0.5, 0.5]
    with pytest.raises(ValueError):
        parse_data_arg("only_one_part.json")
    with pytest.raises(ValueError):
        DatasetSpec("a.json", "b", unknown_keypoints=("nosee",))


def test_sampler_resume_and_ranks_cover_the_epoch():
    s = MixSampler([7, 5], seed=3)
    full = list(s)
    assert sorted(i for i, _ in full) == list(range(12))            # a permutation
    s.set_epoch(0, start=4)
    assert list(s) == full[4:]
    ranks = [MixSampler([7, 5], seed=3, rank=r, world_size=2) for r in (0, 1)]
    draws = [d for r in ranks for _, d in r]
    assert sorted(draws) == list(range(12))
    s.set_epoch(1)
    assert [i for i, _ in s] != [i for i, _ in full]


def test_bad_records_are_skipped_when_the_dataset_is_built(tmp_path):
    """Defect 8: a missing image or a NaN keypoint killed ``train`` at the step that drew
    it. Now every record is checked up front: such images are skipped and named."""
    spec = synthetic_people(tmp_path, n_images=4, size=96)
    doc = json.loads(open(spec.annotations).read())
    doc["annotations"][1]["keypoints"][4] = float("nan")
    doc["annotations"][2]["bbox"] = [0, 0, float("inf"), 10]
    open(spec.annotations, "w").write(json.dumps(doc))
    (tmp_path / "ann_images" / "0004.png").unlink()
    ds = PoseDataset(spec, AugmentParams(input_size=64))
    assert len(ds) == 1 and ds.records[0]["image_id"] == 1
    assert [s.split(":")[0] for s in ds.skipped] == [
        "annotation 2 (image 2)", "annotation 3 (image 3)", "image 4"]
    assert "keypoints" in ds.skipped[0] and "bbox" in ds.skipped[1]
    assert "0004.png" in ds.skipped[2]
    for _ in range(3):
        ds[0]                                            # the usable image still draws
    for a in doc["annotations"]:
        a["keypoints"] = [0] * 50
    open(spec.annotations, "w").write(json.dumps(doc))
    with pytest.raises(ValueError, match="no usable image .* annotation 1 .* 51 finite"):
        PoseDataset(spec, AugmentParams(input_size=64))


def test_dataset_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, word in (("annotations: [a\nimages: b", "not valid YAML"),
                       ("annotations: a.json\nimages: b\nwieght: 2", r"unknown key\(s\) wieght")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=word) as err:
            parse_data_arg(str(bad))
        assert str(bad) in str(err.value)
