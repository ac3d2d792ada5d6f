"""Video pipeline end to end: mp4 decode -> predict -> track -> JSON/JSONL -> rendered mp4.

No trained network runs here. The video shows three stick figures whose keypoints are
discs of one colour per keypoint type (limbs are thin grey lines); they walk along paths
that cross. ``BlobPredict`` is a test double that finds the figures from the *pixels*:
colour blobs per keypoint type, grouped into people around each neck blob. So the ids in
the outputs come from the real tracker fed with detections read off decoded (lossy mp4v)
frames, and are checked against the figures' known positions.
"""
import colorsys
import json
import os
from functools import partial

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from openpaf.io.manifest import read_manifest
from openpaf.io.render import id_colour, render
from openpaf.io.writers import read_openpose_json, validate_openpose_json
from openpaf.runner import InferOptions, run_inference
from openpaf.skeleton import LIMBS, NUM_KEYPOINTS
from openpaf.structures import Detections, Person
from openpaf.track import TrackerParams

from conftest import TEMPLATE as PERSON_TEMPLATE
from helpers import write_video

W, H, N, FPS = 320, 240, 40, 20.0
NECK = 1
# The conftest template (a ~200 px person) at 0.7 x, relative to the figure centre.
TEMPLATE = 0.7 * PERSON_TEMPLATE
# Keypoint types drawn as discs (nose, neck, shoulders, wrists, ankles): hues 45 deg apart.
DRAWN = (0, 1, 2, 4, 5, 7, 10, 13)
HUES = {k: 45.0 * i for i, k in enumerate(DRAWN)}


def centres(t: float) -> np.ndarray:
    """Figure centres at frame t: A walks right, B left, crossing at t~22 with their necks
    8 px apart (for a frame or two the detector sees one figure; only a motion model
    tells who is who afterwards); C strolls right lower down: A overtakes C at t~15 and B
    meets C at t~25, bodies overlapping."""
    return np.array([(30 + 6 * t, 111), (290 - 6 * t, 119), (90 + 2 * t, 136)], np.float32)


def truth(t: float) -> np.ndarray:
    """``(3, 18, 2)`` true keypoints of the figures at frame t."""
    return TEMPLATE[None] + centres(t)[:, None, :]


def _bgr(hue: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, 1.0, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw(t: int) -> np.ndarray:
    img = np.full((H, W, 3), 30, np.uint8)
    figures = np.rint(truth(t)).astype(int)
    for kps in figures:
        for a, b in LIMBS:
            cv2.line(img, tuple(map(int, kps[a])), tuple(map(int, kps[b])), (128, 128, 128),
                     1, cv2.LINE_AA)
    for kps in figures:
        for k in DRAWN:
            cv2.circle(img, tuple(map(int, kps[k])), 4, _bgr(HUES[k]), -1, cv2.LINE_AA)
    return img


make_video = partial(write_video, n=N, size=(W, H), fps=FPS, frame=lambda t, size: draw(t))


class BlobPredict:
    """Finds the figures in the pixels: saturated blobs of each keypoint type's hue, each
    assigned to the neck blob whose template offset it fits best (within 40 px)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image: np.ndarray) -> Detections:
        self.calls += 1
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV_FULL)
        hue = hsv[..., 0].astype(np.float32) * (360.0 / 256.0)
        vivid = (hsv[..., 1] > 110) & (hsv[..., 2] > 110)
        blobs = {}
        for k, h in HUES.items():
            mask = (vivid & (np.abs((hue - h + 180.0) % 360.0 - 180.0) < 20)).astype(np.uint8)
            n, _, stats, cents = cv2.connectedComponentsWithStats(mask)
            blobs[k] = [cents[i] for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 5]
        people = []
        for neck in blobs[NECK]:
            kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
            kps[NECK] = (neck[0], neck[1], 0.9)
            people.append(kps)
        for k, found in blobs.items():
            if k == NECK or not people:
                continue
            for c in found:
                expected = [p[NECK, :2] + TEMPLATE[k] - TEMPLATE[NECK] for p in people]
                dist = [float(np.hypot(*(c - e))) for e in expected]
                j = int(np.argmin(dist))
                held = people[j][k]
                if dist[j] < 40 and (held[2] == 0 or
                                     dist[j] < np.hypot(*(held[:2] - expected[j]))):
                    people[j][k] = (c[0], c[1], 0.9)
        h, w = image.shape[:2]
        return Detections((w, h), [Person(p, float((p[:, 2] > 0).mean())) for p in people])


# ---------------------------------------------------------------------------------------
# Checking identities against the known figures


def check_identities(frames: dict[int, list[tuple[int, np.ndarray]]], min_sep=12.0,
                     max_err=6.0) -> list[int]:
    """``frames``: frame index -> [(person_id, neck xy)]. In every frame where the true
    necks are at least ``min_sep`` px apart, each figure must be found (neck within
    ``max_err``) by exactly one person; over all those frames each figure must carry one
    single id, different from the others'. Returns the ids of figures A, B, C."""
    seen: list[set] = [set(), set(), set()]
    judged = 0
    for t, people in sorted(frames.items()):
        necks = truth(t)[:, NECK]
        gaps = [np.hypot(*(necks[i] - necks[j])) for i in range(3) for j in range(i)]
        if min(gaps) < min_sep:
            continue  # the figures overlap: the detector itself cannot separate them
        judged += 1
        for fig, neck in enumerate(necks):
            near = [pid for pid, xy in people if np.hypot(*(xy - neck)) < max_err]
            assert len(near) == 1, f"frame {t}: figure {'ABC'[fig]} matched by ids {near}"
            seen[fig].add(near[0])
    assert judged >= len(frames) * 0.6, f"only {judged} of {len(frames)} frames judged"
    assert all(len(s) == 1 for s in seen), f"an id changed: A {seen[0]} B {seen[1]} " \
                                           f"C {seen[2]}"
    ids = [next(iter(s)) for s in seen]
    assert len(set(ids)) == 3 and min(ids) >= 0, f"ids not distinct/valid: {ids}"
    return ids


def _neck(person: dict) -> np.ndarray:
    return np.asarray(person["pose_keypoints_2d"], np.float32).reshape(-1, 3)[NECK, :2]


def openpose_people(out, stem="walk") -> dict[int, list[tuple[int, np.ndarray]]]:
    frames = {}
    for f in sorted(os.listdir(out)):
        if f.startswith(f"{stem}_") and f.endswith("_keypoints.json"):
            obj = json.loads((out / f).read_text())
            validate_openpose_json(obj)
            t = int(f[len(stem) + 1:-len("_keypoints.json")])
            frames[t] = [(p["person_id"][0], _neck(p)) for p in obj["people"]]
    return frames


def jsonl_people(path) -> tuple[list[dict], dict[int, list[tuple[int, np.ndarray]]]]:
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    frames = {r["frame"]: [(p["person_id"], _neck(p)) for p in r["people"]] for r in lines}
    return lines, frames


def read_video(path) -> tuple[float, list[np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return fps, frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "walk.mp4")


def _cli(monkeypatch, args, predictor):
    import openpaf_cli.infer
    from openpaf_cli.main import main
    monkeypatch.setattr(openpaf_cli.infer, "_build_predictor", lambda weights, **kw: predictor)
    return CliRunner().invoke(main, ["infer", *map(str, args)])


# ---------------------------------------------------------------------------------------


def test_the_double_sees_the_figures(video):
    """The test double is sound on clean decoded frames (so failures below are real)."""
    cap = cv2.VideoCapture(str(video))
    ok, img = cap.read()
    cap.release()
    det = BlobPredict()(img)
    assert len(det.people) == 3
    for p, fig in zip(sorted(det.people, key=lambda p: p.keypoints[NECK, 0]),
                      truth(0)[np.argsort(centres(0)[:, 0])]):
        assert p.num_parts == len(DRAWN)
        np.testing.assert_allclose(p.keypoints[list(DRAWN), :2], fig[list(DRAWN)], atol=1.5)


def test_check_identities_catches_swaps(video):
    """The id check fails for untracked ids, for ids by left-to-right order (swap at
    every crossing) and for one swap after the A/B crossing."""
    predict = BlobPredict()
    cap = cv2.VideoCapture(str(video))
    raw = {}
    for t in range(N):
        det = predict(cap.read()[1])
        raw[t] = [p.keypoints[NECK, :2] for p in det.people]
    cap.release()
    with pytest.raises(AssertionError):
        check_identities({t: [(-1, xy) for xy in necks] for t, necks in raw.items()})
    by_x = {t: [(int(np.argsort(np.argsort([xy[0] for xy in necks]))[i]), xy)
                for i, xy in enumerate(necks)] for t, necks in raw.items()}
    with pytest.raises(AssertionError, match="id changed"):
        check_identities(by_x)
    truthful = {t: [(int(np.argmin(np.hypot(*(truth(t)[:, NECK] - xy).T))), xy)
                    for xy in necks] for t, necks in raw.items()}
    assert check_identities(truthful) == [0, 1, 2]
    swapped = {t: [({0: 1, 1: 0}.get(i, i) if t > 23 else i, xy) for i, xy in people]
               for t, people in truthful.items()}
    with pytest.raises(AssertionError, match="id changed"):
        check_identities(swapped)


def test_without_motion_model_the_ids_swap(video, tmp_path):
    """The A/B crossing is hard: a tracker matching last positions (no velocity) swaps
    the two, so the id check in the tests below can fail."""
    opts = InferOptions(output=tmp_path / "o", track=True,
                        tracker=TrackerParams(motion=False), write_video=False)
    run_inference(BlobPredict(), [str(video)], opts, progress=False)
    with pytest.raises(AssertionError, match="id changed"):
        check_identities(openpose_people(tmp_path / "o"))


def test_tracked_video_through_the_cli(video, tmp_path, monkeypatch):
    out = tmp_path / "out"
    predict = BlobPredict()
    second = tmp_path / "again.mp4"  # a second stream in the same run: a fresh tracker
    second.write_bytes(video.read_bytes())
    r = _cli(monkeypatch, [video, second, "-o", out, "--track", "--json-format",
                           "openpose,jsonl", "-q"], predict)
    assert r.exit_code == 0, r.output
    assert predict.calls == 2 * N
    assert check_identities(openpose_people(out, "again")) == \
        check_identities(openpose_people(out))
    # OpenPose JSON: one file per frame, ids constant per figure, never swapped.
    frames = openpose_people(out)
    assert sorted(frames) == list(range(N))
    ids = check_identities(frames)
    # JSONL: one line per processed frame, same people and ids as the JSON files.
    lines, from_jsonl = jsonl_people(out / "walk.jsonl")
    assert [r["frame"] for r in lines] == list(range(N))
    for rec in lines:
        assert set(rec) == {"frame", "time", "name", "people"}
        assert rec["time"] == pytest.approx(rec["frame"] / FPS, abs=2e-3)
        assert rec["name"] == f"walk_{rec['frame']:06d}"
    assert {t: [p for p, _ in v] for t, v in from_jsonl.items()} == \
        {t: [p for p, _ in v] for t, v in frames.items()}
    # Rendered mp4: every frame, source fps, drawn in per-id colours.
    fps, rendered = read_video(out / "walk_rendered.mp4")
    assert fps == pytest.approx(FPS) and len(rendered) == N
    assert rendered[0].shape == (H, W, 3)
    t = 3
    det = read_openpose_json(out / f"walk_{t:06d}_keypoints.json", (W, H))
    source = draw(t)
    by_id, plain = render(source, det, colour_by_id=True), render(source, det)
    differ = np.abs(by_id.astype(int) - plain).sum(axis=2) > 60
    assert differ.sum() > 50
    err_id = np.abs(rendered[t].astype(int) - by_id)[differ].mean()
    err_plain = np.abs(rendered[t].astype(int) - plain)[differ].mean()
    assert err_id < 0.6 * err_plain, (err_id, err_plain)
    assert len({id_colour(i) for i in ids}) == 3
    # Manifest: the video is done with all its frames.
    recs = [r for r in read_manifest(out / "openpaf_manifest.jsonl") if "input" in r]
    assert [(r["input"], r["status"], r["frames"], r["track"]) for r in recs] == \
        [(str(video), "done", N, True), (str(second), "done", N, True)]
    assert sorted(os.listdir(out)) == sorted(
        [f"{v}_{i:06d}_keypoints.json" for i in range(N) for v in ("walk", "again")]
        + ["walk.jsonl", "walk_rendered.mp4", "again.jsonl", "again_rendered.mp4",
           "openpaf_manifest.jsonl"])

    # Resume: the manifest says the videos are done -> nothing decoded or predicted again.
    again = BlobPredict()
    before = {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}
    r = _cli(monkeypatch, [video, second, "-o", out, "--track", "--json-format",
                           "openpose,jsonl", "--skip-existing"], again)
    assert r.exit_code == 0 and again.calls == 0, r.output
    assert f"{2 * N} skipped (existing)" in r.output
    assert {f: t for f, t in before.items() if f != "openpaf_manifest.jsonl"} == \
        {f: os.stat(out / f).st_mtime_ns for f in before if f != "openpaf_manifest.jsonl"}


def test_every_2_and_smoothing(video, tmp_path, monkeypatch):
    raw, smooth = tmp_path / "raw", tmp_path / "smooth"
    for out, extra in ((raw, []), (smooth, ["--smooth"])):
        r = _cli(monkeypatch, [video, "-o", out, "--every", "2", "--json-format", "jsonl",
                               "--track", *extra, "-q"], BlobPredict())
        assert r.exit_code == 0, r.output
        assert not any(f.endswith("_keypoints.json") for f in os.listdir(out))
    lines, frames = jsonl_people(raw / "walk.jsonl")
    assert [r["frame"] for r in lines] == list(range(0, N, 2))  # half the frames
    check_identities(frames)
    fps, rendered = read_video(raw / "walk_rendered.mp4")
    assert len(rendered) == N // 2 and fps == pytest.approx(FPS / 2)  # same duration
    # Smoothing: same ids, keypoints filtered with the stream's clock: the figures walking
    # at constant speed lag behind the raw detections, by less than one frame's step.
    s_lines, s_frames = jsonl_people(smooth / "walk.jsonl")
    ids = check_identities(s_frames, max_err=12.0)
    assert ids == check_identities(frames)
    lag = []
    for t in range(10, N, 2):
        raw_x = dict((p, xy[0]) for p, xy in frames[t])
        for p, xy in s_frames[t]:
            if p in raw_x:
                lag.append((p, xy[0] - raw_x[p]))
    a_lag = [d for p, d in lag if p == ids[0]]   # A walks right at 12 px per kept frame
    b_lag = [d for p, d in lag if p == ids[1]]   # B walks left
    assert a_lag and b_lag
    assert np.median(a_lag) < -0.5 and np.median(b_lag) > 0.5
    assert max(abs(d) for _, d in lag) < 12


def test_interrupted_tracked_video_is_finalised_then_redone(video, tmp_path, capfd):
    out = tmp_path / "out"

    class Interrupting(BlobPredict):
        def __call__(self, image):
            if self.calls == 12:
                raise KeyboardInterrupt
            return super().__call__(image)

    opts = InferOptions(output=out, track=True, stream_jsonl=True, skip_existing=True)
    s = run_inference(Interrupting(), [str(video)], opts, progress=False)
    assert s.interrupted and s.exit_code == 130 and s.processed == 12
    # Finalised, not removed: a playable mp4 and a JSONL with the 12 frames done.
    assert len(read_video(out / "walk_rendered.mp4")[1]) == 12
    assert len((out / "walk.jsonl").read_text().splitlines()) == 12
    assert not [f for f in os.listdir(out) if f.startswith(".") or ".tmp" in f]
    recs = read_manifest(out / "openpaf_manifest.jsonl")
    assert [(r["status"], r["frames"]) for r in recs if "input" in r] == [("interrupted", 12)]
    assert recs[-1]["event"] == "end" and recs[-1]["interrupted"] is True
    # Resume: a tracked stream is redone whole (ids from one tracker pass), then complete.
    again = BlobPredict()
    s = run_inference(again, [str(video)], opts, progress=False)
    assert again.calls == N and s.processed == N and s.skipped_existing == 0
    check_identities(openpose_people(out))
    assert len(read_video(out / "walk_rendered.mp4")[1]) == N
    assert len((out / "walk.jsonl").read_text().splitlines()) == N
    capfd.readouterr()


def test_folder_of_stills_as_a_tracked_sequence(tmp_path, monkeypatch):
    folder = tmp_path / "walk_frames"
    folder.mkdir()
    for t in range(0, N, 3):
        cv2.imwrite(str(folder / f"f{t}.png"), draw(t))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    r = _cli(monkeypatch, [folder, "-o", out, "--track", "--json-format", "openpose,jsonl",
                           "-q"], BlobPredict())
    assert r.exit_code == 2, r.output  # the broken file: one line, the rest processed
    assert [line for line in r.output.splitlines() if line.strip()] == \
        [f"skipped {folder / 'broken.png'}: not an image (cannot decode)"]
    frames = {}
    for t in range(0, N, 3):  # f0, f3, ... in natural order form one sequence
        det = read_openpose_json(out / f"f{t}_keypoints.json")
        frames[t] = [(p.id, p.keypoints[NECK, :2]) for p in det.people]
        assert (out / f"f{t}_rendered.jpg").exists()
    check_identities(frames)
    lines = [json.loads(s) for s in (out / "walk_frames.jsonl").read_text().splitlines()]
    assert [r["name"] for r in lines] == [f"f{t}" for t in range(0, N, 3)]
    # Without --track: no ids.
    r = _cli(monkeypatch, [folder, "-o", tmp_path / "plain", "-q"], BlobPredict())
    det = read_openpose_json(tmp_path / "plain" / "f3_keypoints.json")
    assert len(det.people) == 3 and {p.id for p in det.people} == {-1}
