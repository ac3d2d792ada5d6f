"""``openpaf weights``: import CMU weights, export to CMU layout, inspect checkpoints."""
import click


@click.group("weights")
def weights():
    """Import, export and inspect model weights."""


@weights.command("import")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="openpaf checkpoint to write (.pt).")
@click.option("--half", is_flag=True, help="Store fp16 tensors (half the size).")
def import_cmd(src, output, half):
    """Convert CMU's COCO model (pytorch-openpose body_pose_model.pth) to a checkpoint.

    CMU's weights are under CMU's non-commercial academic licence; the manifest says so.
    """
    from openpaf.checkpoint import CheckpointError
    from openpaf.cmu import import_cmu
    try:
        path = import_cmu(src, output, half=half)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc))
    click.echo(f"wrote {path} (CMU OpenPose COCO model, non-commercial licence)")


@weights.command("export")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="File to write (.pth).")
@click.option("--format", "fmt", type=click.Choice(["cmu"]), default="cmu",
              show_default=True,
              help="cmu: flat CMU names, loadable by pytorch-openpose (6-stage models).")
def export_cmd(src, output, fmt):
    """Export an openpaf checkpoint to a foreign weight layout."""
    from openpaf.checkpoint import CheckpointError
    from openpaf.cmu import export_cmu
    try:
        path = export_cmu(src, output)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc))
    click.echo(f"wrote {path} ({fmt} layout)")


@weights.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
def info_cmd(path):
    """Print a checkpoint's architecture, parameter count and manifest."""
    from openpaf.checkpoint import CheckpointError, describe, load_checkpoint
    try:
        loaded = load_checkpoint(path)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc))
    for line in describe(loaded):
        click.echo(line)
