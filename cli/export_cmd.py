"""``openpaf export``: write the network as ONNX (verified against torch)."""
import click

from .options import guard_output, weights_or_default


@click.command("export")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False),
              help="ONNX file to write.")
@click.option("--weights", "-w", type=click.Path(dir_okay=False), default=None,
              help="openpaf checkpoint (.pt). Default: weights/default.pt (or "
                   "$OPENPAF_WEIGHTS) unless --model is given.")
@click.option("--model", default=None,
              help="Export a registered model with random weights instead (for speed "
                   "tests of runtimes).")
@click.option("--height", type=int, default=None,
              help="Example input height (the exported axes are dynamic). Default: the "
                   "weights' default height.")
@click.option("--width", type=int, default=368, show_default=True,
              help="Example input width.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
@click.option("--half", is_flag=True,
              help="fp16 weights and arithmetic inside (fp32 input/outputs), for GPUs.")
@click.option("--no-verify", is_flag=True, help="Skip the onnxruntime-vs-torch check.")
def export(onnx_path, weights, model, height, width, opset, half, no_verify):
    """Export heatmaps and PAFs of the last stage to ONNX with dynamic batch/height/width.

    The input normalisation, stride and config travel as ONNX metadata, so
    `openpaf infer --weights model.onnx` (onnxruntime) needs nothing else.
    """
    from openpaf.export import ExportError, export_onnx
    from openpaf.weights import CheckpointError, load_default, load_weights
    if weights and model:
        raise click.UsageError("give --weights or --model, not both")
    guard_output(onnx_path, [] if model else [weights_or_default(weights)], "--onnx")
    try:
        if model:
            from openpaf.model import create_model, get_pretrained_cfg
            net, pre = create_model(model), get_pretrained_cfg(model)
            click.echo(f"exporting {model} with random weights", err=True)
        else:
            loaded = load_weights(weights) if weights else load_default()
            net, pre = loaded.model, loaded.pretrained
        report = export_onnx(net, onnx_path, normalisation=pre.normalisation,
                             pretrained=pre, height=height or pre.height, width=width,
                             opset=opset, half=half, verify=not no_verify)
    except (CheckpointError, ExportError, ValueError, OSError) as exc:
        raise click.ClickException(" ".join(str(exc).split()) or type(exc).__name__)
    click.echo(report.summary())
