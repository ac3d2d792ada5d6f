"""Model weights: openpaf's own checkpoint format, foreign formats, shipping (pack).

    checkpoint.py   save/load native checkpoints (weights_only), default weights, describe
    formats/        one file per foreign format (CMU .pth, torchvision VGG, OpenVINO IR,
                    TensorFlow graph, ...) behind one sniff/read interface
    pack.py         training checkpoint -> shippable file with lineage and measured AP

``load_weights(path)`` is what ``--weights FILE`` uses: an openpaf checkpoint, or any
foreign format recognised by content (converted in memory).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import (CheckpointError, LoadedModel, default_weights_path, load_checkpoint,
                         load_default, read_checkpoint, save_checkpoint, with_normalisation)


def is_native(path: Path) -> bool:
    """Cheap content check: a zip torch file whose pickle starts with openpaf's header
    (``{"format": "openpaf", ...}`` is the first entry ``save_checkpoint`` writes)."""
    with open(path, "rb") as f:
        head = f.read(512)
    return head[:2] == b"PK" and b"openpaf" in head


def load_weights(path, device: str | torch.device = "cpu") -> LoadedModel:
    """An openpaf checkpoint, or a foreign file any registered format recognises."""
    p = Path(path)
    if not p.is_file() or is_native(p):
        return load_checkpoint(path, device)
    from .formats import detect_format     # imports every format file: only when needed
    fmt = detect_format(p)
    if fmt is None:
        return load_checkpoint(path, device)        # its error says what was expected
    imported = fmt.read(p)
    pre = with_normalisation(None, imported.variant, imported.normalisation)
    return LoadedModel(model=imported.model.to(device).eval(), config=imported.model.config,
                       normalisation=imported.normalisation, manifest=imported.manifest,
                       path=p, pretrained=pre, variant=imported.variant)


__all__ = ["CheckpointError", "LoadedModel", "default_weights_path", "load_checkpoint",
           "load_default", "load_weights", "read_checkpoint", "save_checkpoint"]
