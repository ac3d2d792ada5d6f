"""Click options shared by several verbs (one definition each)."""
import math
import re

import click

from openpaf.decode.params import DEFAULT_PRESET, PRESETS
from openpaf.runtime import PRECISIONS


def parse_scales(ctx, param, value):
    if value is None:
        return None
    try:
        scales = tuple(float(s) for s in str(value).split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("use comma-separated numbers, e.g. 0.5,1,1.5,2")
    if not scales or not all(0 < s < float("inf") for s in scales):
        raise click.BadParameter("scales must be positive numbers")
    return scales


def finite_number(minimum: float, strict: bool = False):
    """Click callback: a finite number >= ``minimum`` (> with ``strict``); None passes.
    ``click.FloatRange`` lets nan and inf through."""
    def check(ctx, param, value):
        if value is None:
            return None
        if not math.isfinite(value) or (value <= minimum if strict else value < minimum):
            raise click.BadParameter(f"must be a finite number {'>' if strict else '>='} "
                                     f"{minimum:g}, got {value}")
        return value
    return check


def parse_device(ctx, param, value):
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise click.BadParameter("expected auto, cpu, cuda or cuda:N")
    return value


def model_options(f):
    """--weights, --height, --scales, --flip, --accurate, --device, --preset, --backend,
    --precision, --compile."""
    for opt in reversed([
        click.option("--weights", "-w", type=click.Path(dir_okay=False), default=None,
                     help="openpaf checkpoint (.pt), or a foreign weight file recognised "
                          "by content (OpenVINO IR .xml, CMU .pth, TensorFlow graph .pb; "
                          "see `openpaf weights import`). Default: weights/default.pt "
                          "(or $OPENPAF_WEIGHTS)."),
        click.option("--height", type=int, default=None,
                     help="Network input height in pixels at scale 1 (multiple of 8). "
                          "Default: the weights' own (456 for the default model). Larger "
                          "finds smaller people; network time grows with its square."),
        click.option("--scales", default=None, callback=parse_scales,
                     help="Comma-separated input scales whose maps are averaged, "
                          "e.g. 0.5,1,1.5,2 (default: 1, or the accuracy mode's)."),
        click.option("--flip/--no-flip", default=None,
                     help="Also run the mirrored image and average its maps (left/right "
                          "swapped back): more accurate, ~2x the network time. Default: "
                          "the weights' own setting."),
        click.option("--accurate", is_flag=True,
                     help="Accuracy mode: --flip plus the input scales chosen for these "
                          "weights on coco/train (default model: 0.8,1 at height 456): "
                          "~3.3x the default's network time, about +0.04 AP."),
        click.option("--device", default="auto", show_default=True, callback=parse_device,
                     help="cpu, cuda, cuda:N or auto."),
        click.option("--preset", type=click.Choice(sorted(PRESETS)), default=DEFAULT_PRESET,
                     show_default=True,
                     help="Decoder settings: tuned (chosen on real maps of coco/train), "
                          "cvpr2017 (the paper's) or openpose (C++ defaults)."),
        click.option("--backend", type=click.Choice(["torch", "onnxruntime", "openvino"]),
                     default=None,
                     help="Runtime. Default: onnxruntime for .onnx weights (from `openpaf "
                          "export --onnx`), torch otherwise. openvino (pip install "
                          "openpaf[openvino]) runs the weights on OpenVINO's CPU plugin; "
                          "an OpenVINO IR .xml runs as it is (INT8 for Intel's model)."),
        click.option("--precision", type=click.Choice(list(PRECISIONS)), default="auto",
                     show_default=True,
                     help="Network precision (torch backend). auto: bf16 with the output "
                          "heads and first conv in fp32 on CPUs with AMX/AVX512-BF16 and on "
                          "GPUs (AP within 0.002 of fp32), fp32 elsewhere; bf16: the whole "
                          "network (faster, -0.01 AP); fp16: GPUs, heads fp32; int8 (CPU; "
                          "pip install \"openpaf[int8]\"): compiled INT8 with the calibration "
                          "shipped with the default weights. The run summary says what auto "
                          "chose."),
        click.option("--compile/--no-compile", "compile_", default=None,
                     help="torch.compile the network (inductor, cached in "
                          "~/.cache/openpaf). Default: for streams only, once a frame "
                          "size has repeated enough to repay its compile time (single "
                          "photos never compile)."),
    ]):
        f = opt(f)
    return f


def load_predictor(weights, **kwargs):
    """``Predictor.from_checkpoint(weights, **kwargs)`` (None values = library defaults),
    with any load error turned into a one-line ``ClickException``."""
    from openpaf.weights import CheckpointError
    from openpaf.predict import Predictor
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return Predictor.from_checkpoint(None if weights is None else str(weights), **kwargs)
    except (CheckpointError, ValueError, OSError, RuntimeError, ImportError) as e:
        raise click.ClickException(" ".join(str(e).split()) or type(e).__name__) from None


def guard_output(path, inputs=(), label="output", folders=()):
    """``io.guard.check_output`` (an output is never an input, nor unwritable) as a one-line
    ``ClickException``; ``path`` None = nothing written. Weight files bring their IR
    companions (``.xml`` + ``.bin``)."""
    from openpaf.io.guard import OutputError, check_output, companions
    if path is None:
        return
    try:
        check_output(path, [p for i in inputs for p in companions(i)], label, folders)
    except OutputError as e:
        raise click.ClickException(str(e)) from None


def weights_or_default(weights):
    """The weight file a command reads: ``weights``, else the default weights' path."""
    from openpaf.weights import default_weights_path
    return weights if weights is not None else default_weights_path()
