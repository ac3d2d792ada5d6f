"""Speed benchmarks: per-stage pipeline timings, decoder on synthetic crowds, CPU paths.

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

``compare_cpu_paths(...)`` times one model's forward pass under several CPU execution
paths (eager fp32, inference mode, channels_last, TorchScript freeze, bf16, ...) in one
interleaved run and reports GFLOP/s and the ratio to plain eager fp32.

Timings are wall-clock; on a shared machine they are noisy: compare figures only within
one run (the report records machine and settings).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .evaluate import ORACLE_HEIGHT

STAGES: tuple[str, ...] = ("decode_image", "preprocess", "network", "resize", "peaks",
                           "limbs", "assembly", "write")
REPORT_KEYS: tuple[str, ...] = ("machine", "torch", "settings", "fps", "stages_ms",
                                "network_gflops", "gflop_per_s", "decode_by_people")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class BenchmarkOptions:
    """What ``run_benchmark`` measures.

    model: registered model name (random init; enough for network timing) unless
        ``weights`` (an openpaf checkpoint or an exported ``.onnx``) is given.
    images: folder of images for the pipeline run; None: ``default_images_dir()`` if it
        exists, else ``max_images`` synthetic JPEGs.
    max_images: use the first N images (sorted by name) of ``images``.
    people: crowd sizes for ``decode_by_people`` (empty: skip the crowd runs).
    warmup, repeats: untimed and timed passes over the images.
    decode_repeats: timed decodes per synthetic crowd (the decoder is fast).
    crowds: different random crowds per crowd size.
    device, batch, precision, scales, height, optimize, threads: as for ``Predictor``
        (``threads``: ``torch.set_num_threads``; None leaves torch's default).
    network: False times the decoder only (crowds + oracle maps of ``ann``).
    ann: COCO keypoint file whose oracle maps are decoded when ``network`` is False;
        None: ``default_annotations()`` if it exists.
    preset: decoder preset. seed: for synthetic images and crowds.
    """

    model: str = "cmu_vgg19"
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
    precision: str = "fp32"
    scales: tuple[float, ...] = (1.0,)
    height: int | None = None          # None: the weights' default
    flip: bool | None = None           # None: the weights' default
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


# --- defaults and machine description --------------------------------------------------

def _shared_data() -> Path:
    env = os.environ.get("OPENPAF_DATA")
    if env:
        return Path(env)
    import openpaf
    return Path(openpaf.__file__).resolve().parents[2] / "shared" / "data"


def default_images_dir() -> Path:
    """``$OPENPAF_DATA/coco/val`` (default ``<repo>/../shared/data/coco/val``)."""
    return _shared_data() / "coco" / "val"


def default_annotations() -> Path:
    """``$OPENPAF_DATA/coco/val.json`` (default ``<repo>/../shared/data/coco/val.json``)."""
    return _shared_data() / "coco" / "val.json"


_SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")


def _cpu_model() -> tuple[str, list[str]]:
    """CPU model name and the speed-relevant flags (bf16/AMX) from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = [f for f in _SPEED_FLAGS if f in have]
                    break
    except OSError:
        pass
    return name, flags


def machine_info(device: str = "cpu") -> dict:
    """CPU model, core count, torch threads, load average and (for cuda) the GPU name."""
    import torch
    cpu, flags = _cpu_model()
    info = {"cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "platform": platform.platform()}
    with contextlib.suppress(OSError, AttributeError):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    if str(device).startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info


def torch_info() -> dict:
    import torch
    info = {"version": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available()}
    with contextlib.suppress(ImportError):
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    return info


def summary_ms(values: Sequence[float]) -> dict:
    """``{"median", "p90"}`` of millisecond values, rounded to microseconds."""
    if len(values) == 0:
        return {"median": 0.0, "p90": 0.0}
    v = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(v)), 3),
            "p90": round(float(np.percentile(v, 90)), 3)}


# --- synthetic crowds ------------------------------------------------------------------

# A standing person about 186 px tall in the 18-keypoint order, (x, y) about the hips.
_TEMPLATE = np.array([
    [0, -80], [0, -60], [-20, -60], [-28, -30], [-30, 0], [20, -60], [28, -30], [30, 0],
    [-12, 0], [-14, 50], [-15, 100], [12, 0], [14, 50], [15, 100], [-5, -86], [5, -86],
    [-10, -82], [10, -82]], dtype=np.float32)
_TEMPLATE_HEIGHT = 186.0


def synthetic_crowd(num_people: int, image_size: tuple[int, int] = (960, 540),
                    seed: int = 0, missing: float = 0.1) -> np.ndarray:
    """``(N, 18, 3)`` ground-truth-style keypoints (image pixels, v=2 or 0) of a crowd.

    People are laid on a jittered grid (one per cell, so they rarely overlap) with a
    random size (55-90 % of the cell height), lean (+-15 degrees), per-keypoint jitter
    and ``missing`` of the keypoints unlabelled; keypoints outside the image are dropped.
    """
    rng = np.random.default_rng(seed)
    w, h = image_size
    kps = np.zeros((num_people, len(_TEMPLATE), 3), np.float32)
    if num_people == 0:
        return kps
    cols = max(1, math.ceil(math.sqrt(num_people * w / h)))
    rows = math.ceil(num_people / cols)
    cw, ch = w / cols, h / rows
    cells = rng.permutation(rows * cols)[:num_people]
    for i, cell in enumerate(cells):
        r, c = divmod(int(cell), cols)
        height = ch * rng.uniform(0.55, 0.9)
        size = height / _TEMPLATE_HEIGHT
        angle = np.deg2rad(rng.uniform(-15, 15))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]],
                       np.float32)
        pts = (_TEMPLATE * size) @ rot.T
        pts += rng.normal(0.0, 0.03 * height, pts.shape).astype(np.float32)
        pts *= np.array([rng.choice([-1.0, 1.0]), 1.0], np.float32)   # facing either way
        centre = np.array([(c + 0.5 + rng.uniform(-0.15, 0.15)) * cw,
                           (r + 0.5 + rng.uniform(-0.1, 0.1)) * ch + 0.04 * height],
                          np.float32)
        kps[i, :, :2] = pts + centre
        kps[i, :, 2] = np.where(rng.random(len(_TEMPLATE)) < missing, 0.0, 2.0)
    inside = ((kps[..., 0] >= 0) & (kps[..., 0] <= w - 1) & (kps[..., 1] >= 0)
              & (kps[..., 1] <= h - 1))
    kps[~inside] = 0.0
    return kps


def crowd_maps(num_people: int, image_size: tuple[int, int] = (960, 540),
               height: int = ORACLE_HEIGHT, seed: int = 0):
    """``(heatmaps, pafs, geometry, keypoints)`` of a ``synthetic_crowd`` at the map grid
    of a ``height``-pixel network input (the oracle maps of ``openpaf eval --oracle``)."""
    from .evaluate import oracle_maps
    from .preprocess import geometry
    kps = synthetic_crowd(num_people, image_size, seed)
    geo = geometry(image_size, height)
    heat, paf = oracle_maps(kps, geo)
    return heat, paf, geo, kps


def _time_decode(maps, params, warmup: int, repeats: int) -> tuple[dict, int]:
    """Per-stage and total decode ms lists over ``repeats`` decodes of each map set."""
    from .decode import decode
    out: dict[str, list[float]] = {"peaks": [], "limbs": [], "assembly": [], "total": []}
    found = 0
    for heat, paf, geo in maps:
        for _ in range(warmup):
            decode(heat, paf, params, scale=geo.map_scale, image_size=geo.image_size)
        for _ in range(repeats):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            det = decode(heat, paf, params, scale=geo.map_scale, image_size=geo.image_size,
                         timings=t)
            out["total"].append((time.perf_counter() - t0) * 1e3)
            for k in ("peaks", "limbs", "assembly"):
                out[k].append(t[k])
        found += len(det)
    return out, found


def benchmark_crowds(people: Sequence[int] = (1, 5, 10, 20), *, height: int = ORACLE_HEIGHT,
                     image_size: tuple[int, int] = (960, 540), params=None,
                     crowds: int = 3, repeats: int = 10, warmup: int = 1,
                     seed: int = 0) -> dict:
    """Decoder timings on synthetic crowds: ``{str(n): {"total", "peaks", "limbs",
    "assembly": {median, p90}, "people_found": mean per crowd, "map_size": [h, w]}}``."""
    from .decode import get_params
    params = get_params(params)
    table = {}
    for n in people:
        maps = []
        for c in range(crowds):
            heat, paf, geo, _ = crowd_maps(n, image_size, height, seed + 1000 * n + c)
            maps.append((heat, paf, geo))
        times, found = _time_decode(maps, params, warmup, repeats)
        row = {k: summary_ms(v) for k, v in times.items()}
        row["people_found"] = round(found / crowds, 2)
        row["map_size"] = list(maps[0][2].map_size)
        table[str(n)] = row
    return table


def benchmark_oracle(ann_file: str | Path, *, height: int = ORACLE_HEIGHT, params=None,
                     repeats: int = 3, warmup: int = 1,
                     max_images: int | None = None) -> tuple[dict, int]:
    """Decoder stage timings on oracle maps of every image of a COCO keypoint file.

    Returns ``({"peaks", "limbs", "assembly", "total": [ms, ...]}, images)``.
    """
    from .decode import get_params
    from .evaluate import gt_keypoints, load_ground_truth, oracle_maps
    from .preprocess import geometry
    coco = load_ground_truth(ann_file)
    maps = []
    for image_id in sorted(coco.getImgIds())[:max_images]:
        info = coco.loadImgs(image_id)[0]
        geo = geometry((info["width"], info["height"]), height)
        heat, paf = oracle_maps(gt_keypoints(coco, image_id), geo)
        maps.append((heat, paf, geo))
    times, _ = _time_decode(maps, get_params(params), warmup, repeats)
    return times, len(maps)


# --- full pipeline ---------------------------------------------------------------------

def synthetic_images(folder: str | Path, count: int = 2, size: tuple[int, int] = (640, 480),
                     seed: int = 0) -> list[Path]:
    """Write ``count`` random JPEGs (blurred noise with shapes) into ``folder``."""
    import cv2
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
    """Image files of ``folder`` sorted by name (the first ``max_images``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return paths[:max_images]


def _input_flops(model, images: Sequence[np.ndarray], predictor) -> float:
    """Network FLOPs of ``predictor`` on ``images`` (every scale and flip, padded sizes)."""
    from .model import count_flops
    from .preprocess import geometry
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
    from .io.sources import load_image
    from .io.writers import write_openpose_json
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
    from .predict import Predictor
    kwargs = dict(height=options.height, scales=options.scales, flip=options.flip,
                  decode_params=options.preset, device=options.device,
                  precision=options.precision, optimize=options.optimize)
    if options.weights:
        predictor = Predictor.from_checkpoint(options.weights, backend=options.backend,
                                              **kwargs)
    else:
        import torch
        from .model import create_model, get_pretrained_cfg
        torch.manual_seed(options.seed)
        predictor = Predictor(create_model(options.model),
                              pretrained=get_pretrained_cfg(options.model), **kwargs)
    import torch
    model = predictor.model
    return predictor, (model if isinstance(model, torch.nn.Module) else None)


def run_benchmark(options: BenchmarkOptions, progress: Callable[[str], None] | None = None
                  ) -> dict:
    """Run what ``options`` ask for and return the report dict (``REPORT_KEYS``)."""
    import torch
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
        settings["model"] = (type(predictor.model).__name__ if options.weights
                             else options.model)
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
        if not options.weights:
            settings["note"] = ("random weights: network timing is representative, the "
                                "decode stages of this run are not (see decode_by_people)")
    else:
        from .decode import get_params
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


# --- CPU execution paths ---------------------------------------------------------------

CPU_PATHS: tuple[str, ...] = ("eager_fp32", "inference_mode", "channels_last",
                              "threads_1", "bn_folded", "jit_freeze",
                              "jit_optimize_for_inference", "bf16_autocast",
                              "bf16_autocast_channels_last", "bf16_weights_channels_last",
                              "fp16_autocast_channels_last", "onnxruntime", "torch_compile")


def lively_init(model, seed: int = 0) -> None:
    """Re-initialise weights so activations keep their scale through every stage (the
    default init makes a deep random network's outputs ~0, useless for accuracy diffs)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                               * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.01)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


class _Predict:
    """``fn(x) -> (heatmaps, pafs)`` plus how to prepare its input."""

    def __init__(self, fn, channels_last: bool = False, context=None, threads=None):
        self.fn, self.channels_last, self.context, self.threads = (fn, channels_last,
                                                                   context, threads)

    def __call__(self, x):
        import torch
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        old = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with (self.context() if self.context else contextlib.nullcontext()):
                out = self.fn(x)
        finally:
            torch.set_num_threads(old)
        return out


def _build_path(name: str, model, example, onnx_dir: Path):
    """``_Predict`` for one path name, or raise (the caller records the error)."""
    import torch
    from .model import fold_batchnorm

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.predict(x)

    im = torch.inference_mode
    cl = lambda m: copy.deepcopy(m).to(memory_format=torch.channels_last)  # noqa: E731
    if name == "eager_fp32":
        return _Predict(model.predict, context=torch.no_grad)
    if name == "inference_mode":
        return _Predict(model.predict, context=im)
    if name == "channels_last":
        return _Predict(cl(model).predict, True, im)
    if name == "threads_1":
        return _Predict(cl(model).predict, True, im, threads=1)
    if name == "bn_folded":
        if not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
            raise RuntimeError("no BatchNorm in this model")
        return _Predict(fold_batchnorm(model).to(memory_format=torch.channels_last).predict,
                        True, im)
    if name in ("jit_freeze", "jit_optimize_for_inference"):
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(Wrapped(model).eval(), example))
            if name == "jit_optimize_for_inference":
                traced = torch.jit.optimize_for_inference(traced)
        return _Predict(traced, context=im)
    if name in ("bf16_autocast", "bf16_autocast_channels_last", "fp16_autocast_channels_last"):
        dtype = torch.float16 if name.startswith("fp16") else torch.bfloat16
        m = cl(model) if name.endswith("channels_last") else model
        return _Predict(m.predict, name.endswith("channels_last"),
                        lambda: _autocast_cpu(dtype))
    if name == "bf16_weights_channels_last":
        m = cl(model).to(torch.bfloat16)
        return _Predict(lambda x: type(ref := m.predict(x.to(torch.bfloat16)))(
            *(t.float() for t in ref)), True, im)
    if name == "onnxruntime":
        from .export import export_onnx
        from .runtime.onnxruntime import OnnxModel
        path = onnx_dir / "model.onnx"
        export_onnx(model, path, height=example.shape[2], width=example.shape[3],
                    verify=False)
        om = OnnxModel(path, providers=["CPUExecutionProvider"])
        return _Predict(om.predict)
    if name == "torch_compile":
        compiled = torch.compile(cl(model).predict)
        return _Predict(compiled, True, im)
    raise ValueError(f"unknown CPU path {name!r}; choose from {', '.join(CPU_PATHS)}")


@contextlib.contextmanager
def _autocast_cpu(dtype):
    import torch
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype):
        yield


def compare_cpu_paths(model_name: str = "cmu_vgg19",
                      sizes: Sequence[tuple[int, int]] = ((368, 368), (368, 656)),
                      paths: Sequence[str] = CPU_PATHS, *, repeats: int = 2,
                      seed: int = 0, progress: Callable[[str], None] | None = None) -> dict:
    """Time one forward pass of ``model_name`` per CPU execution path, interleaved.

    For each ``(height, width)``: build every path once (``build_s``), run it once
    untimed (``first_s``: includes lazy compilation), then ``repeats`` rounds in which
    every path runs once in turn (so load from other processes hits all paths alike).
    Reports per path the median and best seconds, GFLOP/s of each, their ratios to
    ``eager_fp32`` (the best is the steadier figure on a shared machine) and the max abs
    difference of its outputs from eager fp32 relative to the largest
    eager output (weights re-initialised so outputs are O(1)). A path that fails to build
    or run is recorded with its error and skipped.
    """
    import torch
    from .model import count_flops, create_model
    say = progress or (lambda msg: None)
    torch.manual_seed(seed)
    model = create_model(model_name).eval()
    lively_init(model, seed)
    result = {"machine": machine_info("cpu"), "torch": torch_info(), "model": model_name,
              "repeats": repeats, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="openpaf-paths-") as tmp:
        for h, w in sizes:
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
            gflop = count_flops(model, h, w) / 1e9
            with torch.no_grad():
                ref = model.predict(x)
            scale = max(float(t.abs().max()) for t in ref)
            runners, rows = {}, {}
            for name in paths:
                t0 = time.perf_counter()
                try:
                    fn = _build_path(name, model, x, Path(tmp))
                    build = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    out = fn(x)
                    first = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001 - any failure is a result here
                    text = (str(exc).strip().splitlines() or [""])[0][:200]
                    rows[name] = {"error": f"{type(exc).__name__}: {text}".rstrip(": ")}
                    say(f"{h}x{w} {name}: unavailable ({rows[name]['error']})")
                    continue
                diff = max(float((a.float() - b).abs().max()) for a, b in zip(out, ref))
                runners[name] = fn
                rows[name] = {"build_s": round(build, 3), "first_s": round(first, 3),
                              "times_s": [], "rel_diff": float(f"{diff / scale:.3g}")}
                say(f"{h}x{w} {name}: built in {build:.1f}s, first run {first:.2f}s")
            for r in range(repeats):
                for name, fn in runners.items():
                    t0 = time.perf_counter()
                    fn(x)
                    rows[name]["times_s"].append(round(time.perf_counter() - t0, 4))
                say(f"{h}x{w} round {r + 1}/{repeats} done")
            base = rows.get("eager_fp32", {})
            base_t = (statistics.median(base["times_s"]), min(base["times_s"])) \
                if base.get("times_s") else None
            for name, row in rows.items():
                if not row.get("times_s"):
                    continue
                med, best = statistics.median(row["times_s"]), min(row["times_s"])
                row.update(median_s=round(med, 4), best_s=round(best, 4),
                           gflop_per_s=round(gflop / med, 1),
                           best_gflop_per_s=round(gflop / best, 1))
                if base_t:
                    row["ratio_vs_eager_fp32"] = round(base_t[0] / med, 2)
                    row["best_ratio_vs_eager_fp32"] = round(base_t[1] / best, 2)
            result["sizes"][f"{h}x{w}"] = {"gflop": round(gflop, 2), "paths": rows}
            del runners
    return result


def format_cpu_paths(result: dict) -> str:
    """``compare_cpu_paths`` result as a table per input size."""
    lines = [f"{result['model']} on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores, torch {result['torch']['version']})"]
    for size, entry in result["sizes"].items():
        lines.append(f"{size} ({entry['gflop']:.1f} GFLOP):")
        lines.append(f"  {'path':<30}{'median s':>9}{'GFLOP/s':>9}{'ratio':>7}{'best s':>8}"
                     f"{'GFLOP/s':>9}{'ratio':>7}{'rel diff':>10}{'first s':>9}")
        for name, row in entry["paths"].items():
            if "error" in row:
                lines.append(f"  {name:<30}unavailable: {row['error']}")
                continue
            lines.append(f"  {name:<30}{row['median_s']:>9.3f}{row['gflop_per_s']:>9.1f}"
                         f"{row.get('ratio_vs_eager_fp32', float('nan')):>7.2f}"
                         f"{row['best_s']:>8.3f}{row['best_gflop_per_s']:>9.1f}"
                         f"{row.get('best_ratio_vs_eager_fp32', float('nan')):>7.2f}"
                         f"{row['rel_diff']:>10.1e}{row['first_s']:>9.2f}")
    return "\n".join(lines)


def write_json(path: str | Path, obj: dict) -> Path:
    """Write a report as indented JSON (atomically)."""
    from .io.writers import atomic_write_text
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
