"""Training-sample previews (``openpaf train --show-samples``): an augmented crop with
its keypoints, heatmap targets and PAF targets side by side."""
from __future__ import annotations

import cv2
import numpy as np

from ..skeleton import OPENPOSE_COCO18, KeypointSpec


def _side_colour(name: str) -> tuple[int, int, int]:
    """BGR: right side red, left side blue, centre line green."""
    if name.startswith("right"):
        return (40, 40, 255)
    if name.startswith("left"):
        return (255, 120, 30)
    return (40, 220, 40)


def _colours(spec: KeypointSpec) -> tuple[np.ndarray, list]:
    """(keypoint colours ``(K, 3)`` float32, limb colours) by side, from ``spec``'s names."""
    names = spec.keypoints
    limbs = [_side_colour(names[b]) if names[b].startswith(("left", "right"))
             else _side_colour(names[a]) for a, b in spec.limbs]
    return np.array([_side_colour(n) for n in names], np.float32), limbs


def draw_sample(sample, targets: dict, stride: int = 8, title: str = "",
                zoom: int | None = None, spec: KeypointSpec = OPENPOSE_COCO18) -> np.ndarray:
    """Three panels side by side: keypoints | heatmaps | PAFs, uint8 BGR.

    Right-side keypoints/limbs are red, left blue, centre green. Masked (ignored) regions
    are tinted magenta and hatched. The PAF panel shows each limb's field as arrows (one
    per map cell) over the field angle as hue. ``zoom``: integer upscaling (default: up
    to >= 600 px per panel). A title bar on top. ``spec``: the sample's keypoints.
    """
    kp_colours, limb_colours = _colours(spec)
    s0 = sample.image.shape[0]
    z = zoom or max(1, -(-600 // s0))
    s = s0 * z
    img = cv2.resize(sample.image, (s, s), interpolation=cv2.INTER_LINEAR)
    masked = cv2.resize(sample.mask, (s, s), interpolation=cv2.INTER_NEAREST) < 0.5
    base = img.copy()
    base[masked] = (0.5 * base[masked] + 0.5 * np.array([255, 0, 255])).astype(np.uint8)
    hatch = ((np.add.outer(np.arange(s), np.arange(s)) // (3 * z)) % 4 == 0) & masked
    base[hatch] = (255, 0, 255)

    def px(x):  # input pixel (centre convention) -> panel pixel
        return int(round((x + 0.5) * z - 0.5))

    p1 = base.copy()
    for person in sample.keypoints:
        for k, (x, y, v) in enumerate(person):
            if v > 0:
                cv2.circle(p1, (px(x), px(y)), 3 * z, tuple(int(c) for c in kp_colours[k]),
                           -1, cv2.LINE_AA)
    heat = targets["heatmaps"][:spec.num_keypoints]                   # (K, h, w)
    colour = np.einsum("khw,kc->hwc", heat, kp_colours)
    colour = cv2.resize(np.clip(colour, 0, 255), (s, s), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(heat.max(0), (s, s), interpolation=cv2.INTER_LINEAR)[..., None]
    p2 = (base * (1 - 0.8 * alpha) + colour * 0.8).clip(0, 255).astype(np.uint8)
    pafs = targets["pafs"]
    vx = np.stack([pafs[cx] for cx, _ in spec.paf_channels])          # (L, h, w)
    vy = np.stack([pafs[cy] for _, cy in spec.paf_channels])
    mag = np.hypot(vx, vy)
    k_max = mag.argmax(0)[None]
    ax, ay = np.take_along_axis(vx, k_max, 0)[0], np.take_along_axis(vy, k_max, 0)[0]
    m = np.take_along_axis(mag, k_max, 0)[0]
    hsv = np.stack([(np.degrees(np.arctan2(ay, ax)) % 360) / 2, np.full_like(m, 255),
                    np.clip(m, 0, 1) * 160], -1).astype(np.uint8)
    angle = cv2.resize(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), (s, s),
                       interpolation=cv2.INTER_NEAREST)
    p3 = np.clip(base.astype(np.int16) // 2 + angle, 0, 255).astype(np.uint8)
    cell = stride * z
    for k in range(spec.num_limbs):
        for y, x in zip(*np.nonzero(mag[k] > 0.3)):
            cx, cy = px(x * stride + (stride - 1) / 2), px(y * stride + (stride - 1) / 2)
            dx, dy = vx[k, y, x] * cell * 0.42, vy[k, y, x] * cell * 0.42
            cv2.arrowedLine(p3, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)),
                            limb_colours[k], max(1, z // 2), cv2.LINE_AA, tipLength=0.45)
    out = np.hstack([p1, p2, p3])
    bar = np.zeros((28, out.shape[1], 3), np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.vstack([bar, out])
