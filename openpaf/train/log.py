"""Training logs: ``log.csv`` (kept consistent across resumes), TensorBoard when
installed, and the meter that averages per-step losses over a logging window."""
from __future__ import annotations

import collections
import csv
import time
from pathlib import Path

import torch

from .dist import Dist, mean_over_processes


def tensorboard(out: Path):
    """A ``SummaryWriter`` into ``out/tensorboard``, or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: CSV only
        return None
    return SummaryWriter(str(out / "tensorboard"))


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


class Meter:
    """Collects per-step losses (on device, no sync) and writes a log row per window:
    the window's mean loss per stage, lr and images/s to CSV, TensorBoard and tqdm."""

    def __init__(self, out: Path, stages: int, resume_step: int | None, env: Dist,
                 images_per_step: int, bar, keep: int = 10000):
        fields = (["step", "epoch", "loss"] + [f"loss_stage{i + 1}" for i in range(stages)]
                  + ["lr", "img_per_s", "val_ap"])
        self.csv = CsvLog(out / "log.csv", fields, resume_step) if env.main else None
        self.board = tensorboard(out) if env.main else None
        self.env, self.images_per_step, self.bar = env, images_per_step, bar
        self.losses: collections.deque = collections.deque(maxlen=keep)
        self.window: list[torch.Tensor] = []
        self.t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, per_stage: torch.Tensor) -> None:
        self.window.append(torch.cat([loss.detach()[None], per_stage]))
        self.bar.update(1)

    def flush(self, step: int, epoch: float, lr: float) -> None:
        rows = torch.stack(self.window).float()
        rows = mean_over_processes(rows, self.env).cpu()
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
