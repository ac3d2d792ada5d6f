"""Issue 21 item 8: one EXIF orientation rule (io/orientation.py) for training and eval.
Training rotated annotations of the stored pixels into place instead of stretching them;
eval scored such photos AP 0 without a word."""
import json
import struct

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from openpaf.data.augment import AugmentParams
from openpaf.data.coco import PoseDataset
from openpaf.io.orientation import exif_orientation, orientation_matrix

from conftest import person
from test_data import coco_person


def with_exif(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding ``orientation`` after its SOI."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    body = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matrix_is_how_opencv_orients(orientation):
    raw = np.zeros((24, 40, 3), np.uint8)
    raw[4:7, 10:13] = 255                                    # centre (11, 5)
    data = with_exif(_jpeg(raw), orientation)
    assert exif_orientation(data) == orientation
    shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    ys, xs = np.nonzero(shown[:, :, 0] > 128)
    expected = orientation_matrix(orientation, (40, 24)) @ (11, 5, 1)
    assert abs(xs.mean() - expected[0]) < 0.6 and abs(ys.mean() - expected[1]) < 0.6


def _stored_frame_photo(tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 (shown 96 wide, 160 tall), white
    blobs on each keypoint of an upright person, annotated on the stored pixels."""
    kps = person(48, 84, 0.6)
    upright = np.zeros((160, 96, 3), np.uint8)
    for x, y, _ in kps:
        cv2.circle(upright, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    stored = np.ascontiguousarray(np.rot90(upright, 1))     # 160 wide, 96 tall
    back = np.linalg.inv(orientation_matrix(6, (160, 96)))
    kps_stored = kps.copy()
    kps_stored[:, :2] = (back @ np.c_[kps[:, :2], np.ones(18)].T).T[:, :2]
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "p.jpg").write_bytes(with_exif(_jpeg(stored), 6))
    x0, y0 = kps_stored[:, :2].min(0) - 10
    x1, y1 = kps_stored[:, :2].max(0) + 10
    doc = {"images": [{"id": 1, "file_name": "p.jpg", "width": 160, "height": 96}],
           "annotations": [{**coco_person(kps_stored, [x0, y0, x1 - x0, y1 - y0]),
                            "id": 1, "image_id": 1}],
           "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return tmp_path / "ann.json", folder


def test_training_rotates_keypoints_of_stored_pixels(tmp_path):
    from openpaf.data.coco import DatasetSpec
    ann, folder = _stored_frame_photo(tmp_path)
    ds = PoseDataset(DatasetSpec(str(ann), str(folder)), AugmentParams(input_size=128))
    for draw in range(3):
        s = ds.sample(0, np.random.default_rng(draw))
        k = s.keypoints[0]
        inside = (k[:, 2] > 0) & (k[:, :2] >= 2).all(1) & (k[:, :2] < 126).all(1)
        assert inside.sum() >= 10
        xy = np.rint(k[inside, :2]).astype(int)
        assert (s.image[xy[:, 1], xy[:, 0]].max(1) > 100).mean() > 0.9, draw


class _Truth:
    """A stand-in predictor that 'finds' the upright person of ``_stored_frame_photo``."""
    height, scales, flip, precision = 160, (1.0,), False, "fp32"
    last_timings = dict.fromkeys(("network", "resize", "peaks", "limbs", "assembly"), 1.0)

    def __init__(self):
        from openpaf.decode import get_params
        self.params = get_params("tuned")

    def __call__(self, image):
        from openpaf.structures import Detections, Person
        kps = person(48, 84, 0.6)
        return Detections((image.shape[1], image.shape[0]), [Person(kps, 0.9)])


def test_eval_scores_stored_frame_photos_and_flags_other_sizes(tmp_path):
    from openpaf.evaluate import evaluate, format_report
    ann, folder = _stored_frame_photo(tmp_path)
    report = evaluate(ann, folder, predictor=_Truth(), progress=False)
    assert report["AP"] == 1.0 and report["exif_rotated"] == 1      # was AP 0, silently
    assert "EXIF" in format_report(report)
    doc = json.loads(ann.read_text())
    (folder / "q.jpg").write_bytes((folder / "p.jpg").read_bytes())
    doc["images"].append({**doc["images"][0], "id": 2, "file_name": "q.jpg"})
    doc["annotations"].append({**doc["annotations"][0], "id": 2, "image_id": 2})
    doc["images"][0].update(width=320, height=192)                # a resized copy's size
    (tmp_path / "resized.json").write_text(json.dumps(doc))
    report = evaluate(tmp_path / "resized.json", folder, predictor=_Truth(), progress=False)
    assert report["size_mismatch"] and "320x192" in report["size_mismatch"][0]
    assert "size differs from the annotation" in format_report(report)
    with pytest.raises(ValueError, match="size differs"):
        evaluate(tmp_path / "resized.json", folder, predictor=_Truth(), progress=False,
                 strict=True)
