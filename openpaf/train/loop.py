"""The training loop: ``train(config, data, out_dir)``.

Outputs in ``out_dir``: ``last.pt`` (openpaf checkpoint whose ``extra["train_state"]``
holds optimizer, scheduler, scaler, RNG states, epoch and step: everything ``resume=``
needs to continue bit-identically), ``best.pt`` (best validation AP, no training state),
``log.csv`` (step, epoch, loss, loss per stage, lr, img/s, val AP) and TensorBoard events
if ``tensorboard`` is installed. Distributed: ``torchrun --nproc_per_node N --no-python
openpaf train ...``; each process takes ``batch_size`` images per step, logged losses are
averaged over processes, and only rank 0 writes, validates and saves.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import torch

from ..data.coco import DatasetSpec, MixSampler, build_dataset, data_keypoint_spec
from ..hardware import describe
from ..io.paths import remove_stale_temp_files
from ..model import PretrainedCfg
from ..weights.checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, parse_val
from .dist import Dist, barrier, default_workers, setup, teardown
from .init import build_model
from .log import Meter
from .loss import distill_loss, paf_loss, teacher_maps
from .schedule import build_optimizer, lr_factor, total_steps
from .state import file_info, manifest, resolve_resume, rng_state, seed_all, set_rng_state


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
    env = setup(config.device)
    out = Path(out_dir)
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out)                   # left by a killed run
    t_start = time.perf_counter()
    data = list(data)
    _check_arguments(data, val, halt_after)
    state, model, pretrained = _initial_model(config, resume, data)
    run = _Run(config, env, data, val, out, model, pretrained, t_start, log)
    if state is not None:
        run.restore(state)
        if env.main:
            log(f"resumed from {resume} at step {run.step} "
                f"(epoch {run.step // run.steps_per_epoch})")
    run.report_skipped_records()
    from tqdm import tqdm
    bar = tqdm(total=run.total, initial=run.step, unit="step", desc="train",
               disable=not (progress and env.main), dynamic_ncols=True)
    meter = Meter(out, model.num_stages, run.step if state is not None else None, env,
                  config.batch_size * env.world, bar)
    start_step, halted = run.step, False
    run.net.train()
    while run.step < run.total and not halted:
        halted = _epoch(run, meter, start_step, halt_after)
    meter.close()
    teardown(env)
    halted = halted and run.step < run.total
    if env.main:
        log(f"{'stopped' if halted else 'finished'} at step {run.step}/{run.total}; "
            f"checkpoints in {out}")
    last, best = out / "last.pt", out / "best.pt"
    return TrainResult(out, run.step, run.step // run.steps_per_epoch, list(meter.losses),
                       run.vals, run.best_ap, last if last.is_file() else None,
                       best if best.is_file() else None, halted)


def _check_arguments(data: list, val: str | None, halt_after: int | None) -> None:
    if not data:
        raise ValueError("no training data given")
    if val:
        parse_val(val)                                 # fail now, not after hours
    if halt_after is not None and halt_after < 1:
        raise ValueError(f"halt_after (--stop-after) must be >= 1, got {halt_after}")


def _initial_model(config: TrainConfig, resume, data: list[DatasetSpec]
                   ) -> tuple[dict | None, torch.nn.Module, PretrainedCfg]:
    """``(training state or None, model in train mode, its pretrained cfg)``: from the
    resumed ``last.pt``, else built as ``config.init`` says after seeding every RNG, with
    heads for the data's keypoints (``data_keypoint_spec``)."""
    if resume is None:
        spec = data_keypoint_spec(data, config.skeleton)
        seed_all(config.seed)
        return (None, *build_model(config, spec))
    loaded = load_checkpoint(resolve_resume(resume))
    state = loaded.extra.get("train_state")
    if not state:
        raise ValueError(f"{resume}: no training state to resume from")
    return state, loaded.model.train(), loaded.pretrained


def _epoch(run: "_Run", meter: Meter, start_step: int, halt_after: int | None) -> bool:
    """Steps until the end of the epoch, of the run, or of ``halt_after`` steps since
    ``start_step``; logs, validates and saves ``last.pt`` on their schedules. Returns
    True when halted."""
    config = run.config
    epoch, within = divmod(run.step, run.steps_per_epoch)
    run.sampler.set_epoch(epoch, start=within * config.batch_size)
    halted = False
    for batch in run.loader:
        loss, per_stage, lr = run.optimise(batch)
        meter.add(loss, per_stage)
        step, end_of_run = run.step, run.step >= run.total
        halted = halt_after is not None and step - start_step >= halt_after
        if step % config.log_every == 0 or end_of_run or halted:
            meter.flush(step, step / run.steps_per_epoch, lr)
        if run.val and ((config.val_every and step % config.val_every == 0) or end_of_run):
            run.vals.append((step, run.validate()))
            meter.val(step, step / run.steps_per_epoch, run.vals[-1][1])
        if run.env.main and ((config.checkpoint_every and step % config.checkpoint_every == 0)
                             or end_of_run or halted):
            run.snapshot(run.out / "last.pt", with_state=True)
        if end_of_run or halted or step % run.steps_per_epoch == 0:
            break
    return halted


class _Run:
    """One ``train`` call: the network, its data loader, optimizer, LR schedule and AMP
    scaler, the step count, and what saves and validates them."""

    def __init__(self, config: TrainConfig, env: Dist, data: list[DatasetSpec],
                 val: str | None, out: Path, model: torch.nn.Module,
                 pretrained: PretrainedCfg, t_start: float, log: Callable[[str], None]):
        self.config, self.env, self.data, self.val, self.out = config, env, data, val, out
        self.model, self.pretrained, self.t_start, self.log = model, pretrained, t_start, log
        self.teacher = None
        if config.teacher:                  # self-distillation: a frozen teacher's maps
            from ..weights import load_weights
            teacher = load_weights(config.teacher, env.device)
            if teacher.spec != model.spec:
                raise ValueError(f"--teacher {config.teacher} predicts '{teacher.spec.name}', "
                                 f"not the '{model.spec.name}' keypoints being trained")
            self.teacher = teacher.model.eval()
            self.teacher.requires_grad_(False)
        # channels_last (NHWC) is what oneDNN and cuDNN run fastest, bf16 above all (2x).
        model.to(env.device, memory_format=torch.channels_last)
        self.net = model
        if env.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            self.net = DistributedDataParallel(
                model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        self._build_loader()
        self.data_files = self._data_files() if env.main else []
        self.total = total_steps(config, self.steps_per_epoch)
        self._build_optimizer()
        self.step, self.best_ap, self.wall_before = 0, -1.0, 0.0
        self.vals: list[tuple[int, float]] = []

    def _build_loader(self) -> None:
        config, env = self.config, self.env
        self.dataset = build_dataset(self.data, config.augment, config.target,
                                     self.pretrained.normalisation, config.seed,
                                     self.model.spec)
        self.sampler = MixSampler(self.dataset.sizes, [s.weight for s in self.data],
                                  config.epoch_size, config.seed, env.rank, env.world)
        self.steps_per_epoch = self.sampler.per_rank // config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{self.sampler.per_rank} samples per process per epoch is "
                             f"fewer than one batch of {config.batch_size}")
        workers = default_workers() if config.workers is None else int(config.workers)
        if workers > 0:
            # OpenCV's thread pool does not survive fork(): a forked worker that touches it
            # can deadlock. Workers give the parallelism, so OpenCV runs single-threaded.
            cv2.setNumThreads(0)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=config.batch_size, sampler=self.sampler,
            num_workers=workers, pin_memory=env.device.type == "cuda", drop_last=True,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(config.seed))

    def _build_optimizer(self) -> None:
        config, device = self.config, self.env.device
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config, self.total))
        # bf16 autocast also runs on CPUs (oneDNN; several times faster where the CPU has
        # AMX/AVX512-BF16); fp16 is CUDA only.
        self.use_amp = config.amp != "none" and (device.type == "cuda" or config.amp == "bf16")
        if config.amp != "none" and not self.use_amp and self.env.main:
            self.log(f"note: --amp {config.amp} ignored on {device.type} (fp16 needs CUDA)")
        self.amp_dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and config.amp == "fp16")

    def restore(self, state: dict) -> None:
        """Continue from a ``last.pt``'s training state."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.step, self.best_ap = int(state["step"]), float(state["best_ap"])
        self.wall_before = float(state.get("wall_time_s", 0.0))

    def report_skipped_records(self) -> None:
        if not self.env.main:
            return
        for s, d in zip(self.data, self.dataset.datasets):
            if d.skipped:
                self.log(f"{s.annotations}: skipped {len(d.skipped)} image(s) with bad "
                         f"records (first: {d.skipped[0]})")

    def optimise(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One optimizer step on ``batch``: ``(loss, per-stage losses, lr used)``."""
        device = self.env.device
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            outputs = self.net(batch["image"])
            teacher = (teacher_maps(self.teacher, batch["image"])
                       if self.teacher is not None else None)
        loss, per_stage = paf_loss(outputs, batch)
        if teacher is not None:
            loss = loss + self.config.teacher_weight * distill_loss(outputs, teacher)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.step += 1
        return loss, per_stage, lr

    def validate(self) -> float:
        """AP on ``val`` (rank 0; -1 elsewhere); a new best is saved as ``best.pt``."""
        ap = -1.0
        if self.env.main:
            ap = _validate(self.model, self.pretrained, self.val, self.config,
                           self.env.device)
            self.log(f"step {self.step}: val AP {ap:.4f}")
            if ap > self.best_ap:
                self.best_ap = ap
                self.snapshot(self.out / "best.pt", with_state=False)
            self.net.train()
        barrier(self.env)
        return ap

    def snapshot(self, path: Path, with_state: bool) -> Path:
        """Save the model with its manifest (and, ``with_state``, all ``resume`` needs)."""
        wall = self.wall_before + time.perf_counter() - self.t_start
        config, step = self.config, self.step
        info = manifest(config, self.data, self.data_files, self.val, step,
                        self.steps_per_epoch, wall, describe(self.env.device, self.env.world),
                        self.best_ap)
        extra = None
        if with_state:
            extra = {"train_state": {
                "step": step, "epoch": step // self.steps_per_epoch,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "rng": rng_state(), "config": config.to_dict(),
                "data": [s.to_dict() for s in self.data], "val": self.val or "",
                "best_ap": self.best_ap, "wall_time_s": wall}}
        return save_checkpoint(path, self.model, normalisation=self.pretrained.normalisation,
                               pretrained=self.pretrained, manifest=info, extra=extra)

    def _data_files(self) -> list[dict]:
        """Per dataset: its spec, counts and the annotation file's hash (manifest)."""
        return [{**s.to_dict(), "images_count": len(d), "images_skipped": len(d.skipped),
                 "annotations_file": file_info(s.annotations),
                 "unknown_keypoints_used": [d.keypoint_spec.keypoints[k] for k in d.unknown],
                 "images_with_face_masked": d.faces_partly_unknown}
                for s, d in zip(self.data, self.dataset.datasets)]


def _validate(model, pretrained: PretrainedCfg, val: str, config: TrainConfig,
              device: torch.device) -> float:
    from ..evaluate import evaluate
    from ..predict import Predictor
    ann, images = parse_val(val)
    predictor = Predictor(model, pretrained=pretrained, height=config.val_height,
                          flip=False, device=device)
    report = evaluate(ann, images, predictor=predictor, max_images=config.val_max_images,
                      progress=False)
    return float(report["AP"])
