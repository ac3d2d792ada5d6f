"""Training: recipes and config, the masked multi-stage L2 loss, the LR schedule, the
loop, exact resume, DDP, logs and sample previews.

    >>> from openpaf.train import RECIPES, train
    >>> from openpaf.data.coco import parse_data_arg
    >>> result = train(RECIPES["small"], parse_data_arg("train.json:images"), "runs/x")

``config`` (``TrainConfig``, ``RECIPES``), ``loss`` (``paf_loss``), ``schedule`` (optimizer,
``lr_factor``), ``init`` (the starting network), ``state`` (RNG, resume, manifest),
``dist`` (torchrun/SLURM), ``log`` (CSV/TensorBoard), ``loop`` (``train``), ``samples``
(``show_samples``).
"""
from .config import RECIPES, TrainConfig, get_recipe, parse_val
from .init import build_model, fold_imagenet_input
from .loop import TrainResult, train
from .loss import paf_loss
from .samples import show_samples
from .schedule import build_optimizer, lr_factor
from .state import ResumeInfo, resume_conflicts, resume_info, rng_state, set_rng_state

__all__ = ["RECIPES", "ResumeInfo", "TrainConfig", "TrainResult", "build_model",
           "build_optimizer", "fold_imagenet_input", "get_recipe", "lr_factor",
           "paf_loss", "parse_val", "resume_conflicts", "resume_info", "rng_state", "set_rng_state",
           "show_samples", "train"]
