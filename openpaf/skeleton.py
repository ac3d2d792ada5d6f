"""The 18-keypoint OpenPose COCO skeleton, defined once.

Everything that knows a keypoint index, a limb, a PAF channel, a left/right pair, the
COCO-17 mapping or OpenPose's BODY_25 order imports it from here.

Keypoint order (OpenPose COCO): 0 nose, 1 neck, 2 r-shoulder, 3 r-elbow, 4 r-wrist,
5 l-shoulder, 6 l-elbow, 7 l-wrist, 8 r-hip, 9 r-knee, 10 r-ankle, 11 l-hip, 12 l-knee,
13 l-ankle, 14 r-eye, 15 l-eye, 16 r-ear, 17 l-ear. Heatmap channel 18 is background.

The 19 limbs and their PAF channel pairs follow the CMU COCO model exactly
(``POSE_COCO_PAIRS`` / ``POSE_COCO_MAP_IDX`` minus 19), so CMU weights decode unchanged:
limb ``k`` joins ``LIMBS[k] = (a, b)`` and its field is ``(x, y)`` =
``pafs[PAF_CHANNELS[k][0]], pafs[PAF_CHANNELS[k][1]]``, pointing from ``a`` to ``b``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEYPOINTS: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_KEYPOINTS = len(KEYPOINTS)            # 18
NUM_HEATMAPS = NUM_KEYPOINTS + 1          # 18 parts + background
NECK = KEYPOINTS.index("neck")
BACKGROUND = NUM_KEYPOINTS                # heatmap channel index of the background

# (from, to) keypoint indices, in CMU order. The last two (shoulder-ear) are redundant
# connections that CMU adds for robustness.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)
NUM_LIMBS = len(LIMBS)                    # 19
NUM_PAFS = 2 * NUM_LIMBS                  # 38

# (x channel, y channel) of each limb's field inside the 38 PAF maps.
PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5),
    (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19),
    (26, 27),
)

# Limbs drawn by renderers (CMU does not draw the redundant shoulder-ear limbs).
RENDER_LIMBS: tuple[int, ...] = tuple(range(17))

# Left/right swap under horizontal flip: FLIP[i] is the keypoint that i becomes.
_FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
def _flip_map(pairs) -> tuple[int, ...]:
    flip = list(range(NUM_KEYPOINTS))
    for a, b in pairs:
        flip[a], flip[b] = b, a
    return tuple(flip)


FLIP: tuple[int, ...] = _flip_map(_FLIP_PAIRS)
# LIMB_FLIP[k] is the limb that limb k becomes under horizontal flip (same direction).
LIMB_FLIP: tuple[int, ...] = tuple(LIMBS.index((FLIP[a], FLIP[b])) for a, b in LIMBS)

# COCO 17-keypoint order (as in the COCO annotation files).
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
NUM_COCO_KEYPOINTS = len(COCO_KEYPOINTS)  # 17
# COCO_TO_OURS[c] = our index of COCO keypoint c; OURS_TO_COCO[i] = COCO index or -1 (neck).
COCO_TO_OURS: tuple[int, ...] = tuple(KEYPOINTS.index(n) for n in COCO_KEYPOINTS)
OURS_TO_COCO: tuple[int, ...] = tuple(
    COCO_KEYPOINTS.index(n) if n in COCO_KEYPOINTS else -1 for n in KEYPOINTS)
# COCO OKS sigmas, in COCO order (pycocotools' values).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89], dtype=np.float64) / 10.0

_R_SHOULDER, _L_SHOULDER = KEYPOINTS.index("right_shoulder"), KEYPOINTS.index("left_shoulder")

# OpenPose's default body model, BODY_25: our 18 points, a mid-hip (index 8) and six foot
# points after the face. Every one of our points has a BODY_25 index.
BODY25_KEYPOINTS: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "mid_hip",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)
NUM_BODY25_KEYPOINTS = len(BODY25_KEYPOINTS)  # 25
BODY25_MID_HIP = BODY25_KEYPOINTS.index("mid_hip")
# OURS_TO_BODY25[i] = the BODY_25 index of our keypoint i.
OURS_TO_BODY25: tuple[int, ...] = tuple(BODY25_KEYPOINTS.index(n) for n in KEYPOINTS)


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mid-point of keypoints ``a``, ``b`` ``(..., 3)`` where both exist (third value > 0),
    with the smaller of their third values; zeros where either is missing."""
    both = (a[..., 2] > 0) & (b[..., 2] > 0)
    mid = np.concatenate([(a[..., :2] + b[..., :2]) / 2, np.minimum(a[..., 2:], b[..., 2:])],
                         axis=-1)
    return np.where(both[..., None], mid, 0.0)


def _placed(kps: np.ndarray, index, n: int) -> np.ndarray:
    """``(..., K, 3)`` -> float32 zeros ``(..., n, 3)`` with point k at ``index[k]``."""
    kps = np.asarray(kps, dtype=np.float32)
    out = np.zeros(kps.shape[:-2] + (n, 3), dtype=np.float32)
    out[..., list(index), :] = kps
    return out


def coco_to_ours(kps: np.ndarray) -> np.ndarray:
    """COCO keypoints ``(..., 17, 3)`` [x, y, v] -> ours ``(..., 18, 3)``
    (``OPENPOSE_COCO18.from_dataset``).

    The neck is the shoulders' mid-point and exists only when both shoulders are labelled
    (v > 0); its v is the smaller of the two.
    """
    return OPENPOSE_COCO18.from_dataset(kps)


def ours_to_body25(kps: np.ndarray) -> np.ndarray:
    """Ours ``(..., 18, 3)`` [x, y, c] -> BODY_25 ``(..., 25, 3)``.

    The mid-hip is the hips' mid-point when both are found (c > 0), with the smaller c;
    the six foot points are zeros (not detected).
    """
    out = _placed(kps, OURS_TO_BODY25, NUM_BODY25_KEYPOINTS)
    out[..., BODY25_MID_HIP, :] = _midpoint(out[..., BODY25_KEYPOINTS.index("right_hip"), :],
                                            out[..., BODY25_KEYPOINTS.index("left_hip"), :])
    return out


def body25_to_ours(kps: np.ndarray) -> np.ndarray:
    """BODY_25 ``(..., 25, 3)`` -> ours ``(..., 18, 3)`` (mid-hip and feet are dropped)."""
    return np.asarray(kps)[..., list(OURS_TO_BODY25), :]


def ours_to_coco(kps: np.ndarray) -> np.ndarray:
    """Ours ``(..., 18, 3)`` -> COCO ``(..., 17, 3)`` (the neck is dropped;
    ``OPENPOSE_COCO18.to_dataset``)."""
    return OPENPOSE_COCO18.to_dataset(kps)


def limbs_touching(keypoints, spec: "KeypointSpec | None" = None) -> tuple[int, ...]:
    """Indices of the limbs of ``spec`` (None: COCO-18) with an end in ``keypoints``
    (e.g. to mask unknown parts)."""
    ks = set(int(k) for k in keypoints)
    limbs = (spec or OPENPOSE_COCO18).limbs
    return tuple(i for i, (a, b) in enumerate(limbs) if a in ks or b in ks)


def paf_channels_of(limbs, spec: "KeypointSpec | None" = None) -> tuple[int, ...]:
    """The PAF channels (x and y) of the given limb indices of ``spec`` (None: COCO-18)."""
    channels = (spec or OPENPOSE_COCO18).paf_channels
    return tuple(c for k in limbs for c in channels[k])


# ---------------------------------------------------------------------------------------
# KeypointSpec: a skeleton as data. OpenPose COCO-18 above is one instance of it.
# ---------------------------------------------------------------------------------------

DEFAULT_SIGMA = 0.07
"""OKS sigma for a keypoint whose spec gives none: about the mean of COCO's 17 body-point
sigmas (0.072), i.e. a point is placed within ~7 % of the person's size."""


class SkeletonError(ValueError):
    """An invalid keypoint spec; the message is one line per problem."""


@dataclass(frozen=True)
class DerivedPoint:
    """A keypoint the dataset does not label, made as the mid-point of two that it does
    (OpenPose's neck = mid-point of the shoulders). Indices are spec indices."""
    index: int
    between: tuple[int, int]


@dataclass(frozen=True)
class KeypointSpec:
    """What a PAF model predicts: keypoints, limbs with their PAF channels, left/right
    flips, OKS sigmas, drawing, and how a dataset's keypoint order maps onto it.

    Heatmaps are ``(num_keypoints + 1, H, W)`` (background last); PAFs ``(2 * num_limbs, H,
    W)``, limb ``k``'s field ``(x, y)`` in channels ``paf_channels[k]``, pointing from
    ``limbs[k][0]`` to ``limbs[k][1]``. ``dataset_keypoints`` names the dataset's points
    in its own order (COCO-17 for OpenPose COCO-18); each is one of ``keypoints``, and the
    spec's other points must be ``derived``.
    """
    name: str
    keypoints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    paf_channels: tuple[tuple[int, int], ...]
    flip: tuple[int, ...]
    sigmas: tuple[float, ...]
    render_limbs: tuple[int, ...]
    colors: tuple[tuple[int, int, int], ...]       # BGR, one per keypoint
    derived: tuple[DerivedPoint, ...] = ()
    dataset_keypoints: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.dataset_keypoints:
            object.__setattr__(self, "dataset_keypoints", tuple(
                n for i, n in enumerate(self.keypoints)
                if i not in {d.index for d in self.derived}))
        problems = _problems(self)
        if problems:
            raise SkeletonError(f"skeleton '{self.name}': " + "; ".join(problems))

    # sizes ---------------------------------------------------------------------------
    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def num_heatmaps(self) -> int:
        """Keypoints + background."""
        return len(self.keypoints) + 1

    @property
    def num_limbs(self) -> int:
        return len(self.limbs)

    @property
    def num_pafs(self) -> int:
        return 2 * len(self.limbs)

    @property
    def limb_flip(self) -> tuple[int, ...]:
        """``limb_flip[k]``: the limb that limb ``k`` becomes under a horizontal flip."""
        index = {limb: k for k, limb in enumerate(self.limbs)}
        return tuple(index[(self.flip[a], self.flip[b])] for a, b in self.limbs)

    @property
    def limb_colors(self) -> tuple[tuple[int, int, int], ...]:
        """BGR colour of each limb: its end keypoint's, as OpenPose draws."""
        return tuple(self.colors[b] for _, b in self.limbs)

    def spanning_tree(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(tree limbs, redundant limbs): the first limbs, in order, that connect every
        keypoint without a cycle (what a greedy PAF decoder assembles people along), and
        the rest (extra evidence, e.g. CMU's shoulder-ear limbs)."""
        return _spanning_tree(self.num_keypoints, self.limbs)

    # dataset order <-> spec order ----------------------------------------------------
    @property
    def dataset_to_spec(self) -> tuple[int, ...]:
        """``dataset_to_spec[d]``: the spec index of dataset keypoint ``d``."""
        return tuple(self.keypoints.index(n) for n in self.dataset_keypoints)

    def from_dataset(self, kps: np.ndarray) -> np.ndarray:
        """Dataset keypoints ``(..., D, 3)`` [x, y, v] -> spec order ``(..., K, 3)``;
        derived points are mid-points where both ends are labelled (v the smaller)."""
        return _with_derived(self, _placed(kps, self.dataset_to_spec, self.num_keypoints))

    def to_dataset(self, kps: np.ndarray) -> np.ndarray:
        """Spec order ``(..., K, 3)`` -> the dataset's order ``(..., D, 3)`` (derived points
        dropped), e.g. for COCO results."""
        return np.asarray(kps)[..., list(self.dataset_to_spec), :]

    def dataset_sigmas(self) -> np.ndarray:
        """OKS sigmas ``(D,)`` float64 in the dataset's keypoint order."""
        return np.array([self.sigmas[i] for i in self.dataset_to_spec], np.float64)

    # serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data (lists, str, float) for checkpoints and JSON files."""
        return {"name": self.name, "keypoints": list(self.keypoints),
                "limbs": [list(l) for l in self.limbs],
                "paf_channels": [list(c) for c in self.paf_channels],
                "flip": list(self.flip), "sigmas": list(self.sigmas),
                "render_limbs": list(self.render_limbs),
                "colors": [list(c) for c in self.colors],
                "derived": [{"index": d.index, "between": list(d.between)}
                            for d in self.derived],
                "dataset_keypoints": list(self.dataset_keypoints)}

    @classmethod
    def from_dict(cls, d: dict) -> "KeypointSpec":
        """Inverse of ``to_dict``; missing optional fields get their defaults."""
        return make_spec(d.get("name", "custom"), d["keypoints"], d["limbs"],
                         paf_channels=d.get("paf_channels"), flip=d.get("flip"),
                         sigmas=d.get("sigmas"), render_limbs=d.get("render_limbs"),
                         colors=d.get("colors"),
                         derived=[(x["index"], x["between"]) for x in d.get("derived", ())],
                         dataset_keypoints=d.get("dataset_keypoints"))


def _problems(spec: KeypointSpec) -> list[str]:
    """Every violation of a spec, one short sentence each (empty when valid)."""
    k, names, out = len(spec.keypoints), spec.keypoints, []
    if k == 0:
        return ["it has no keypoints"]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        out.append(f"keypoint names repeat: {', '.join(dup)}")
    bad = [f"{a}-{b}" for a, b in spec.limbs if not (0 <= a < k and 0 <= b < k) or a == b]
    if bad:
        out.append(f"limbs {', '.join(bad)} join points that do not exist "
                   f"(there are {k}, numbered 0-{k - 1}) or a point to itself")
        return out
    pairs = [frozenset(l) for l in spec.limbs]
    if len(set(pairs)) != len(pairs):
        out.append("a limb is listed twice")
    channels = sorted(c for pair in spec.paf_channels for c in pair)
    if len(spec.paf_channels) != len(spec.limbs) or channels != list(range(2 * len(spec.limbs))):
        out.append(f"paf_channels must give each of the {len(spec.limbs)} limbs its own "
                   f"(x, y) pair covering channels 0-{2 * len(spec.limbs) - 1}")
    flip = spec.flip
    if len(flip) != k or sorted(flip) != list(range(k)) or any(flip[f] != i
                                                                for i, f in enumerate(flip)):
        out.append("the flip map is not a pairing of the points (flip[flip[i]] must be i)")
    elif any((flip[a], flip[b]) not in set(spec.limbs) for a, b in spec.limbs):
        missing = [f"{names[a]}-{names[b]}" for a, b in spec.limbs
                   if (flip[a], flip[b]) not in set(spec.limbs)]
        out.append(f"limbs {', '.join(missing)} have no mirror limb in the same direction")
    if len(spec.sigmas) != k or any(not (s > 0) for s in spec.sigmas):
        out.append(f"sigmas must be {k} positive numbers")
    if len(spec.colors) != k:
        out.append(f"colors must give one BGR colour per keypoint ({k})")
    if any(not 0 <= r < len(spec.limbs) for r in spec.render_limbs):
        out.append("render_limbs names a limb that does not exist")
    unknown = [n for n in spec.dataset_keypoints if n not in names]
    if unknown:
        out.append(f"dataset keypoints {', '.join(unknown)} are not in the spec")
    covered = set(spec.dataset_keypoints) | {names[d.index] for d in spec.derived
                                             if 0 <= d.index < k}
    if not unknown and set(names) - covered:
        out.append(f"points {', '.join(sorted(set(names) - covered))} are neither in the "
                   "dataset nor derived")
    tree, _ = _spanning_tree(k, spec.limbs)
    if len(tree) != k - 1:
        parts = _components(k, spec.limbs)
        lonely = [", ".join(names[i] for i in c) for c in parts[1:]]
        out.append(f"the limbs leave {' and '.join('{' + c + '}' for c in lonely)} "
                   f"unconnected to {{{', '.join(names[i] for i in parts[0])}}} (a PAF "
                   "decoder assembles people along a tree of limbs)")
    return out


def _union(k: int, limbs) -> tuple[list[int], tuple[int, ...], tuple[int, ...]]:
    """Union-find over points ``0..k-1`` along ``limbs`` in order: (each point's group
    root, the limbs that joined two groups (a spanning tree), the redundant ones)."""
    parent = list(range(k))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    tree, extra = [], []
    for n, (a, b) in enumerate(limbs):
        ra, rb = root(a), root(b)
        (extra if ra == rb else tree).append(n)
        parent[ra] = rb
    return [root(i) for i in range(k)], tuple(tree), tuple(extra)


def _with_derived(spec: KeypointSpec, out: np.ndarray, labelled=()) -> np.ndarray:
    """``out`` ``(..., K, 3)`` with each derived point of ``spec`` that is not among the
    ``labelled`` names set to the mid-point of its two ends (where both exist)."""
    for d in spec.derived:
        if spec.keypoints[d.index] not in labelled:
            out[..., d.index, :] = _midpoint(out[..., d.between[0], :],
                                             out[..., d.between[1], :])
    return out


def _components(k: int, limbs) -> list[list[int]]:
    """Connected groups of points ``0..k-1`` under ``limbs``, largest first."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(_union(k, limbs)[0]):
        groups.setdefault(r, []).append(i)
    return sorted(groups.values(), key=len, reverse=True)


def _spanning_tree(k: int, limbs) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return _union(k, limbs)[1:]


_SIDES = (("left_", "right_"), ("l_", "r_"), ("left", "right"))


def flip_from_names(names) -> tuple[int, ...]:
    """Left/right pairs found by name (``left_x``/``right_x``, ``l_x``/``r_x``, or
    ``left``/``right`` anywhere); unpaired points map to themselves."""
    names, flip = list(names), list(range(len(names)))
    for i, n in enumerate(names):
        for left, right in _SIDES:
            for a, b in ((left, right), (right, left)):
                if a in n and n.replace(a, b, 1) in names and flip[i] == i:
                    flip[i] = names.index(n.replace(a, b, 1))
            if flip[i] != i:
                break
    return tuple(flip)


def default_colors(n: int) -> tuple[tuple[int, int, int], ...]:
    """``n`` BGR colours evenly spaced in hue (OpenPose's rainbow look)."""
    import colorsys
    return tuple(tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(n, 1), 1, 1))[::-1]
                 for i in range(n))


def make_spec(name: str, keypoints, limbs, *, paf_channels=None, flip=None, sigmas=None,
              render_limbs=None, colors=None, derived=(), dataset_keypoints=None
              ) -> KeypointSpec:
    """A validated spec with defaults: PAF channels ``(2k, 2k+1)``, flips from names,
    sigmas ``DEFAULT_SIGMA``, every limb drawn, rainbow colours. Limbs are index pairs
    or name pairs."""
    keypoints = tuple(str(n) for n in keypoints)

    def index(p):
        if isinstance(p, str):
            if p not in keypoints:
                raise SkeletonError(f"skeleton '{name}': limb end '{p}' is not a keypoint")
            return keypoints.index(p)
        return int(p)
    limbs = tuple((index(a), index(b)) for a, b in limbs)
    return KeypointSpec(
        name=name, keypoints=keypoints, limbs=limbs,
        paf_channels=tuple(tuple(int(c) for c in p) for p in paf_channels)
        if paf_channels is not None else tuple((2 * k, 2 * k + 1) for k in range(len(limbs))),
        flip=tuple(int(f) for f in flip) if flip is not None else flip_from_names(keypoints),
        sigmas=tuple(float(s) for s in sigmas) if sigmas is not None
        else (DEFAULT_SIGMA,) * len(keypoints),
        render_limbs=tuple(int(r) for r in render_limbs) if render_limbs is not None
        else tuple(range(len(limbs))),
        colors=tuple(tuple(int(v) for v in c) for c in colors) if colors is not None
        else default_colors(len(keypoints)),
        derived=tuple(DerivedPoint(int(i), (index(a), index(b))) for i, (a, b) in derived),
        dataset_keypoints=tuple(dataset_keypoints) if dataset_keypoints else ())


def spec_from_coco_category(category: dict, *, sigmas=None, flip=None) -> KeypointSpec:
    """A spec from a COCO ``categories[]`` entry: ``keypoints`` (names) and ``skeleton``
    (1-based limb pairs), in the dataset's own order. Sigmas and flips may be given."""
    names = category.get("keypoints") or []
    skeleton = category.get("skeleton") or []
    if not names:
        raise SkeletonError(f"category '{category.get('name', '?')}' lists no keypoints")
    bad = [f"[{a}, {b}]" for a, b in skeleton
           if not (1 <= int(a) <= len(names) and 1 <= int(b) <= len(names))]
    if bad:
        raise SkeletonError(
            f"skeleton '{category.get('name', 'custom')}': limbs {', '.join(bad)} join points "
            f"that do not exist (the category has {len(names)} keypoints, numbered 1-"
            f"{len(names)})")
    return make_spec(category.get("name", "custom"), names,
                     [(int(a) - 1, int(b) - 1) for a, b in skeleton], sigmas=sigmas, flip=flip)


def spec_from_file(path) -> KeypointSpec:
    """A spec from a JSON or YAML file holding ``to_dict``'s fields (``keypoints`` and
    ``limbs`` required; limbs may name their ends)."""
    import json
    from pathlib import Path
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith((".yaml", ".yml")):
        import yaml
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict) or "keypoints" not in data or "limbs" not in data:
        raise SkeletonError(f"{path}: a skeleton file needs 'keypoints' and 'limbs'")
    data.setdefault("name", Path(path).stem)
    return KeypointSpec.from_dict(data)


# OpenPose's COCO render colours, one per keypoint, as RGB (POSE_COCO_COLORS_RENDER).
_OPENPOSE_RGB = (
    (255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
    (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255),
    (0, 85, 255), (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255),
)

OPENPOSE_COCO18 = KeypointSpec(
    name="openpose_coco18", keypoints=KEYPOINTS, limbs=LIMBS, paf_channels=PAF_CHANNELS,
    flip=FLIP,
    sigmas=tuple(float(COCO_SIGMAS[OURS_TO_COCO[i]]) if OURS_TO_COCO[i] >= 0
                 else float(COCO_SIGMAS[[5, 6]].mean()) for i in range(NUM_KEYPOINTS)),
    render_limbs=RENDER_LIMBS,
    colors=tuple((b, g, r) for r, g, b in _OPENPOSE_RGB),
    derived=(DerivedPoint(NECK, (_R_SHOULDER, _L_SHOULDER)),),
    dataset_keypoints=COCO_KEYPOINTS)
"""OpenPose's COCO-18 (CMU's channel layout), read from COCO-17 files; the default."""

BUILTIN_SPECS: dict[str, KeypointSpec] = {OPENPOSE_COCO18.name: OPENPOSE_COCO18}


def get_spec(name_or_path) -> KeypointSpec:
    """A built-in spec by name (``openpose_coco18``) or one read from a JSON/YAML file."""
    if str(name_or_path) in BUILTIN_SPECS:
        return BUILTIN_SPECS[str(name_or_path)]
    from pathlib import Path
    if Path(name_or_path).is_file():
        return spec_from_file(name_or_path)
    raise SkeletonError(f"unknown skeleton '{name_or_path}': give a file or one of "
                        f"{', '.join(BUILTIN_SPECS)}")


def spec_from_stored(d: dict | None) -> KeypointSpec:
    """The spec a checkpoint/ONNX file records (``to_dict``'s fields). Files written
    before specs existed hold only ``keypoints``/``limbs``/``paf_channels``: they mean
    COCO-18 and must equal it; None means COCO-18 too."""
    if not d:
        return OPENPOSE_COCO18
    old = {k: [list(x) if isinstance(x, (list, tuple)) else x for x in d.get(k, [])]
           for k in ("keypoints", "limbs", "paf_channels")}
    if "flip" not in d:
        ours = OPENPOSE_COCO18.to_dict()
        for key, value in old.items():
            if value != ours[key]:
                raise SkeletonError(f"{key!r} differs from COCO-18's: the file was made "
                                    "for a different keypoint/limb layout and records no spec")
        return OPENPOSE_COCO18
    spec = KeypointSpec.from_dict(d)
    return OPENPOSE_COCO18 if spec == OPENPOSE_COCO18 else spec


def keypoint_category(categories) -> dict | None:
    """The COCO ``categories[]`` entry that lists keypoints (None if none does); several
    with different keypoint lists are refused."""
    cats = [c for c in categories or [] if isinstance(c, dict) and c.get("keypoints")]
    if len({tuple(c["keypoints"]) for c in cats}) > 1:
        raise SkeletonError("the COCO file has categories with different keypoint lists; "
                            "openpaf reads one skeleton per file")
    return cats[0] if cats else None


def spec_for_categories(categories, given: KeypointSpec | None = None) -> KeypointSpec:
    """The spec of a COCO file's ``categories``: ``given`` if any (its points must name
    the file's, see ``dataset_index``), else a built-in spec whose dataset order is the
    file's keypoints (COCO-17 -> ``OPENPOSE_COCO18``), else one made from the category
    (names + 1-based ``skeleton``). A file whose categories list no keypoints is COCO-17."""
    cat = keypoint_category(categories)
    if given is not None:
        if cat is not None:
            dataset_index(given, cat["keypoints"])
        return given
    if cat is None:
        return OPENPOSE_COCO18
    names = tuple(cat["keypoints"])
    for spec in BUILTIN_SPECS.values():
        if spec.dataset_keypoints == names:
            return spec
    return spec_from_coco_category(cat)


def dataset_index(spec: KeypointSpec, names) -> tuple[int, ...]:
    """Spec index of each dataset keypoint ``names`` (mapping by name), -1 for a point the
    spec lacks (dropped); one line when no name is shared."""
    index = tuple(spec.keypoints.index(n) if n in spec.keypoints else -1 for n in names)
    if names and all(i < 0 for i in index):
        raise SkeletonError(f"the data's keypoints ({', '.join(list(names)[:4])}, ...) share "
                            f"no name with skeleton '{spec.name}' ({', '.join(spec.keypoints)})")
    return index


def from_named(spec: KeypointSpec, kps: np.ndarray, names) -> np.ndarray:
    """Dataset keypoints ``(..., D, 3)`` named ``names`` -> spec order ``(..., K, 3)``
    (points the data lacks are zeros, points the spec lacks are dropped; derived points are
    made where both ends exist)."""
    if tuple(names) == spec.dataset_keypoints:
        return spec.from_dataset(kps)
    index = np.array(dataset_index(spec, names))
    out = _placed(np.asarray(kps)[..., index >= 0, :], index[index >= 0], spec.num_keypoints)
    return _with_derived(spec, out, labelled=names)


def unlabelled_points(spec: KeypointSpec, names) -> tuple[int, ...]:
    """Spec indices a dataset with keypoints ``names`` can never label: not among them and
    not derived from two that are."""
    have = set(dataset_index(spec, names)) - {-1}
    derived = {d.index for d in spec.derived if set(d.between) <= have}
    return tuple(i for i in range(spec.num_keypoints) if i not in have | derived)
