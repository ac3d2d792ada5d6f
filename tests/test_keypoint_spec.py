"""KeypointSpec: OpenPose COCO-18 as data, specs from COCO categories and files, and
one-line errors for invalid skeletons."""
from pathlib import Path

import numpy as np
import pytest

from openpaf import skeleton as sk
from openpaf.skeleton import (OPENPOSE_COCO18, KeypointSpec, SkeletonError, get_spec,
                              make_spec, spec_from_coco_category)

ROOT = Path(__file__).resolve().parents[1]
TOY = {"name": "toy", "keypoints": ["head", "left_hand", "right_hand", "hip", "tail"],
       "skeleton": [[1, 2], [1, 3], [1, 4], [4, 5]]}


def test_coco18_spec_is_exactly_the_module_constants():
    s = OPENPOSE_COCO18
    assert (s.num_keypoints, s.num_heatmaps, s.num_limbs, s.num_pafs) == (18, 19, 19, 38)
    assert s.keypoints == sk.KEYPOINTS and s.limbs == sk.LIMBS
    assert s.paf_channels == sk.PAF_CHANNELS and s.flip == sk.FLIP
    assert s.limb_flip == sk.LIMB_FLIP and s.render_limbs == sk.RENDER_LIMBS
    np.testing.assert_allclose(s.dataset_sigmas(), sk.COCO_SIGMAS)
    assert s.dataset_keypoints == sk.COCO_KEYPOINTS
    # the two shoulder-ear limbs are CMU's redundant ones
    assert s.spanning_tree()[1] == (17, 18)


def test_coco18_dataset_mapping_equals_the_coco_helpers():
    rng = np.random.default_rng(1)
    coco = np.concatenate([rng.uniform(0, 99, (4, 17, 2)), rng.integers(0, 3, (4, 17, 1))], -1)
    np.testing.assert_array_equal(OPENPOSE_COCO18.from_dataset(coco), sk.coco_to_ours(coco))
    ours = sk.coco_to_ours(coco)
    np.testing.assert_array_equal(OPENPOSE_COCO18.to_dataset(ours), sk.ours_to_coco(ours))


def test_round_trip_through_plain_data():
    for spec in (OPENPOSE_COCO18, spec_from_coco_category(TOY)):
        again = KeypointSpec.from_dict(spec.to_dict())
        assert again == spec


def test_spec_from_a_coco_category_pairs_sides_by_name():
    spec = spec_from_coco_category(TOY)
    assert spec.num_keypoints == 5 and spec.num_pafs == 8
    assert spec.limbs == ((0, 1), (0, 2), (0, 3), (3, 4))
    assert spec.flip == (0, 2, 1, 3, 4)
    assert spec.limb_flip == (1, 0, 2, 3)
    assert spec.sigmas == (sk.DEFAULT_SIGMA,) * 5
    assert spec.spanning_tree() == ((0, 1, 2, 3), ())


@pytest.mark.parametrize("skeleton, says", [
    ([[1, 2], [1, 3], [1, 4], [4, 9]], "limbs [4, 9] join points that do not exist"),
    ([[1, 2], [1, 3], [1, 4]], "leave {tail} unconnected"),
    ([[1, 2], [1, 4], [4, 5]], "no mirror limb"),
])
def test_invalid_skeletons_fail_in_one_line_naming_the_problem(skeleton, says):
    with pytest.raises(SkeletonError) as err:
        spec_from_coco_category({**TOY, "skeleton": skeleton})
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_flip_map_that_is_no_pairing_is_refused():
    with pytest.raises(SkeletonError, match="flip map is not a pairing"):
        make_spec("bad", ["a", "b", "c"], [(0, 1), (1, 2)], flip=[1, 2, 0])


def test_lsp14_config_loads_with_its_tree_and_redundant_limbs():
    spec = get_spec(ROOT / "configs" / "skeletons" / "lsp14.yaml")
    assert spec.name == "lsp14" and spec.num_keypoints == 14 and spec.num_limbs == 15
    tree, extra = spec.spanning_tree()
    assert len(tree) == 13 and extra == (13, 14)
    assert spec.keypoints[spec.flip[spec.keypoints.index("left_wrist")]] == "right_wrist"
    assert get_spec("openpose_coco18") is OPENPOSE_COCO18
    with pytest.raises(SkeletonError, match="unknown skeleton"):
        get_spec("no_such_skeleton")
