"""A live source through the whole ``openpaf infer`` pipeline: FPS and latency with and
without real-time mode, against a local MJPEG test stream (``mjpeg_server``) that sends
frames faster than the network can take them.

Per mode, a fresh server on 127.0.0.1 sends ``fps * seconds`` photos and closes the
stream; ``runner.run_inference`` reads it (no files written). Reported: frames sent and
processed, dropped, FPS (processed / run time), latency capture -> people p50/p90 (ms,
capture = when openpaf read the frame), and ``end_lag_s``: how long after the camera's
last frame the run finished (how far behind live the output was at the end).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from ..io.stream import LiveOptions
from ..runner import InferOptions, run_inference
from ..weights import default_weights_path
from .machine import machine_info, torch_info
from .pipeline import BenchmarkOptions, build_predictor, default_images_dir


def benchmark_live(predict: Callable, images, *, fps: float = 30.0, seconds: float = 10.0,
                   frame_height: int = 240, modes=(True, False)) -> dict:
    """One run per real-time mode in ``modes`` (see module doc)."""
    from .mjpeg_server import MjpegServer, photo_frames  # (also run as a script)
    frames = photo_frames(images, 8, frame_height)
    predict(frames[0])  # warm-up (lazy initialisation is not a live latency)
    runs = []
    for realtime in modes:
        with MjpegServer(frames, fps=fps, limit=int(round(fps * seconds))) as server:
            options = InferOptions(write_json=False, write_images=False, write_video=False,
                                   manifest=False, realtime=realtime,
                                   live=LiveOptions(reconnect=0))
            summary = run_inference(predict, [server.url], options, progress=False)
            end = time.time()
        lat = summary.latency() or {}
        runs.append({"realtime": realtime, "sent": server.served,
                     "processed": summary.processed, "dropped": summary.dropped,
                     "fps": round(summary.processed / max(summary.seconds, 1e-9), 2),
                     "latency_ms_p50": lat.get("p50"), "latency_ms_p90": lat.get("p90"),
                     "end_lag_s": round(end - (server.last_sent or end), 2),
                     "seconds": round(summary.seconds, 2)})
    return {"source": {"fps": fps, "seconds": seconds, "frame_height": frame_height,
                       "images": str(images)}, "runs": runs}


def run_live_benchmark(options: BenchmarkOptions, images=None, *, fps: float = 30.0,
                       seconds: float = 10.0) -> dict:
    """``benchmark_live`` for the predictor ``options`` describe (default weights when
    none are given), on photos of ``images`` (default: the shared coco/val)."""
    if options.weights is None:
        options = dataclasses.replace(options, weights=str(default_weights_path()))
    predictor, _ = build_predictor(options)
    report = benchmark_live(predictor, Path(images or default_images_dir()), fps=fps,
                            seconds=seconds)
    report.update(machine=machine_info("cpu"), torch=torch_info(),
                  settings={"weights": options.weights, "height": predictor.height,
                            "precision": predictor.precision})
    return report


def format_live(report: dict) -> str:
    src = report["source"]
    lines = [f"live MJPEG source: {src['fps']:g} fps for {src['seconds']:g} s "
             f"({src['frame_height']} px high)"]
    for r in report["runs"]:
        mode = "--realtime   " if r["realtime"] else "--no-realtime"
        lat = ("-" if r["latency_ms_p50"] is None
               else f"{r['latency_ms_p50']:.0f}/{r['latency_ms_p90']:.0f} ms")
        lines.append(f"{mode}: {r['processed']}/{r['sent']} frames processed, "
                     f"{r['dropped']} dropped, {r['fps']:.2f} FPS, latency p50/p90 {lat}, "
                     f"{r['end_lag_s']:.1f} s behind live at the end")
    return "\n".join(lines)


__all__ = ["benchmark_live", "run_live_benchmark", "format_live"]
