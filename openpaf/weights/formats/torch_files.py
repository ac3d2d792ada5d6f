"""Reading foreign ``torch.save`` files safely (``weights_only``) for the torch-based
formats (CMU ``.pth``, torchvision VGG)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, short_list, torch_load_error


def load_torch_file(src: Path):
    """``torch.load(weights_only=True)`` with any failure as a one-line ``CheckpointError``."""
    try:
        return torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors have many types
        raise CheckpointError(f"{src}: {torch_load_error(e)}") from None


def is_torch_file(head: bytes) -> bool:
    """Zip-based (``PK``) or legacy pickle (protocol 2+) torch files."""
    return head[:2] == b"PK" or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04")


def sniff_state_dict(path: Path, head: bytes) -> dict | None:
    """The flat state dict of a foreign torch file (see ``unwrap_state_dict``), or None
    when ``path`` (first bytes ``head``) is no such file: what torch-based formats sniff."""
    if not is_torch_file(head):
        return None
    try:
        return unwrap_state_dict(load_torch_file(path))
    except CheckpointError:
        return None


def unwrap_state_dict(obj) -> dict:
    """A flat ``{name: tensor}`` dict from a state dict, ``{"state_dict": ...}`` or a
    DataParallel dict (``module.`` prefixes dropped); one-line errors otherwise."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"expected a state dict, got {type(obj).__name__}")
    if obj.get("format") == "openpaf":
        raise CheckpointError("this is already an openpaf checkpoint")
    if isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    keys = [str(k) for k in obj]
    if keys and all(k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"state dict has non-tensor entries: {short_list(bad)}")
    return dict(obj)
