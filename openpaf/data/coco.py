"""COCO-format keypoint datasets for training: ``PoseDataset``, mixing and sampling.

A dataset is a COCO keypoint JSON + an image folder (``DatasetSpec``); several mix in one
run with sampling weights (``MixedDataset`` + ``MixSampler``). One item is one augmented
crop around a randomly chosen labelled person with its stride-8 targets and loss masks::

    image        (3, S, S)   float32, normalised like ``InputNorm`` (BGR, x/256 - 0.5)
    heatmaps     (K+1, s, s) float32, s = S / stride (K + 1 = 19 for COCO-18)
    pafs         (2L, s, s)  float32 (2 L = 38 for COCO-18)
    mask         (1, s, s)   float32, 1 = train, 0 = ignore (crowds, zero-keypoint people)
    heat_weight  (K+1,)      float32 per-channel weights (0 = unknown keypoint type)
    paf_weight   (2L,)       float32

The keypoints (``KeypointSpec``) are the file's category's (COCO-17 person files read as
OpenPose COCO-18), or a spec given by ``DatasetSpec.skeleton`` / ``build_dataset``, whose
points then name the file's (mapped by name; points the file lacks are unknown). Datasets
mixed in one run share the first one's spec unless one is given.

Unknown keypoint types (masked for a whole dataset): those with v=0 in every annotation
of the file, plus the spec's ``unknown_keypoints``. Files where some annotations carry
``"face_source"`` (machine-labelled faces, e.g. ``lspet/train_face_pseudo.json``): the
face keypoints of people without it are unknown; as the masks are per channel, an image
gets its face channels masked if *any* labelled person in it lacks ``face_source`` (exact
for one-person images such as LSPET's, conservative otherwise).

Bad records are found when the dataset is built, not when a step draws them: a file whose
structure is wrong is refused (``data.records.read_coco``); an image whose file is missing
or one of whose annotations is unusable (not 51 finite keypoint values, no finite box) is
*skipped*, counted and named in ``PoseDataset.skipped`` (``train`` logs it and records the
count in the checkpoint manifest). A file with no usable image is refused.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from ..io.orientation import annotation_frame, orientation_matrix, read_orientation
from ..skeleton import (OPENPOSE_COCO18, KeypointSpec, SkeletonError, from_named, get_spec,
                        spec_for_categories)
from ..structures import InputNorm
from .augment import AugmentParams, augment
from .records import annotation_problem, file_keypoints, file_spec, read_coco
from .masks import (channel_weights, face_points, ignore_mask, is_labelled, keypoint_indices,
                    never_labelled)
from .targets import TargetParams, render_targets

LSPET_LICENCE = "LSP Extended: research use only; cite Johnson & Everingham 2011"


@dataclass(frozen=True)
class DatasetSpec:
    """One training source. weight: share of the drawn samples (see ``MixSampler``);
    None = proportional to the number of images. unknown_keypoints: names of keypoint
    types this dataset never labels (added to the auto-detected ones; names of
    ``skeleton``'s points, COCO-18's when it is empty). licence: a note copied into
    checkpoint manifests (LSPET's is added automatically). skeleton: the keypoint spec to
    read the file with (a built-in name or a YAML/JSON file); empty: the file's own."""

    annotations: str
    images: str
    weight: float | None = None
    unknown_keypoints: tuple[str, ...] = ()
    name: str = ""
    licence: str = ""
    skeleton: str = ""

    def __post_init__(self):
        object.__setattr__(self, "unknown_keypoints", tuple(self.unknown_keypoints))
        keypoint_indices(self.unknown_keypoints, self.keypoint_spec() or OPENPOSE_COCO18)
        if self.weight is not None and not self.weight > 0:
            raise ValueError(f"dataset weight must be > 0, got {self.weight}")
        if not self.name:
            object.__setattr__(self, "name", Path(self.annotations).stem)
        if not self.licence and "lspet" in str(self.annotations).lower():
            object.__setattr__(self, "licence", LSPET_LICENCE)

    def keypoint_spec(self) -> KeypointSpec | None:
        """The ``skeleton`` asked for, or None (the file's own)."""
        return get_spec(self.skeleton) if self.skeleton else None

    def to_dict(self) -> dict:
        d = {"annotations": str(self.annotations), "images": str(self.images),
             "weight": self.weight, "unknown_keypoints": list(self.unknown_keypoints),
             "name": self.name, "licence": self.licence}
        if self.skeleton:
            d["skeleton"] = str(self.skeleton)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetSpec":
        return cls(**{**d, "unknown_keypoints": tuple(d.get("unknown_keypoints") or ())})


def parse_data_arg(arg: str) -> list[DatasetSpec]:
    """``ann.json:images_dir[:weight]``, or a dataset YAML ``x.yaml[:weight]`` (the weight
    then replaces the YAML's for each of its datasets)."""
    head, _, tail = arg.rpartition(":")
    if head.lower().endswith((".yaml", ".yml")):
        try:
            w = float(tail)
        except ValueError:
            raise ValueError(f"bad weight {tail!r} in {arg!r}") from None
        return [DatasetSpec.from_dict({**s.to_dict(), "weight": w})
                for s in load_data_yaml(head)]
    if arg.lower().endswith((".yaml", ".yml")):
        return load_data_yaml(arg)
    parts = arg.split(":")
    weight = None
    if len(parts) == 3:
        try:
            weight = float(parts[2])
        except ValueError:
            raise ValueError(f"bad weight {parts[2]!r} in {arg!r}") from None
        parts = parts[:2]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"expected ANN.json:IMAGES_DIR[:WEIGHT] or a .yaml file, got {arg!r}")
    return [DatasetSpec(parts[0], parts[1], weight)]


def load_data_yaml(path: str | os.PathLike) -> list[DatasetSpec]:
    """Dataset YAML: one mapping (``annotations``, ``images``, optional ``weight``,
    ``unknown_keypoints``, ``name``, ``licence``) or ``datasets: [mapping, ...]``.
    Relative paths are relative to the YAML file; ``$VARS`` and ``~`` are expanded."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset YAML not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    entries = doc["datasets"] if isinstance(doc, dict) and "datasets" in doc else [doc]
    specs = []
    for e in entries:
        if not isinstance(e, dict) or "annotations" not in e or "images" not in e:
            raise ValueError(f"{path}: each dataset needs 'annotations' and 'images'")
        unknown = sorted(set(e) - {f.name for f in fields(DatasetSpec)})
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}")
        e = dict(e)
        for key in ("annotations", "images"):
            p = Path(os.path.expanduser(os.path.expandvars(str(e[key]))))
            e[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
        specs.append(DatasetSpec.from_dict(e))
    return specs


def load_image(path: str | os.PathLike, max_side: int | None = None,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR image, shrunk so its longer side is at most ``max_side``.

    ``size``: the file's ``(W, H)`` if known (from the annotations); it lets JPEGs decode
    directly at 1/2, 1/4 or 1/8 resolution before the final ``INTER_AREA`` resize.
    """
    path = str(path)
    flag = cv2.IMREAD_COLOR
    if max_side and size:
        for r, f in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                     (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if max(size) / r >= max_side:
                flag = f
                break
    image = cv2.imread(path, flag)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_AREA)
    return image


def annotation_to_image(path: str | os.PathLike, image_size: tuple[int, int],
                        annotated: tuple[int, int]) -> np.ndarray:
    """3x3 affine from an annotation's pixel coordinates (image ``annotated`` = its
    ``(width, height)``) to those of the image decoded at ``image_size`` ``(W, H)``: the
    EXIF rule of ``io.orientation`` (annotations of the stored pixels are rotated), then
    the scale of a shrunk copy (pixel centres kept)."""
    turn = np.eye(3)
    if annotation_frame(image_size, annotated, 1) != "upright":
        orientation = read_orientation(path)
        if annotation_frame(image_size, annotated, orientation) == "stored":
            turn = orientation_matrix(orientation, annotated)
            annotated = annotated[::-1]
    sx, sy = image_size[0] / annotated[0], image_size[1] / annotated[1]
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]]) @ turn


class PoseDataset(torch.utils.data.Dataset):
    """Augmented crops + targets from one COCO keypoint file (see the module docstring).

    Items are indexed by ``i`` or ``(i, draw)``: the augmentation generator is seeded by
    ``(seed, draw)`` (``draw`` defaults to ``i``), so a sample depends only on these
    numbers, not on worker processes or call order. ``keypoint_spec``: the skeleton to
    read the file with (its points name the file's); None: ``spec.skeleton``, else the
    file's own (``keypoint_spec`` attribute).
    """

    def __init__(self, spec: DatasetSpec, params: AugmentParams = AugmentParams(),
                 target: TargetParams = TargetParams(), norm: InputNorm = InputNorm(),
                 seed: int = 0, max_load_side: int | None = None,
                 keypoint_spec: KeypointSpec | None = None):
        if params.input_size % target.stride:
            raise ValueError(f"input_size {params.input_size} is not a multiple of the "
                             f"stride {target.stride}")
        self.spec, self.params, self.target, self.norm = spec, params, target, norm
        self.seed = int(seed)
        self.max_load_side = max_load_side if max_load_side is not None else 2 * params.input_size
        self.images_dir = Path(spec.images)
        self.coco = coco = read_coco(spec.annotations)
        try:
            ks = self.keypoint_spec = file_spec(coco, keypoint_spec or spec.keypoint_spec())
            names = file_keypoints(coco)
            keypoint_indices(spec.unknown_keypoints, ks)
        except (SkeletonError, ValueError) as e:
            raise ValueError(f"{spec.annotations}: {e}") from None
        problems = {i: p for i, p in ((a["id"], annotation_problem(a, len(names)))
                                      for a in coco.anns.values()) if p}
        all_anns = [a for a in coco.anns.values() if a["id"] not in problems]
        self.auto_unknown = never_labelled(all_anns, ks, names)
        self.unknown = tuple(sorted(set(self.auto_unknown)
                                    | set(keypoint_indices(spec.unknown_keypoints, ks))))
        partial_face = any("face_source" in a for a in all_anns)
        self.records, self.skipped = [], []
        for image_id in sorted(coco.getImgIds()):
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            people = [a for a in anns if is_labelled(a) and "keypoints" in a]
            if not people:
                continue
            problem = self._problem(coco.imgs[image_id], anns, problems)
            if problem:
                self.skipped.append(problem)
                continue
            face_unknown = partial_face and any("face_source" not in a for a in people)
            self.records.append(dict(
                image_id=image_id, anns=anns, face_unknown=face_unknown,
                keypoints=from_named(ks, np.array([a["keypoints"] for a in people],
                                                  np.float32).reshape(-1, len(names), 3),
                                     names),
                boxes=np.array([_box(a) for a in people], np.float32)))

        if not self.records:
            first = f" (first skipped: {self.skipped[0]})" if self.skipped else ""
            raise ValueError(f"{spec.annotations}: no usable image with labelled people"
                             f"{first}")

    def _problem(self, info: dict, anns: list[dict], problems: dict) -> str | None:
        """Why image ``info`` cannot be a training record (``problems``: annotation id ->
        its ``annotation_problem``), or None."""
        bad = [problems[a["id"]] for a in anns if a["id"] in problems]
        if bad:
            return bad[0]
        path = self.images_dir / info["file_name"]
        return None if path.is_file() else f"image {info['id']}: no file {path}"

    def __len__(self) -> int:
        return len(self.records)

    @property
    def faces_partly_unknown(self) -> int:
        """Number of images whose face channels are masked per image."""
        return sum(r["face_unknown"] for r in self.records)

    def unknown_of(self, index: int) -> tuple[int, ...]:
        """Unknown keypoint indices for image ``index`` (dataset-wide + per-image faces)."""
        extra = face_points(self.keypoint_spec) if self.records[index]["face_unknown"] else ()
        return tuple(sorted(set(self.unknown) | set(extra)))

    def sample(self, index: int, rng: np.random.Generator) -> "Sample":
        """The augmented crop of image ``index`` (uint8, keypoints, full-size mask)."""
        rec = self.records[index]
        info = self.coco.imgs[rec["image_id"]]
        fw, fh = info.get("width"), info.get("height")
        path = self.images_dir / info["file_name"]
        image = load_image(path, self.max_load_side, (fw, fh) if fw and fh else None)
        h, w = image.shape[:2]
        fw, fh = fw or w, fh or h
        load = annotation_to_image(path, (w, h), (fw, fh))
        mask = ignore_mask(self.coco, rec["anns"], fh, fw)
        boxes = rec["boxes"]
        big = np.flatnonzero(np.maximum(boxes[:, 2], boxes[:, 3]) >= 32)
        main = int(rng.choice(big if len(big) else np.arange(len(boxes))))
        x, y, bw, bh = boxes[main]
        # box centre in pixel-centre coordinates (a COCO box [0, w) spans centres 0..w-1)
        centre = tuple(load[:2] @ (x + bw / 2 - 0.5, y + bh / 2 - 0.5, 1))
        size = max(np.hypot(*load[:2, 0]) * bw, np.hypot(*load[:2, 1]) * bh)
        kps = rec["keypoints"].copy()
        kps[..., :2] = kps[..., :2] @ load[:2, :2].T.astype(np.float32) + load[:2, 2]
        out, kps, out_mask, m, flipped = augment(
            image, kps, mask, centre, size, self.params, rng,
            mask_matrix=None if mask is None else load, flip_map=self.keypoint_spec.flip)
        unknown = self.unknown_of(index)
        if flipped:
            unknown = tuple(self.keypoint_spec.flip[k] for k in unknown)
        heat_w, paf_w = channel_weights(unknown, self.keypoint_spec)
        return Sample(image=out, keypoints=kps, mask=out_mask, heat_weight=heat_w,
                      paf_weight=paf_w, matrix=m @ load, flipped=flipped,
                      image_id=int(rec["image_id"]), unknown=unknown)

    def targets(self, sample: "Sample") -> dict[str, np.ndarray]:
        """Network input, stride-``s`` targets and masks of a ``Sample`` (numpy, float32)."""
        stride = self.target.stride
        s = self.params.input_size // stride
        heat, paf = render_targets(sample.keypoints, (s, s), self.target, self.keypoint_spec)
        mask = cv2.resize(sample.mask, (s, s), interpolation=cv2.INTER_AREA)
        x = sample.image[..., ::-1] if self.norm.channel_order == "RGB" else sample.image
        x = x.transpose(2, 0, 1).astype(np.float32) * self.norm.scale + self.norm.offset
        return {"image": x, "heatmaps": heat, "pafs": paf, "mask": mask[None],
                "heat_weight": sample.heat_weight, "paf_weight": sample.paf_weight}

    def rng(self, draw: int) -> np.random.Generator:
        """The augmentation generator of draw number ``draw``."""
        return np.random.default_rng([self.seed, int(draw)])

    def __getitem__(self, item) -> dict[str, torch.Tensor]:
        index, draw = item if isinstance(item, (tuple, list)) else (item, item)
        out = self.targets(self.sample(int(index), self.rng(draw)))
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


@dataclass
class Sample:
    """One augmented training crop before target rendering.

    image: ``(S, S, 3)`` uint8 BGR. keypoints: ``(N, K, 3)`` input px (left/right already
    swapped if flipped). mask: ``(S, S)`` float32, 1 = train. heat_weight ``(K + 1,)``,
    paf_weight ``(2 L,)``: channel weights. matrix: ``(3, 3)`` annotation-file pixels ->
    input pixels. unknown: unknown keypoint indices after the flip.
    """

    image: np.ndarray
    keypoints: np.ndarray
    mask: np.ndarray
    heat_weight: np.ndarray
    paf_weight: np.ndarray
    matrix: np.ndarray
    flipped: bool
    image_id: int
    unknown: tuple[int, ...] = field(default_factory=tuple)


def _box(ann: dict) -> tuple[float, float, float, float]:
    """COCO box ``[x, y, w, h]``, or the labelled keypoints' extent if there is none."""
    if ann.get("bbox") and ann["bbox"][2] > 0 and ann["bbox"][3] > 0:
        return tuple(float(v) for v in ann["bbox"])
    k = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
    k = k[k[:, 2] > 0]
    x0, y0 = k[:, :2].min(0)
    x1, y1 = k[:, :2].max(0)
    return float(x0), float(y0), float(max(x1 - x0, 1.0)), float(max(y1 - y0, 1.0))


class MixedDataset(torch.utils.data.Dataset):
    """Concatenation of ``PoseDataset``s that passes ``(index, draw)`` items through; they
    must share one ``KeypointSpec`` (``keypoint_spec``)."""

    def __init__(self, datasets: Sequence[PoseDataset]):
        if not datasets:
            raise ValueError("no datasets given")
        self.datasets = list(datasets)
        self.keypoint_spec = self.datasets[0].keypoint_spec
        for d in self.datasets[1:]:
            if d.keypoint_spec != self.keypoint_spec:
                raise ValueError(f"{d.spec.annotations}: its skeleton '{d.keypoint_spec.name}' "
                                 f"differs from '{self.keypoint_spec.name}' of the first "
                                 "dataset; give one with --skeleton")
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    @property
    def sizes(self) -> list[int]:
        return [len(d) for d in self.datasets]

    def locate(self, index: int) -> tuple[int, int]:
        """Global index -> (dataset number, index inside it)."""
        d = bisect.bisect_right(self.offsets, index) - 1
        return d, index - self.offsets[d]

    def __getitem__(self, item):
        index, draw = item if isinstance(item, (tuple, list)) else (item, item)
        d, i = self.locate(int(index))
        return self.datasets[d][(i, draw)]


class MixSampler(torch.utils.data.Sampler):
    """Seeded, distributed-aware sampler over concatenated datasets, yielding
    ``(global index, draw)`` with ``draw`` unique per draw across epochs.

    Each epoch draws ``num_samples`` items (default: all images): the dataset of each draw
    is chosen with probability ``weight / sum(weights)``, and the images inside a dataset
    follow a fresh random permutation (repeated if it runs out), so no image repeats
    before its dataset is exhausted. Without weights (all None) the epoch is one
    permutation of everything. Missing weights are 1 when any is given. Rank ``r`` of
    ``world_size`` takes draws ``r, r + world_size, ...``; ``set_epoch(e, start=k)``
    selects the epoch and skips the first ``k`` of this rank's draws (exact resume).
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float | None] | None = None,
                 num_samples: int | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        self.sizes = [int(s) for s in sizes]
        if not self.sizes or min(self.sizes) <= 0:
            raise ValueError(f"every dataset needs at least one image, sizes {self.sizes}")
        weights = list(weights) if weights is not None else [None] * len(self.sizes)
        if all(w is None for w in weights):
            self.weights = None
        else:
            w = np.array([1.0 if x is None else float(x) for x in weights], np.float64)
            self.weights = w / w.sum()
        total = int(num_samples) if num_samples else sum(self.sizes)
        self.world_size, self.rank = int(world_size), int(rank)
        self.per_rank = total // self.world_size
        self.num_samples = self.per_rank * self.world_size
        self.seed, self.epoch, self.start = int(seed), 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """All ranks' global indices of epoch ``epoch``, ``(num_samples,)`` int64."""
        rng = np.random.default_rng([self.seed, 7919, int(epoch)])
        offsets = np.cumsum([0] + self.sizes)
        if self.weights is None:
            return _permutations(rng, int(offsets[-1]), self.num_samples)
        choice = rng.choice(len(self.sizes), size=self.num_samples, p=self.weights)
        out = np.empty(self.num_samples, np.int64)
        for d, size in enumerate(self.sizes):
            where = np.flatnonzero(choice == d)
            out[where] = offsets[d] + _permutations(rng, size, len(where))
        return out

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self.epoch_indices(self.epoch)
        base = self.epoch * self.num_samples
        for pos in range(self.rank + self.start * self.world_size, self.num_samples,
                         self.world_size):
            yield int(indices[pos]), int(base + pos)

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


def _permutations(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """The first ``count`` entries of back-to-back random permutations of ``range(size)``."""
    reps = -(-count // size)
    if reps == 0:
        return np.zeros(0, np.int64)
    return np.concatenate([rng.permutation(size) for _ in range(reps)])[:count]


def data_keypoint_spec(specs: Sequence[DatasetSpec], skeleton: str = "") -> KeypointSpec:
    """The keypoints a run on ``specs`` trains: ``skeleton`` (a built-in name or a file)
    if given, else the first dataset's ``skeleton``, else its COCO file's category."""
    given = get_spec(skeleton) if skeleton else specs[0].keypoint_spec()
    if given is not None:
        return given
    import json
    path = Path(specs[0].annotations)
    try:
        categories = json.loads(path.read_bytes()).get("categories")
        return spec_for_categories(categories)
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: cannot read its skeleton ({' '.join(str(e).split())})"
                         ) from None


def build_dataset(specs: Sequence[DatasetSpec], params: AugmentParams,
                  target: TargetParams = TargetParams(), norm: InputNorm = InputNorm(),
                  seed: int = 0, keypoint_spec: KeypointSpec | None = None) -> MixedDataset:
    """``MixedDataset`` of one ``PoseDataset`` per spec, all read with ``keypoint_spec``
    (None: the first dataset's; the others' points are mapped onto it by name)."""
    datasets: list[PoseDataset] = []
    for s in specs:
        given = keypoint_spec or s.keypoint_spec() or (
            datasets[0].keypoint_spec if datasets else None)
        datasets.append(PoseDataset(s, params, target, norm, seed=seed, keypoint_spec=given))
    return MixedDataset(datasets)


__all__ = ["DatasetSpec", "LSPET_LICENCE", "MixSampler", "MixedDataset", "PoseDataset",
           "Sample", "build_dataset", "data_keypoint_spec", "load_data_yaml", "load_image",
           "parse_data_arg"]
