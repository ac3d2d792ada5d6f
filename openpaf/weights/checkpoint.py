"""openpaf checkpoint files: save (atomically) and load (``weights_only``, strict).

A checkpoint is a ``torch.save``'d dict::

    {"format": "openpaf", "version": 2,
     "arch": "cmu_vgg" | "lightweight" | ...,     # the network family (model.FAMILIES)
     "config": <family config>.to_dict(),
     "pretrained_cfg": PretrainedCfg.to_dict(),    # inference defaults (height, flip, ...)
     "skeleton": KeypointSpec.to_dict(),          # what the heads predict
     "normalisation": InputNorm.to_dict(),
     "state_dict": {...},            # fp32, or fp16 when saved with half=True
     "manifest": {...},              # provenance: source, licence, training run, ...
     "extra": {...}}                 # optional (e.g. training state)

Only plain Python containers, numbers, strings and tensors are stored, so it loads with
``torch.load(weights_only=True)``. Every problem is a one-line ``CheckpointError``.
Version-1 files (before network families) have no ``arch``/``pretrained_cfg`` and load as
the CMU VGG family with its defaults. Files whose ``skeleton`` holds only keypoints, limbs
and PAF channels (before ``KeypointSpec``) are COCO-18 (``skeleton.spec_from_stored``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch

from ..skeleton import OPENPOSE_COCO18, KeypointSpec, SkeletonError, spec_from_stored
from ..errors import first_line
from ..model import (FamilyConfig, PafModel, PretrainedCfg, build_model, count_parameters,
                     get_pretrained_cfg)
from ..structures import InputNorm
from ..io.atomic import AtomicPath

FORMAT = "openpaf"
VERSION = 2
READABLE_VERSIONS = (1, 2)
LEGACY_ARCH = "cmu_vgg"              # what version-1 files hold
PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A checkpoint cannot be read, written or used; the message is one line."""


@dataclass
class LoadedModel:
    """A model restored from a checkpoint (``model`` is in eval mode)."""

    model: PafModel
    config: FamilyConfig
    normalisation: InputNorm
    manifest: dict
    path: Path
    extra: dict = field(default_factory=dict)
    pretrained: PretrainedCfg = PretrainedCfg()
    variant: str | None = None          # the registered variant it was saved as, if any
    spec: KeypointSpec = OPENPOSE_COCO18  # the keypoints it predicts


def skeleton_dict(spec: KeypointSpec = OPENPOSE_COCO18) -> dict:
    """``spec`` as stored in checkpoints and ONNX metadata (``KeypointSpec.to_dict``)."""
    return spec.to_dict()


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (``io.atomic.AtomicPath``)."""
    with AtomicPath(path) as staging, open(staging.tmp, "wb") as f:
        torch.save(obj, f)
    return staging.path


def with_normalisation(pretrained: PretrainedCfg | None, variant: str | None,
                       normalisation: InputNorm) -> PretrainedCfg:
    """``pretrained``, else the registered ``variant``'s, else ``PretrainedCfg()``, with
    the weights' own ``normalisation``."""
    if pretrained is None:
        pretrained = get_pretrained_cfg(variant) if variant else PretrainedCfg()
    return dataclasses.replace(pretrained, normalisation=normalisation)


def save_checkpoint(path: PathLike, model: PafModel, *, normalisation: InputNorm,
                    manifest: dict, half: bool = False, extra: dict | None = None,
                    pretrained: PretrainedCfg | None = None,
                    variant: str | None = None) -> Path:
    """Write ``model``'s weights, family and config + metadata to ``path`` atomically.

    ``half=True`` stores floating-point tensors as fp16 (half the size; loaded as fp32).
    Inference defaults stored: ``pretrained``, else the registered ``variant``'s, else
    ``PretrainedCfg()``; always with ``normalisation``. ``manifest`` and ``extra`` hold
    only plain values and tensors. The skeleton stored is ``model.spec``.
    """
    pretrained = with_normalisation(pretrained, variant, normalisation)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        state[k] = v.half() if half and v.is_floating_point() else v.clone()
    ckpt = {"format": FORMAT, "version": VERSION, "arch": model.arch,
            "config": model.config.to_dict(), "pretrained_cfg": pretrained.to_dict(),
            "skeleton": skeleton_dict(getattr(model, "spec", OPENPOSE_COCO18)),
            "normalisation": normalisation.to_dict(),
            "state_dict": state, "manifest": dict(manifest)}
    if variant:
        ckpt["variant"] = variant
    if extra is not None:
        ckpt["extra"] = extra
    return atomic_torch_save(ckpt, path)


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_url(path: PathLike) -> bool:
    return str(path).lower().startswith(("http://", "https://"))


def torch_load_error(e: Exception) -> str:
    """One line for a failed ``torch.load(weights_only=True)``, without torch's advice
    to retry unsafely (a file holding code must never be loaded)."""
    import re
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    what = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if what:
        return (f"refusing to load: it holds Python objects, not only weights "
                f"({what.group(1)}); openpaf never unpickles those")
    inner = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    first = (inner.group(1) if inner else first_line(text, "")).strip()
    if not first or isinstance(e, (KeyError, EOFError)):     # pickle's bare messages
        first = f"{type(e).__name__}{': ' + first if first else ''}: not a torch file, " \
                "or a truncated one"
    return f"cannot read as a torch file ({first})"


def read_checkpoint(path: PathLike) -> dict:
    """The raw checkpoint dict, after format, version and skeleton checks."""
    if _is_url(path):
        raise CheckpointError(f"{path}: downloading is not supported here; download the "
                              "file and pass its path")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types
        raise CheckpointError(f"{path}: {torch_load_error(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        if _looks_like_cmu(ckpt):
            hint = ("it looks like CMU's body_pose_model.pth; convert it with "
                    f"`openpaf weights import {path.name} -o cmu_coco.pt`")
        else:
            hint = "to use CMU's body_pose_model.pth run `openpaf weights import SRC -o DST.pt`"
        raise CheckpointError(f"{path}: not an openpaf checkpoint ({hint})")
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')!r} is not "
                              f"supported (this openpaf reads versions "
                              f"{', '.join(map(str, READABLE_VERSIONS))})")
    missing = [k for k in ("config", "skeleton", "normalisation", "state_dict", "manifest")
               if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    try:
        spec_from_stored(ckpt["skeleton"])
    except (SkeletonError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: skeleton mismatch: {first_line(e)}") from None
    return ckpt


def load_checkpoint(path: PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Build the model described by the checkpoint at ``path`` and load it strictly."""
    ckpt = read_checkpoint(path)
    arch = ckpt.get("arch", LEGACY_ARCH)
    try:
        normalisation = InputNorm(**ckpt["normalisation"])
        pretrained = (PretrainedCfg.from_dict(ckpt["pretrained_cfg"])
                      if "pretrained_cfg" in ckpt
                      else PretrainedCfg(normalisation=normalisation))
        with torch.device("meta"):      # no random init: every tensor comes from the file
            model = build_model(arch, ckpt["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad arch, config or normalisation ({e})") from None
    state = ckpt["state_dict"]
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict has non-tensor entries {short_list(bad)}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    bad = [str(k) for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:      # such weights detect nobody, silently
        raise CheckpointError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values "
                              f"({short_list(bad)})")
    spec = spec_from_stored(ckpt["skeleton"])
    if (model.num_heatmaps, model.num_pafs) != (spec.num_heatmaps, spec.num_pafs):
        raise CheckpointError(f"{path}: its network has {model.num_heatmaps} heatmaps and "
                              f"{model.num_pafs} PAFs, its skeleton '{spec.name}' needs "
                              f"{spec.num_heatmaps} and {spec.num_pafs}")
    model.spec = spec
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state_dict(state, expected, f"{path}: state_dict does not match its config")
    model.load_state_dict(state, strict=True, assign=True)
    model.to(device).eval()
    return LoadedModel(model=model, config=model.config, normalisation=normalisation,
                       manifest=dict(ckpt["manifest"]), path=Path(path),
                       extra=dict(ckpt.get("extra") or {}), pretrained=pretrained,
                       variant=ckpt.get("variant"), spec=spec)


def default_weights_path() -> Path:
    """``$OPENPAF_WEIGHTS`` if set, else ``<repo>/weights/default.pt``."""
    env = os.environ.get("OPENPAF_WEIGHTS")
    if env:
        return Path(env)
    import openpaf
    return Path(openpaf.__file__).resolve().parents[1] / "weights" / "default.pt"


def load_default(device: str | torch.device = "cpu") -> LoadedModel:
    """Load ``default_weights_path()``; if absent, a one-line ``CheckpointError`` says how
    to get weights."""
    env = os.environ.get("OPENPAF_WEIGHTS", "")
    if _is_url(env):
        return load_checkpoint(env, device)         # raises the "download it" error
    path = default_weights_path()
    if not path.is_file():
        raise CheckpointError(
            f"no model weights at {path}: pass --weights FILE, or import CMU's model with "
            "`openpaf weights import body_pose_model.pth -o cmu_coco.pt` (then pass "
            "--weights cmu_coco.pt or set OPENPAF_WEIGHTS), or train one with `openpaf train`")
    from . import load_weights           # any file --weights takes (.pt, .xml, .pth, .pb)
    return load_weights(path, device)


def describe(loaded: LoadedModel) -> list[str]:
    """Human-readable summary lines: config, parameter count, normalisation, manifest."""
    model, pre = loaded.model, loaded.pretrained
    config = ", ".join(f"{k} {v}" for k, v in loaded.config.to_dict().items())
    lines = [f"file: {loaded.path}",
             f"architecture: {model.arch} ({config}), stride {model.stride}",
             f"outputs: {model.num_heatmaps} heatmaps, {model.num_pafs} PAFs (skeleton "
             f"{loaded.spec.name}: {loaded.spec.num_keypoints} keypoints, "
             f"{loaded.spec.num_limbs} limbs)",
             f"parameters: {count_parameters(model):,}",
             f"normalisation: {format_norm(loaded.normalisation)}",
             f"defaults: height {pre.height}, pad value {pre.pad_value}, "
             f"flip {'on' if pre.flip else 'off'}"]
    if loaded.manifest:
        lines.append("manifest:")
        for k, v in loaded.manifest.items():
            if isinstance(v, (dict, list)) and v:
                text = json.dumps(v, indent=2, default=str).replace("\n", "\n  ")
                lines.append(f"  {k}: {text}")
            else:
                lines.append(f"  {k}: {v}")
    return lines


def weights_summary(path: PathLike, manifest: dict) -> str:
    """One line naming the weights and, when the manifest records it, their measured AP,
    e.g. ``'weights/default.pt (openpaf-small-cpu; AP 0.041 on coco/val)'``."""
    parts = [str(manifest["name"])] if manifest.get("name") else []
    for ev in manifest.get("eval", [])[:1]:
        where = Path(str(ev.get("annotations", ""))).with_suffix("")
        parts.append(f"AP {ev['AP']:.3f} on {where.parent.name}/{where.name}")
    return f"{path}" + (f" ({'; '.join(parts)})" if parts else "")


def format_norm(norm: InputNorm) -> str:
    """E.g. ``'BGR, x / 256 - 0.5'``."""
    inv = 1.0 / norm.scale if norm.scale else 0.0
    text = (f"x / {round(inv)}" if inv and abs(inv - round(inv)) < 1e-6
            else f"x * {norm.scale:g}")
    if norm.offset:
        text += f" {'-' if norm.offset < 0 else '+'} {abs(norm.offset):g}"
    return f"{norm.channel_order}, {text}"


def _looks_like_cmu(obj: Any) -> bool:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return isinstance(obj, dict) and any(
        str(k).endswith("conv1_1.weight") and "backbone" not in str(k) for k in obj)


def check_state_dict(state_dict: dict, expected: dict, what: str) -> None:
    """Raise a one-line ``CheckpointError`` (``what: missing 2 (a, b); wrong shape ...``)
    unless ``state_dict`` has exactly the keys and shapes of ``expected`` (key -> shape)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} != {tuple(s)}" for k, s in expected.items()
             if k in state_dict and tuple(state_dict[k].shape) != tuple(s)]
    parts = [f"{label} {short_list(names)}" for label, names in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
             if names]
    if parts:
        raise CheckpointError(f"{what}: {'; '.join(parts)}")


def short_list(names: list[str], n: int = 3) -> str:
    """``'5 (a, b, c, ... +2 more)'``: a count and the first ``n`` names, for error lines."""
    if not names:
        return "0"
    more = f", ... +{len(names) - n} more" if len(names) > n else ""
    return f"{len(names)} ({', '.join(names[:n])}{more})"
