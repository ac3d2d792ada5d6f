"""The whole pipeline, image file to OpenPose JSON: per-stage timings and FPS.

``run_benchmark(BenchmarkOptions(...))`` returns a report dict (``REPORT_KEYS``):

* ``stages_ms``: median and p90 milliseconds per image of each pipeline stage
  (``STAGES``: image decoding, preprocessing, network, map resizing/averaging, peaks,
  limbs, assembly, writing OpenPose JSON), measured on real images (``images``) or on
  synthetic JPEGs; ``fps`` is images per second end to end (all stages, wall clock).
* ``network_gflops`` (per image, from ``count_flops`` at the actual padded input sizes)
  and ``gflop_per_s`` (FLOPs / network time).
* ``decode_by_people``: the decoder alone on maps rendered from synthetic crowds of 1, 5,
  10, 20 ... people with the training target code (``render_targets``).

With ``network=False`` only the decoder is timed: ``stages_ms`` then holds the decode
stages on oracle maps of a COCO annotation file (``ann``), the other stages ``None``.

Timings are wall-clock; on a shared machine they are noisy: compare figures only within
one run (the report records machine and settings).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

import openpaf

from ..decode import get_params
from ..evaluate import ORACLE_HEIGHT
from ..io.sources import ImageLoadError, load_image
from ..io.paths import IMAGE_EXTENSIONS
from ..io.writers import write_openpose_json
from ..model import count_flops, create_model, get_pretrained_cfg
from ..predict import Predictor
from ..preprocess import geometry
from .decoder import benchmark_crowds, benchmark_oracle
from .machine import machine_info, summary_ms, torch_info

STAGES: tuple[str, ...] = ("decode_image", "preprocess", "network", "resize", "peaks",
                           "limbs", "assembly", "write")
REPORT_KEYS: tuple[str, ...] = ("machine", "torch", "settings", "fps", "stages_ms",
                                "network_gflops", "gflop_per_s", "decode_by_people")


@dataclass
class BenchmarkOptions:
    """What ``run_benchmark`` measures.

    model: registered model name, randomly initialised (enough for network timing);
        None with no ``weights``: the default model, as ``openpaf infer`` runs it.
    weights: an openpaf checkpoint, foreign weights or an exported ``.onnx``.
    images: folder of images for the pipeline run; None: ``default_images_dir()`` if it
        exists, else ``max_images`` synthetic JPEGs.
    max_images: use the first N images (sorted by name) of ``images``.
    people: crowd sizes for ``decode_by_people`` (empty: skip the crowd runs).
    warmup, repeats: untimed and timed passes over the images.
    decode_repeats: timed decodes per synthetic crowd (the decoder is fast).
    crowds: different random crowds per crowd size.
    device, batch, precision, compile, scales, height, optimize, threads: as for
        ``Predictor``
        (``threads``: ``torch.set_num_threads``; None leaves torch's default).
    network: False times the decoder only (crowds + oracle maps of ``ann``).
    ann: COCO keypoint file whose oracle maps are decoded when ``network`` is False;
        None: ``default_annotations()`` if it exists.
    preset: decoder preset. seed: for synthetic images and crowds.
    """

    model: str | None = None
    weights: str | None = None
    backend: str | None = None          # torch / onnxruntime; None: by the weights' suffix
    images: str | None = None
    max_images: int = 4
    people: tuple[int, ...] = (1, 5, 10, 20)
    warmup: int = 1
    repeats: int = 3
    decode_repeats: int = 10
    crowds: int = 3
    device: str = "cpu"
    batch: int = 1
    precision: str = "auto"
    compile: bool | None = None
    scales: tuple[float, ...] | None = None
    height: int | None = None          # None: the weights' default
    flip: bool | None = None           # None: the weights' default
    accurate: bool = False             # the accuracy mode (flip + the weights' scales)
    optimize: bool = True
    threads: int | None = None
    network: bool = True
    ann: str | None = None
    preset: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.repeats < 1 or self.warmup < 0 or self.decode_repeats < 1 or self.crowds < 1:
            raise ValueError("repeats, decode_repeats and crowds must be >= 1, warmup >= 0")
        if self.batch < 1 or self.max_images < 1:
            raise ValueError("batch and max_images must be >= 1")
        if any(n < 0 for n in self.people):
            raise ValueError(f"people counts must be >= 0, got {list(self.people)}")


# --- defaults ---------------------------------------------------------------------------

def _shared_data() -> Path:
    env = os.environ.get("OPENPAF_DATA")
    if env:
        return Path(env)
    return Path(openpaf.__file__).resolve().parents[2] / "shared" / "data"


def default_images_dir() -> Path:
    """``$OPENPAF_DATA/coco/val`` (default ``<repo>/../shared/data/coco/val``)."""
    return _shared_data() / "coco" / "val"


def default_annotations() -> Path:
    """``$OPENPAF_DATA/coco/val.json`` (default ``<repo>/../shared/data/coco/val.json``)."""
    return _shared_data() / "coco" / "val.json"


# --- full pipeline ---------------------------------------------------------------------

def synthetic_images(folder: str | Path, count: int = 2, size: tuple[int, int] = (640, 480),
                     seed: int = 0) -> list[Path]:
    """Write ``count`` random JPEGs (blurred noise with shapes) into ``folder``."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)
        for _ in range(8):
            p0 = tuple(int(v) for v in rng.integers(0, min(size), 2))
            p1 = tuple(int(v) for v in rng.integers(0, min(size), 2))
            color = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.rectangle(img, p0, p1, color, -1)
        path = folder / f"synthetic_{i:03d}.jpg"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def list_images(folder: str | Path, max_images: int | None = None) -> list[Path]:
    """Image files of ``folder`` sorted by name (the first ``max_images``); ``ValueError``
    naming the first one that cannot be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    for path in paths[:max_images]:     # a bad image is named now, not mid-timing
        try:
            load_image(path)
        except ImageLoadError as exc:
            raise ValueError(f"{path}: {exc}; remove it or choose other --images") from None
    return paths[:max_images]


def _input_flops(model, images: Sequence[np.ndarray], predictor) -> float:
    """Network FLOPs of ``predictor`` on ``images`` (every scale and flip, padded sizes)."""
    total = 0.0
    for im in images:
        for s in predictor.scales:
            g = geometry(im.shape[1::-1], predictor.height, s, predictor.stride,
                         predictor.max_side)
            total += count_flops(model, g.padded_size[1], g.padded_size[0])
    return total * (2 if predictor.flip else 1)


def benchmark_pipeline(predictor, paths: Sequence[Path], *, batch: int = 1,
                       warmup: int = 1, repeats: int = 3, flop_model=None,
                       out_dir: str | Path | None = None) -> dict:
    """Time every stage of image file -> OpenPose JSON file for ``paths``.

    Returns ``{"stages": {stage: [ms per image, ...]}, "fps", "flops", "network_s",
    "images"}``. Batched stages are divided evenly over the batch's images.
    """
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    batches = [list(paths[i:i + batch]) for i in range(0, len(paths), batch)]
    flops = network_s = wall = 0.0
    count = 0
    with contextlib.ExitStack() as stack:
        if out_dir is None:
            out_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="openpaf-bench-"))
        out_dir = Path(out_dir)
        for rep in range(warmup + repeats):
            timed = rep >= warmup
            for group in batches:
                t0 = time.perf_counter()
                images = [load_image(p) for p in group]
                t1 = time.perf_counter()
                dets = predictor.predict_batch(images)
                t2 = time.perf_counter()
                for p, det in zip(group, dets):
                    write_openpose_json(out_dir / f"{Path(p).stem}_keypoints.json", det)
                t3 = time.perf_counter()
                if not timed:
                    continue
                n = len(group)
                t = dict(predictor.last_timings)
                t["decode_image"] = (t1 - t0) * 1e3
                t["write"] = (t3 - t2) * 1e3
                for s in STAGES:
                    stages[s].extend([t.get(s, 0.0) / n] * n)
                wall += t3 - t0
                count += n
                network_s += t["network"] / 1e3
                if flop_model is not None:
                    flops += _input_flops(flop_model, images, predictor)
    return {"stages": stages, "fps": count / wall if wall > 0 else 0.0, "flops": flops,
            "network_s": network_s, "images": count}


def build_predictor(options: BenchmarkOptions):
    """The ``Predictor`` (and model config, for FLOPs) that ``options`` describe."""
    kwargs = dict(height=options.height, scales=options.scales, flip=options.flip,
                  accurate=options.accurate,
                  decode_params=options.preset, device=options.device,
                  precision=options.precision, optimize=options.optimize,
                  compile=options.compile)
    if options.weights or not options.model:
        predictor = Predictor.from_checkpoint(options.weights, backend=options.backend,
                                              **kwargs)
    else:
        torch.manual_seed(options.seed)
        predictor = Predictor(create_model(options.model),
                              pretrained=get_pretrained_cfg(options.model), **kwargs)
    model = predictor.model
    return predictor, (model if isinstance(model, torch.nn.Module) else None)


def run_benchmark(options: BenchmarkOptions, progress: Callable[[str], None] | None = None
                  ) -> dict:
    """Run what ``options`` ask for and return the report dict (``REPORT_KEYS``)."""
    say = progress or (lambda msg: None)
    if options.threads is not None:
        torch.set_num_threads(int(options.threads))
    settings = {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(options).items()}
    report: dict = {"machine": machine_info(options.device), "torch": torch_info(),
                    "settings": settings, "fps": None,
                    "stages_ms": {s: None for s in STAGES}, "network_gflops": None,
                    "gflop_per_s": None, "decode_by_people": {}}
    if options.network:
        predictor, flop_model = build_predictor(options)
        settings["device"] = str(predictor.device)
        settings["optimized"] = predictor.optimized
        settings["precision"] = str(predictor.precision_choice)
        settings["model"] = options.model or type(getattr(
            predictor.model, "source", predictor.model)).__name__
        settings["weights"] = options.weights or (None if options.model
                                                  else str(predictor.weights_path))
        with contextlib.ExitStack() as stack:
            folder = options.images
            if folder is None and default_images_dir().is_dir():
                folder = str(default_images_dir())
            if folder is not None:
                paths = list_images(folder, options.max_images)
                settings["images"] = str(folder)
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="openpaf-img-"))
                paths = synthetic_images(tmp, options.max_images, seed=options.seed)
                settings["images"] = f"synthetic ({len(paths)} x 640x480 JPEG)"
            say(f"pipeline: {len(paths)} images x {options.repeats} repeats "
                f"(+{options.warmup} warm-up) on {settings['device']}")
            res = benchmark_pipeline(predictor, paths, batch=options.batch,
                                     warmup=options.warmup, repeats=options.repeats,
                                     flop_model=flop_model)
        report["stages_ms"] = {s: summary_ms(v) for s, v in res["stages"].items()}
        report["fps"] = round(res["fps"], 3)
        if flop_model is not None and res["images"]:
            report["network_gflops"] = round(res["flops"] / res["images"] / 1e9, 3)
            report["gflop_per_s"] = (round(res["flops"] / res["network_s"] / 1e9, 2)
                                     if res["network_s"] > 0 else None)
        params = predictor.params
        if options.model and not options.weights:
            settings["note"] = ("random weights: network timing is representative, the "
                                "decode stages of this run are not (see decode_by_people)")
    else:
        params = get_params(options.preset)
        ann = options.ann or (str(default_annotations())
                              if default_annotations().is_file() else None)
        if ann is not None:
            say(f"decoder on oracle maps of {ann}")
            times, n = benchmark_oracle(ann, height=options.height or ORACLE_HEIGHT, params=params,
                                        repeats=options.repeats, warmup=options.warmup)
            settings["maps"] = f"oracle maps of {ann} ({n} images)"
            for k in ("peaks", "limbs", "assembly"):
                report["stages_ms"][k] = summary_ms(times[k])
            report["decode_total_ms"] = summary_ms(times["total"])
            med = float(np.median(times["total"]))
            report["fps"] = round(1e3 / med, 1) if med > 0 else None
    if options.people:
        say(f"decoder on synthetic crowds of {', '.join(map(str, options.people))} people")
        report["decode_by_people"] = benchmark_crowds(
            options.people, height=options.height or ORACLE_HEIGHT, params=params, crowds=options.crowds,
            repeats=options.decode_repeats, seed=options.seed)
    with contextlib.suppress(OSError, AttributeError):
        report["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


def format_report(report: dict) -> str:
    """The report as a readable table."""
    s = report["settings"]
    m = report["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}"
             + (f", GPU {m['gpu']}" if m.get("gpu") else "")
             + (f", load {m['load_average']}" if m.get("load_average") else ""),
             f"torch {report['torch']['version']}; "
             + (f"model {s['model']}"
                + (f" (weights {s['weights']})" if s.get("weights") else " (random init)")
                + f", device {s['device']}, precision {s['precision']}, batch {s['batch']}, "
                f"height {s['height']}, scales {s['scales']}"
                if s.get("network", True) else
                f"decoder only (numpy), height {s['height']}, preset {s['preset']}")]
    if s.get("maps"):
        lines.append(f"maps: {s['maps']}")
    elif s.get("images"):
        lines.append(f"images: {s['images']}")
    lines.append(f"{'stage':<14}{'median ms':>11}{'p90 ms':>10}")
    for stage in STAGES:
        v = report["stages_ms"].get(stage)
        if v is not None:
            lines.append(f"{stage:<14}{v['median']:>11.2f}{v['p90']:>10.2f}")
    total = report.get("decode_total_ms")
    if total:
        lines.append(f"{'decode total':<14}{total['median']:>11.2f}{total['p90']:>10.2f}")
    if report["fps"] is not None:
        lines.append(f"end to end: {report['fps']:.2f} images/s"
                     + (" (decoder only)" if not s.get("network", True) else ""))
    if report["gflop_per_s"] is not None:
        lines.append(f"network: {report['network_gflops']:.1f} GFLOP per image, "
                     f"{report['gflop_per_s']:.1f} GFLOP/s")
    if report["decode_by_people"]:
        first = next(iter(report["decode_by_people"].values()))
        lines.append(f"decoder on synthetic crowds ({'x'.join(map(str, first['map_size']))} "
                     "maps):")
        lines.append(f"{'people':>7}{'found':>7}{'total ms':>10}{'p90':>8}{'peaks':>8}"
                     f"{'limbs':>8}{'assembly':>10}")
        for n, row in report["decode_by_people"].items():
            lines.append(f"{n:>7}{row['people_found']:>7.1f}{row['total']['median']:>10.2f}"
                         f"{row['total']['p90']:>8.2f}{row['peaks']['median']:>8.2f}"
                         f"{row['limbs']['median']:>8.2f}{row['assembly']['median']:>10.2f}")
    return "\n".join(lines)
