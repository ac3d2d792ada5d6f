"""CMU's COCO body model in pytorch-openpose's flat ``.pth`` layout <-> openpaf.

CMU COCO body model, in the flat layout of pytorch-openpose's ``body_pose_model.pth``::

    conv1_1 .. conv4_2, conv4_3_CPM, conv4_4_CPM          (.weight, .bias)
    conv5_{1..5}_CPM_L{1,2}                                stage 1
    Mconv{1..7}_stage{2..N}_L{1,2}                         stages 2..N

L1 = PAFs (38 channels), L2 = heatmaps (19); input BGR, ``x / 256 - 0.5``. The last conv
of every branch (``conv5_5``, ``Mconv7``) has no ReLU, as in CMU's Caffe prototxt.
Sniffed by content: a torch file whose tensors carry CMU's names.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ... import __version__
from ...model.cmu_vgg import (CMU_PRETRAINED, VGG19_DEPTHS, CmuVgg, CmuVggConfig,
                              vgg_layer_names)
from ...structures import InputNorm
from ..checkpoint import (CheckpointError, PathLike, atomic_torch_save, check_state_dict,
                          file_sha256, format_norm, read_checkpoint)
from . import Imported, WeightFormat, register_format
from .torch_files import load_torch_file, sniff_state_dict, unwrap_state_dict

CMU_NORMALISATION = CMU_PRETRAINED.normalisation
CMU_LICENCE = "CMU OpenPose COCO model, non-commercial licence (CMU academic licence)"
_PARAMS = ("weight", "bias")
_MCONV = re.compile(r"^Mconv\d+_stage(\d+)_L[12]\.")


def cmu_config(stages: int = 6) -> CmuVggConfig:
    """The ``CmuVggConfig`` of CMU's COCO model truncated to ``stages`` stages."""
    return CmuVggConfig(stages=stages)


def cmu_key_map(stages: int = 6) -> dict[str, str]:
    """``{our key: CMU key}`` for every tensor of a ``stages``-stage CMU model, CMU order."""
    m = {}
    for name in vgg_layer_names(VGG19_DEPTHS):
        if name.startswith("conv"):
            m.update({f"backbone.{name}.conv.{p}": f"{name}.{p}" for p in _PARAMS})
    for name in ("conv4_3", "conv4_4"):
        m.update({f"cpm.{name}.conv.{p}": f"{name}_CPM.{p}" for p in _PARAMS})
    for s in range(stages):
        for branch, lx in (("paf", "L1"), ("heatmap", "L2")):
            if s == 0:
                cmu = [f"conv5_{i}_CPM_{lx}" for i in range(1, 6)]
            else:
                cmu = [f"Mconv{i}_stage{s + 1}_{lx}" for i in range(1, 8)]
            for i, name in enumerate(cmu[:-1]):
                m.update({f"stages.{s}.{branch}.layers.{i}.conv.{p}": f"{name}.{p}"
                          for p in _PARAMS})
            m.update({f"stages.{s}.{branch}.out.{p}": f"{cmu[-1]}.{p}" for p in _PARAMS})
    return m


def cmu_stages_in(keys) -> int:
    """Number of stages in a CMU-named key set: the highest ``Mconv*_stageN`` (1 if none)."""
    found = [int(m.group(1)) for k in keys if (m := _MCONV.match(str(k)))]
    return max(found, default=1)


def cmu_to_ours(flat_state_dict: Mapping) -> tuple[CmuVggConfig, dict[str, torch.Tensor]]:
    """CMU flat state dict -> ``(config, our state dict)`` (fp32), after checking every key.

    Accepts the dict itself, ``{"state_dict": ...}``, or keys prefixed with ``module.``.
    Raises ``CheckpointError`` listing missing / unexpected / wrong-shape keys.
    """
    sd = unwrap_state_dict(flat_state_dict)
    stages = cmu_stages_in(sd)
    config = cmu_config(stages)
    key_map = cmu_key_map(stages)
    shapes = _shapes(config)
    if set(shapes) != set(key_map):  # our model and the mapping must agree exactly
        raise AssertionError("cmu_key_map is out of date with CmuVgg's state_dict keys")
    check_state_dict(sd, {key_map[k]: s for k, s in shapes.items()},
                     f"not a CMU COCO body model ({stages} stages inferred)")
    return config, {ours: sd[cmu].detach().float().contiguous()
                    for ours, cmu in key_map.items()}


def ours_to_cmu(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """Our state dict (CMU-shaped, no BatchNorm) -> CMU flat state dict (fp32), CMU order.

    Also accepts a whole openpaf checkpoint dict (its ``state_dict`` is used).
    """
    if isinstance(state_dict, Mapping) and state_dict.get("format") == "openpaf":
        state_dict = state_dict["state_dict"]
    sd = unwrap_state_dict(state_dict)
    stage_ids = [int(k.split(".")[1]) for k in sd if k.startswith("stages.")]
    stages = max(stage_ids, default=0) + 1
    config = cmu_config(stages)
    check_state_dict(sd, _shapes(config), f"cannot export to CMU layout ({stages} stages; "
                     "only the CMU architecture without BatchNorm can be exported)")
    return {cmu: sd[ours].detach().float().contiguous()
            for ours, cmu in cmu_key_map(stages).items()}


class CmuFormat(WeightFormat):
    name = "cmu"
    description = "CMU COCO body model, pytorch-openpose body_pose_model.pth"

    def sniff(self, path: Path, head: bytes) -> bool:
        obj = sniff_state_dict(path, head) or {}
        return "conv1_1.weight" in obj and any(k.startswith("conv5_1_CPM") for k in obj)

    def read(self, path: Path) -> Imported:
        config, state = cmu_to_ours(load_torch_file(path))
        with torch.device("meta"):
            model = CmuVgg(config)
        model.load_state_dict(state, strict=True, assign=True)
        manifest = {
            "source": str(path.resolve()),
            "source_sha256": file_sha256(path),
            "source_format": "CMU OpenPose COCO body model (pytorch-openpose flat layout)",
            "licence": CMU_LICENCE,
            "normalisation": format_norm(CMU_NORMALISATION),
            "stages": config.stages,
            "created_by": f"openpaf {__version__} weights import",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }
        variant = "cmu_vgg19" if config.stages == 6 else None
        return Imported(model.eval(), CMU_NORMALISATION, manifest, variant)


def export_cmu(src: PathLike, dst: PathLike) -> Path:
    """Write the openpaf checkpoint ``src`` as a CMU flat state dict (pytorch-openpose)."""
    ckpt = read_checkpoint(src)
    norm = InputNorm(**ckpt["normalisation"])
    if norm != CMU_NORMALISATION:
        raise CheckpointError(f"{src}: expects input {norm.to_dict()}, but CMU-layout "
                              "consumers feed BGR x/256 - 0.5; not exported")
    return atomic_torch_save(ours_to_cmu(ckpt["state_dict"]), dst)


# --- helpers ---------------------------------------------------------------------------

def _shapes(config: CmuVggConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in CmuVgg(config).state_dict().items()}


register_format(CmuFormat())
