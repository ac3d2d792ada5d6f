"""Decoder: target -> decode round trips, peaks, limb scoring, presets, errors."""
import numpy as np
import pytest

from openpaf.data.targets import TargetParams, render_heatmaps, render_pafs, render_targets
from openpaf.decode import PafDecoder, decode, find_peaks, get_params
from openpaf.skeleton import FLIP, LIMB_FLIP, NUM_KEYPOINTS, PAF_CHANNELS

from conftest import person

STRIDE = 8


def maps_for(people, size=(368, 496)):
    kps = np.stack(people) if people else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
    return render_targets(kps, (size[0] // STRIDE, size[1] // STRIDE))


def match(found, truth):
    """Per true person, the max keypoint error (px) of the nearest detected person."""
    errs = []
    for t in truth:
        vis = t[:, 2] > 0
        best = min(np.abs(p.keypoints[vis, :2] - t[vis, :2]).max() for p in found)
        errs.append(best)
    return np.array(errs)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_round_trip_people(n):
    truth = [person(150, 180), person(330, 190, 0.9)][:n]
    heat, paf = maps_for(truth)
    det = decode(heat, paf, scale=STRIDE)
    assert len(det) == n
    if n:
        assert match(det.people, truth).max() < 1.0     # sub-pixel, in input pixels
        for p in det.people:
            assert p.num_parts == 18 and 0 < p.score <= 1
            assert (p.limb_scores > 0.8).all()


def test_round_trip_overlapping_people_keep_identity():
    truth = [person(200, 180), person(245, 185, 1.05)]    # arms interleave
    heat, paf = maps_for(truth)
    det = decode(heat, paf, scale=STRIDE)
    assert len(det) == 2
    assert match(det.people, truth).max() < 1.5


def test_missing_neck_fragments_join_through_other_limbs():
    # No neck: only the redundant shoulder-ear limbs and the face tie arms to the head.
    truth = [person(200, 180, missing=[1])]
    heat, paf = maps_for(truth)
    det = decode(heat, paf, scale=STRIDE)
    upper = max(det.people, key=lambda p: p.num_parts)
    # nose, eyes, ears, both arms (6) join into one person; hips have no limb left.
    assert upper.num_parts >= 11


def test_small_people_with_few_parts_are_kept_when_confident():
    truth = [person(200, 180, missing=[i for i in range(18) if i not in (3, 4)])]
    heat, paf = maps_for(truth)
    assert len(decode(heat, paf, scale=STRIDE)) == 1
    strict = get_params("cvpr2017", keep_small_score=0.0)
    assert len(decode(heat, paf, strict, scale=STRIDE)) == 0


def test_reversed_paf_gives_no_limbs():
    heat, paf = maps_for([person(200, 180)])
    det = decode(heat, -paf, scale=STRIDE)
    assert all(p.num_parts == 1 for p in det.people) or len(det) == 0


def test_scale_maps_cells_to_image_pixels():
    truth = person(150, 180)
    heat, paf = maps_for([truth])
    det = decode(heat, paf, scale=(2 * STRIDE, 2 * STRIDE))     # image twice the input
    expected = (truth[:, :2] + 0.5) * 2 - 0.5
    np.testing.assert_allclose(det.people[0].keypoints[:, :2], expected, atol=2.0)
    assert det.image_size == (496 * 2, 368 * 2)


def test_peaks_subpixel_and_nms():
    heat = render_heatmaps(np.stack([person(101.3, 150.6)]), (46, 62))
    peaks = find_peaks(heat, 0.1)
    assert len(peaks) == NUM_KEYPOINTS
    assert (np.diff(peaks.part) >= 0).all()
    xy_px = peaks.xy * STRIDE + 3.5
    np.testing.assert_allclose(xy_px, person(101.3, 150.6)[:, :2][peaks.part], atol=0.2)
    coarse = find_peaks(heat, 0.1, refine=False).xy * STRIDE + 3.5
    assert np.abs(coarse - person(101.3, 150.6)[:, :2]).max() > 1.0   # refinement matters


def test_peak_cap_per_type():
    heat = np.zeros((19, 40, 40), np.float32)
    heat[0, ::3, ::3] = 0.5
    assert len(find_peaks(heat, 0.1, max_peaks=5)) == 5


def test_background_channel_optional_and_errors():
    heat, paf = maps_for([person(150, 180)])
    a = decode(heat, paf, scale=STRIDE)
    b = decode(heat[:18], paf, scale=STRIDE)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    with pytest.raises(ValueError):
        decode(heat[:10], paf)
    with pytest.raises(ValueError):
        decode(heat, paf[:30])
    with pytest.raises(ValueError):
        get_params("nope")


def test_presets_and_decoder_object():
    heat, paf = maps_for([person(150, 180), person(330, 190)])
    for name in ("cvpr2017", "openpose"):
        det = PafDecoder(get_params(name))(heat, paf, scale=STRIDE)
        assert len(det) == 2
    timings = {}
    decode(heat, paf, scale=STRIDE, timings=timings)
    assert set(timings) == {"peaks", "limbs", "assembly"}


def test_distance_prior_rejects_limbs_longer_than_half_the_image():
    # A huge person in a short image, with weak fields (mean 0.5): the prior
    # min(0.5 H / length - 1, 0) drops limbs longer than the image height (shins: 125 px
    # in a 100 px image) and keeps shorter ones; without the prior all are kept.
    kps = np.stack([person(250, 250, 2.5)])
    heat, paf = render_targets(kps, (64, 64))
    paf *= 0.5
    with_prior = decode(heat, paf, scale=STRIDE, image_size=(512, 100))
    without = decode(heat, paf, get_params(distance_prior=False), scale=STRIDE,
                     image_size=(512, 100))
    assert sum(p.num_parts for p in without.people if p.num_parts > 1) > \
        sum(p.num_parts for p in with_prior.people if p.num_parts > 1)


def test_hflip_of_targets_matches_flip_maps():
    """Rendering flipped keypoints == flipping the maps and permuting by the flip map."""
    h, w = 40, 50
    kps = np.stack([person(150, 170), person(260, 160, 0.8, missing=[3, 14])])
    heat, paf = render_targets(kps, (h, w))
    flipped = kps.copy()
    flipped[:, :, 0] = (w * STRIDE - 1) - flipped[:, :, 0]
    flipped = flipped[:, list(FLIP)]
    fheat, fpaf = render_targets(flipped, (h, w))
    np.testing.assert_allclose(fheat[list(FLIP) + [18]], heat[:, :, ::-1], atol=1e-5)
    for k, (cx, cy) in enumerate(PAF_CHANNELS):
        fx, fy = PAF_CHANNELS[LIMB_FLIP[k]]
        np.testing.assert_allclose(fpaf[fx], -paf[cx, :, ::-1], atol=1e-5)
        np.testing.assert_allclose(fpaf[fy], paf[cy, :, ::-1], atol=1e-5)


def test_targets_shapes_and_values():
    kps = np.stack([person(150, 170)])
    heat = render_heatmaps(kps, (46, 46))
    paf = render_pafs(kps, (46, 46), TargetParams(paf_width=8))
    assert heat.shape == (19, 46, 46) and paf.shape == (38, 46, 46)
    assert heat.max() <= 1.0 and np.allclose(heat[18], 1 - heat[:18].max(0))
    norms = np.hypot(paf[0::2], paf[1::2])
    assert norms.max() <= 1.0 + 1e-5 and norms.max() > 0.99
    empty_h, empty_p = render_targets(np.zeros((0, 18, 3)), (10, 12))
    assert empty_h[:18].max() == 0 and (empty_h[18] == 1).all() and empty_p.max() == 0
