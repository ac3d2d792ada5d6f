"""``openpaf infer``: run the pose estimator on images, folders, globs, videos or webcams."""
from __future__ import annotations

from pathlib import Path

import click

from openpaf.io.maps import MAPS_FORMATS
from openpaf.io.render import BACKGROUNDS, RenderStyle
from openpaf.io.stream import LiveOptions
from openpaf.io.writers import KEYPOINT_SCALES, OPENPOSE_LAYOUTS, OpenPoseFormat
from openpaf.runner import InferOptions

from .options import load_predictor, model_options
from .options import finite_number

_DEFAULTS = InferOptions()
_OPENPOSE = _DEFAULTS.openpose
_LIVE, _STYLE = _DEFAULTS.live, _DEFAULTS.style
JSON_FORMATS = ("openpose", "jsonl", "coco")
COCO_RESULTS = "coco_results.json"


def _parse_formats(ctx, param, values):
    """Repeatable and/or comma-separated formats -> ordered unique tuple (None: default)."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        for name in value.replace(" ", "").lower().split(","):
            if not name:
                continue
            if name not in JSON_FORMATS:
                raise click.BadParameter(f"unknown format {name!r}; choose from "
                                         f"{', '.join(JSON_FORMATS)}")
            if name not in out:
                out.append(name)
    return tuple(out)


def _parse_shard(ctx, param, value):
    """'i/n' -> (i, n); 'auto' -> from RANK/WORLD_SIZE (torchrun) or SLURM_PROCID/
    SLURM_NTASKS; None -> None."""
    if value is None:
        return None
    from openpaf.io.sources import parse_shard
    from openpaf.train.dist import launch_rank      # here: it imports torch
    if value.strip().lower() == "auto":
        place = launch_rank()
        if place is None:
            raise click.BadParameter("'auto' needs RANK and WORLD_SIZE in the environment "
                                     "(set by torchrun) or SLURM_PROCID and SLURM_NTASKS")
        value = f"{place[0]}/{place[1]}"
    try:
        return parse_shard(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command("infer")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              default=_DEFAULTS.output, show_default=True, help="Output folder.")
@model_options
@click.option("--json-format", "json_formats", multiple=True, callback=_parse_formats,
              metavar="FORMATS",
              help="Keypoint outputs, repeatable or comma-separated: openpose "
                   "(<name>_keypoints.json per frame), jsonl (<stem>.jsonl per video/"
                   "webcam/tracked folder, one line per processed frame; untracked images "
                   "go to openpaf_images.jsonl), coco (one COCO results list, "
                   f"OUTPUT/{COCO_RESULTS} or --coco-json). [default: openpose]")
@click.option("--no-json", is_flag=True,
              help="Do not write <name>_keypoints.json files (drops openpose from "
                   "--json-format).")
@click.option("--no-render", is_flag=True, help="Do not write rendered images/videos.")
@click.option("--coco-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the COCO keypoint results here (implies --json-format coco).")
@click.option("--jsonl", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              default=None,
              help="Also stream one JSON line per frame of the whole run to this file; - "
                   "writes them to stdout (flushed per frame; logs go to stderr), for "
                   "piping.")
@click.option("--openpose-layout", type=click.Choice(OPENPOSE_LAYOUTS),
              default=_OPENPOSE.layout, show_default=True,
              help="Keypoint order of pose_keypoints_2d in the OpenPose JSON and JSONL. "
                   "coco18: our 18 points, as OpenPose --model_pose COCO writes them (tools "
                   "made for COCO-18 OpenPose output, e.g. ControlNet pose editors). body25: "
                   "OpenPose's default BODY_25 order, 25 points, mid-hip (8) = mean of the "
                   "hips, the six foot points zeros; what BODY_25 readers expect: "
                   "pose-format's load_openpose_directory, SMPLify-X and most code written "
                   "for a default OpenPose run.")
@click.option("--keypoint-scale", type=click.Choice(list(KEYPOINT_SCALES)),
              default=_OPENPOSE.keypoint_scale, show_default=True,
              help="Coordinates in the OpenPose JSON and JSONL: pixels, unit [0, 1] or "
                   "signed-unit [-1, 1] (OpenPose --keypoint_scale 0 / 3 / 4: x / (width - "
                   "1), y / (height - 1)); missing points stay 0, 0, 0.")
@click.option("--part-candidates", is_flag=True,
              help="Also write every keypoint candidate (heatmap peak) before people are "
                   "assembled, as OpenPose --part_candidates: \"part_candidates\": "
                   "[{\"0\": [x, y, score, ...], ...}] in the JSON and JSONL.")
@click.option("--write-json", "json_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Write <name>_keypoints.json here instead of OUTPUT, so this folder holds "
                   "only keypoint files (OpenPose --write_json; readers like pose-format "
                   "load every file in the folder).")
@click.option("--number-people-max", type=click.IntRange(min=1), default=None, metavar="N",
              help="Keep the N highest-scoring people per frame (OpenPose "
                   "--number_people_max). [default: all]")
@click.option("--render-threshold", type=float, callback=finite_number(0),
              default=_DEFAULTS.render_threshold, show_default=True, metavar="T",
              help="Do not draw keypoints with confidence <= T, nor limbs touching one "
                   "(OpenPose --render_threshold, 0.05 there); 0 draws every found point.")
@click.option("--write-maps", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR",
              help="Save each frame's heatmaps (19) and PAFs (38) at network resolution in "
                   "DIR: <name>_heatmaps/_pafs.npy (float16) or .png strips (--maps-format), "
                   "with <name>_maps.json (image size, pixels per map cell). OpenPose "
                   "--write_heatmaps.")
@click.option("--maps-format", type=click.Choice(MAPS_FORMATS), default=_DEFAULTS.maps_format,
              show_default=True,
              help="--write-maps files: npy (float16 arrays) or png (channels side by side; "
                   "heatmap = v/255, PAF = v/127.5 - 1).")
@click.option("--track", is_flag=True,
              help="Stable person ids across the frames of each video/webcam (a fresh "
                   "tracker per stream) and across the sorted images of each folder/glob; "
                   "ids go to person_id and colour the rendering.")
@click.option("--smooth", is_flag=True,
              help="One-Euro smoothing of tracked keypoints over the stream's timestamps "
                   "(implies --track).")
@click.option("--skip-existing", is_flag=True,
              help="Resume: skip the images and videos an earlier run into OUTPUT did from "
                   "the same source file with the same weights and settings, whose outputs "
                   "exist (the manifest records what produced them); redo the others and "
                   "say why.")
@click.option("--every", type=click.IntRange(min=1), default=_DEFAULTS.every,
              show_default=True,
              help="Process every N-th video frame / folder image (rendered videos play at "
                   "fps/N).")
@click.option("--max-frames", type=click.IntRange(min=0), default=None,
              help="Stop after this many frames in total (per process).")
@click.option("--shard", callback=_parse_shard, default=None, metavar="I/N|auto",
              help="Process only shard I of N of the inputs (whole videos; every input in "
                   "exactly one shard). auto: RANK/WORLD_SIZE from torchrun (or SLURM).")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option("--realtime/--no-realtime", default=None,
              help="Real-time: a capture thread hands over only the newest frame (stale "
                   "frames dropped and counted; video files play at their fps). "
                   "--no-realtime processes every frame. [default: on for webcams, URLs "
                   "and /dev/videoN, off for files]")
@click.option("--open-timeout", type=click.FloatRange(min=0.1), default=_LIVE.open_timeout,
              show_default=True, metavar="S",
              help="Seconds to wait for a URL or device to open (and for each read).")
@click.option("--reconnect", type=click.IntRange(min=0), default=_LIVE.reconnect,
              show_default=True, metavar="N",
              help="Reopen a dropped stream up to N times (waits 0.5, 1, 2... s), then "
                   "give up; its outputs are finalised as on Ctrl-C.")
@click.option("--show", is_flag=True,
              help="Show rendered frames in a window as they are made; q or Esc stops "
                   "the run as Ctrl-C does. Needs a display.")
@click.option("--line-width", type=click.IntRange(min=1), default=_STYLE.line_width,
              metavar="PX", help="Limb line width in pixels. [default: by image and "
                                 "person size, as OpenPose]")
@click.option("--point-radius", type=click.IntRange(min=1), default=_STYLE.point_radius,
              metavar="PX", help="Keypoint dot radius in pixels. [default: matched to the "
                                 "line width]")
@click.option("--background", type=click.Choice(BACKGROUNDS), default=_STYLE.background,
              show_default=True,
              help="Draw on the image, or skeletons only on black or white (ControlNet-"
                   "style pose images).")
@click.option("--draw-ids", is_flag=True,
              help="Write each person's track id beside the head (with --track).")
@click.option("--alpha", type=click.FloatRange(min=0.0, max=1.0, min_open=True),
              default=_STYLE.alpha, show_default=True,
              help="Skeleton opacity over the background (1: opaque).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar or summary (errors are still reported).")
@click.pass_context
def infer(ctx, inputs, output, weights, height, scales, flip, accurate, device, preset,
          backend, precision, compile_,
          json_formats,
          no_json, no_render, coco_json, jsonl, openpose_layout, keypoint_scale,
          part_candidates, json_dir, number_people_max, render_threshold, write_maps,
          maps_format, track, smooth, skip_existing, every, max_frames, shard, recursive,
          realtime, open_timeout, reconnect, show, line_width, point_radius, background,
          draw_ids, alpha, quiet):
    """Detect people in INPUTS and write OpenPose-style JSON and rendered outputs.

    INPUTS are image files, folders of images, quoted glob patterns ("frames/*.png"),
    video files (mp4/avi/mov/mkv/webm/m4v), webcam indices (0, 1, ...), stream URLs
    (rtsp://, http(s):// MJPEG/HLS, udp://, tcp://; user:pass@ is never written) or
    /dev/videoN. Writes OUTPUT/<name>_keypoints.json (OpenPose 1.3 schema),
    OUTPUT/<name>_rendered.jpg per image and OUTPUT/<video>_rendered.mp4 (H.264) per
    video or stream. Unreadable inputs are reported as one
    line each and skipped. Images are decoded in a background thread while the network
    runs.

    Every run appends OUTPUT/openpaf_manifest.jsonl: one line per done, failed or skipped
    input (with the reason), valid even if the run is killed. Ctrl-C stops cleanly: the
    current video's mp4/JSONL are finalised with the frames done so far (the manifest
    marks it interrupted, so --skip-existing redoes it) and no partial file is left; an
    earlier run's mp4, JSONL or COCO file is kept rather than replaced by a partial one.
    SIGTERM does the same.

    \b
    Many GPUs or machines: give every process the same INPUTS and OUTPUT and its
    own shard; run-level files get a .shard<I>of<N> suffix:
      for r in 0 1 2 3; do
        openpaf infer data/ -o out --shard $r/4 --device cuda:$r &
      done; wait
      torchrun --nproc-per-node 8 --no-python openpaf infer data/ -o out --shard auto

    \b
    Exit codes:
      0  every input was processed
      1  fatal error (e.g. no weights), or every input failed
      2  some inputs failed, the others were processed
      130 interrupted (Ctrl-C, or q/Esc in the --show window); outputs written
          so far are complete
      143 terminated (SIGTERM), finalised like Ctrl-C
    A stream that drops and cannot be reopened (--reconnect) counts as a failed
    input, its frames so far kept: exit code 2 (1 when no frame was processed).
    """
    formats = json_formats or ("openpose",)
    if json_dir is not None and (no_json or "openpose" not in formats):
        raise click.UsageError("--write-json writes OpenPose JSON: drop --no-json and keep "
                               "openpose in --json-format")
    if coco_json is None and "coco" in formats:
        coco_json = output / COCO_RESULTS
    from openpaf.train.dist import launcher_device, world_size      # imports torch
    world = world_size()
    if shard is None and world is not None and world > 1:
        raise click.UsageError(f"{world} processes were started (WORLD_SIZE={world}) but "
                               "--shard was not given: each would do every input; add "
                               "--shard auto")
    try:
        options = InferOptions(output=output, write_json="openpose" in formats and not no_json,
                               write_images=not no_render, write_video=not no_render,
                               stream_jsonl="jsonl" in formats, coco_json=coco_json,
                               jsonl=jsonl, skip_existing=skip_existing, every=every,
                               max_frames=max_frames, recursive=recursive, track=track,
                               smooth=smooth, shard=shard, json_dir=json_dir,
                               openpose=OpenPoseFormat(openpose_layout, keypoint_scale,
                                                       part_candidates),
                               number_people_max=number_people_max,
                               render_threshold=render_threshold, write_maps=write_maps,
                               maps_format=maps_format, realtime=realtime, show=show,
                               live=LiveOptions(open_timeout, reconnect),
                               style=RenderStyle(line_width, point_radius, background,
                                                 draw_ids, alpha),
                               requested=dict(weights=weights, height=height, scales=scales,
                                              flip=flip, accurate=accurate, preset=preset,
                                              backend=backend, precision=precision,
                                              device=device))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if show:
        from openpaf.io.window import DisplayError, check_display
        try:
            check_display()
        except DisplayError as e:
            raise click.ClickException(str(e)) from None
    predict = _build_predictor(weights, device=launcher_device(device), height=height,
                               scales=scales, flip=flip, accurate=accurate,
                               decode_params=preset, backend=backend,
                               precision=precision, compile=compile_,
                               keep_maps=write_maps is not None)
    if getattr(predict, "spec", None) is not None:
        try:
            options.openpose.check_spec(predict.spec)     # body25 needs COCO-18 weights
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    from openpaf.runner import run_inference
    if not quiet and getattr(predict, "weights_path", None) is not None:
        from openpaf.weights.checkpoint import weights_summary
        choice = getattr(predict, "precision_choice", None)
        click.echo(f"model: {weights_summary(predict.weights_path, predict.manifest)}"
                   + (f"; precision {choice}" if choice else ""), err=True)
    from openpaf.io.paths import OutputError
    try:
        summary = run_inference(predict, list(inputs), options, progress=not quiet)
    except OutputError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write outputs: {e}") from None
    if not quiet:
        click.echo(summary.line(), err=True)
    ctx.exit(summary.exit_code)


def _build_predictor(weights, **kwargs):
    """The predictor ``infer`` runs (tests replace this with a fake)."""
    return load_predictor(weights, **kwargs)
