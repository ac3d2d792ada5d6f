"""``openpaf weights``: import foreign weights, export to CMU layout, inspect, pack."""
import click

from .options import guard_output


@click.group("weights")
def weights():
    """Import, export and inspect model weights."""


@weights.command("import")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="openpaf checkpoint to write (.pt).")
@click.option("--half", is_flag=True, help="Store fp16 tensors (half the size).")
def import_cmd(src, output, half):
    """Convert a foreign weight file into an openpaf checkpoint; the format is recognised
    by content.

    \b
    Formats: OpenVINO IR v10 (.xml beside its .bin; Intel OMZ human-pose-estimation-0001,
    Apache-2.0), CMU's COCO model (pytorch-openpose body_pose_model.pth, CMU's
    non-commercial licence), tf-pose-estimation frozen graphs (graph_opt.pb, Apache-2.0).
    The source, its checksum, licence and the conversion go into the manifest.
    """
    from openpaf.weights import CheckpointError
    from openpaf.weights.formats import import_weights
    guard_output(output, [src], "--output")
    try:
        imported = import_weights(src, output, half=half)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(" ".join(str(exc).split()))
    what = imported.manifest.get("source_format", "")
    licence = imported.manifest.get("licence", "")
    click.echo(f"wrote {output} ({imported.model.arch}"
               f"{', ' + imported.variant if imported.variant else ''}; {what}; "
               f"licence: {licence})")
    for note in imported.notes:
        click.echo(f"  note: {note}")


# --format -> the function (module, name) that writes that layout: (src, dst) -> path.
_EXPORTERS = {"cmu": ("openpaf.weights.formats.cmu", "export_cmu")}


@weights.command("export")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="File to write (.pth).")
@click.option("--format", "fmt", type=click.Choice(sorted(_EXPORTERS)), default="cmu",
              show_default=True,
              help="cmu: flat CMU names, loadable by pytorch-openpose (6-stage models).")
def export_cmd(src, output, fmt):
    """Export an openpaf checkpoint to a foreign weight layout."""
    import importlib

    from openpaf.weights import CheckpointError
    module, name = _EXPORTERS[fmt]
    export = getattr(importlib.import_module(module), name)
    guard_output(output, [src], "--output")
    try:
        path = export(src, output)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc))
    click.echo(f"wrote {path} ({fmt} layout)")


@weights.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
def info_cmd(path):
    """Print a checkpoint's architecture, parameter count and manifest."""
    from openpaf.weights import CheckpointError, load_weights
    from openpaf.weights.checkpoint import describe
    try:
        loaded = load_weights(path)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc))
    for line in describe(loaded):
        click.echo(line)


def _scorer(pairs, quiet):
    """``pack``'s ``score``: ``openpaf eval``'s code with the weights' own defaults (their
    height and flip, one scale, fp32) on every ``(annotations, images)`` pair; unreadable
    images are refused, never scored."""
    def score(path):
        from openpaf.evaluate import evaluate
        from openpaf.predict import Predictor
        # fp32: the manifest's AP must not depend on the CPU that packed it (auto would)
        predictor = Predictor.from_checkpoint(str(path), device="cpu", precision="fp32")
        return [evaluate(ann, images, predictor=predictor, progress=not quiet, strict=True)
                for ann, images in pairs]
    return score


@weights.command("pack")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint to write, e.g. weights/default.pt.")
@click.option("--eval", "evals", multiple=True, metavar="ANN.json:IMAGES_DIR|YAML",
              help="Score the packed weights on this COCO keypoint set (openpaf eval's "
                   "defaults) and record the figures; repeatable.")
@click.option("--name", default="", help="Model name for the manifest (default: file stem).")
@click.option("--description", default="", help="One-line description for the manifest.")
@click.option("--fp32", is_flag=True, help="Keep fp32 tensors (default: fp16, half the size).")
@click.option("--manifest-json", type=click.Path(dir_okay=False), default=None,
              help="Also write the manifest as JSON here.")
@click.option("--height", type=int, default=None,
              help="Default input height to store with the weights (default: keep the "
                   "source's).")
@click.option("--flip/--no-flip", default=None,
              help="Store flip test-time augmentation on/off as the default (default: "
                   "keep the source's).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def pack_cmd(src, output, evals, name, description, fp32, manifest_json, height, flip,
             quiet):
    """Make a training checkpoint shippable: fp16 weights without optimizer state, and a
    manifest with every training run behind it (steps, wall time, hardware, data) and the
    AP measured on the packed file.

    Example: openpaf weights pack runs/small/last.pt -o weights/default.pt
    --eval ../shared/data/coco/val.json:../shared/data/coco/val
    --manifest-json weights/default.json
    """
    from openpaf.weights import CheckpointError
    from openpaf.weights.pack import pack
    from openpaf.train import parse_val
    try:
        pairs = [parse_val(spec, "--eval") for spec in evals]
    except (ValueError, FileNotFoundError) as exc:
        raise click.BadParameter(str(exc), param_hint="--eval")
    anns = [ann for ann, _ in pairs]
    guard_output(output, [src, *anns], "--output")
    guard_output(manifest_json, [src, output, *anns], "--manifest-json")
    try:
        manifest = pack(src, output, score=_scorer(pairs, quiet) if pairs else None,
                        name=name, description=description,
                        half=not fp32, manifest_json=manifest_json,
                        height=height, flip=flip)
    except (CheckpointError, OSError, ValueError) as exc:
        raise click.ClickException(" ".join(str(exc).split()))
    t, origin = manifest["training"], manifest.get("origin")
    what = (f"imported ({origin.get('source_format', 'foreign weights')})"
            if origin and not t["steps"] else
            f"{len(t['runs'])} training run(s), {t['steps']:,} steps, "
            f"{t['wall_time_s'] / 3600:.2f} h")
    click.echo(f"wrote {output}: {manifest['model']} model, {manifest['parameters']:,} "
               f"parameters ({manifest['storage']}), {what}")
    for e in manifest["eval"]:
        click.echo(f"  {e['annotations']}: AP {e['AP']:.3f}, AP50 {e['AP50']:.3f} "
                   f"({e['images']} images, {e['people']} people)")
    if not t["complete"] and not origin:
        click.echo("  note: the lineage has a gap (see manifest training.runs)")
