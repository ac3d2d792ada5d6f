"""A video through the whole ``openpaf infer`` pipeline: FPS with and without the
predict-ahead thread, against the per-stage times.

``benchmark_video(predictor, clip)`` times, on the same clip:

* each stage alone, per frame: ``read`` (video decoding), ``predict`` (preprocess +
  network + decode), ``outputs`` (drawing, the mp4 frame, the OpenPose JSON);
* the whole run (``runner.run_inference``) with ``overlap`` off (stages one after the
  other: FPS ~ 1 / sum) and on (decoding, network and outputs of consecutive frames in
  three threads: FPS -> 1 / slowest stage when the cores allow).

``make_clip`` builds the clip from still photos (e.g. the shared COCO images).
"""
from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2

from ..io.images import load_image
from ..io.render import VideoSink, render
from ..io.writers import write_openpose_json
from ..runner import InferOptions, run_inference
from ..weights import default_weights_path
from .machine import machine_info, torch_info
from .pipeline import BenchmarkOptions, build_predictor, default_images_dir, list_images

STAGES = ("read", "predict", "outputs")


def make_clip(photos: Sequence[Path], path: Path, *, frames: int = 24,
              size: tuple[int, int] = (640, 480), fps: float = 15.0) -> Path:
    """An mp4 of ``frames`` frames cycling through ``photos`` resized to ``size`` (w, h)."""
    sink = VideoSink(path, fps=fps)
    images = [cv2.resize(load_image(p), size, interpolation=cv2.INTER_AREA) for p in photos]
    for i in range(frames):
        sink.write(images[i % len(images)])
    sink.close()
    return path


def _read_frames(clip: Path) -> tuple[list, list[float]]:
    cap, frames, ms = cv2.VideoCapture(str(clip)), [], []
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        ms.append((time.perf_counter() - t0) * 1e3)
        frames.append(frame)
    cap.release()
    return frames, ms


def stage_times(predictor, clip: Path, out: Path) -> dict[str, float]:
    """Median ms per frame of each stage, each run alone."""
    frames, read_ms = _read_frames(clip)
    predict_ms, output_ms = [], []
    sink = VideoSink(out / "stages.mp4", fps=15.0)
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        det = predictor(frame)
        t1 = time.perf_counter()
        sink.write(render(frame, det))
        write_openpose_json(out / f"f{i:06d}_keypoints.json", det)
        t2 = time.perf_counter()
        predict_ms.append((t1 - t0) * 1e3)
        output_ms.append((t2 - t1) * 1e3)
    sink.close()
    return {name: round(statistics.median(v), 2)
            for name, v in zip(STAGES, (read_ms, predict_ms, output_ms))}


def benchmark_video(predictor, clip: Path, *, repeats: int = 2) -> dict:
    """Stage times and whole-run FPS with ``overlap`` off and on (median of ``repeats``,
    interleaved); see the module doc."""
    with tempfile.TemporaryDirectory(prefix="openpaf-video-") as tmp:
        tmp = Path(tmp)
        # On a worker thread, as run_inference predicts: torch on the main thread ran
        # 3-6x slower on some machines, which made the stages look slower than the run.
        with ThreadPoolExecutor(1) as worker:
            worker.submit(predictor, _read_frames(clip)[0][0]).result()       # warm-up
            stages = worker.submit(stage_times, predictor, clip, tmp).result()
        fps: dict[str, list[float]] = {"serial": [], "overlap": []}
        for r in range(repeats):
            for mode in fps:
                s = run_inference(predictor, [str(clip)], InferOptions(
                    output=tmp / f"{mode}{r}", overlap=mode == "overlap"), progress=False)
                fps[mode].append(s.processed / s.seconds)
    bound = 1e3 / max(stages.values())
    serial_bound = 1e3 / sum(stages.values())
    result = {name: round(statistics.median(v), 2) for name, v in fps.items()}
    return {"machine": machine_info("cpu"), "torch": torch_info(), "clip": str(clip),
            "stages_ms": stages, "fps": result,
            "fps_bound_slowest_stage": round(bound, 2),
            "fps_bound_sum_of_stages": round(serial_bound, 2),
            "overlap_vs_bound": round(result["overlap"] / bound, 3)}


def run_video_benchmark(options: BenchmarkOptions, clip: str | Path | None = None,
                        images: str | Path | None = None, *, repeats: int = 2) -> dict:
    """``benchmark_video`` for the predictor ``options`` describe, on ``clip`` or on a
    clip made from the first 8 photos of ``images`` (default: the shared coco/val).
    Without ``options.weights``: the default weights (not a random ``options.model``)."""
    if options.weights is None:
        options = dataclasses.replace(options, weights=str(default_weights_path()))
    predictor, _ = build_predictor(options)
    with tempfile.TemporaryDirectory(prefix="openpaf-clip-") as tmp:
        if clip is None:
            photos = list_images(images or default_images_dir(), 8)
            clip = make_clip(photos, Path(tmp) / "clip.mp4")
        report = benchmark_video(predictor, Path(clip), repeats=repeats)
    report["settings"] = {"weights": options.weights or options.model,
                          "height": predictor.height, "flip": predictor.flip,
                          "precision": str(predictor.precision_choice)}
    return report


def format_video(report: dict) -> str:
    s, f = report["stages_ms"], report["fps"]
    return "\n".join([
        f"precision {report.get('settings', {}).get('precision')}",
        "stages alone, ms/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in s.items()),
        f"FPS serial {f['serial']:.2f} (1/sum of stages: "
        f"{report['fps_bound_sum_of_stages']:.2f})",
        f"FPS overlap {f['overlap']:.2f} (1/slowest stage: "
        f"{report['fps_bound_slowest_stage']:.2f}; {report['overlap_vs_bound']:.0%} of it)"])
