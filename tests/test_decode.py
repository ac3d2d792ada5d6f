"""Decoder: target -> decode round trips, peaks, limb scoring, presets, errors, and the
optimised decoder equal to a straightforward reference on random crowds."""
import numpy as np
import pytest

from openpaf.data.targets import TargetParams, render_heatmaps, render_pafs, render_targets
from openpaf.decode import PafDecoder, decode, find_peaks, get_params
from openpaf.decode.limbs import _PAF_X, _PAF_Y, candidate_pairs, match_greedy, score_limbs
from openpaf.decode.peaks import max_filter3x3, peaks_from_candidates
from openpaf.skeleton import FLIP, LIMB_FLIP, NUM_KEYPOINTS, PAF_CHANNELS

from conftest import person
from helpers import random_crowd_maps

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


def test_confident_partial_person_ranks_above_a_faint_complete_one():
    # A faint complete person (maps x0.6) and a clear upper body (11 of 18 parts): the
    # CVPR sum over 37 ranks the faint one first; mean x sqrt(completeness) (the tuned
    # default) ranks the clear one first, which is what COCO AP rewards on real maps.
    legs = [8, 9, 10, 11, 12, 13, 1]
    faint_heat, faint_paf = maps_for([person(150, 180)])
    clear_heat, clear_paf = maps_for([person(350, 180, missing=legs)])
    heat = np.maximum(0.6 * faint_heat, clear_heat)
    paf = 0.6 * faint_paf + clear_paf
    for preset, first in (("cvpr2017", "faint"), ("tuned", "clear")):
        people = decode(heat, paf, preset, scale=STRIDE).people
        assert len(people) == 2 and people[0].score > people[1].score
        got = "faint" if people[0].num_parts == 18 else "clear"
        assert got == first, preset
    assert get_params("cvpr2017").completeness_power == 1.0


def test_tuned_thresholds_keep_weak_wrists_and_ankles_cvpr2017_drops():
    # Real networks give weak peaks at small or blurred parts: wrists and ankles at 0.07
    # pass the tuned peak threshold (0.03) but not cvpr2017's (0.1).
    heat, paf = maps_for([person(200, 180)])
    weak = [4, 7, 10, 13]
    heat[weak] *= 0.07
    assert decode(heat, paf, "tuned", scale=STRIDE).people[0].num_parts == 18
    assert decode(heat, paf, "cvpr2017", scale=STRIDE).people[0].num_parts == 14


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


def _bf16(a):
    """Round float32 to the nearest bfloat16 (8-bit mantissa), as AMX/OpenVINO maps are."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def test_plateau_gives_one_peak_at_its_centre():
    heat = np.zeros((19, 12, 12), np.float32)
    heat[0, 4:6, 6:8] = 0.8                       # 2x2 plateau: one joint between 4 cells
    heat[0, 3:7, 5:9] += 0.1 * (heat[0, 3:7, 5:9] == 0)
    heat[1, 2, 2:4] = 0.5                         # 2 equal cells
    peaks = find_peaks(heat, 0.1)
    assert peaks.offsets[1] == 1 and peaks.offsets[2] == 2
    np.testing.assert_allclose(peaks.xy[:2], [[6.5, 4.5], [2.5, 2.0]], atol=1e-6)


def test_bf16_quantised_maps_give_one_peak_per_joint():
    truth = [person(153.48, 183.48), person(343.48, 203.48, 0.9)]   # joints ~between cells
    heat, paf = maps_for(truth)
    q = _bf16(heat * 0.9)
    hm = q[:18]
    local_max = (hm > 0.1) & (hm >= max_filter3x3(hm))
    assert local_max.sum() > 36 == ((heat[:18] > 0.1) & (heat[:18] >= max_filter3x3(
        heat[:18]))).sum()                       # bf16 rounding made equal neighbours
    peaks = find_peaks(q, 0.1)
    assert (np.diff(peaks.offsets) == 2).all()   # still two per joint
    det = decode(q, _bf16(paf), scale=STRIDE)
    assert len(det) == 2 and (match(det.people, truth) < 1.0).all()


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
    for name in ("tuned", "cvpr2017", "openpose"):
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


# --- the optimised decoder equals the straightforward implementation ------------------

def _reference_find_peaks(heatmaps, threshold, max_peaks):
    from scipy.ndimage import maximum_filter
    hm = np.ascontiguousarray(heatmaps[:18], dtype=np.float32)
    is_peak = (hm > threshold) & (hm >= maximum_filter(hm, size=(1, 3, 3), mode="constant"))
    padded = np.pad(hm, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    _, h, w = hm.shape
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1)):    # plateaus: first cell only
        is_peak &= hm > padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    k, y, x = np.nonzero(is_peak)
    return peaks_from_candidates(k, y, x, hm[k, y, x], max_peaks=max_peaks,
                                 neighbours=lambda kk, yy, xx: np.stack([
                                     hm[kk, yy, xx], hm[kk, yy, np.maximum(xx - 1, 0)],
                                     hm[kk, yy, np.minimum(xx + 1, hm.shape[2] - 1)],
                                     hm[kk, np.maximum(yy - 1, 0), xx],
                                     hm[kk, np.minimum(yy + 1, hm.shape[1] - 1), xx]]))


def _reference_score_limbs(peaks, pafs, params, scale, image_height):
    """Every candidate sampled at every point, 3-D fancy indexing (the first version)."""
    def bilinear(maps, ch, x, y):
        _, h, w = maps.shape
        x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
        x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
        y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
        fx, fy = x - x0, y - y0
        x1, y1 = x0 + 1, y0 + 1
        return ((maps[ch, y0, x0] * (1 - fx) + maps[ch, y0, x1] * fx) * (1 - fy)
                + (maps[ch, y1, x0] * (1 - fx) + maps[ch, y1, x1] * fx) * fy)
    limb, a, b = candidate_pairs(peaks)
    pa, pb = peaks.xy[a].astype(np.float64), peaks.xy[b].astype(np.float64)
    d = pb - pa
    norm = np.hypot(d[:, 0], d[:, 1])
    unit = d / np.maximum(norm, 1e-6)[:, None]
    t = np.linspace(0.0, 1.0, params.num_samples)
    sx, sy = pa[:, 0:1] + t * d[:, 0:1], pa[:, 1:2] + t * d[:, 1:2]
    dots = (bilinear(pafs, _PAF_X[limb][:, None], sx, sy) * unit[:, 0:1]
            + bilinear(pafs, _PAF_Y[limb][:, None], sx, sy) * unit[:, 1:2])
    score = dots.mean(axis=1)
    length_px = np.maximum(np.hypot(d[:, 0] * scale[0], d[:, 1] * scale[1]), 1e-6)
    score = score + np.minimum(0.5 * image_height / length_px - 1.0, 0.0)
    passed = ((dots > params.paf_threshold).sum(axis=1)
              >= params.min_pass_ratio * params.num_samples - 1e-9)
    keep = passed & (score > 0) & (norm > 1e-6)
    return match_greedy(limb[keep], a[keep], b[keep], score[keep].astype(np.float32))


@pytest.mark.parametrize("preset", ["tuned", "cvpr2017", "openpose"])
def test_optimised_decoder_equals_reference_on_random_crowds(preset):
    params = get_params(preset)
    for heat, paf, geo in random_crowd_maps():
        peaks = find_peaks(heat, params.peak_threshold, max_peaks=params.max_peaks)
        ref = _reference_find_peaks(heat, params.peak_threshold, params.max_peaks)
        for f in ("xy", "score", "part", "offsets"):
            np.testing.assert_array_equal(getattr(peaks, f), getattr(ref, f))
        got = score_limbs(peaks, paf, params, geo.map_scale, float(geo.image_size[1]))
        want = _reference_score_limbs(peaks, paf, params, geo.map_scale,
                                      float(geo.image_size[1]))
        assert len(want) > 0 or len(peaks) < 2
        for f in ("limb", "a", "b", "score"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
