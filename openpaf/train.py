"""Training: recipes, the masked multi-stage L2 loss, the loop, exact resume, previews.

    >>> from openpaf.train import RECIPES, train
    >>> from openpaf.data.coco import parse_data_arg
    >>> result = train(RECIPES["small"], parse_data_arg("train.json:images"), "runs/x")

Outputs in ``out_dir``: ``last.pt`` (openpaf checkpoint whose ``extra["train_state"]``
holds optimizer, scheduler, scaler, RNG states, epoch and step: everything ``resume=``
needs to continue bit-identically), ``best.pt`` (best validation AP, no training state),
``log.csv`` (step, epoch, loss, loss per stage, lr, img/s, val AP) and TensorBoard events
if ``tensorboard`` is installed. Distributed: ``torchrun --nproc_per_node N --no-python
openpaf train ...``; each process takes ``batch_size`` images per step, logged losses are
averaged over processes, and only rank 0 writes, validates and saves.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import math
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from . import __version__
from .data.augment import AugmentParams
from .data.coco import DatasetSpec, MixSampler, build_dataset
from .data.targets import TargetParams
from .model import PretrainedCfg, create_model, get_pretrained_cfg
from .io.paths import remove_stale_temp_files
from .skeleton import KEYPOINTS, LIMBS, NUM_KEYPOINTS
from .structures import InputNorm, Maps
from .weights.checkpoint import file_sha256, load_checkpoint, save_checkpoint

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
    val_every / checkpoint_every: steps (0 = only at the end).
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
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 1 and lr > 0")
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


# --- loss and schedule ------------------------------------------------------------------

def paf_loss(outputs: Sequence[Maps],
             batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked L2 over every stage: ``(total, per-stage losses (S,) detached)``.

    outputs: per stage ``Maps(heatmaps (B, 19, h, w), pafs (B, 38, h, w))``. The weight of a
    cell is ``mask (B, 1, h, w) x channel weight (B, C)``; each stage's loss is
    ``sum(weight * (pred - target)^2) / (2 B)``.
    """
    mask = batch["mask"]
    w_paf = mask * batch["paf_weight"][:, :, None, None]
    w_heat = mask * batch["heat_weight"][:, :, None, None]
    scale = 0.5 / mask.shape[0]
    per_stage = []
    for heat, pafs in outputs:
        loss = ((pafs.float() - batch["pafs"]).square() * w_paf).sum()
        loss = loss + ((heat.float() - batch["heatmaps"]).square() * w_heat).sum()
        per_stage.append(loss * scale)
    return torch.stack(per_stage).sum(), torch.stack([p.detach() for p in per_stage])


def lr_factor(step: int, config: TrainConfig, total_steps: int) -> float:
    """Multiplier of ``config.lr`` for optimizer step ``step`` (0-based)."""
    f = 1.0
    if config.warmup_steps > 0:
        f = min(1.0, (step + 1) / config.warmup_steps)
    if config.schedule == "cosine":
        t = min(step, total_steps) / max(total_steps, 1)
        f *= config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    elif config.schedule == "step":
        f *= config.gamma ** (step // config.step_size)
    return f


# --- model, optimizer, state ------------------------------------------------------------

def build_model(config: TrainConfig) -> tuple[torch.nn.Module, PretrainedCfg]:
    """The network as ``config.init`` says (scratch, torchvision VGG19 trunk, or a
    checkpoint or foreign weight file to fine-tune, whose architecture then wins over
    ``config.model``), and its inference defaults (normalisation, height, ...)."""
    kind, _, path = config.init.partition(":")
    if kind == "checkpoint":
        from .weights import load_weights
        loaded = load_weights(path)
        model, pretrained = loaded.model, loaded.pretrained
    elif kind in ("scratch", "vgg19-torchvision"):
        model = create_model(config.model, **config.model_overrides)
        pretrained = get_pretrained_cfg(config.model)
        if kind == "vgg19-torchvision":
            from .weights.formats.torchvision_vgg import load_torchvision_vgg19_file
            load_torchvision_vgg19_file(model, path)
            fold_imagenet_input(model.backbone.conv1_1, pretrained.normalisation)
    else:
        raise ValueError(f"--init must be scratch, vgg19-torchvision:FILE or "
                         f"checkpoint:FILE, got {config.init!r}")
    return model.train(), pretrained


IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@torch.no_grad()
def fold_imagenet_input(first: torch.nn.Module, norm: InputNorm) -> None:
    """Make a torchvision-trained first ``ConvAct`` (expects RGB ``(x/255 - mean) / std``)
    take ``norm``'s input instead (CMU: BGR ``x/256 - 0.5``) by rewriting its weights.

    Exact except on the 1-pixel zero-padded border. Without a conv bias (BatchNorm) the
    constant goes into the BN's ``running_mean``.
    """
    conv, bn = first.conv, getattr(first, "bn", None)
    order = [2, 1, 0] if norm.channel_order == "BGR" else [0, 1, 2]   # ours -> RGB index
    mean = torch.tensor(IMAGENET_MEAN_RGB)[order]
    std = torch.tensor(IMAGENET_STD_RGB)[order]
    # ours y = x * scale + offset, so x/255 = (y - offset) / (255 * scale)
    a = 1.0 / (255.0 * norm.scale * std)
    b = (-norm.offset / (255.0 * norm.scale) - mean) / std
    w = conv.weight[:, order]                          # reorder input channels to ours
    delta = (w * b[None, :, None, None]).sum(dim=(1, 2, 3))
    conv.weight.copy_(w * a[None, :, None, None])
    if conv.bias is not None:
        conv.bias.add_(delta)
    elif bn is not None:
        bn.running_mean.sub_(delta)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD (momentum); no weight decay on biases and BatchNorm parameters."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(groups, lr=config.lr)


def rng_state() -> dict:
    """Python, numpy and torch RNG states as plain values/tensors (weights_only-safe)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                       int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of ``rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_resume(path: str | os.PathLike) -> Path:
    """A run folder (-> its ``last.pt``) or a checkpoint file."""
    p = Path(path)
    p = p / "last.pt" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"nothing to resume at {path} (no last.pt)")
    return p


@dataclass
class ResumeInfo:
    """What a run's ``last.pt`` says about it (to restart without repeating options)."""

    config: TrainConfig
    data: list[DatasetSpec]
    val: str | None
    step: int
    path: Path


def resume_info(path: str | os.PathLike) -> ResumeInfo:
    from .weights.checkpoint import read_checkpoint
    p = resolve_resume(path)
    state = (read_checkpoint(p).get("extra") or {}).get("train_state")
    if not state:
        raise ValueError(f"{p} has no training state (only last.pt files can be resumed)")
    return ResumeInfo(TrainConfig.from_dict(state["config"]),
                      [DatasetSpec.from_dict(d) for d in state["data"]],
                      state["val"] or None, int(state["step"]), p)


# --- environment ------------------------------------------------------------------------

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(device: str) -> _Dist:
    """torchrun (``WORLD_SIZE`` > 1): init the process group; else resolve ``device``."""
    from .predict import resolve_device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(0, 1, resolve_device(device))
    import torch.distributed as dist
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and str(device) != "cpu":
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return _Dist(dist.get_rank(), dist.get_world_size(), dev)


def _barrier(env: _Dist) -> None:
    if env.world > 1:
        import torch.distributed as dist
        dist.barrier()


def default_workers() -> int:
    """min(4, CPUs available to this process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        cpus = os.cpu_count() or 1
    return min(4, cpus)


def hardware(device: torch.device, world: int = 1) -> str:
    """``"2 x NVIDIA H100"`` or the CPU model and core count."""
    if device.type == "cuda":
        return f"{world} x {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{world} x CPU {cpu} ({os.cpu_count()} cores)"


def _file_info(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        return {"path": str(path)}
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_sha256(p)}


class CsvLog:
    """Appends rows to ``log.csv``; on resume drops rows logged after the resumed step."""

    def __init__(self, path: Path, fields: list[str], resume_step: int | None):
        self.path, self.fields = path, fields
        rows = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self._write(rows, "w")

    def _write(self, rows: list[dict], mode: str) -> None:
        with open(self.path, mode, newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if mode == "w":
                w.writeheader()
            w.writerows(rows)

    def row(self, **values) -> None:
        self._write([{k: values.get(k, "") for k in self.fields}], "a")


class _Meter:
    """Collects per-step losses (on device, no sync) and writes a log row per window:
    the window's mean loss per stage, lr and images/s to CSV, TensorBoard and tqdm."""

    def __init__(self, out: Path, stages: int, resume_step: int | None, env: "_Dist",
                 images_per_step: int, bar, keep: int = 10000):
        fields = (["step", "epoch", "loss"] + [f"loss_stage{i + 1}" for i in range(stages)]
                  + ["lr", "img_per_s", "val_ap"])
        self.csv = CsvLog(out / "log.csv", fields, resume_step) if env.main else None
        self.board = _tensorboard(out) if env.main else None
        self.env, self.images_per_step, self.bar = env, images_per_step, bar
        self.losses: collections.deque = collections.deque(maxlen=keep)
        self.window: list[torch.Tensor] = []
        self.t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, per_stage: torch.Tensor) -> None:
        self.window.append(torch.cat([loss.detach()[None], per_stage]))
        self.bar.update(1)

    def flush(self, step: int, epoch: float, lr: float) -> None:
        rows = torch.stack(self.window).float()
        if self.env.world > 1:                          # mean over all processes
            import torch.distributed as dist
            dist.all_reduce(rows)
            rows /= self.env.world
        rows = rows.cpu()
        first = step - len(rows) + 1
        self.losses.extend((first + i, float(r[0])) for i, r in enumerate(rows))
        mean = rows.mean(0)
        if not torch.isfinite(mean).all():
            raise FloatingPointError(f"loss is not finite at step {step}")
        ips = len(rows) * self.images_per_step / max(time.perf_counter() - self.t0, 1e-9)
        self.window, self.t0 = [], time.perf_counter()
        if self.csv is None:
            return
        stage_cols = {f"loss_stage{i + 1}": f"{float(v):.6g}" for i, v in enumerate(mean[1:])}
        self.csv.row(step=step, epoch=f"{epoch:.3f}", loss=f"{float(mean[0]):.6g}",
                     lr=f"{lr:.6g}", img_per_s=f"{ips:.1f}", **stage_cols)
        self.bar.set_postfix(loss=f"{float(mean[0]):.4g}", img_s=f"{ips:.1f}")
        if self.board is not None:
            self.board.add_scalar("loss/total", float(mean[0]), step)
            for i, v in enumerate(mean[1:]):
                self.board.add_scalar(f"loss/stage{i + 1}", float(v), step)
            self.board.add_scalar("lr", lr, step)
            self.board.add_scalar("img_per_s", ips, step)

    def val(self, step: int, epoch: float, ap: float) -> None:
        if self.csv is not None:
            self.csv.row(step=step, epoch=f"{epoch:.3f}", val_ap=f"{ap:.4f}")
            if self.board is not None:
                self.board.add_scalar("val/AP", ap, step)
        self.t0 = time.perf_counter()            # validation time is not training time

    def close(self) -> None:
        self.bar.close()
        if self.board is not None:
            self.board.close()


# --- the loop ---------------------------------------------------------------------------

@dataclass
class TrainResult:
    """steps: optimizer steps done in total; losses: ``(step, loss)`` of this invocation
    (the last 10,000); val: ``(step, AP)`` of each validation; best_ap: -1 when never
    validated; halted: stopped by ``halt_after`` before the end."""

    out_dir: Path
    steps: int
    epoch: int
    losses: list[tuple[int, float]]
    val: list[tuple[int, float]]
    best_ap: float
    last: Path | None
    best: Path | None
    halted: bool


def train(config: TrainConfig, data: Sequence[DatasetSpec], out_dir: str | os.PathLike, *,
          val: str | None = None, resume: str | os.PathLike | None = None,
          halt_after: int | None = None, progress: bool = True,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train ``config`` on ``data`` (mixed by their weights), writing into ``out_dir``.

    val: ``"ann.json:images_dir"`` evaluated with :func:`openpaf.evaluate.evaluate` every
    ``config.val_every`` steps and at the end (AP into the log, best AP -> ``best.pt``).
    resume: a run folder or ``last.pt``: continue exactly where it stopped (same config
    and data expected). halt_after: stop (saving ``last.pt``) after this many steps in this
    call, e.g. for time-sliced jobs.
    """
    env = _setup(config.device)
    out = Path(out_dir)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out)                   # left by a killed run
    t_start = time.perf_counter()
    data = list(data)
    if not data:
        raise ValueError("no training data given")
    if val:
        parse_val(val)                                 # fail now, not after hours
    if halt_after is not None and halt_after < 1:
        raise ValueError(f"halt_after (--stop-after) must be >= 1, got {halt_after}")

    state = None
    if resume is not None:
        loaded = load_checkpoint(resolve_resume(resume))
        state = loaded.extra.get("train_state")
        if not state:
            raise ValueError(f"{resume}: no training state to resume from")
        model, pretrained = loaded.model.train(), loaded.pretrained
    else:
        _seed_all(config.seed)
        model, pretrained = build_model(config)
    # channels_last (NHWC) is what oneDNN and cuDNN run fastest, bf16 above all (2x here).
    model.to(env.device, memory_format=torch.channels_last)
    norm = pretrained.normalisation
    net = model
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(
            model, device_ids=[env.device.index] if env.device.type == "cuda" else None)

    dataset = build_dataset(data, config.augment, config.target, norm, config.seed)
    sampler = MixSampler(dataset.sizes, [s.weight for s in data], config.epoch_size,
                         config.seed, env.rank, env.world)
    steps_per_epoch = sampler.per_rank // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{sampler.per_rank} samples per process per epoch is fewer than "
                         f"one batch of {config.batch_size}")
    total = _total_steps(config, steps_per_epoch)
    workers = default_workers() if config.workers is None else int(config.workers)
    if workers > 0:
        # OpenCV's thread pool does not survive fork(): a forked worker that touches it
        # can deadlock. Workers give the parallelism, so OpenCV runs single-threaded.
        cv2.setNumThreads(0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, num_workers=workers,
        pin_memory=env.device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(config.seed))

    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config, total))
    # bf16 autocast also runs on CPUs (oneDNN; several times faster where the CPU has
    # AMX/AVX512-BF16); fp16 is CUDA only.
    use_amp = config.amp != "none" and (env.device.type == "cuda" or config.amp == "bf16")
    if config.amp != "none" and not use_amp and env.main:
        log(f"note: --amp {config.amp} ignored on {env.device.type} (fp16 needs CUDA)")
    amp_dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and config.amp == "fp16")

    step, best_ap, wall_before = 0, -1.0, 0.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, best_ap = int(state["step"]), float(state["best_ap"])
        wall_before = float(state.get("wall_time_s", 0.0))
        if env.main:
            log(f"resumed from {resume} at step {step} (epoch {step // steps_per_epoch})")

    for s, d in zip(data, dataset.datasets):
        if d.skipped and env.main:
            log(f"{s.annotations}: skipped {len(d.skipped)} image(s) with bad records "
                f"(first: {d.skipped[0]})")
    data_files = [{**s.to_dict(), "images_count": len(d),
                   "images_skipped": len(d.skipped), "annotations_file":
                   _file_info(s.annotations), "unknown_keypoints_used":
                   [KEYPOINTS[k] for k in d.unknown],
                   "images_with_face_masked": d.faces_partly_unknown}
                  for s, d in zip(data, dataset.datasets)] if env.main else []

    def snapshot(path: Path, with_state: bool) -> Path:
        wall = wall_before + time.perf_counter() - t_start
        manifest = _manifest(config, data, data_files, val, step, steps_per_epoch, wall,
                             hardware(env.device, env.world), best_ap)
        extra = None
        if with_state:
            extra = {"train_state": {
                "step": step, "epoch": step // steps_per_epoch,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": rng_state(), "config": config.to_dict(),
                "data": [s.to_dict() for s in data], "val": val or "", "best_ap": best_ap,
                "wall_time_s": wall}}
        return save_checkpoint(path, model, normalisation=norm, pretrained=pretrained,
                               manifest=manifest, extra=extra)

    def validate() -> float:
        nonlocal best_ap
        ap = -1.0
        if env.main:
            ap = _validate(model, pretrained, val, config, env.device)
            log(f"step {step}: val AP {ap:.4f}")
            if ap > best_ap:
                best_ap = ap
                snapshot(out / "best.pt", with_state=False)
            net.train()
        _barrier(env)
        return ap

    from tqdm import tqdm
    bar = tqdm(total=total, initial=step, unit="step", desc="train",
               disable=not (progress and env.main), dynamic_ncols=True)
    meter = _Meter(out, len(model.stages), step if state is not None else None, env,
                   config.batch_size * env.world, bar)
    vals: list[tuple[int, float]] = []
    start_step, halted = step, False
    net.train()
    while step < total and not halted:
        epoch, within = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, start=within * config.batch_size)
        for batch in loader:
            batch = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            with torch.autocast(env.device.type, dtype=amp_dtype, enabled=use_amp):
                outputs = net(batch["image"])
            loss, per_stage = paf_loss(outputs, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            meter.add(loss, per_stage)
            end_of_run = step >= total
            halted = halt_after is not None and step - start_step >= halt_after
            if step % config.log_every == 0 or end_of_run or halted:
                meter.flush(step, step / steps_per_epoch, lr)
            if val and ((config.val_every and step % config.val_every == 0) or end_of_run):
                vals.append((step, validate()))
                meter.val(step, step / steps_per_epoch, vals[-1][1])
            if env.main and ((config.checkpoint_every and step % config.checkpoint_every == 0)
                             or end_of_run or halted):
                snapshot(out / "last.pt", with_state=True)
            if end_of_run or halted or step % steps_per_epoch == 0:
                break
    meter.close()
    _barrier(env)
    if env.world > 1:
        import torch.distributed as dist
        dist.destroy_process_group()
    last = out / "last.pt"
    best = out / "best.pt"
    if env.main:
        log(f"{'stopped' if halted and step < total else 'finished'} at step {step}/{total}; "
            f"checkpoints in {out}")
    return TrainResult(out, step, step // steps_per_epoch, list(meter.losses), vals, best_ap,
                       last if last.is_file() else None, best if best.is_file() else None,
                       halted and step < total)


def _total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    limits = [x for x in (config.max_steps,
                          config.epochs * steps_per_epoch if config.epochs else None) if x]
    if not limits:
        raise ValueError("set max_steps or epochs")
    return int(min(limits))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: CSV only
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _validate(model, pretrained: PretrainedCfg, val: str, config: TrainConfig,
              device: torch.device) -> float:
    from .evaluate import evaluate
    from .predict import Predictor
    ann, images = parse_val(val)
    predictor = Predictor(model, pretrained=pretrained, height=config.val_height,
                          flip=False, device=device)
    report = evaluate(ann, images, predictor=predictor, max_images=config.val_max_images,
                      progress=False)
    return float(report["AP"])


def parse_val(val: str, option: str = "--val") -> tuple[str, str]:
    """``"ann.json:images_dir"`` (or a one-dataset YAML) -> ``(ann, images_dir)``, both
    required to exist; errors name ``option``."""
    if str(val).lower().endswith((".yaml", ".yml")):
        from .data.coco import load_data_yaml
        spec = load_data_yaml(val)[0]
        val = f"{spec.annotations}:{spec.images}"
    ann, _, images = str(val).partition(":")
    if not ann or not images:
        raise ValueError(f"{option} expects ANN.json:IMAGES_DIR, got {val!r}")
    if not Path(ann).is_file() or not Path(images).is_dir():
        raise FileNotFoundError(f"{option}: {ann} or {images} not found")
    return ann, images


def _manifest(config: TrainConfig, data: Sequence[DatasetSpec], data_files: list,
              val: str | None, step: int, steps_per_epoch: int, wall: float,
              hw: str, best_ap: float) -> dict:
    licences = sorted({s.licence for s in data if s.licence})
    init_kind, _, init_path = config.init.partition(":")
    m = {"created_by": f"openpaf {__version__} train",
         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "recipe": config.recipe, "train_config": config.to_dict(), "data": data_files,
         "val": val or "", "init": {"kind": init_kind, **(_file_info(init_path)
                                                          if init_path else {})},
         "steps": step, "epochs": round(step / steps_per_epoch, 3),
         "wall_time_s": round(wall, 1), "hardware": hw, "torch": str(torch.__version__),
         "normalisation": "BGR, x / 256 - 0.5"}
    if best_ap >= 0:
        m["best_val_ap"] = round(best_ap, 4)
    if licences:
        m["licence"] = "; ".join(licences)
    return m


# --- previews ---------------------------------------------------------------------------

def _side_colour(name: str) -> tuple[int, int, int]:
    """BGR: right side red, left side blue, centre line green."""
    if name.startswith("right"):
        return (40, 40, 255)
    if name.startswith("left"):
        return (255, 120, 30)
    return (40, 220, 40)


_KP_COLOURS = np.array([_side_colour(n) for n in KEYPOINTS], np.float32)
_LIMB_COLOURS = [_side_colour(KEYPOINTS[b]) if not KEYPOINTS[b].startswith(("nose", "neck"))
                 else _side_colour(KEYPOINTS[a]) for a, b in LIMBS]


def draw_sample(sample, targets: dict, stride: int = 8, title: str = "",
                zoom: int | None = None) -> np.ndarray:
    """Three panels side by side: keypoints | heatmaps | PAFs, uint8 BGR.

    Right-side keypoints/limbs are red, left blue, centre green. Masked (ignored) regions
    are tinted magenta and hatched. The PAF panel shows each limb's field as arrows (one
    per map cell) over the field angle as hue. ``zoom``: integer upscaling (default: up
    to >= 600 px per panel). A title bar on top.
    """
    from .skeleton import PAF_CHANNELS
    s0 = sample.image.shape[0]
    z = zoom or max(1, -(-600 // s0))
    s = s0 * z
    img = cv2.resize(sample.image, (s, s), interpolation=cv2.INTER_LINEAR)
    masked = cv2.resize(sample.mask, (s, s), interpolation=cv2.INTER_NEAREST) < 0.5
    base = img.copy()
    base[masked] = (0.5 * base[masked] + 0.5 * np.array([255, 0, 255])).astype(np.uint8)
    hatch = ((np.add.outer(np.arange(s), np.arange(s)) // (3 * z)) % 4 == 0) & masked
    base[hatch] = (255, 0, 255)

    def px(x):  # input pixel (centre convention) -> panel pixel
        return int(round((x + 0.5) * z - 0.5))

    p1 = base.copy()
    for person in sample.keypoints:
        for k, (x, y, v) in enumerate(person):
            if v > 0:
                cv2.circle(p1, (px(x), px(y)), 3 * z, tuple(int(c) for c in _KP_COLOURS[k]),
                           -1, cv2.LINE_AA)
    heat = targets["heatmaps"][:NUM_KEYPOINTS]                        # (18, h, w)
    colour = np.einsum("khw,kc->hwc", heat, _KP_COLOURS)
    colour = cv2.resize(np.clip(colour, 0, 255), (s, s), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(heat.max(0), (s, s), interpolation=cv2.INTER_LINEAR)[..., None]
    p2 = (base * (1 - 0.8 * alpha) + colour * 0.8).clip(0, 255).astype(np.uint8)
    pafs = targets["pafs"]
    vx = np.stack([pafs[cx] for cx, _ in PAF_CHANNELS])               # (19, h, w)
    vy = np.stack([pafs[cy] for _, cy in PAF_CHANNELS])
    mag = np.hypot(vx, vy)
    k_max = mag.argmax(0)[None]
    ax, ay = np.take_along_axis(vx, k_max, 0)[0], np.take_along_axis(vy, k_max, 0)[0]
    m = np.take_along_axis(mag, k_max, 0)[0]
    hsv = np.stack([(np.degrees(np.arctan2(ay, ax)) % 360) / 2, np.full_like(m, 255),
                    np.clip(m, 0, 1) * 160], -1).astype(np.uint8)
    angle = cv2.resize(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), (s, s),
                       interpolation=cv2.INTER_NEAREST)
    p3 = np.clip(base.astype(np.int16) // 2 + angle, 0, 255).astype(np.uint8)
    cell = stride * z
    for k in range(len(LIMBS)):
        for y, x in zip(*np.nonzero(mag[k] > 0.3)):
            cx, cy = px(x * stride + (stride - 1) / 2), px(y * stride + (stride - 1) / 2)
            dx, dy = vx[k, y, x] * cell * 0.42, vy[k, y, x] * cell * 0.42
            cv2.arrowedLine(p3, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)),
                            _LIMB_COLOURS[k], max(1, z // 2), cv2.LINE_AA, tipLength=0.45)
    out = np.hstack([p1, p2, p3])
    bar = np.zeros((28, out.shape[1], 3), np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.vstack([bar, out])


def show_samples(data: Sequence[DatasetSpec], out_dir: str | os.PathLike, *,
                 config: TrainConfig = TrainConfig(), count: int = 8) -> list[Path]:
    """Write ``count`` augmented training samples with their targets drawn as PNGs (the
    first draws of epoch 0 of a run with ``config``); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    norm = get_pretrained_cfg(config.model).normalisation
    dataset = build_dataset(data, config.augment, config.target, norm, config.seed)
    sampler = MixSampler(dataset.sizes, [s.weight for s in data], config.epoch_size,
                         config.seed)
    def draws():  # the run's draws, epoch after epoch
        for epoch in range(count // max(len(sampler), 1) + 1):
            sampler.set_epoch(epoch)
            yield from sampler

    paths = []
    for n, (index, draw) in zip(range(count), draws()):
        d, i = dataset.locate(index)
        ds = dataset.datasets[d]
        sample = ds.sample(i, ds.rng(draw))
        unknown = ", ".join(KEYPOINTS[k] for k in sample.unknown) or "none"
        title = (f"{ds.spec.name} image {sample.image_id}{' FLIPPED' if sample.flipped else ''}"
                 f" | masked channels: {unknown} | red=right blue=left green=centre")
        picture = draw_sample(sample, ds.targets(sample), config.target.stride, title)
        flip = "_flip" if sample.flipped else ""
        path = out / f"sample_{n:03d}_{ds.spec.name}_{sample.image_id}{flip}.png"
        if not cv2.imwrite(str(path), picture):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


__all__ = ["RECIPES", "ResumeInfo", "TrainConfig", "TrainResult", "build_model",
           "build_optimizer", "draw_sample", "get_recipe", "lr_factor", "paf_loss",
           "parse_val", "resume_info", "rng_state", "set_rng_state", "show_samples", "train"]
