"""Tracker tests on synthetic sequences built from a known standing skeleton."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from openpaf.skeleton import COCO_SIGMAS, KEYPOINTS, NECK, NUM_KEYPOINTS
from openpaf.structures import Detections, Person
from openpaf.track import (OneEuroFilter, Tracker, TrackerParams, assign, iou_matrix,
                           keypoint_sigmas, oks_matrix)

IMAGE = (1280, 720)
# A standing person facing the camera, (x, y) px relative to the neck (y down), ~170 px tall.
_POSE = {
    "nose": (0, -25), "neck": (0, 0),
    "right_shoulder": (-20, 0), "right_elbow": (-25, 30), "right_wrist": (-27, 58),
    "left_shoulder": (20, 0), "left_elbow": (25, 30), "left_wrist": (27, 58),
    "right_hip": (-12, 62), "right_knee": (-13, 100), "right_ankle": (-14, 138),
    "left_hip": (12, 62), "left_knee": (13, 100), "left_ankle": (14, 138),
    "right_eye": (-6, -30), "left_eye": (6, -30), "right_ear": (-11, -27), "left_ear": (11, -27),
}
TEMPLATE = np.array([_POSE[k] for k in KEYPOINTS], np.float64)   # (18, 2)


def person(centre, rng, noise=1.0, drop=0.15, score=0.9) -> Person:
    """Template at neck position ``centre`` + N(0, noise^2) px, each keypoint dropped w.p.
    ``drop`` (conf 0, coordinates zeroed as a decoder would leave them)."""
    xy = TEMPLATE + np.asarray(centre, np.float64) + rng.normal(0.0, noise, TEMPLATE.shape)
    conf = np.where(rng.random(NUM_KEYPOINTS) < drop, 0.0, 0.8)
    kps = np.concatenate([xy, conf[:, None]], axis=1)
    kps[conf == 0, :2] = 0.0
    return Person(kps, score)


def run(tracker, frames, shuffle_rng=None, times=None):
    """Feed ``frames`` (lists of ``(truth, Person)``); returns per frame ``{truth: id}``."""
    out = []
    for f, frame in enumerate(frames):
        order = list(range(len(frame)))
        if shuffle_rng is not None:
            shuffle_rng.shuffle(order)
        dets = Detections(IMAGE, [frame[i][1] for i in order])
        res = tracker.update(dets, None if times is None else times[f])
        assert res is dets
        out.append({frame[i][0]: dets.people[k].id for k, i in enumerate(order)})
    return out


def crossing(speed, seed=0, noise=1.0):
    """A walks right, B walks left on the same line; they pass each other between frames
    10 and 11 (closest: ``speed`` px apart), boxes overlapping for several frames."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(22):
        a = (100 + speed * t, 300)
        b = (100 + 21 * speed - speed * t, 300)
        frames.append([("A", person(a, rng, noise)), ("B", person(b, rng, noise))])
    return frames


def assert_constant_ids(ids):
    first = ids[0]
    assert len(set(first.values())) == len(first)
    for f, frame in enumerate(ids):
        assert frame == first, f"ids changed at frame {f}: {frame} vs {first}"


# --------------------------------------------------------------------------- similarity

def test_sigmas_in_our_order():
    s = keypoint_sigmas()
    assert s.shape == (NUM_KEYPOINTS,)
    assert s[KEYPOINTS.index("nose")] == pytest.approx(COCO_SIGMAS[0])
    assert s[KEYPOINTS.index("left_hip")] == pytest.approx(1.07 / 10)
    assert s[NECK] == pytest.approx(s[KEYPOINTS.index("right_shoulder")])


def test_oks_golden_values():
    rng = np.random.default_rng(0)
    a = person((300, 300), rng, noise=0.0, drop=0.0)
    b = copy.deepcopy(a)
    b.keypoints[:, 0] += 10.0                                      # shift 10 px right
    area = (54.0 * 168.0)                                          # template box area
    expect = np.exp(-100.0 / (2 * area * (2 * keypoint_sigmas()) ** 2)).mean()
    oks = oks_matrix(np.stack([a.keypoints, b.keypoints]), a.keypoints[None])
    assert oks.shape == (2, 1)
    assert oks[0, 0] == pytest.approx(1.0)
    assert oks[1, 0] == pytest.approx(expect, rel=1e-6)
    assert 0.1 < expect < 0.9
    # Only common keypoints count; no common keypoint -> 0.
    c, d = copy.deepcopy(a), copy.deepcopy(a)
    c.keypoints[:9, 2] = 0
    d.keypoints[9:, 2] = 0
    assert oks_matrix(c.keypoints, d.keypoints)[0, 0] == 0.0
    assert oks_matrix(c.keypoints, a.keypoints)[0, 0] == pytest.approx(1.0)


def test_iou_golden_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]], float)
    iou = iou_matrix(a, b)
    np.testing.assert_allclose(iou, [[50 / 150, 1.0], [0.0, 0.0]])


def test_assign_golden():
    sim = np.array([[0.50, 0.45],
                    [0.19, 0.00]])
    # Ungated, 0.45 + 0.19 > 0.50 would steal track 1 for person 0; the gate forbids it.
    assert assign(sim, 0.2) == [(0, 0)]
    assert sorted(assign(sim, 0.1)) == [(0, 1), (1, 0)]
    assert assign(np.zeros((0, 3)), 0.2) == []
    assert assign(np.array([[0.9, 0.1, 0.3]]), 0.2) == [(0, 0)]


# --------------------------------------------------------------------------- (1) crossing

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("speed", [8, 20])
def test_crossing_people_keep_their_ids(speed, seed):
    ids = run(Tracker(), crossing(speed, seed))
    assert ids[0] == {"A": 0, "B": 1}                              # left to right at t=0
    assert_constant_ids(ids)


def test_crossing_without_motion_model_swaps():
    """The crossing above is hard: matching the last positions swaps A and B, so the
    previous test really exercises the constant-velocity prediction."""
    ids = run(Tracker(TrackerParams(motion=False)), crossing(16))
    assert ids[-1] == {"A": ids[0]["B"], "B": ids[0]["A"]}


# --------------------------------------------------------------------------- (2) occlusion

def occluded(gap, speed=4.0, seed=1):
    """A walks right and is missing for ``gap`` frames from frame 10; B stands still."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(10 + gap + 10):
        frame = [("B", person((900, 300), rng))]
        if not 10 <= t < 10 + gap:
            frame.append(("A", person((100 + speed * t, 300), rng)))
        frames.append(frame)
    return frames


def test_short_occlusion_keeps_id():
    ids = run(Tracker(), occluded(5))
    assert [f["A"] for f in ids if "A" in f] == [0] * 20
    assert [f["B"] for f in ids] == [1] * 25


@pytest.mark.parametrize("gap, same", [(15, True), (16, False), (30, False)])
def test_occlusion_limit_is_max_age(gap, same):
    tracker = Tracker(TrackerParams(max_age=15))
    frames = occluded(gap)
    ids = run(tracker, frames[:10 + gap])
    assert (0 in tracker.track_ids) == same                        # alive while missing
    ids += run(tracker, frames[10 + gap:])
    after = {f["A"] for f in ids[10 + gap:]}
    assert len(after) == 1
    if same:
        assert after == {0}
    else:
        assert after == {2}                                        # fresh, never used
    assert {f["B"] for f in ids} == {1}


# --------------------------------------------------------------------------- (3) newcomers

def test_newcomer_gets_fresh_id_never_reused():
    """A stays; B leaves after frame 4 and dies; C enters where B was at frame 25, and D
    enters at frame 30 while C is there: each newcomer gets the next unused id."""
    rng = np.random.default_rng(2)
    tracker = Tracker(TrackerParams(max_age=15))
    frames = []
    for t in range(35):
        frame = [("A", person((200 + 2 * t, 300), rng))]
        if t < 5:
            frame.append(("B", person((700, 300), rng)))
        if t >= 25:
            frame.append(("C", person((700, 300), rng)))
        if t >= 30:
            frame.append(("D", person((1000, 250), rng)))
        frames.append(frame)
    ids = run(tracker, frames)
    assert {f["A"] for f in ids} == {0}
    assert {f["B"] for f in ids if "B" in f} == {1}
    assert {f["C"] for f in ids if "C" in f} == {2}
    assert {f["D"] for f in ids if "D" in f} == {3}
    assert tracker.track_ids == (0, 2, 3)


def test_gate_blocks_dissimilar_matches():
    """A lost track is not handed to a far-away newcomer, however empty the frame."""
    rng = np.random.default_rng(12)
    tracker = Tracker()
    ids = run(tracker, [[("A", person((200 + 3 * t, 300), rng))] for t in range(5)])
    ids += run(tracker, [[("C", person((1000, 300), rng))] for _ in range(3)])
    assert [f.get("A", f.get("C")) for f in ids] == [0] * 5 + [1] * 3
    assert tracker.track_ids == (0, 1)                             # A still waits


# --------------------------------------------------------------------------- (4) order

def test_detection_order_does_not_matter():
    rng = np.random.default_rng(3)
    frames = []
    for t, ab in enumerate(crossing(8, seed=4)):
        frame = ab + [("C", person((600, 150 + 3 * t), rng))]
        if t >= 6:
            frame.append(("D", person((1000 - 5 * t, 320), rng)))
        frames.append(frame)
    plain = run(Tracker(), copy.deepcopy(frames))
    shuffled = run(Tracker(), copy.deepcopy(frames), shuffle_rng=np.random.default_rng(5))
    assert shuffled == plain
    assert plain[-1] == {"A": 0, "B": 1, "C": 2, "D": 3}
    for f in plain:
        assert {k: v for k, v in plain[-1].items() if k in f} == f


# --------------------------------------------------------------------------- (5) smoothing

def test_one_euro_golden_first_step():
    """beta=0: a low-pass with alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi min_cutoff)."""
    for dt in (1 / 30, 0.5):
        f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
        np.testing.assert_array_equal(f(np.zeros((18, 2)), 0.0), 0.0)
        alpha = 1.0 / (1.0 + 1.0 / (2 * np.pi) / dt)
        np.testing.assert_allclose(f(np.full((18, 2), 10.0), dt), 10.0 * alpha)


def test_one_euro_time_must_increase():
    f = OneEuroFilter()
    f(np.zeros((18, 2)), 1.0)
    with pytest.raises(ValueError):
        f(np.zeros((18, 2)), 1.0)


def smoothed_sequence(centres, params, seed, noise, drop=0.0, times=None):
    """Track one person through ``centres``; returns raw and output ``(T, 18, 3)``."""
    rng = np.random.default_rng(seed)
    tracker = Tracker(params)
    raw, out = [], []
    for t, c in enumerate(centres):
        p = person(c, rng, noise, drop)
        raw.append(p.keypoints.copy())
        tracker.update(Detections(IMAGE, [p]), None if times is None else times[t])
        assert p.id == 0
        out.append(p.keypoints.copy())
    return np.array(raw), np.array(out)


def test_smoothing_reduces_jitter_of_static_person():
    centre = np.array([400.0, 300.0])
    truth = TEMPLATE + centre
    params = TrackerParams(smooth=True)
    raw, out = smoothed_sequence([centre] * 90, params, seed=6, noise=2.0)
    err_raw = ((raw[20:, :, :2] - truth) ** 2).mean()
    err_out = ((out[20:, :, :2] - truth) ** 2).mean()
    assert err_out < err_raw / 4                                   # >= 4x less variance
    np.testing.assert_array_equal(out[..., 2], raw[..., 2])       # confidences untouched
    _, off = smoothed_sequence([centre] * 90, TrackerParams(smooth=False), 6, 2.0)
    np.testing.assert_array_equal(off, raw)                        # smooth=False: no-op


def test_smoothing_follows_moving_person():
    """150 px/s (5 px/frame at 30 fps): steady lag along the motion below 3 px."""
    centres = [(100 + 5.0 * t, 300) for t in range(60)]
    truth = TEMPLATE[None] + np.array(centres)[:, None, :]
    raw, out = smoothed_sequence(centres, TrackerParams(smooth=True), seed=7, noise=0.5)
    lag = (truth[20:, :, 0] - out[20:, :, 0]).mean()
    assert 0.0 < lag < 3.0
    # Without the speed term (beta=0) the 1 Hz low-pass lags ~24 px: beta does the work.
    _, slow = smoothed_sequence(centres, TrackerParams(smooth=True, beta=0.0), 7, 0.5)
    assert (truth[20:, :, 0] - slow[20:, :, 0]).mean() > 15.0


def test_smoothing_uses_time_when_given():
    centres = [(100 + 5.0 * t, 300) for t in range(30)]
    params = TrackerParams(smooth=True, beta=0.0, fps=30.0)
    _, frames = smoothed_sequence(centres, params, seed=8, noise=1.0)
    _, timed = smoothed_sequence(centres, params, 8, 1.0, times=np.arange(30) / 30.0)
    np.testing.assert_allclose(timed, frames, atol=1e-4)
    _, slow_clock = smoothed_sequence(centres, params, 8, 1.0, times=np.arange(30) / 5.0)
    assert np.abs(slow_clock - frames)[5:, :, :2].max() > 1.0      # longer dt, less lag
    tracker = Tracker(params)
    tracker.update(Detections(IMAGE, []), 0.0)
    with pytest.raises(ValueError):
        tracker.update(Detections(IMAGE, []), 0.0)
    with pytest.raises(ValueError):
        tracker.update(Detections(IMAGE, []))                      # mixing clocks


def test_missing_keypoints_do_not_corrupt_filter():
    """Wrist missing (conf 0, garbage coordinates) every other frame stays unsmoothed
    there and, when found, is not dragged towards the garbage."""
    wrist = KEYPOINTS.index("right_wrist")
    rng = np.random.default_rng(9)
    tracker = Tracker(TrackerParams(smooth=True))
    centre = np.array([400.0, 300.0])
    for t in range(40):
        p = person(centre, rng, noise=1.0, drop=0.0)
        if t % 2:
            p.keypoints[wrist] = (5000.0, -5000.0, 0.0)
        tracker.update(Detections(IMAGE, [p]))
        if t % 2:
            np.testing.assert_array_equal(p.keypoints[wrist], (5000.0, -5000.0, 0.0))
        else:
            err = np.abs(p.keypoints[wrist, :2] - (TEMPLATE[wrist] + centre)).max()
            assert err < 5.0, (t, err)


# --------------------------------------------------------------------------- (6) edge cases

def test_empty_frames_and_sparse_people():
    rng = np.random.default_rng(10)
    tracker = Tracker(TrackerParams(smooth=True))
    assert len(tracker.update(Detections(IMAGE, []))) == 0
    full = person((400, 300), rng, drop=0.0)
    tracker.update(Detections(IMAGE, [full]))
    assert full.id == 0
    for _ in range(3):
        assert tracker.update(Detections(IMAGE, [])).people == []
    one = person((400, 300), rng, drop=0.0)
    one.keypoints[1:, 2] = 0                                       # nose only
    none = Person(np.zeros((NUM_KEYPOINTS, 3)), 0.1)               # nothing found
    two = person((900, 300), rng, drop=0.0)
    two.keypoints[2:, 2] = 0                                       # nose + neck, far away
    tracker.update(Detections(IMAGE, [none, two, one]))
    assert one.id == 0                                             # re-acquired by its nose
    assert none.id == -1                                           # untrackable
    assert two.id == 1
    assert tracker.track_ids == (0, 1)


def test_reset_restarts_ids():
    rng = np.random.default_rng(11)
    tracker = Tracker()
    tracker.update(Detections(IMAGE, [person((200, 300), rng), person((600, 300), rng)]))
    tracker.reset()
    assert tracker.track_ids == ()
    p = person((600, 300), rng)
    tracker.update(Detections(IMAGE, [p]))
    assert p.id == 0


def test_params_validated():
    with pytest.raises(ValueError):
        TrackerParams(max_age=-1)
    with pytest.raises(ValueError):
        TrackerParams(min_similarity=1.5)
    with pytest.raises(ValueError):
        TrackerParams(oks_weight=0.0, iou_weight=0.0)
