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
    """COCO keypoints ``(..., 17, 3)`` [x, y, v] -> ours ``(..., 18, 3)``.

    The neck is the shoulders' mid-point and exists only when both shoulders are labelled
    (v > 0); its v is the smaller of the two.
    """
    out = _placed(kps, COCO_TO_OURS, NUM_KEYPOINTS)
    out[..., NECK, :] = _midpoint(out[..., _R_SHOULDER, :], out[..., _L_SHOULDER, :])
    return out


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
    """Ours ``(..., 18, 3)`` -> COCO ``(..., 17, 3)`` (the neck is dropped)."""
    kps = np.asarray(kps)
    return kps[..., list(COCO_TO_OURS), :]


def limbs_touching(keypoints) -> tuple[int, ...]:
    """Indices of the limbs with an end in ``keypoints`` (e.g. to mask unknown parts)."""
    ks = set(int(k) for k in keypoints)
    return tuple(i for i, (a, b) in enumerate(LIMBS) if a in ks or b in ks)


def paf_channels_of(limbs) -> tuple[int, ...]:
    """The PAF channels (x and y) of the given limb indices."""
    return tuple(c for k in limbs for c in PAF_CHANNELS[k])
