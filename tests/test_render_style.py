"""Drawing options (``io.render.RenderStyle``) on a synthetic person, and the rendered
video writer (``io.video_writer``): H.264 read back, even sizes, mp4v fallback."""
import cv2
import numpy as np
import pytest

from openpaf.io import video_writer
from openpaf.io.render import RenderStyle, VideoSink, render
from openpaf.io.video_writer import H264Sink, open_video_writer
from openpaf.structures import Detections, Person

from conftest import person

W, H = 200, 240


def _scene(track_id: int = -1):
    kps = person(100, 130, size=0.9)
    kps[:, 2] = 0.9
    det = Detections((W, H), [Person(kps, 0.9, id=track_id)])
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return noise, det


def _skeleton(det, **style) -> np.ndarray:
    """Mask of the pixels a skeleton covers (drawn on black)."""
    return render(np.zeros((H, W, 3), np.uint8), det,
                  style=RenderStyle(background="black", **style)).any(axis=2)


def test_defaults_draw_as_before():
    image, det = _scene()
    assert np.array_equal(render(image, det), render(image, det, style=RenderStyle()))


def test_line_width_and_point_radius_grow_the_skeleton():
    _, det = _scene()
    thin, thick = _skeleton(det, line_width=1), _skeleton(det, line_width=6)
    assert thick.sum() > 2 * thin.sum() and (thin & ~thick).sum() < 0.05 * thin.sum()
    small, big = (_skeleton(det, line_width=1, point_radius=r) for r in (1, 6))
    assert big.sum() > small.sum()
    x, y = (int(v) for v in np.rint(det.people[0].keypoints[0, :2]))  # the nose dot
    assert big[y - 5:y + 6, x - 5:x + 6].sum() > small[y - 5:y + 6, x - 5:x + 6].sum() + 40


def test_background_black_and_white_leave_only_skeleton_pixels():
    image, det = _scene()
    black = render(image, det, style=RenderStyle(background="black"))
    assert np.array_equal(black, render(np.zeros_like(image), det))  # no image pixel left
    mask = black.any(axis=2)
    assert 0 < mask.sum() < 0.3 * mask.size
    white = render(image, det, style=RenderStyle(background="white"))
    assert (white[~_skeleton(det)] == 255).all() and (white[mask] != 255).any()


def test_draw_ids_writes_the_track_id_above_the_head():
    image, det = _scene(track_id=7)
    plain = render(image, det)
    labelled = render(image, det, style=RenderStyle(draw_ids=True))
    changed = np.argwhere((plain != labelled).any(axis=2))
    head_y = det.people[0].keypoints[[0, 14, 15, 16, 17], 1].min()
    assert len(changed) > 20 and changed[:, 0].max() < head_y
    untracked_image, untracked = _scene(track_id=-1)
    assert np.array_equal(render(untracked_image, untracked),
                          render(untracked_image, untracked,
                                 style=RenderStyle(draw_ids=True)))


def test_alpha_blends_skeleton_pixels_only():
    image, det = _scene()
    opaque = render(image, det, style=RenderStyle(line_width=4)).astype(int)
    half = render(image, det, style=RenderStyle(line_width=4, alpha=0.5)).astype(int)
    drawn = (opaque != image).any(axis=2)
    assert np.array_equal(half[~drawn], image[~drawn])
    expected = (opaque[drawn] + image[drawn].astype(int)) / 2
    assert np.abs(half[drawn] - expected).max() <= 1
    with pytest.raises(ValueError, match="alpha"):
        RenderStyle(alpha=0)


def _colour_frame(i: int, size=(65, 47)) -> np.ndarray:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:, : (i * 7) % size[0]] = (0, 0, 255)
    return img


def test_h264_writer_reads_back_as_h264_yuv420p_even_size(tmp_path):
    av = pytest.importorskip("av", reason="PyAV writes H.264")
    if not video_writer.h264_available():
        pytest.skip("this PyAV has no libx264")
    sink = open_video_writer(tmp_path / "v.mp4", fps=12.5)
    assert isinstance(sink, H264Sink)
    for i in range(10):
        sink.write(_colour_frame(i))
    assert sink.close() == tmp_path / "v.mp4"
    with av.open(str(tmp_path / "v.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (s.width, s.height) == (66, 48) and float(s.average_rate) == 12.5
        assert sum(1 for _ in c.decode(video=0)) == 10
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))  # plays in OpenCV too
    assert cap.read()[0]
    cap.release()


def test_h264_frames_with_times_play_at_those_times(tmp_path):
    av = pytest.importorskip("av", reason="PyAV writes H.264")
    sink = H264Sink(tmp_path / "t.mp4", fps=30)
    for i, t in enumerate([10.0, 10.5, 10.6, 12.0]):
        sink.write(_colour_frame(i, (64, 48)), t)
    sink.close()
    with av.open(str(tmp_path / "t.mp4")) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert times == pytest.approx([0.0, 0.5, 0.6, 2.0], abs=0.002)


def test_mp4v_fallback_with_one_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(video_writer, "h264_available", lambda: False)
    monkeypatch.setattr(video_writer, "_warned", False)
    sinks = [open_video_writer(tmp_path / f"{i}.mp4", fps=10) for i in range(2)]
    assert all(isinstance(s, VideoSink) and s.fourcc == "mp4v" for s in sinks)
    assert capsys.readouterr().err.count("warning: PyAV with libx264 not found") == 1


def test_cli_drawing_options_reach_the_rendered_image(monkeypatch, tmp_path):
    from test_live import FakePredict, _cli
    image, _ = _scene()
    cv2.imwrite(str(tmp_path / "noise.png"), image)
    args = [tmp_path / "noise.png", "-o", tmp_path / "out", "--no-json"]
    for name, extra in (("plain", []), ("black", ["--background", "black", "--line-width",
                                                  "3", "--alpha", "0.8"])):
        result = _cli(monkeypatch, args[:-2] + [tmp_path / name, "--no-json"] + extra,
                      FakePredict())
        assert result.exit_code == 0, result.output
    plain = cv2.imread(str(tmp_path / "plain" / "noise_rendered.jpg"))
    black = cv2.imread(str(tmp_path / "black" / "noise_rendered.jpg"))
    assert plain.mean() > 100 and (black.max(axis=2) < 40).mean() > 0.8
