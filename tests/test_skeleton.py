import numpy as np

from openpaf import skeleton as sk


def test_cmu_layout():
    assert sk.NUM_KEYPOINTS == 18 and sk.NUM_LIMBS == 19 and sk.NUM_PAFS == 38
    assert sorted(c for pair in sk.PAF_CHANNELS for c in pair) == list(range(38))
    # CMU POSE_COCO_MAP_IDX minus 19, first limbs: neck-r.shoulder -> (12, 13)
    assert sk.PAF_CHANNELS[0] == (12, 13) and sk.LIMBS[0] == (1, 2)
    assert sk.PAF_CHANNELS[6] == (0, 1) and sk.LIMBS[6] == (1, 8)
    assert sk.KEYPOINTS[4] == "right_wrist" and sk.KEYPOINTS[17] == "left_ear"


def test_flip_maps_are_involutions_and_swap_sides():
    flip = np.array(sk.FLIP)
    assert (flip[flip] == np.arange(18)).all()
    for i, name in enumerate(sk.KEYPOINTS):
        other = sk.KEYPOINTS[sk.FLIP[i]]
        assert other == name.replace("right", "L").replace("left", "right").replace("L", "left")
    for k, (a, b) in enumerate(sk.LIMBS):
        assert sk.LIMBS[sk.LIMB_FLIP[k]] == (sk.FLIP[a], sk.FLIP[b])


def test_coco_round_trip_and_neck():
    rng = np.random.default_rng(0)
    coco = np.concatenate([rng.uniform(0, 100, (3, 17, 2)), np.full((3, 17, 1), 2.0)], -1)
    coco[1, 6, 2] = 0                                  # person 1: right shoulder unlabelled
    ours = sk.coco_to_ours(coco)
    assert ours.shape == (3, 18, 3)
    np.testing.assert_allclose(sk.ours_to_coco(ours)[0], coco[0], atol=1e-5)
    np.testing.assert_allclose(ours[0, sk.NECK, :2], (coco[0, 5, :2] + coco[0, 6, :2]) / 2,
                               atol=1e-4)
    assert ours[1, sk.NECK, 2] == 0                    # neck needs both shoulders
    for c, name in enumerate(sk.COCO_KEYPOINTS):
        assert sk.KEYPOINTS[sk.COCO_TO_OURS[c]] == name


def test_limb_masking_helpers():
    face = [sk.KEYPOINTS.index(n) for n in ("nose", "right_eye", "left_eye", "right_ear",
                                            "left_ear")]
    limbs = sk.limbs_touching(face)
    assert set(limbs) == {12, 13, 14, 15, 16, 17, 18}
    assert len(sk.paf_channels_of(limbs)) == 14


def test_body25_mapping_and_mid_hip():
    rng = np.random.default_rng(1)
    ours = np.concatenate([rng.uniform(0, 100, (3, 18, 2)), rng.uniform(0.1, 1, (3, 18, 1))],
                          -1).astype(np.float32)
    r_hip, l_hip = sk.KEYPOINTS.index("right_hip"), sk.KEYPOINTS.index("left_hip")
    ours[1, l_hip] = 0                                 # person 1: left hip not found
    b25 = sk.ours_to_body25(ours)
    assert b25.shape == (3, 25, 3) and sk.NUM_BODY25_KEYPOINTS == 25
    assert sk.BODY25_MID_HIP == 8 and sk.BODY25_KEYPOINTS[19:] == (
        "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
        "right_heel")
    for i, name in enumerate(sk.KEYPOINTS):            # every point at its BODY_25 name
        np.testing.assert_array_equal(b25[:, sk.BODY25_KEYPOINTS.index(name)], ours[:, i])
    for p in (0, 2):
        np.testing.assert_allclose(b25[p, 8, :2], (ours[p, r_hip, :2] + ours[p, l_hip, :2]) / 2)
        assert b25[p, 8, 2] == min(ours[p, r_hip, 2], ours[p, l_hip, 2])
    assert not b25[1, 8].any()                         # mid-hip needs both hips
    assert not b25[:, 19:].any()                       # feet are not detected
    np.testing.assert_array_equal(sk.body25_to_ours(b25), ours)
