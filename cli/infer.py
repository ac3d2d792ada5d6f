"""``openpaf infer``: run the pose estimator on images, folders, globs, videos or webcams."""
from __future__ import annotations

from pathlib import Path

import click

from openpaf.decode.params import DEFAULT_PRESET, PRESETS
from openpaf.runner import InferOptions

_DEFAULTS = InferOptions()


def _parse_scales(ctx, param, value):
    if value is None:
        return None
    try:
        scales = tuple(float(s) for s in value.replace(" ", "").split(",") if s)
    except ValueError:
        scales = ()
    if not scales or any(s <= 0 for s in scales):
        raise click.BadParameter("expected positive numbers separated by commas, e.g. 1 "
                                 "or 0.5,1,1.5")
    return scales


@click.command("infer")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              default=_DEFAULTS.output, show_default=True, help="Output folder.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint file. Default: openpaf's default weights.")
@click.option("--height", type=click.IntRange(min=8), default=None,
              help="Network input height in pixels (predictor default: 368).")
@click.option("--scales", callback=_parse_scales, default=None,
              help="Comma-separated scale factors of --height, e.g. 0.5,1,1.5 "
                   "(predictor default: 1).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where to run the network.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=DEFAULT_PRESET,
              show_default=True, help="Decoder parameter preset.")
@click.option("--no-json", is_flag=True, help="Do not write <name>_keypoints.json files.")
@click.option("--no-render", is_flag=True, help="Do not write rendered images/videos.")
@click.option("--coco-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write all detections as one COCO keypoint-results JSON file.")
@click.option("--jsonl", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also stream one JSON line per frame to this file.")
@click.option("--skip-existing", is_flag=True,
              help="Skip frames whose <name>_keypoints.json already exists.")
@click.option("--every", type=click.IntRange(min=1), default=_DEFAULTS.every,
              show_default=True, help="Process every N-th video frame / folder image.")
@click.option("--max-frames", type=click.IntRange(min=0), default=None,
              help="Stop after this many frames in total.")
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar or summary (errors are still reported).")
@click.pass_context
def infer(ctx, inputs, output, weights, height, scales, device, preset, no_json, no_render,
          coco_json, jsonl, skip_existing, every, max_frames, recursive, quiet):
    """Detect people in INPUTS and write OpenPose-style JSON and rendered outputs.

    INPUTS are image files, folders of images, quoted glob patterns ("frames/*.png"),
    video files (mp4/avi/mov/mkv/webm/m4v) or webcam indices (0, 1, ...). Writes
    OUTPUT/<name>_keypoints.json (OpenPose 1.3 schema), OUTPUT/<name>_rendered.jpg per
    image and OUTPUT/<video>_rendered.mp4 per video. Unreadable inputs are reported as one
    line each and skipped.

    \b
    Exit codes:
      0  every input was processed
      1  fatal error (e.g. no weights), or every input failed
      2  some inputs failed, the others were processed
      130 interrupted (Ctrl-C); outputs written so far are complete
    """
    options = InferOptions(output=output, write_json=not no_json,
                           write_images=not no_render, write_video=not no_render,
                           coco_json=coco_json, jsonl=jsonl, skip_existing=skip_existing,
                           every=every, max_frames=max_frames, recursive=recursive)
    predict = _build_predictor(weights, device=device, height=height, scales=scales,
                               decode_params=preset)
    from openpaf.runner import run_inference
    try:
        summary = run_inference(predict, list(inputs), options, progress=not quiet)
    except OSError as e:
        raise click.ClickException(f"cannot write outputs: {e}") from None
    if not quiet:
        click.echo(summary.line(), err=True)
    ctx.exit(summary.exit_code)


def _build_predictor(weights, **kwargs):
    """``Predictor.from_checkpoint`` with the given options (None = library default),
    turning load errors into one-line ``ClickException``s."""
    try:
        from openpaf.checkpoint import CheckpointError
    except ImportError:  # pragma: no cover - while the module is being written
        CheckpointError = ValueError
    try:
        from openpaf.predict import Predictor
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        predictor = Predictor.from_checkpoint(None if weights is None else str(weights),
                                              **kwargs)
    except (CheckpointError, ValueError, OSError, RuntimeError, ImportError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise click.ClickException(msg) from None
    return predictor if callable(predictor) else predictor.predict
