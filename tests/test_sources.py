"""Input sources: every kind of good and bad input yields a Frame or a one-line InputError."""
import os
import resource
import shutil
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from openpaf.io import images, sources, video
from openpaf.io.sources import (Frame, ImageLoadError, InputError, Skipped, StreamEnd,
                                count_inputs, iter_frames, load_image)

from helpers import write_video

COCO_VAL = Path("/work/shared/data/coco/val")
REAL_JPG = COCO_VAL / "000000000139.jpg"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def huge_png_bytes(w=20000, h=20000) -> bytes:
    """Valid signature + IHDR declaring w x h RGB + a tiny bogus IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _png_chunk(b"IEND", b""))


def good_jpg_bytes() -> bytes:
    if REAL_JPG.exists():
        return REAL_JPG.read_bytes()
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (9, 9), 3)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture()
def cases(tmp_path):
    """All the single-file cases, each in its own file, keyed by case name."""
    d = tmp_path / "cases"
    d.mkdir()
    jpg = good_jpg_bytes()
    f = {}
    f["good"] = d / "good.jpg"
    f["good"].write_bytes(jpg)
    f["gray"] = d / "gray.png"
    cv2.imwrite(str(f["gray"]), np.tile(np.arange(40, dtype=np.uint8), (30, 1)))
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[:, :15] = (255, 0, 0, 255)       # opaque blue (BGR) on the left
    rgba[:, 15:] = (0, 0, 255, 0)         # fully transparent red on the right
    f["rgba"] = d / "rgba.png"
    cv2.imwrite(str(f["rgba"]), rgba)
    deep = np.zeros((10, 12, 3), np.uint16)
    deep[..., 0], deep[..., 1], deep[..., 2] = 65535, 257 * 100, 0
    f["deep"] = d / "deep16.png"
    cv2.imwrite(str(f["deep"]), deep)
    f["float"] = d / "float.tiff"
    cv2.imwrite(str(f["float"]), np.full((8, 9, 3), (-0.5, 0.5, 1.0), np.float32))
    f["float255"] = d / "float255.tiff"
    cv2.imwrite(str(f["float255"]), np.full((8, 9, 3), (10.0, 128.0, 300.0), np.float32))
    f["empty"] = d / "empty.jpg"
    f["empty"].write_bytes(b"")
    f["truncated"] = d / "truncated.jpg"
    f["truncated"].write_bytes(jpg[:len(jpg) // 2])
    f["text"] = d / "text.jpg"
    f["text"].write_text("this is not a picture\n")
    f["random"] = d / "random.png"
    f["random"].write_bytes(np.random.default_rng(1).bytes(2048))
    f["tiny"] = d / "tiny.png"
    cv2.imwrite(str(f["tiny"]), np.array([[[1, 2, 3]]], np.uint8))
    f["huge"] = d / "huge.png"
    f["huge"].write_bytes(huge_png_bytes())
    png = cv2.imencode(".png", np.random.default_rng(2).integers(
        0, 255, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    f["truncated_png"] = d / "cut.png"
    f["truncated_png"].write_bytes(png[:len(png) // 2])
    f["unicode"] = d / "ünïcødé 写真.jpg"
    f["unicode"].write_bytes(jpg)
    return f


def _one(spec):
    items = list(iter_frames([str(spec)]))
    assert len(items) == 1, items
    return items[0]


def _check_frame(item):
    assert isinstance(item, Frame), item
    assert item.image.ndim == 3 and item.image.shape[2] == 3
    assert item.image.dtype == np.uint8 and item.image.flags["C_CONTIGUOUS"]
    return item


def _check_error(item, *words):
    assert isinstance(item, InputError), item
    assert "\n" not in item.reason and item.reason.strip() == item.reason and item.reason
    for w in words:
        assert w in item.reason, item.reason
    return item


def test_good_images(cases):
    f = _check_frame(_one(cases["good"]))
    assert f.name == "good" and f.time is None and f.video is None and f.index == 0
    assert f.source == str(cases["good"])
    if REAL_JPG.exists():
        assert f.image.shape == (426, 640, 3)
    u = _check_frame(_one(cases["unicode"]))
    assert u.name == "ünïcødé 写真"
    np.testing.assert_array_equal(u.image, f.image)
    tiny = _check_frame(_one(cases["tiny"]))
    assert tiny.image.shape == (1, 1, 3) and tiny.image[0, 0].tolist() == [1, 2, 3]


def test_conversions(cases):
    gray = load_image(cases["gray"])
    assert gray.shape == (30, 40, 3)
    assert (gray[..., 0] == gray[..., 2]).all() and gray[0, 39, 1] == 39
    rgba = load_image(cases["rgba"])  # alpha composited on white
    assert rgba.shape == (20, 30, 3)
    assert rgba[0, 0].tolist() == [255, 0, 0]
    assert rgba[0, 29].tolist() == [255, 255, 255]
    deep = load_image(cases["deep"])  # 16-bit scaled by 1/257
    assert deep.dtype == np.uint8 and deep[0, 0].tolist() == [255, 100, 0]
    fl = load_image(cases["float"])  # 0..1 floats, clipped
    assert fl.dtype == np.uint8 and fl[0, 0].tolist() == [0, 128, 255]
    fl = load_image(cases["float255"])  # max > 1: taken as 0..255, clipped
    assert fl[0, 0].tolist() == [10, 128, 255]


@pytest.mark.parametrize("case, words", [
    ("empty", ["empty file"]),
    ("truncated", ["truncated JPEG"]),
    ("text", ["not an image (cannot decode)"]),
    ("random", ["not an image (cannot decode)"]),
    ("huge", ["too large", "20000x20000"]),
    ("truncated_png", ["cannot decode"]),
])
def test_bad_images(cases, case, words, capfd):
    _check_error(_one(cases[case]), *words)
    with pytest.raises(ImageLoadError):
        load_image(cases[case])
    assert capfd.readouterr().err == ""  # no libpng/libjpeg/OpenCV chatter


def test_huge_header_is_cheap(cases):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(cases["huge"])
    assert time.perf_counter() - t0 < 1.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100


def test_header_sizes():
    assert images.header_size(huge_png_bytes(123, 45)) == (123, 45)
    jpg = cv2.imencode(".jpg", np.zeros((37, 53, 3), np.uint8))[1].tobytes()
    assert images.header_size(jpg) == (53, 37)
    bmp = cv2.imencode(".bmp", np.zeros((7, 11, 3), np.uint8))[1].tobytes()
    assert images.header_size(bmp) == (11, 7)
    assert images.header_size(b"junk") is None


def test_missing_inputs(tmp_path):
    _check_error(_one(tmp_path / "nope.jpg"), "no such file")
    _check_error(_one(tmp_path / "no_folder"), "no such file")
    _check_error(_one(str(tmp_path / "*.png")), "no images or videos match")
    (tmp_path / "empty_dir").mkdir()
    _check_error(_one(tmp_path / "empty_dir"), "no images in folder")
    _check_error(_one("99"), "cannot open webcam 99")


def test_folder_order_and_names(tmp_path, cases):
    d = tmp_path / "seq"
    d.mkdir()
    for name in ["img10.jpg", "img2.JPG", "img1.png", "b.jpg", "b.png", "notes.txt",
                 "._b.jpg"]:  # hidden AppleDouble file: skipped
        shutil.copy(cases["tiny"] if name.endswith("png") else cases["good"], d / name)
    (d / "sub").mkdir()
    shutil.copy(cases["tiny"], d / "sub" / "deep.png")
    names = [f.name for f in iter_frames([str(d)])]
    assert names == ["b", "b_2", "img1", "img2", "img10"]
    assert names == [f.name for f in iter_frames([str(d)])]  # deterministic
    assert "deep" in [f.name for f in iter_frames([str(d)], recursive=True)]
    globbed = [f.name for f in iter_frames([str(d / "img*")])]
    assert globbed == ["img1", "img2", "img10"]
    assert [f.name for f in iter_frames([str(d)], every=2)] == ["b", "img1", "img10"]
    assert [f.name for f in iter_frames([str(d)], max_frames=2)] == ["b", "b_2"]
    assert count_inputs([str(d)]) == 5
    assert count_inputs([str(d), str(tmp_path / "missing")], max_frames=2) == 3


def test_folder_with_bad_files_keeps_going(cases):
    items = list(iter_frames([str(cases["good"].parent)]))
    frames = [i for i in items if isinstance(i, Frame)]
    errors = [i for i in items if isinstance(i, InputError)]
    assert {f.name for f in frames} == {"good", "gray", "rgba", "deep16", "float",
                                        "float255", "tiny", "ünïcødé 写真"}
    assert len(errors) == 6
    for e in errors:
        _check_error(e)


def test_skip_callback_avoids_decoding(cases, monkeypatch):
    seen = []
    monkeypatch.setattr(sources, "load_image", lambda p: (_ for _ in ()).throw(AssertionError))
    out = list(iter_frames([str(cases["good"])], skip=lambda n, path: seen.append(n) or True))
    assert out == [] and seen == ["good"]


def test_video(tmp_path):
    path = write_video(tmp_path / "clip.mp4", n=6, fps=10.0)
    frames = list(iter_frames([str(path)]))
    assert [f.name for f in frames] == [f"clip_{i:06d}" for i in range(6)]
    for i, f in enumerate(frames):
        _check_frame(f)
        assert f.image.shape == (48, 64, 3) and f.index == i and f.video == "clip"
        assert f.fps == pytest.approx(10.0) and f.time == pytest.approx(i / 10.0, abs=1e-3)
    assert frames[5].image.mean() > frames[0].image.mean()
    assert [f.index for f in iter_frames([str(path)], every=2)] == [0, 2, 4]
    assert len(list(iter_frames([str(path)], max_frames=4))) == 4
    assert count_inputs([str(path)]) == 6 and count_inputs([str(path)], every=4) == 2


def test_bad_video_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.avi").write_bytes(np.random.default_rng(3).bytes(4096))
    _check_error(_one(tmp_path / "empty.mp4"), "empty file")
    _check_error(_one(tmp_path / "junk.avi"), "cannot open")


class FakeCapture:
    """A VideoCapture stand-in whose frames in ``broken`` fail to decode."""

    def __init__(self, n, broken=(), declared=None):
        self.n, self.broken, self.i = n, set(broken), 0
        self.declared = n if declared is None else declared
        self.released = False

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 25.0, cv2.CAP_PROP_FRAME_COUNT: self.declared,
                cv2.CAP_PROP_POS_MSEC: -1.0}.get(prop, 0.0)

    def read(self):
        i, self.i = self.i, self.i + 1
        if i >= self.n or i in self.broken:
            return False, None
        return True, np.full((4, 5, 3), i, np.uint8)

    def grab(self):
        return self.read()[0]

    def release(self):
        self.released = True


def test_broken_video_frames_are_reported_and_skipped():
    cap = FakeCapture(10, broken={3, 4})
    items = list(video.video_frames(cap, "v.mp4", "v", 1, live=False, limit=None))
    frames = [i.index for i in items if isinstance(i, Frame)]
    errors = [i for i in items if isinstance(i, InputError)]
    assert frames == [0, 1, 2, 5, 6, 7, 8, 9]
    assert len(errors) == 1 and errors[0].reason == "frame 3-4: cannot decode, skipped"
    assert items[3] is errors[0]  # reported in order
    assert cap.released
    assert items[0].time == pytest.approx(0.0) and items[4].time == pytest.approx(5 / 25)


def test_video_gives_up_at_the_declared_length():
    cap = FakeCapture(3, declared=100)  # stops decoding after frame 2 of 100 declared
    items = list(video.video_frames(cap, "v.mp4", "v", 1, live=False, limit=None))
    assert [i.index for i in items if isinstance(i, Frame)] == [0, 1, 2]
    (err,) = [i for i in items if isinstance(i, InputError)]
    _check_error(err, "frames 3-99 of 100: cannot decode")
    assert cap.i <= 100 + 1
    # A slightly over-stated frame count is not an error.
    items = list(video.video_frames(FakeCapture(3, declared=5), "v", "v", 1, live=False,
                                       limit=None))
    assert all(isinstance(i, Frame) for i in items) and len(items) == 3


def test_unchanged_source_files(cases):
    before = {k: p.read_bytes() for k, p in cases.items()}
    list(iter_frames([str(cases["good"].parent)]))
    assert before == {k: p.read_bytes() for k, p in cases.items()}
    assert sorted(os.listdir(cases["good"].parent)) == sorted(p.name for p in cases.values())


# ---------------------------------------------------------------------------------------
# Shards, sequences and stream events


def _stills(folder, names, src):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src, folder / n)


def test_shards_partition_units_with_the_same_names(tmp_path, cases):
    a, b = tmp_path / "a", tmp_path / "b"
    _stills(a, [f"x{i}.png" for i in range(7)], cases["tiny"])
    _stills(b, ["x1.png", "x2.png", "y.png"], cases["tiny"])  # x1 -> x1_2 ...
    video = write_video(tmp_path / "x3.mp4", n=3)            # stem clashes too: x3_2
    specs = [str(a), str(b), str(video), str(tmp_path / "missing.png")]
    whole = [(type(i).__name__, getattr(i, "name", i.source)) for i in iter_frames(specs)]
    for sequences in (False, True):
        seen = []
        for i in range(3):
            part = [(type(x).__name__, getattr(x, "name", x.source))
                    for x in iter_frames(specs, shard=(i, 3), sequences=sequences)]
            assert count_inputs(specs, shard=(i, 3), sequences=sequences) == len(part)
            seen += part
        assert sorted(seen) == sorted(whole)  # each item in exactly one shard, same names
    assert ("Frame", "x3_2_000000") in whole and ("Frame", "x1_2") in whole
    # With sequences a folder is one unit: all its images land in the same shard.
    for i in range(3):
        folders = {Path(f.source).parent.name for f in iter_frames(specs, shard=(i, 3),
                                                                     sequences=True)
                   if isinstance(f, Frame) and f.video is None}
        for name in folders:
            n = len(os.listdir(tmp_path / name))
            assert len([f for f in iter_frames(specs, shard=(i, 3), sequences=True)
                        if isinstance(f, Frame) and Path(f.source).parent.name == name]) == n
    with pytest.raises(ValueError):
        list(iter_frames(specs, shard=(3, 3)))
    assert sources.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1/0", "-1/3"):
        with pytest.raises(ValueError):
            sources.parse_shard(bad)


def test_sequences_and_events(tmp_path, cases):
    seq = tmp_path / "seq"
    _stills(seq, ["f1.png", "f2.png", "f10.png"], cases["tiny"])
    (seq / "bad.png").write_bytes(b"nope")
    video = write_video(tmp_path / "clip.mp4", n=4)
    lone = tmp_path / "lone"
    _stills(lone, ["p.png", "q.png"], cases["tiny"])
    # A run of image arguments from one folder (a shell-expanded glob) is one sequence.
    specs = [str(seq), str(video), str(lone / "p.png"), str(lone / "q.png")]
    items = list(iter_frames(specs, sequences=True, events=True,
                             skip=lambda n, path: pytest.fail("stills in sequences never skip")))
    kinds = [(type(i).__name__, getattr(i, "name", None)) for i in items]
    assert kinds == [("InputError", None), ("Frame", "f1"), ("Frame", "f2"),
                     ("Frame", "f10"), ("StreamEnd", "seq"),
                     *[("Frame", f"clip_{i:06d}") for i in range(4)], ("StreamEnd", "clip"),
                     ("Frame", "p"), ("Frame", "q"), ("StreamEnd", "lone")]
    ends = [i for i in items if isinstance(i, StreamEnd)]
    assert [(e.kind, e.frames, e.complete) for e in ends] == [
        ("sequence", 3, True), ("video", 4, True), ("sequence", 2, True)]
    assert ends[0].source == str(seq) and ends[2].source.endswith("q.png (2 files)")
    frames = [i for i in items if isinstance(i, Frame)]
    assert {f.sequence for f in frames} == {"seq", "clip", "lone"}
    assert all(f.stream_source == e.source for f in frames for e in ends
               if e.name == f.sequence)
    # Without sequences: stills are standalone; max_frames cuts a stream (not complete).
    items = list(iter_frames([str(video)], events=True, max_frames=2))
    assert isinstance(items[-1], StreamEnd) and not items[-1].complete
    assert items[-1].frames == 2
    plain = list(iter_frames([str(seq)], events=True))
    assert not any(isinstance(i, StreamEnd) for i in plain)
    assert all(i.sequence is None for i in plain if isinstance(i, Frame))
    # Skip callbacks: markers instead of decoding.
    items = list(iter_frames([str(seq), str(video)], events=True, skip=lambda n, path: n == "f2",
                             skip_stream=lambda name, src, files: name == "clip"))
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [(s.kind, s.name, s.frames) for s in skipped] == [("image", "f2", 1),
                                                              ("video", "clip", None)]
    assert not any(isinstance(i, Frame) and i.video for i in items)
    items = list(iter_frames([str(seq)], events=True, sequences=True,
                             skip_stream=lambda name, src, files: True))
    assert [(type(i).__name__, i.frames) for i in items] == [("Skipped", 4)]  # (bad.png too)


# ---------------------------------------------------------------------------------------
# Hardening (issue 15)


def test_glob_does_not_follow_folder_links_and_reads_each_file_once(tmp_path):
    """Defect 1: ``dir/**/*.jpg`` with ``dir/self -> .`` read one image 41 times."""
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    jpg = good_jpg_bytes()
    (d / "a.jpg").write_bytes(jpg)
    (d / "sub" / "b.jpg").write_bytes(jpg)
    os.symlink(".", d / "self")                      # a loop
    os.symlink(d / "a.jpg", d / "sub" / "again.jpg")  # the same file by another name
    specs = [f"{d}/**/*.jpg", str(d / "a.jpg")]
    frames = [f for f in iter_frames(specs) if isinstance(f, Frame)]
    assert sorted(Path(f.source).relative_to(d).as_posix() for f in frames) \
        == ["a.jpg", "sub/b.jpg"]
    assert count_inputs(specs) == 2


def test_a_damaged_stretch_does_not_end_a_video(tmp_path):
    """Defect 3: a 40-frame clip with its middle bytes overwritten gave "cannot decode
    frames 13-39; stopped", yet the frames after the damage decode: read on to the
    declared length and name the real gap (frame numbers from the timestamps)."""
    path = write_video(tmp_path / "clip.mp4", n=40)
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 3:n // 2] = bytes(n // 2 - n // 3)
    path.write_bytes(bytes(data))
    items = list(iter_frames([str(path)]))
    frames = [i.index for i in items if isinstance(i, Frame)]
    errors = [i for i in items if isinstance(i, InputError)]
    assert frames[-1] == 39 and len(frames) >= 25, frames
    lost = sorted(set(range(40)) - set(frames))
    assert lost and len(errors) == 1, (frames, errors)
    _check_error(errors[0], f"frame {lost[0]}-{lost[-1]}: cannot decode, skipped")
    assert lost == list(range(lost[0], lost[-1] + 1))
    t = {i.index: i.time for i in items if isinstance(i, Frame)}
    assert t[39] == pytest.approx(39 / 10.0, abs=1e-3)  # numbered as the timestamps say


def test_reserved_and_huge_numeric_names(tmp_path):
    """A stream never takes a run-level file's stem; a 20-digit spec is not a webcam."""
    d = tmp_path / "in"
    d.mkdir()
    for stem in ("openpaf_manifest", "openpaf_images.shard0of2", "plain"):
        (d / f"{stem}.jpg").write_bytes(good_jpg_bytes())
    names = sorted(f.name for f in iter_frames([str(d)]) if isinstance(f, Frame))
    assert names == ["openpaf_images.shard0of2_2", "openpaf_manifest_2", "plain"]
    (err,) = list(iter_frames(["1" * 20]))
    assert isinstance(err, InputError) and "webcam index" in err.reason


def test_gifs_and_videos_in_a_folder_are_read_like_given_directly(tmp_path):
    """A GIF or video inside a folder was skipped without a word; a GIF given directly
    was processed."""
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a.jpg").write_bytes(good_jpg_bytes())
    (d / "b.gif").write_bytes(cv2.imencode(".gif", np.zeros((20, 30, 3), np.uint8))[1])
    write_video(d / "c.mp4", n=3)
    items = list(iter_frames([str(d)]))
    assert [(i.name, i.video) for i in items] == [("a", None), ("b", None)] + [
        (f"c_{k:06d}", "c") for k in range(3)]
    assert items[1].image.shape == (20, 30, 3)
    assert count_inputs([str(d)]) == 5
