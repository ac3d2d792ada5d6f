"""``openpaf benchmark``: pipeline speed per stage (``--fps``), CPU execution paths, and the
decoder on saved real maps (``--save-maps``, ``--no-network --maps``)."""
from pathlib import Path

import click

from .options import guard_output, load_predictor, model_options, weights_or_default


def _ints(ctx, param, value):
    try:
        return tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("use comma-separated integers, e.g. 1,5,10,20")


def _heights(ctx, param, value):
    heights = _ints(ctx, param, value)
    if any(h <= 0 or h % 8 for h in heights):
        raise click.BadParameter("heights must be positive multiples of 8, e.g. 256,368")
    return heights


def _names(*choices: str):
    """Callback for a comma-separated subset of the names in ``openpaf.benchmark.<choice>``
    for each of ``choices`` (or 'all' where the option allows it): the names as a tuple,
    unknown ones refused."""
    def check(ctx, param, value):
        if value is None or value == "all":
            return value
        import openpaf.benchmark as bm
        known = tuple(dict.fromkeys(n for c in choices for n in getattr(bm, c)))
        names = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [n for n in names if n not in known]
        if bad or not names:
            raise click.BadParameter(f"unknown {', '.join(bad) or 'empty list'}; choose "
                                     f"from {', '.join(known)}")
        return names
    return check


def _errors(report) -> list:
    """Every ``"error"`` value in a (nested) report: the measurements that failed."""
    if isinstance(report, dict):
        return ([report["error"]] if "error" in report else []) + [
            e for v in report.values() for e in _errors(v)]
    if isinstance(report, list):
        return [e for v in report for e in _errors(v)]
    return []


def _sizes(ctx, param, value):
    try:
        return tuple(tuple(int(v) for v in s.lower().split("x")) for s in value.split(","))
    except ValueError:
        raise click.BadParameter("use HEIGHTxWIDTH pairs, e.g. 368x368,368x656")


def _saved_maps(save_dir, maps_dir, ann, images, weights, height, flip, device, preset,
                repeats, say, **runtime):
    """--save-maps (network once, maps to a folder) or --maps (decode a saved folder)."""
    from openpaf.benchmark import saved_maps as sm
    if save_dir:
        predictor = load_predictor(weights, height=height, flip=flip, device=device,
                                   **runtime)       # backend, precision
        images = images or Path(ann).with_suffix("")        # coco/val.json -> coco/val
        n = sm.save_maps(predictor, ann, images, save_dir, progress=say)
        return {"saved": n, "maps": save_dir}, f"saved the maps of {n} images to {save_dir}"
    report = sm.benchmark_saved_maps(maps_dir, ann, preset, repeats=repeats)
    return report, sm.format_saved_maps(report)


@click.command("benchmark")
@click.option("--fps", "mode", flag_value="fps", default=True,
              help="Time every pipeline stage and the end-to-end rate (default).")
@click.option("--cpu-paths", "mode", flag_value="cpu-paths",
              help="Compare CPU execution paths of one model's forward pass instead.")
@click.option("--video", "mode", flag_value="video",
              help="Time a video through the whole infer pipeline instead: each stage "
                   "alone, and FPS with the stages one after the other and overlapped.")
@click.option("--live", "mode", flag_value="live",
              help="Time a live source instead: a local MJPEG test stream (127.0.0.1, "
                   "--live-fps for --live-seconds, photos from --images) through the infer "
                   "pipeline with --realtime and --no-realtime: FPS, dropped frames, "
                   "latency capture -> people p50/p90, lag behind live at the end.")
@click.option("--live-fps", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="With --live: frames per second the test stream sends.")
@click.option("--live-seconds", type=click.FloatRange(min=1.0), default=10.0,
              show_default=True, help="With --live: how long the test stream sends.")
@click.option("--clip", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --video: the clip (default: 24 frames made from --images).")
@click.option("--runtimes", "runtimes", default=None, metavar="LIST",
              callback=_names("RUNTIMES", "BENCH_CPU_PATHS"),
              help="Compare runtimes on the same weights in one interleaved run instead: "
                   "comma-separated subset of torch (fp32), torch-bf16, torch-auto, "
                   "torch-auto-compile, torch-int8, onnxruntime, openvino, openvino-ir "
                   "('all': torch, torch-bf16, onnxruntime, openvino, openvino-ir); see also "
                   "--heights, --openvino-ir.")
@click.option("--heights", default="", callback=_heights,
              help="With --runtimes: input heights to time, e.g. 256,368,456 (default: "
                   "the weights' own).")
@click.option("--openvino-ir", "openvino_ir", type=click.Path(exists=True, dir_okay=False),
              default=None,
              help="With --runtimes: the IR that openvino-ir runs as it is (default: Intel's "
                   "INT8 human-pose-estimation-0001 in ../shared/models).")
@click.option("--model", default=None,
              help="Time this registered model, randomly initialised, instead of the default "
                   "model (ignored with --weights; --cpu-paths: default cmu_vgg19).")
@model_options
@click.option("--images", type=click.Path(exists=True, file_okay=False), default=None,
              help="Image folder. Default: ../shared/data/coco/val if present, else "
                   "synthetic JPEGs.")
@click.option("--max-images", type=click.IntRange(min=1), default=4, show_default=True,
              help="Use the first N images.")
@click.option("--people", default="1,5,10,20", show_default=True, callback=_ints,
              help="Synthetic crowd sizes for the decoder table ('' to skip).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True,
              help="Untimed passes over the images.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed passes over the images (rounds per path with --cpu-paths, "
                   "decodes per image with --maps).")
@click.option("--decode-repeats", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed decodes per synthetic crowd.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per network call.")
@click.option("--no-optimize", is_flag=True,
              help="Run the model as given (no BN folding / channels_last conversion).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch.set_num_threads(N), N >= 1.")
@click.option("--no-network", is_flag=True,
              help="Decoder only: oracle maps of --ann and the synthetic crowds.")
@click.option("--ann", type=click.Path(exists=True, dir_okay=False), default=None,
              help="COCO keypoint file for --no-network (default: "
                   "../shared/data/coco/val.json if present).")
@click.option("--save-maps", "save_maps", type=click.Path(file_okay=False), default=None,
              help="Run the network (--weights, --height, --flip) once over the images of "
                   "--ann (in --images) and save their maps here (float16 .npz per image "
                   "+ maps.json) for --maps.")
@click.option("--maps", "maps_dir", type=click.Path(exists=True, file_okay=False),
              default=None,
              help="With --no-network: decode maps saved by --save-maps and score them "
                   "against --ann (COCO AP, decode ms median; --preset picks the settings).")
@click.option("--sizes", default="368x368,368x656", show_default=True, callback=_sizes,
              help="With --cpu-paths: input sizes HEIGHTxWIDTH.")
@click.option("--paths", default=None, callback=_names("CPU_PATHS"),
              help="With --cpu-paths: comma-separated subset of eager_fp32, inference_mode, "
                   "channels_last, threads_1, bn_folded, jit_freeze, "
                   "jit_optimize_for_inference, bf16_autocast, bf16_autocast_channels_last, "
                   "bf16_weights_channels_last, fp16_autocast_channels_last, onnxruntime, "
                   "torch_compile (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report here.")
def benchmark(mode, live_fps, live_seconds, clip, runtimes, heights, openvino_ir, model,
              weights, height, scales, flip, accurate, device, preset, backend, precision,
              compile_,
              images, max_images, people, warmup, repeats, decode_repeats, batch, no_optimize,
              threads, no_network, ann, save_maps, maps_dir, sizes, paths, seed, json_path):
    """Measure speed: per-stage pipeline times, FPS, GFLOP/s and decoder crowd scaling.

    With no --weights and no --model: the default model at its default settings, exactly
    what `openpaf infer` runs. Timings on a shared machine are noisy: compare numbers
    from one run.
    """
    from openpaf import benchmark as bm
    from openpaf.weights import CheckpointError
    say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    guard_output(json_path, [ann or bm.default_annotations(), clip, openvino_ir,
                             weights_or_default(weights)], "--json",
                 folders=[images or bm.default_images_dir(), maps_dir])
    try:
        if save_maps or (no_network and maps_dir):
            report, text = _saved_maps(save_maps, maps_dir, ann or bm.default_annotations(),
                                       images, weights, height, flip, device, preset,
                                       repeats, say, backend=backend, precision=precision)
        elif runtimes:
            chosen = bm.RUNTIMES if runtimes == "all" else runtimes
            paths_ = (bm.list_images(images or bm.default_images_dir(), max_images))
            report = bm.compare_runtimes(paths_, weights, runtimes=chosen,
                                         heights=heights or (height,), ir=openvino_ir,
                                         repeats=repeats, flip=flip, progress=say)
            text = bm.format_runtimes(report)
        elif mode in ("live", "video"):
            options = bm.BenchmarkOptions(weights=weights, model=model, device=device,
                                          precision=precision, compile=compile_,
                                          height=height, flip=flip,
                                          accurate=accurate, scales=scales,
                                          backend=backend, preset=preset)
            if mode == "live":
                report = bm.run_live_benchmark(options, images, fps=live_fps,
                                               seconds=live_seconds)
                text = bm.format_live(report)
            else:
                report = bm.run_video_benchmark(options, clip, images, repeats=repeats)
                text = bm.format_video(report)
        elif mode == "cpu-paths":
            chosen = paths or bm.CPU_PATHS
            if threads is not None:
                import torch
                torch.set_num_threads(threads)
            report = bm.compare_cpu_paths(model or "cmu_vgg19", sizes, chosen,
                                          repeats=repeats, seed=seed, progress=say)
            text = bm.format_cpu_paths(report)
        else:
            options = bm.BenchmarkOptions(
                model=model, weights=weights, backend=backend, images=images,
                max_images=max_images,
                people=people, warmup=warmup, repeats=repeats,
                decode_repeats=decode_repeats, device=device, batch=batch,
                precision=precision, compile=compile_, scales=scales, height=height,
                flip=flip, accurate=accurate,
                optimize=not no_optimize, threads=threads, network=not no_network,
                ann=ann, preset=preset, seed=seed)
            report = bm.run_benchmark(options, progress=say)
            text = bm.format_report(report)
    except (CheckpointError, ValueError, OSError, RuntimeError, ImportError) as exc:
        raise click.ClickException(" ".join(str(exc).split()) or type(exc).__name__)
    click.echo(text)
    if json_path:
        try:
            bm.write_json(json_path, report)
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror or exc}")
    failed = _errors(report) if (runtimes not in (None, "all") or paths) else []
    if failed:
        raise click.ClickException(f"{len(failed)} requested measurement"
                                   f"{' failed' if len(failed) == 1 else 's failed'} "
                                   "(see the table)")
        click.echo(f"report written to {json_path}")
