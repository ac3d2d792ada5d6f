"""What a run saves to continue bit-identically: RNG states, resume lookup, and the
checkpoint manifest (config, data files with hashes, steps, wall time, hardware)."""
from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import __version__
from ..data.coco import DatasetSpec
from ..weights.checkpoint import file_sha256, read_checkpoint
from .config import TrainConfig


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


# TrainConfig fields that a resumed run applies as given: its length, logging, validation
# and hardware. Any other field is fixed by the restored optimizer, scheduler and RNG
# states (or the model itself), so a different value would be recorded but not used.
RESUME_APPLIES = ("epochs", "max_steps", "val_every", "checkpoint_every", "log_every",
                  "workers", "device")


def resume_conflicts(recorded: TrainConfig, overrides: dict) -> list[str]:
    """The ``overrides`` (field -> value) a resumed run cannot apply: fields outside
    ``RESUME_APPLIES`` whose value differs from the ``recorded`` config's."""
    return [k for k, v in overrides.items()
            if k not in RESUME_APPLIES and getattr(recorded, k) != v]


@dataclass
class ResumeInfo:
    """What a run's ``last.pt`` says about it (to restart without repeating options)."""

    config: TrainConfig
    data: list[DatasetSpec]
    val: str | None
    step: int
    path: Path


def resume_info(path: str | os.PathLike) -> ResumeInfo:
    """The config, data and step recorded in a run folder's (or file's) ``last.pt``."""
    p = resolve_resume(path)
    state = (read_checkpoint(p).get("extra") or {}).get("train_state")
    if not state:
        raise ValueError(f"{p} has no training state (only last.pt files can be resumed)")
    return ResumeInfo(TrainConfig.from_dict(state["config"]),
                      [DatasetSpec.from_dict(d) for d in state["data"]],
                      state["val"] or None, int(state["step"]), p)


def file_info(path: str) -> dict:
    """Path, size and sha256 of a file the run read (just the path when it is missing)."""
    p = Path(path)
    if not p.is_file():
        return {"path": str(path)}
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_sha256(p)}


def manifest(config: TrainConfig, data: Sequence[DatasetSpec], data_files: list,
              val: str | None, step: int, steps_per_epoch: int, wall: float,
              hw: str, best_ap: float) -> dict:
    """The checkpoint manifest of a run at ``step`` (``wall``: seconds trained)."""
    licences = sorted({s.licence for s in data if s.licence})
    init_kind, _, init_path = config.init.partition(":")
    m = {"created_by": f"openpaf {__version__} train",
         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "recipe": config.recipe, "train_config": config.to_dict(), "data": data_files,
         "val": val or "", "init": {"kind": init_kind, **(file_info(init_path)
                                                          if init_path else {})},
         "steps": step, "epochs": round(step / steps_per_epoch, 3),
         "wall_time_s": round(wall, 1), "hardware": hw, "torch": str(torch.__version__),
         "normalisation": "BGR, x / 256 - 0.5"}
    if best_ap >= 0:
        m["best_val_ap"] = round(best_ap, 4)
    if licences:
        m["licence"] = "; ".join(licences)
    return m
