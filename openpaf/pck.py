"""PCK (percentage of correct keypoints), the LSP benchmark's measure, for any skeleton.

A ground-truth joint counts as found when the prediction's joint of the same *name* lies
within ``alpha`` x the person's torso size of it (PCK@0.2: ``alpha = 0.2``). The torso
size is the distance from the right shoulder to the left hip (the left shoulder to the
right hip when those are not both labelled); people with neither pair are not scored.
Each ground-truth person is matched to the predicted person with the most correct joints
(each prediction used once, people with more labelled joints first). Keypoints are
matched by name, so a network of one skeleton (e.g. OpenPose COCO-18) is scored on the
joints it shares with a file of another (e.g. LSP's 14).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.records import file_keypoints, load_ground_truth
from .structures import Detections

TORSO = (("right_shoulder", "left_hip"), ("left_shoulder", "right_hip"))


def torso_sizes(gt: np.ndarray, names) -> np.ndarray:
    """``(N,)`` torso size in pixels of each ground-truth person ``(N, D, 3)``; NaN where
    neither diagonal is labelled."""
    names = list(names)
    out = np.full(len(gt), np.nan)
    for a, b in reversed(TORSO):
        if a in names and b in names:
            pa, pb = gt[:, names.index(a)], gt[:, names.index(b)]
            ok = (pa[:, 2] > 0) & (pb[:, 2] > 0)
            out[ok] = np.hypot(*(pa[ok, :2] - pb[ok, :2]).T)
    return out


def correct_joints(gt: np.ndarray, pred: np.ndarray, torso: np.ndarray,
                   alpha: float = 0.2) -> np.ndarray:
    """``(N, M, J)`` bool: joint j of ground truth n is found by prediction m (both
    ``(., J, 3)``, same joint order)."""
    d = np.hypot(*(gt[:, None, :, :2] - pred[None, :, :, :2]).transpose(3, 0, 1, 2))
    found = (gt[:, None, :, 2] > 0) & (pred[None, :, :, 2] > 0)
    return found & (d <= alpha * torso[:, None, None])


def match_people(correct: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """``(N, J)`` bool correct joints of each ground-truth person with its prediction (the
    one with the most correct joints, each used once; ``labelled (N, J)`` orders them)."""
    out = np.zeros(correct.shape[::2], bool)
    used: set[int] = set()
    for n in np.argsort(-labelled.sum(1), kind="stable"):
        counts = correct[n].sum(1)
        for m in np.argsort(-counts, kind="stable"):
            if m not in used and counts[m] > 0:
                used.add(int(m))
                out[n] = correct[n, m]
                break
    return out


def pck_image(gt: np.ndarray, names, detections: Detections, joints,
              alpha: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``(correct (N, J), scored (N, J))`` for one image: ground truth ``(N, D, 3)`` with
    keypoint ``names`` (the file's), predictions of ``detections.spec``, ``joints`` names."""
    names, spec = list(names), detections.spec
    torso = torso_sizes(gt, names)
    keep = np.isfinite(torso)
    g = gt[keep][:, [names.index(j) for j in joints]]
    p = detections.keypoints[:, [spec.keypoints.index(j) for j in joints]]
    labelled = g[..., 2] > 0
    correct = match_people(correct_joints(g, p, torso[keep], alpha), labelled) \
        if len(p) else np.zeros_like(labelled)
    return correct, labelled


def evaluate_pck(ann_file: str | Path, images_dir: str | Path, predictor, *,
                 joints=None, alpha: float = 0.2, max_images: int | None = None,
                 progress: bool = True) -> dict:
    """PCK@``alpha`` of ``predictor`` on a COCO keypoint file: per joint and the mean over
    ``joints`` (default: every keypoint the file and the predictor's spec share)."""
    from tqdm import tqdm

    from .io.sources import load_image
    coco = load_ground_truth(ann_file, check_annotations=True)
    names = file_keypoints(coco)
    joints = list(joints or [n for n in names if n in predictor.spec.keypoints])
    missing = [j for j in joints if j not in names or j not in predictor.spec.keypoints]
    if missing:
        raise ValueError(f"joints {', '.join(missing)} are not in both the file and the model")
    hits, total = np.zeros(len(joints)), np.zeros(len(joints))
    ids = sorted(coco.getImgIds())[:max_images]
    for image_id in tqdm(ids, desc="pck", unit="img", disable=not progress):
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))
                if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
        if not anns:
            continue
        gt = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
        det = predictor(load_image(Path(images_dir) / coco.imgs[image_id]["file_name"]))
        correct, scored = pck_image(gt, names, det, joints, alpha)
        hits += correct.sum(0)
        total += scored.sum(0)
    per_joint = {j: round(float(h / t), 4) if t else None
                 for j, h, t in zip(joints, hits, total)}
    return {"PCK": round(float(hits.sum() / max(total.sum(), 1)), 4), "alpha": alpha,
            "joints": per_joint, "images": len(ids), "joints_scored": int(total.sum()),
            "annotations": str(ann_file), "skeleton": predictor.spec.name}


__all__ = ["TORSO", "correct_joints", "evaluate_pck", "match_people", "pck_image",
           "torso_sizes"]
