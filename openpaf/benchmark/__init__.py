"""Speed benchmarks (``openpaf benchmark``), one module per kind of measurement.

    pipeline.py   image file -> OpenPose JSON: per-stage ms, FPS, GFLOP/s (``--fps``)
    video.py      a video through the whole infer pipeline: FPS with/without overlap
    runtimes.py   one model's weights under several runtimes and input heights, in one
                  interleaved run (torch fp32/bf16, ONNX Runtime, OpenVINO, OpenVINO IR)
    decoder.py    the decoder alone on synthetic crowds and oracle maps
    saved_maps.py the decoder on a real network's maps, saved once: COCO AP and ms
    cpu_paths.py  one forward pass under several CPU execution paths (``--cpu-paths``)
    machine.py    CPU/torch description, timing summaries, JSON reports

Timings are wall-clock; on a shared machine they are noisy: compare figures only within
one run (every report records the machine, its load and the settings).
"""
from .cpu_paths import CPU_PATHS, compare_cpu_paths, format_cpu_paths, lively_init
from .decoder import benchmark_crowds, benchmark_oracle, crowd_maps, synthetic_crowd
from .machine import machine_info, summary_ms, torch_info, write_json
from .saved_maps import benchmark_saved_maps, format_saved_maps, load_maps, save_maps
from .video import benchmark_video, format_video, make_clip, run_video_benchmark
from .live import benchmark_live, format_live, run_live_benchmark
from .runtimes import BENCH_CPU_PATHS, RUNTIMES, compare_runtimes, default_ir, format_runtimes
from .pipeline import (IMAGE_EXTENSIONS, REPORT_KEYS, STAGES, BenchmarkOptions,
                       benchmark_pipeline, build_predictor, default_annotations,
                       default_images_dir, format_report, list_images, run_benchmark,
                       synthetic_images)

__all__ = ["benchmark_live", "format_live", "run_live_benchmark", "benchmark_video", "format_video", "make_clip", "run_video_benchmark", "BENCH_CPU_PATHS", "RUNTIMES", "compare_runtimes", "default_ir", "format_runtimes", "CPU_PATHS", "IMAGE_EXTENSIONS", "REPORT_KEYS", "STAGES", "BenchmarkOptions",
           "benchmark_crowds", "benchmark_saved_maps", "format_saved_maps", "load_maps", "save_maps", "benchmark_oracle", "benchmark_pipeline", "build_predictor",
           "compare_cpu_paths", "crowd_maps", "default_annotations", "default_images_dir",
           "format_cpu_paths", "format_report", "list_images", "lively_init",
           "machine_info", "run_benchmark", "summary_ms", "synthetic_crowd",
           "synthetic_images", "torch_info", "write_json"]
