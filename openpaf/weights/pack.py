"""Turn a training checkpoint into a file to ship: fp16 weights, no optimizer state, and a
manifest that records the whole training lineage and the accuracy measured on the packed
weights themselves.

    >>> from openpaf.weights.pack import pack
    >>> manifest = pack("runs/x/last.pt", "weights/default.pt",
    ...                 evals=[("coco/val.json", "coco/val")])

Lineage: a fine-tuning run records its starting checkpoint (path + sha256) in
``manifest["init"]``; ``training_lineage`` follows those links back to the run that started
from scratch, so steps and wall time add up over every run that shaped the weights. A link
whose file is gone or changed is recorded as a gap, never guessed.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Iterable, Sequence

from .. import __version__
from ..model import count_parameters
from .checkpoint import (CheckpointError, PathLike, file_sha256, format_norm, load_checkpoint,
                         read_checkpoint, save_checkpoint)

# Fields of a training run's ``train_config`` worth keeping in a shipped manifest.
_RUN_FIELDS = ("recipe", "model", "optimizer", "lr", "schedule", "warmup_steps",
               "batch_size", "input_size", "amp", "seed")
# Figures of an ``openpaf eval`` report kept in the manifest.
_EVAL_FIGURES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "images", "people")


def run_summary(manifest: dict) -> dict:
    """One training run, from the manifest ``openpaf train`` wrote: when, how long, on
    what, with which settings and data (names, sampling weights, annotation sha256)."""
    config = manifest.get("train_config", {})
    init = manifest.get("init", {})
    return {"created": manifest.get("created", ""),
            "init": init.get("kind", "unknown"),
            "steps": int(manifest.get("steps", 0)),
            "wall_time_s": float(manifest.get("wall_time_s", 0.0)),
            "hardware": manifest.get("hardware", ""),
            **{k: config[k] for k in _RUN_FIELDS if k in config},
            "data": [{"name": d.get("name", ""), "weight": d.get("weight"),
                      "images": d.get("images_count"),
                      "sha256": d.get("annotations_file", {}).get("sha256", "")}
                     for d in manifest.get("data", [])]}


def training_lineage(path: PathLike) -> list[dict]:
    """Run summaries behind the checkpoint at ``path``, oldest first (see ``lineage_of``)."""
    return lineage_of(read_checkpoint(path)["manifest"], where=path)


def lineage_of(manifest: dict, where: PathLike = "checkpoint") -> list[dict]:
    """Run summaries behind a checkpoint with this ``manifest``, oldest first.

    Follows ``manifest["init"]`` while it names a checkpoint; an ancestor that is missing
    or whose sha256 no longer matches ends the chain with a ``{"gap": ...}`` entry.
    """
    runs: list[dict] = []
    seen: set[str] = set()
    while True:
        if "train_config" not in manifest:      # imported or packed weights, not a run
            runs.append({"gap": "weights not made by `openpaf train`",
                         "created_by": manifest.get("created_by", manifest.get("source", ""))})
            break
        runs.append(run_summary(manifest))
        init = manifest.get("init", {})
        if init.get("kind") != "checkpoint":
            break
        parent = Path(init.get("path", ""))
        if not parent.is_file():
            runs.append({"gap": f"starting checkpoint {parent} no longer exists"})
            break
        digest = file_sha256(parent)
        if init.get("sha256") and digest != init["sha256"]:
            runs.append({"gap": f"starting checkpoint {parent} changed since the run"})
            break
        if digest in seen:
            raise CheckpointError(f"{where}: training lineage loops at {parent}")
        seen.add(digest)
        manifest = read_checkpoint(parent)["manifest"]
    return runs[::-1]


def eval_summary(report: dict) -> dict:
    """The figures of an ``openpaf.evaluate.evaluate`` report worth shipping."""
    settings = report.get("settings", {})
    return {"annotations": report.get("annotations", ""),
            **{k: report[k] for k in _EVAL_FIGURES if k in report},
            "height": settings.get("height"), "scales": settings.get("scales"),
            "flip": settings.get("flip", False), "precision": settings.get("precision", "fp32"),
            "network_ms_median": report.get("network_ms", {}).get("median")}


def pack(src: PathLike, dst: PathLike, *, evals: Sequence[tuple[str, str]] = (),
         name: str = "", description: str = "", half: bool = True,
         manifest_json: PathLike | None = None, progress: bool = True,
         height: int | None = None, flip: bool | None = None) -> dict:
    """Write ``src``'s weights to ``dst`` for shipping; returns the new manifest.

    evals: ``(annotation JSON, images dir)`` pairs; each is scored with ``openpaf eval``'s
    code (the weights' default settings: their input height, flip, one scale, fp32) on
    the weights as written to ``dst``, and the figures go into the manifest.
    manifest_json: also write the manifest there (readable without torch). Weights not
    made by ``openpaf train`` (imported or already packed) keep their manifest under
    ``origin``: source, licence and conversion travel on.
    height, flip: inference defaults to store (None: keep ``src``'s); the evals use them.
    """
    loaded = load_checkpoint(src)
    pretrained = dataclasses.replace(
        loaded.pretrained, **{k: v for k, v in (("height", height), ("flip", flip))
                              if v is not None})
    old = loaded.manifest
    runs = lineage_of(old, where=src)
    done = [r for r in runs if "gap" not in r]
    manifest = {
        "name": name or Path(dst).stem,
        "description": description,
        "created_by": f"openpaf {__version__} weights pack",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(Path(src)), "sha256": file_sha256(src)},
        "model": (old.get("train_config", {}).get("model", "") or loaded.variant
                  or loaded.model.arch),
        "parameters": count_parameters(loaded.model),
        "storage": "fp16" if half else "fp32",
        "normalisation": format_norm(pretrained.normalisation),
        "inference_defaults": {"height": pretrained.height, "flip": pretrained.flip,
                               "pad_value": pretrained.pad_value},
        "data": done[-1]["data"] if done else [],
        "training": {"steps": sum(r["steps"] for r in done),
                     "images_seen": sum(r["steps"] * r.get("batch_size", 0) for r in done),
                     "wall_time_s": round(sum(r["wall_time_s"] for r in done), 1),
                     "hardware": sorted({r["hardware"] for r in done}),
                     "complete": len(done) == len(runs),
                     "runs": runs},
        "eval": [],
        "licence": old.get("licence", ""),
    }
    if "train_config" not in old:          # imported or packed weights
        if "training" in old:              # a packed file: keep its history
            manifest.update(_carried(old, manifest, name, description))
        origin = old.get("origin", None if "training" in old else old)
        if origin:                         # imported weights: source, licence, conversion
            manifest["origin"] = origin

    def save(path) -> None:     # the same weights each time; only the manifest grows
        save_checkpoint(path, loaded.model, normalisation=loaded.normalisation,
                        pretrained=pretrained, manifest=manifest, half=half,
                        variant=loaded.variant)

    if evals:   # scored on the weights as stored (fp16); dst is written only if that works
        scratch = Path(dst).with_name(f".{Path(dst).name}.eval.tmp")
        save(scratch)
        try:
            manifest["eval"] = [eval_summary(r)
                                for r in _evaluate_file(scratch, evals, progress)]
        finally:
            scratch.unlink(missing_ok=True)
    save(dst)
    if manifest_json is not None:
        from ..io.atomic import atomic_write_text
        atomic_write_text(manifest_json, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _carried(old: dict, new: dict, name: str, description: str) -> dict:
    """What the manifest of a packed source carries into a re-pack: name, description,
    model, data, training (and its eval while the stored weights stay the same)."""
    keep = {k: old[k] for k in ("model", "data", "training") if k in old}
    return {**keep, "name": name or old.get("name") or new["name"],
            "description": description or old.get("description", ""),
            "packed_from": old.get("source", {}),
            "eval": old.get("eval", []) if old.get("storage") == new["storage"] else []}


def _evaluate_file(path: PathLike, evals: Iterable[tuple[str, str]],
                   progress: bool) -> list[dict]:
    from ..evaluate import evaluate
    from ..predict import Predictor
    # fp32: the manifest's AP must not depend on the CPU that packed it (auto would)
    predictor = Predictor.from_checkpoint(str(path), device="cpu", precision="fp32")
    return [evaluate(ann, images, predictor=predictor, progress=progress, strict=True)
            for ann, images in evals]


__all__ = ["eval_summary", "lineage_of", "pack", "run_summary", "training_lineage"]
