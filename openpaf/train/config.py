"""What defines a training run: ``TrainConfig``, the named recipes, the ``--val`` spec."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..data.augment import AugmentParams
from ..data.targets import TargetParams

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("adam", "sgd")
AMP_MODES = ("none", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything that defines a training run (a recipe is one instance).

    lr: base learning rate (per-step loss = sum over stages and cells / (2 * batch), as
    Caffe's EuclideanLoss, so CMU's SGD lr carries over). schedule: ``cosine`` (to
    ``lr * min_lr_ratio`` at the last step), ``step`` (x ``gamma`` every ``step_size``
    steps) or ``constant``; ``warmup_steps`` ramp linearly from ~0. Length: ``max_steps``
    and/or ``epochs`` (the smaller wins); an epoch is ``epoch_size`` draws (default: every
    image once). init: ``scratch``, ``vgg19-torchvision:FILE`` or ``checkpoint:FILE``.
    val_every / checkpoint_every: steps (0 = only at the end). skeleton: the keypoints to
    train (a built-in spec name or a YAML/JSON file); empty: the first dataset's own
    (its COCO category; COCO-17 person files train OpenPose COCO-18).
    """

    recipe: str = "custom"
    model: str = "small"
    model_overrides: dict = field(default_factory=dict)
    init: str = "scratch"
    input_size: int = 368
    batch_size: int = 10
    optimizer: str = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    step_size: int = 0
    gamma: float = 0.333
    min_lr_ratio: float = 0.0
    max_steps: int | None = None
    epochs: int | None = None
    epoch_size: int | None = None
    grad_clip: float | None = None
    amp: str = "none"
    workers: int | None = None
    seed: int = 0
    device: str = "auto"
    augment: AugmentParams = field(default_factory=AugmentParams)
    target: TargetParams = field(default_factory=TargetParams)
    log_every: int = 20
    val_every: int = 0
    val_height: int | None = None     # None: the model's default input height
    val_max_images: int | None = None
    checkpoint_every: int = 1000
    teacher: str | None = None        # weights whose flip-averaged maps are also targets
    teacher_weight: float = 1.0       # of the teacher term against the ground-truth term
    skeleton: str = ""                # keypoint spec name or file; "" = the data's

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = AugmentParams(**self.augment)
        if isinstance(self.target, dict):
            self.target = TargetParams(**self.target)
        self.augment = dataclasses.replace(self.augment, input_size=int(self.input_size))
        for name, allowed in (("schedule", SCHEDULES), ("optimizer", OPTIMIZERS),
                              ("amp", AMP_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.input_size % self.target.stride:
            raise ValueError(f"input_size must be a multiple of {self.target.stride}, "
                             f"got {self.input_size}")
        if self.batch_size < 1 or not 0 < self.lr < math.inf:
            raise ValueError("batch_size must be >= 1 and lr a finite number > 0")
        if not 0 <= self.teacher_weight < math.inf:
            raise ValueError(f"teacher_weight must be a finite number >= 0, got "
                             f"{self.teacher_weight}")
        if self.schedule == "step" and self.step_size <= 0:
            raise ValueError("schedule 'step' needs step_size > 0")
        for name in ("max_steps", "epochs", "epoch_size", "log_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("warmup_steps", "val_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["augment"] = self.augment.to_dict()
        d["target"] = dataclasses.asdict(self.target)
        d["model_overrides"] = dict(self.model_overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {unknown}")
        return cls(**d)


RECIPES: dict[str, TrainConfig] = {
    # CMU's CVPR 2017 Caffe solver (training/setLayers.py template): SGD, momentum 0.9,
    # weight decay 5e-4, base_lr 4e-5, step policy gamma 0.333 every 136,106 iterations,
    # 600k iterations, batch 10 per GPU, 368x368 crops. Start it from ImageNet VGG19:
    # --init vgg19-torchvision:vgg19.pth.
    "cmu": TrainConfig(recipe="cmu", model="cmu_vgg19", input_size=368, batch_size=10,
                       optimizer="sgd", lr=4e-5, momentum=0.9, weight_decay=5e-4,
                       schedule="step", step_size=136106, gamma=0.333, max_steps=600000,
                       checkpoint_every=2000, val_every=20000),
    # The same network with 3 stages, Adam and a cosine schedule: converges in fewer steps.
    "fast": TrainConfig(recipe="fast", model="vgg19_3stage", input_size=368, batch_size=10,
                        optimizer="adam", lr=1e-4, schedule="cosine", warmup_steps=1000,
                        max_steps=150000, checkpoint_every=2000, val_every=10000),
    # The BatchNorm half-width model, from scratch.
    "small": TrainConfig(recipe="small", model="small", input_size=368, batch_size=16,
                         optimizer="adam", lr=5e-4, schedule="cosine", warmup_steps=1000,
                         max_steps=150000, checkpoint_every=2000, val_every=10000),
    # Lightweight OpenPose (Osokin 2018, arXiv:1811.12004): Adam, base LR 4e-5, batch 80,
    # weight decay 5e-4, 368x368 crops, LR x0.333 at epochs 100, 200 and 260 of 280 (one
    # COCO train2017 epoch ~ 800 steps of 80; here every 80k steps to 224k). Published
    # in three runs: (1) from ImageNet MobileNetV1 weights (not importable here: start
    # from scratch or from weights/default.pt), (2) again from (1)'s weights, (3) from
    # (2) with --model lightweight_mobilenet_v1_3ref (3 refinement stages grow from 1).
    "lightweight": TrainConfig(recipe="lightweight", model="lightweight_mobilenet_v1",
                               input_size=368, batch_size=80, optimizer="adam", lr=4e-5,
                               weight_decay=5e-4, schedule="step", step_size=80000,
                               gamma=0.333, max_steps=224000, checkpoint_every=2000,
                               val_every=10000),
    # Fine-tuning the shipped lightweight weights on a CPU (bf16): small LR, short.
    "lightweight-finetune": TrainConfig(recipe="lightweight-finetune",
                                        model="lightweight_mobilenet_v1",
                                        init="checkpoint:weights/default.pt",
                                        input_size=368, batch_size=8, optimizer="adam",
                                        lr=1e-5, schedule="cosine", warmup_steps=50,
                                        max_steps=2000, amp="bf16", checkpoint_every=500),
    # Smoke test on a CPU: toy network, small crops, a few hundred steps.
    # (BatchNorm: without it ``tiny`` needs thousands of steps before heatmaps appear.)
    "tiny": TrainConfig(recipe="tiny", model="tiny", model_overrides={"batch_norm": True},
                        input_size=128, batch_size=4,
                        optimizer="adam", lr=2e-3, schedule="constant", max_steps=200,
                        log_every=10, checkpoint_every=100),
}


def get_recipe(name: str, **overrides) -> TrainConfig:
    """Recipe ``name`` with ``overrides`` (``None`` values ignored)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return dataclasses.replace(RECIPES[name],
                               **{k: v for k, v in overrides.items() if v is not None})


def parse_val(val: str, option: str = "--val") -> tuple[str, str]:
    """``"ann.json:images_dir"`` (or a one-dataset YAML) -> ``(ann, images_dir)``, both
    required to exist; errors name ``option``."""
    if str(val).lower().endswith((".yaml", ".yml")):
        from ..data.coco import load_data_yaml
        spec = load_data_yaml(val)[0]
        val = f"{spec.annotations}:{spec.images}"
    ann, _, images = str(val).partition(":")
    if not ann or not images:
        raise ValueError(f"{option} expects ANN.json:IMAGES_DIR, got {val!r}")
    if not Path(ann).is_file() or not Path(images).is_dir():
        raise FileNotFoundError(f"{option}: {ann} or {images} not found")
    return ann, images
