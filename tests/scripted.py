"""A scripted network for end-to-end ``infer`` tests: the real ``Predictor`` and decoder
run on maps rendered from known people, so every keypoint written is one openpaf found."""
import cv2
import numpy as np
import torch

from openpaf.data.targets import render_targets
from openpaf.io.render import VideoSink
from openpaf.predict import Predictor
from openpaf.structures import Maps

from conftest import person

W, H = 256, 192          # frame size (H is a multiple of 8: the network runs at scale 1)


def people_at(t: int) -> np.ndarray:
    """``(2, 18, 3)``: two people that walk towards each other, frame ``t``."""
    return np.stack([person(70.37 + 6.13 * t, 100.21, 0.5537),
                     person(190.59 - 5.07 * t, 96.83, 0.4962)])


class ScriptedNet(torch.nn.Module):
    """Renders the maps of ``people_at(n)`` on its n-th call (one call per frame)."""

    stride = 8

    def __init__(self):
        super().__init__()
        self.calls = 0

    def predict(self, x):
        kps = people_at(self.calls)
        self.calls += 1
        f = x.shape[2] / H
        kps[..., :2] = (kps[..., :2] + 0.5) * f - 0.5
        heat, paf = render_targets(kps, (x.shape[2] // 8, x.shape[3] // 8))
        return Maps(torch.from_numpy(heat)[None].repeat(x.shape[0], 1, 1, 1),
                    torch.from_numpy(paf)[None].repeat(x.shape[0], 1, 1, 1))


class Recording:
    """``Predictor(ScriptedNet())`` that keeps every ``Detections`` it returned."""

    def __init__(self, **kwargs):
        self.predictor = Predictor(ScriptedNet(), height=H, device="cpu", **kwargs)
        self.detections = []

    def __call__(self, image):
        det = self.predictor(image)
        self.detections.append(det)
        return det


def frame_image(t: int) -> np.ndarray:
    img = np.full((H, W, 3), 40, np.uint8)
    cv2.putText(img, str(t), (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (200, 200, 200), 2)
    return img


def write_frames(folder, n: int) -> list:
    """``frame_000000.png`` ... into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"frame_{t:06d}.png" for t in range(n)]
    for t, p in enumerate(paths):
        cv2.imwrite(str(p), frame_image(t))
    return paths


def write_video(path, n: int, fps: float = 10.0):
    """An mp4 of ``frame_image(0 .. n - 1)`` (written by openpaf's own ``VideoSink``)."""
    with VideoSink(path, fps) as sink:
        for t in range(n):
            sink.write(frame_image(t))
    return path
