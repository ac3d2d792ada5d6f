"""LSP / LSPET joints (``joints.mat``) as a COCO keypoint file whose category carries the
``lsp14`` skeleton (``configs/skeletons/lsp14.yaml``): the worked example of training on
one's own keypoints. Research use only (LSPET's licence): never a shipped default.

``joints.mat`` holds ``joints`` of shape ``(14, 3, N)`` (LSPET) or ``(3, 14, N)`` (LSP):
x, y (image pixels, pixel centres at integers as in COCO) and a flag, 1 = labelled; a
point with flag 0 is written as ``0, 0, 0`` (unlabelled). Each image holds one person.
Boxes: the labelled joints' extent grown by ``BOX_MARGIN`` of its size on every side and
clipped to the image; ``area`` (the OKS scale) is the unpadded extent's area.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..skeleton import KeypointSpec
from .coco import LSPET_LICENCE as LSP_LICENCE

BOX_MARGIN = 0.1


def read_lsp_joints(path: str | os.PathLike) -> np.ndarray:
    """``(N, 14, 3)`` float64 ``[x, y, labelled]`` from an LSP/LSPET ``joints.mat``."""
    from scipy.io import loadmat
    joints = np.asarray(loadmat(str(path))["joints"], np.float64)
    if joints.shape[:2] == (3, 14):
        joints = joints.transpose(1, 0, 2)
    if joints.ndim != 3 or joints.shape[:2] != (14, 3):
        raise ValueError(f"{path}: 'joints' must be (14, 3, N) or (3, 14, N), got "
                         f"{joints.shape}")
    return joints.transpose(2, 0, 1)


def lsp_category(spec: KeypointSpec, category_id: int = 1) -> dict:
    """The COCO category of ``spec``: its keypoint names and 1-based limbs."""
    return {"id": category_id, "name": spec.name, "supercategory": "person",
            "keypoints": list(spec.keypoints),
            "skeleton": [[a + 1, b + 1] for a, b in spec.limbs]}


def lsp_to_coco(joints: np.ndarray, sizes: list[tuple[int, int]], file_names: list[str],
                spec: KeypointSpec, indices) -> dict:
    """A COCO keypoint dict of the images ``indices`` (0-based into ``joints``, ids are
    index + 1). ``joints``: ``read_lsp_joints``; ``sizes``: ``(width, height)`` per image;
    the spec's keypoints must be LSP's 14 in LSP's order (``lsp14.yaml``)."""
    if spec.num_keypoints != joints.shape[1]:
        raise ValueError(f"skeleton '{spec.name}' has {spec.num_keypoints} keypoints, the "
                         f"joints {joints.shape[1]}")
    images, anns = [], []
    for i in indices:
        (w, h), kps = sizes[i], joints[i]
        on = (kps[:, 2] > 0) & (kps[:, 0] >= 0) & (kps[:, 1] >= 0)
        images.append({"id": i + 1, "file_name": file_names[i], "width": int(w),
                       "height": int(h)})
        if not on.any():
            continue
        (x0, y0), (x1, y1) = kps[on, :2].min(0), kps[on, :2].max(0)
        mx, my = BOX_MARGIN * (x1 - x0), BOX_MARGIN * (y1 - y0)
        bx0, by0 = max(x0 - mx, 0.0), max(y0 - my, 0.0)
        bx1, by1 = min(x1 + mx, w - 1.0), min(y1 + my, h - 1.0)
        values = np.where(on[:, None], np.c_[kps[:, :2], np.full(len(kps), 2.0)], 0.0)
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "keypoints": [round(float(v), 2) for v in values.ravel()],
                     "num_keypoints": int(on.sum()),
                     "bbox": [round(float(v), 2) for v in (bx0, by0, bx1 - bx0, by1 - by0)],
                     "area": round(float((x1 - x0) * (y1 - y0)), 2)})
    return {"info": {"description": f"LSP joints as COCO keypoints ({spec.name})",
                     "licence": LSP_LICENCE},
            "images": images, "annotations": anns, "categories": [lsp_category(spec)]}


def image_sizes(images_dir: str | os.PathLike, file_names: list[str]) -> list[tuple[int, int]]:
    """``(width, height)`` of each image file (read from disk)."""
    import cv2
    sizes = []
    for name in file_names:
        image = cv2.imread(str(Path(images_dir) / name))
        if image is None:
            raise FileNotFoundError(f"cannot read image {Path(images_dir) / name}")
        sizes.append((image.shape[1], image.shape[0]))
    return sizes


__all__ = ["LSP_LICENCE", "image_sizes", "lsp_category", "lsp_to_coco", "read_lsp_joints"]
