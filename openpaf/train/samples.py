"""Write the first augmented samples of a run, with their targets drawn, as PNGs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2

from ..data.coco import DatasetSpec, MixSampler, build_dataset
from ..io.samples import draw_sample
from ..model import get_pretrained_cfg
from ..skeleton import KeypointSpec
from .config import TrainConfig


def _draws(sampler: MixSampler, count: int):
    """The run's first ``count`` draws, epoch after epoch."""
    for epoch in range(count // max(len(sampler), 1) + 1):
        sampler.set_epoch(epoch)
        yield from sampler


def show_samples(data: Sequence[DatasetSpec], out_dir: str | os.PathLike, *,
                 config: TrainConfig = TrainConfig(), count: int = 8,
                 skeleton: KeypointSpec | None = None) -> list[Path]:
    """Write ``count`` augmented training samples with their targets drawn as PNGs (the
    first draws of epoch 0 of a run with ``config``; ``skeleton``: the keypoint spec, None
    = the data's); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    norm = get_pretrained_cfg(config.model).normalisation
    dataset = build_dataset(data, config.augment, config.target, norm, config.seed, skeleton)
    sampler = MixSampler(dataset.sizes, [s.weight for s in data], config.epoch_size,
                         config.seed)
    paths = []
    for n, (index, draw) in zip(range(count), _draws(sampler, count)):
        d, i = dataset.locate(index)
        ds = dataset.datasets[d]
        sample = ds.sample(i, ds.rng(draw))
        unknown = ", ".join(ds.keypoint_spec.keypoints[k] for k in sample.unknown) or "none"
        title = (f"{ds.spec.name} image {sample.image_id}{' FLIPPED' if sample.flipped else ''}"
                 f" | masked channels: {unknown} | red=right blue=left green=centre")
        picture = draw_sample(sample, ds.targets(sample), config.target.stride, title,
                              spec=ds.keypoint_spec)
        flip = "_flip" if sample.flipped else ""
        path = out / f"sample_{n:03d}_{ds.spec.name}_{sample.image_id}{flip}.png"
        if not cv2.imwrite(str(path), picture):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths
