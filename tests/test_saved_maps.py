"""The decoder benchmark on saved maps: save once (float16 maps + geometry), decode and
score many times, from the library and from ``openpaf benchmark``."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf.benchmark import benchmark_saved_maps, load_maps, save_maps
from openpaf.data.records import gt_keypoints, load_ground_truth
from openpaf.evaluate import oracle_maps
from openpaf.preprocess import geometry

from conftest import person
from test_data import coco_person, write_coco


def two_images(tmp_path):
    """Two noise images of different sizes, one or two template people each."""
    rng = np.random.default_rng(0)
    pairs = []
    for size, xs in (((240, 180), (70,)), ((320, 200), (90, 230))):
        image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        anns = [coco_person(person(x, 100, 0.6), [x - 25, 40, 50, 120]) for x in xs]
        pairs.append((image, anns))
    return write_coco(tmp_path, pairs)


class OraclePredictor:
    """Stands in for a ``Predictor``: the ground truth's maps of the image of that size."""

    height, scales, flip, precision = 96, (1.0,), False, "fp32"

    def __init__(self, ann):
        coco = load_ground_truth(ann)
        self.truth = {(im["width"], im["height"]): gt_keypoints(coco, i)
                      for i, im in coco.imgs.items()}

    def maps(self, images):
        out = []
        for image in images:
            size = (image.shape[1], image.shape[0])
            geo = geometry(size, self.height)
            heat, paf = oracle_maps(self.truth[size], geo)
            out.append((heat, paf, geo))
        return out


def test_saved_oracle_maps_round_trip_to_a_perfect_score(tmp_path):
    spec = two_images(tmp_path)
    predictor = OraclePredictor(spec.annotations)
    assert save_maps(predictor, spec.annotations, spec.images, tmp_path / "maps") == 2
    saved = list(load_maps(tmp_path / "maps"))
    assert [s[0] for s in saved] == [1, 2]
    for (image_id, heat, paf, scale, size), want in zip(saved, ((240, 180), (320, 200))):
        geo = geometry(want, 96)
        ref_heat, ref_paf = oracle_maps(predictor.truth[want], geo)
        assert heat.dtype == np.float32 and heat.shape == ref_heat.shape
        np.testing.assert_allclose(heat, ref_heat, atol=1e-3)      # float16 on disk
        np.testing.assert_allclose(paf, ref_paf, atol=1e-3)
        assert scale == geo.map_scale and size == want
    report = benchmark_saved_maps(tmp_path / "maps", spec.annotations, repeats=2)
    assert report["images"] == 2 and report["detections"] == 3
    assert report["AP"] > 0.9, report
    assert report["decode_ms"]["p90"] >= report["decode_ms"]["median"] > 0
    assert report["settings"]["made_with"]["height"] == 96
    assert report["settings"]["decode"]["completeness_power"] == 0.5    # the default


def test_saved_maps_refuse_a_folder_without_index_or_another_file(tmp_path):
    spec = two_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="maps.json"):
        list(load_maps(tmp_path))
    save_maps(OraclePredictor(spec.annotations), spec.annotations, spec.images, tmp_path / "maps")
    other = json.loads(open(spec.annotations).read())
    other["images"] = other["images"][:1]
    other["annotations"] = [a for a in other["annotations"] if a["image_id"] == 1]
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="image 2 is not in"):
        benchmark_saved_maps(tmp_path / "maps", tmp_path / "other.json")


def test_benchmark_cli_saves_maps_then_decodes_them(tmp_path, one_thread):
    from openpaf.benchmark import lively_init
    from openpaf.model import create_model
    from openpaf.structures import InputNorm
    from openpaf.weights.checkpoint import save_checkpoint
    spec = two_images(tmp_path)
    torch.manual_seed(0)
    model = create_model("tiny")
    lively_init(model, 0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model, normalisation=InputNorm(),
                           manifest={}, variant="tiny")
    res = CliRunner().invoke(main, [
        "benchmark", "--save-maps", str(tmp_path / "maps"), "--weights", str(ckpt),
        "--ann", spec.annotations, "--images", spec.images, "--height", "64", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "saved the maps of 2 images" in res.output
    out = tmp_path / "report.json"
    res = CliRunner().invoke(main, [
        "benchmark", "--no-network", "--maps", str(tmp_path / "maps"), "--ann", spec.annotations,
        "--preset", "cvpr2017", "--repeats", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["images"] == 2 and {"AP", "AP50", "decode_ms"} <= set(report)
    assert report["settings"]["made_with"]["height"] == 64
    assert report["settings"]["decode"]["peak_threshold"] == 0.1          # cvpr2017
    assert "AP" in res.output and "ms median" in res.output
