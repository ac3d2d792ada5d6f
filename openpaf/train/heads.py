"""Fine-tuning onto other keypoints: what a network for one ``KeypointSpec`` gives to a
network for another (``--init checkpoint:weights/default.pt`` with a new skeleton).

Every family's heads end in convs of ``num_heatmaps`` (keypoints + background) and
``num_pafs`` (2 per limb) output channels, and every refinement stage reads
``cat([pafs, heatmaps, features])`` (the ``PafModel`` contract). So a tensor of the new
network is matched to the old one's by name, and along a dimension whose size is a head
size of the new spec (output: dim 0; stage input: dim 1) its channels are taken by
keypoint and limb *name*: a keypoint keeps its heatmap channel, the background stays the
background, a limb joining the same two named points in the same direction keeps its
(x, y) PAF channels; every other channel keeps its fresh initialisation. Tensors that
involve no head channel are copied when their shapes agree.
"""
from __future__ import annotations

import numpy as np
import torch

from ..skeleton import KeypointSpec


def heatmap_sources(new: KeypointSpec, old: KeypointSpec) -> np.ndarray:
    """``(K_new + 1,)`` int64: the old heatmap channel of each new one, -1 for none."""
    src = [old.keypoints.index(n) if n in old.keypoints else -1 for n in new.keypoints]
    return np.array(src + [old.num_keypoints], np.int64)


def paf_sources(new: KeypointSpec, old: KeypointSpec) -> np.ndarray:
    """``(2 L_new,)`` int64: the old PAF channel of each new one (same limb by its end
    names and direction), -1 for none."""
    old_limbs = {(old.keypoints[a], old.keypoints[b]): k for k, (a, b) in enumerate(old.limbs)}
    src = np.full(new.num_pafs, -1, np.int64)
    for k, (a, b) in enumerate(new.limbs):
        j = old_limbs.get((new.keypoints[a], new.keypoints[b]))
        if j is not None:
            src[list(new.paf_channels[k])] = old.paf_channels[j]
    return src


def _channel_sources(new_size: int, old_size: int, dim: int, new: KeypointSpec,
                     old: KeypointSpec) -> np.ndarray | None:
    """The old channel of each new one along ``dim`` if it is a head dimension, else None."""
    heat, paf = heatmap_sources(new, old), paf_sources(new, old)
    if dim == 0 and (new_size, old_size) == (new.num_heatmaps, old.num_heatmaps):
        return heat
    if dim == 0 and (new_size, old_size) == (new.num_pafs, old.num_pafs):
        return paf
    feats = new_size - new.num_pafs - new.num_heatmaps
    if dim == 1 and feats > 0 and feats == old_size - old.num_pafs - old.num_heatmaps:
        shift = np.concatenate([paf, np.where(heat >= 0, heat + old.num_pafs, -1)])
        return np.concatenate([shift, np.arange(feats) + old.num_pafs + old.num_heatmaps])
    return None


@torch.no_grad()
def carry_over(model: torch.nn.Module, source: torch.nn.Module,
               source_spec: KeypointSpec) -> torch.nn.Module:
    """Copy into ``model`` (heads for ``model.spec``) what ``source`` (heads for
    ``source_spec``) has for it (see the module docstring); returns ``model``."""
    new, theirs = model.spec, source.state_dict()
    state = model.state_dict()
    for name, ours in state.items():
        old = theirs.get(name)
        if old is None or old.ndim != ours.ndim:
            continue
        dims = [d for d in range(min(ours.ndim, 2))
                if _channel_sources(ours.shape[d], old.shape[d], d, new, source_spec) is not None]
        if len(dims) == 1:
            d = dims[0]
            src = _channel_sources(ours.shape[d], old.shape[d], d, new, source_spec)
            rest_ok = all(ours.shape[i] == old.shape[i] for i in range(ours.ndim) if i != d)
            keep = np.flatnonzero(src >= 0)
            if rest_ok and len(keep):
                ours.index_copy_(d, torch.from_numpy(keep),
                                 old.index_select(d, torch.from_numpy(src[keep])).to(ours.dtype))
        elif not dims and old.shape == ours.shape:
            ours.copy_(old)
    model.load_state_dict(state)
    return model
