"""``openpaf eval``: COCO OKS AP of a model (or of the decoder on oracle maps)."""
import json

import click

from .options import guard_output, load_predictor, model_options, weights_or_default


@click.command("eval")
@click.option("--ann", required=True, type=click.Path(exists=True, dir_okay=False),
              help="COCO keypoint annotation JSON.")
@click.option("--images", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with the annotation file's images (not needed with --oracle).")
@model_options
@click.option("--oracle", is_flag=True,
              help="Replace the network with maps rendered from the ground truth "
                   "(the training target code): measures the decoder alone.")
@click.option("--oracle-noise", type=float, default=0.0, show_default=True,
              help="With --oracle: std of seeded Gaussian noise added to the maps "
                   "(decoder robustness check).")
@click.option("--max-images", type=int, default=None, help="Evaluate the first N images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report (AP table, decode_ms, failure classes) here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--strict", is_flag=True,
              help="Refuse to score when an image cannot be read or decodes to a size "
                   "other than its annotation's (default: leave it and its people out "
                   "of the score, say so, and exit with code 2). Photos annotated on "
                   "their stored pixels (EXIF orientation) are scored in that frame.")
@click.pass_context
def eval_cmd(ctx, ann, images, weights, height, scales, flip, accurate, device, preset,
             backend, precision, compile_,
             oracle, oracle_noise, max_images, json_path, quiet, strict):
    """Evaluate keypoint AP (COCOeval, OKS) on a COCO-format annotation file.

    Exit codes: 0 scored; 1 error (bad file, no readable image); 2 scored, but some
    images were unreadable or of another size than annotated, and left out."""
    from openpaf.evaluate import ORACLE_HEIGHT, evaluate, format_report
    from openpaf.io.atomic import atomic_write_text
    guard_output(json_path, [ann, None if oracle else weights_or_default(weights)], "--json",
                 folders=[images])
    predictor = None
    if not oracle:
        if images is None:
            raise click.UsageError("--images is required unless --oracle is given")
        predictor = load_predictor(weights, backend=backend, device=device, height=height,
                                   scales=scales, flip=flip, accurate=accurate,
                                   decode_params=preset,
                                   precision=precision, compile=compile_)
    try:
        report = evaluate(ann, images, predictor=predictor, oracle=oracle,
                          decode_params=preset if oracle else None,
                          height=ORACLE_HEIGHT if height is None else height,
                          max_images=max_images, oracle_noise=oracle_noise,
                          progress=not quiet, strict=strict)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc))
    if predictor is not None:
        report["weights"] = str(predictor.weights_path)
        report["settings"]["precision_choice"] = str(predictor.precision_choice)
        click.echo(f"precision {predictor.precision_choice}")
    click.echo(format_report(report))
    if json_path:
        try:
            atomic_write_text(json_path, json.dumps(report, indent=2))
        except OSError as exc:
            raise click.ClickException(f"cannot write {json_path}: {exc.strerror or exc}")
        click.echo(f"report written to {json_path}")
    if report.get("unreadable_images") or report.get("size_mismatch"):
        ctx.exit(2)
