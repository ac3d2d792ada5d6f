"""``openpaf train``: train a PAF network (or preview augmented samples)."""
from pathlib import Path

import click

from .options import finite_number

# CLI option name -> TrainConfig field, for the options that override the recipe.
_OVERRIDES = ("model", "init", "epochs", "max_steps", "batch_size", "lr", "optimizer",
              "schedule", "warmup_steps", "input_size", "amp", "workers", "seed", "device",
              "val_every", "checkpoint_every", "log_every", "teacher", "teacher_weight",
              "skeleton")


@click.command("train")
@click.option("--data", "-d", "data", multiple=True, metavar="SPEC",
              help="Training data, repeatable: ANN.json:IMAGES_DIR[:WEIGHT] or a dataset "
                   "YAML[:WEIGHT] (configs/data/*.yaml). WEIGHT = share of the samples drawn "
                   "(default: proportional to image counts).")
@click.option("--val", default=None, metavar="ANN.json:IMAGES_DIR",
              help="Validation set (or a dataset YAML): COCO AP every --val-every steps "
                   "and at the end; the best model is kept as best.pt.")
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Run folder (last.pt, best.pt, log.csv). Default: runs/<recipe>, or the "
                   "resumed run's folder.")
@click.option("--recipe", default="small", show_default=True,
              help="Preset: cmu (CVPR 2017 SGD recipe, VGG19 6 stages), fast (3 stages, "
                   "Adam), small (BatchNorm half-width), tiny (CPU smoke test).")
@click.option("--model", default=None,
              help="Model name from the registry (overrides the recipe).")
@click.option("--init", default=None, metavar="scratch|vgg19-torchvision:FILE|checkpoint:FILE",
              help="Initial weights: from scratch, a torchvision VGG19 state dict for the "
                   "trunk, or an openpaf checkpoint to fine-tune.")
@click.option("--skeleton", default=None, metavar="SPEC.yaml|NAME",
              help="Keypoints to train: a skeleton file (configs/skeletons/*.yaml) or a "
                   "built-in name (openpose_coco18). Default: the first --data file's COCO "
                   "category (its keypoints and 1-based skeleton); other datasets are "
                   "mapped onto it by keypoint name.")
@click.option("--epochs", type=int, default=None, help="Epochs (an epoch = every image once).")
@click.option("--max-steps", type=int, default=None,
              help="Optimizer steps (with --epochs, the smaller wins).")
@click.option("--batch-size", type=int, default=None, help="Images per step per process.")
@click.option("--lr", type=float, default=None, callback=finite_number(0, strict=True),
              help="Base learning rate.")
@click.option("--teacher", type=click.Path(dir_okay=False), default=None,
              help="Self-distillation: also pull every stage towards these weights' "
                   "flip-averaged maps on every pixel (e.g. weights/default.pt).")
@click.option("--teacher-weight", type=float, default=None, callback=finite_number(0),
              help="Weight of the teacher term (default 1).")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None)
@click.option("--schedule", type=click.Choice(["cosine", "step", "constant"]), default=None)
@click.option("--warmup-steps", type=int, default=None)
@click.option("--input-size", type=int, default=None, help="Square crop side in pixels (x8).")
@click.option("--amp", type=click.Choice(["none", "bf16", "fp16"]), default=None,
              help="Mixed precision: bf16 on CUDA or CPU (fast on CPUs with AMX), fp16 on CUDA.")
@click.option("--workers", type=int, default=None,
              help="DataLoader worker processes. Default: min(4, CPUs).")
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto (default).")
@click.option("--val-every", type=int, default=None,
              help="Validate every N steps (0 = only at the end).")
@click.option("--checkpoint-every", type=int, default=None, help="Save last.pt every N steps.")
@click.option("--log-every", type=int, default=None, help="Log a CSV row every N steps.")
@click.option("--resume", type=click.Path(exists=True), default=None,
              help="Continue a run exactly: its folder or last.pt. Its config and data are "
                   "reused unless given again.")
@click.option("--stop-after", type=int, default=None,
              help="Stop (saving last.pt) after N steps in this call; --resume continues.")
@click.option("--show-samples", type=click.Path(file_okay=False), default=None,
              help="Write augmented samples with their targets drawn as PNGs here, then exit.")
@click.option("--num-samples", type=int, default=8, show_default=True,
              help="How many PNGs --show-samples writes.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(data, val, out, recipe, resume, stop_after, show_samples, num_samples, quiet,
          **options):
    """Train a Part Affinity Field network on COCO-format keypoint data.

    \b
    Examples:
      openpaf train --data ../shared/data/coco/train.json:../shared/data/coco/train \\
                    --data configs/data/lspet.yaml:0.3 --recipe small --out runs/small
      openpaf train --data configs/data/coco_shared_train.yaml --show-samples previews/
      openpaf train --resume runs/small
      torchrun --nproc_per_node 4 --no-python openpaf train --recipe cmu ...
    """
    import dataclasses

    from openpaf.skeleton import get_spec
    from openpaf.weights import CheckpointError
    from openpaf.data.coco import parse_data_arg
    from openpaf.train import get_recipe, resume_conflicts, resume_info
    from openpaf.train import show_samples as write_samples
    from openpaf.train import train as run

    overrides = {k: options[k] for k in _OVERRIDES if options.get(k) is not None}
    try:
        specs = [s for arg in data for s in parse_data_arg(arg)]
        if resume:
            info = resume_info(resume)
            fixed = resume_conflicts(info.config, overrides)
            if fixed:
                names = ", ".join("--" + k.replace("_", "-") for k in fixed)
                raise click.UsageError(f"{names}: a resumed run keeps its recorded value "
                                       "(restored optimizer, schedule and RNG states); start "
                                       "a new run, e.g. --init checkpoint:LAST.pt")
            config = dataclasses.replace(info.config, **overrides)
            specs = specs or info.data
            val = val or info.val
            out = out or str(info.path.parent)
        else:
            config = get_recipe(recipe, **overrides)
        if not specs:
            raise click.UsageError("give training data with --data (or --resume a run)")
        if show_samples:
            paths = write_samples(specs, show_samples, config=config, count=num_samples,
                                  skeleton=get_spec(config.skeleton) if config.skeleton
                                  else None)
            click.echo(f"wrote {len(paths)} samples to {show_samples}")
            return
        out = out or str(Path("runs") / config.recipe)
        result = run(config, specs, out, val=val, resume=resume, halt_after=stop_after,
                     progress=not quiet, log=click.echo)
    except (CheckpointError, ValueError, OSError, FloatingPointError) as exc:
        raise click.ClickException(" ".join(str(exc).split()))
    if result.best_ap >= 0:
        click.echo(f"best val AP {result.best_ap:.4f} (best.pt)")
