"""COCO keypoint evaluation (OKS AP via pycocotools), with an oracle mode for the decoder.

``evaluate(ann_file, ...)`` decodes every image of a COCO keypoint file, either from a
``Predictor`` (network maps) or from oracle maps rendered from the ground truth by the
training target code (``oracle=True``: measures the decoder alone), and returns a report
dict (AP table, decode timings, failure classes).

The keypoints are a ``KeypointSpec``'s: the predictor's (the weights') in model mode, which
must be the file's (its category's keypoints in the spec's dataset order; a file of
another skeleton is refused in one line), or the file's own in oracle mode. OKS uses the
spec's sigmas; results are written in the file's keypoint order (``spec.to_dataset``).
"""
from __future__ import annotations

import contextlib
import io
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data.records import file_keypoints, file_spec, gt_keypoints, load_ground_truth
from .data.targets import TargetParams, render_targets
from .decode import DecodeParams, decode, get_params
from .io.orientation import annotation_frame, orientation_matrix, read_orientation
from .io.writers import coco_results
from .preprocess import geometry
from .skeleton import OPENPOSE_COCO18, KeypointSpec, SkeletonError, keypoint_category

_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


# Input height at which oracle maps are rendered (OpenPose's -1x368), unless told.
ORACLE_HEIGHT = 368


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def oracle_maps(keypoints: np.ndarray, geo, target: TargetParams = TargetParams(),
                spec: KeypointSpec = OPENPOSE_COCO18):
    """Ground-truth ``(heatmaps, pafs)`` at the network's map grid for image-pixel keypoints
    ``(N, K, 3)`` of ``spec``."""
    kps = np.array(keypoints, dtype=np.float32, copy=True)
    kps[..., :2] = geo.image_to_input(kps[..., :2])
    return render_targets(kps, geo.map_size, target, spec)


def check_file_skeleton(coco, spec: KeypointSpec, ann_file="") -> None:
    """One-line ``ValueError`` unless the COCO file's keypoints are ``spec``'s dataset
    keypoints, in that order (what the results are written in)."""
    names = file_keypoints(coco)
    if names != spec.dataset_keypoints:
        raise ValueError(f"{ann_file}: the file's skeleton ({len(names)} keypoints: "
                         f"{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}) is not "
                         f"the model's '{spec.name}' ({len(spec.dataset_keypoints)}: "
                         f"{', '.join(spec.dataset_keypoints[:4])}, ...); evaluate it with "
                         "weights trained on that skeleton")


def coco_stats(coco, results: list[dict], image_ids: list[int] | None = None,
               spec: KeypointSpec = OPENPOSE_COCO18) -> tuple[dict, object | None]:
    """OKS AP/AR table of ``results`` against ``coco`` over ``image_ids`` (default: every
    image of the file), with ``spec``'s sigmas; all zeros when nothing was found."""
    from pycocotools.cocoeval import COCOeval
    if not results:
        return {k: 0.0 for k in _STAT_NAMES}, None
    dt = _quiet(coco.loadRes, results)
    ev = COCOeval(coco, dt, "keypoints")
    ev.params.kpt_oks_sigmas = spec.dataset_sigmas()
    ev.params.imgIds = sorted(image_ids if image_ids is not None else coco.getImgIds())
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    return {k: float(v) for k, v in zip(_STAT_NAMES, ev.stats)}, ev


def _miss_class(ann: dict, spec: KeypointSpec) -> str:
    kps = np.array(ann["keypoints"], np.float32).reshape(-1, 3)
    if (kps[:, 2] > 0).sum() < 4:
        return "few_keypoints"
    v = spec.from_dataset(kps)[:, 2] > 0
    if any(v[d.between[0]] != v[d.between[1]] for d in spec.derived):
        return "no_neck"
    return "other"


def failure_classes(coco, ev, image_ids: list[int] | None = None,
                    spec: KeypointSpec = OPENPOSE_COCO18) -> dict:
    """Why ground-truth people were missed (no detection at OKS >= 0.5).

    ``few_keypoints``: fewer than 4 labelled keypoints; ``no_neck``: exactly one end of a
    derived point labelled (COCO-18: one shoulder, no neck, so the tree is split);
    ``other``. ``imprecise`` counts people found at OKS 0.5 but not at 0.75. With ``ev``
    None (nothing detected) every evaluated person (not crowd, with keypoints) of
    ``image_ids`` (default: all) counts as missed.
    """
    counts = {"matched": 0, "missed": 0, "few_keypoints": 0, "no_neck": 0, "other": 0,
              "imprecise": 0}
    if ev is None:
        ids = coco.getImgIds() if image_ids is None else image_ids
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=ids)):
            if not ann.get("iscrowd", 0) and ann.get("num_keypoints", 0) > 0:
                counts["missed"] += 1
                counts[_miss_class(ann, spec)] += 1
        return counts
    all_area = ev.params.areaRng[ev.params.areaRngLbl.index("all")]
    t50, t75 = 0, list(np.round(ev.params.iouThrs, 2)).index(0.75)
    for e in ev.evalImgs:
        if e is None or e["aRng"] != all_area:
            continue
        for j, gid in enumerate(e["gtIds"]):
            if e["gtIgnore"][j]:
                continue
            if e["gtMatches"][t50, j] > 0:
                counts["matched"] += 1
                counts["imprecise"] += int(e["gtMatches"][t75, j] == 0)
                continue
            counts["missed"] += 1
            counts[_miss_class(coco.loadAnns(gid)[0], spec)] += 1
    return counts


def _ms_summary(values: list[float]) -> dict:
    if not values:
        return {"median": 0.0, "p90": 0.0, "max": 0.0}
    v = np.asarray(values)
    return {"median": round(float(np.median(v)), 3), "p90": round(float(np.percentile(v, 90)), 3),
            "max": round(float(v.max()), 3)}


def evaluate(ann_file: str | Path, images_dir: str | Path | None = None, *, predictor=None,
             oracle: bool = False, decode_params: DecodeParams | str | None = None,
             height: int = ORACLE_HEIGHT, target: TargetParams = TargetParams(),
             max_images: int | None = None, oracle_noise: float = 0.0, seed: int = 0,
             progress: bool = True, strict: bool = False) -> dict:
    """Evaluate on a COCO keypoint file; returns the report dict (see module doc).

    Oracle mode needs no images or network; model mode needs ``images_dir`` and a
    ``Predictor``. ``oracle_noise`` adds seeded Gaussian noise of that std to the oracle
    maps (a crude stand-in for an imperfect network, to test decoder robustness).
    ``decode_ms`` covers everything from stride-8 maps to people (map resampling across
    scales included, network excluded).

    Unreadable images (missing files are found before anything is predicted) are left out
    of the score, their ground truth included, and listed in ``unreadable_images``;
    ``strict=True`` refuses them instead. ``ValueError`` (one line) also for: no image
    readable, no image or no annotated person to score, an unusable annotation,
    ``max_images < 1``, a negative ``oracle_noise``.
    """
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    if not 0 <= oracle_noise < float("inf"):
        raise ValueError(f"oracle_noise must be a finite number >= 0, got {oracle_noise}")
    coco = load_ground_truth(ann_file, check_annotations=True)
    try:
        spec = file_spec(coco) if oracle or predictor is None else \
            getattr(predictor, "spec", OPENPOSE_COCO18)  # (a duck-typed predictor: COCO-18)
        category = (keypoint_category(coco.dataset.get("categories")) or {}).get("id", 1)
    except SkeletonError as e:
        raise ValueError(f"{ann_file}: {e}") from None
    check_file_skeleton(coco, spec, ann_file)
    image_ids = sorted(coco.getImgIds())[:max_images]
    if not image_ids:
        raise ValueError(f"{ann_file}: no images to evaluate")
    failed: dict[int, str] = {}
    if not oracle:
        if predictor is None or images_dir is None:
            raise ValueError("model evaluation needs images_dir and a predictor "
                             "(or oracle=True)")
        from .io.sources import ImageLoadError, load_image
        failed = {i: f"{Path(images_dir) / coco.imgs[i]['file_name']}: no such file"
                  for i in image_ids
                  if not (Path(images_dir) / coco.imgs[i]["file_name"]).is_file()}
        _unreadable(failed, len(image_ids), images_dir, strict)
    params = (predictor.params if predictor is not None and decode_params is None
              else decode_params if isinstance(decode_params, DecodeParams)
              else get_params(decode_params))
    results, decode_ms, network_ms = [], [], []
    rotated, mismatched = 0, {}
    rng = np.random.default_rng(seed)
    for image_id in tqdm([i for i in image_ids if i not in failed], desc="eval", unit="img",
                         disable=not progress):
        info = coco.loadImgs(image_id)[0]
        if oracle:
            geo = geometry((info["width"], info["height"]), height)
            heat, paf = oracle_maps(gt_keypoints(coco, image_id, spec), geo, target, spec)
            if oracle_noise > 0:
                heat = heat + rng.normal(0, oracle_noise, heat.shape).astype(np.float32)
                paf = paf + rng.normal(0, oracle_noise, paf.shape).astype(np.float32)
            t0 = time.perf_counter()
            det = decode(heat, paf, params, scale=geo.map_scale, image_size=geo.image_size,
                         spec=spec)
            decode_ms.append((time.perf_counter() - t0) * 1e3)
        else:
            path = Path(images_dir) / info["file_name"]
            try:
                image = load_image(path)
            except ImageLoadError as exc:
                failed[image_id] = f"{path}: {exc}"
                _unreadable(failed, len(image_ids), images_dir, strict)
                continue
            back, mismatch = _annotation_frame(path, image, info)
            if mismatch:
                if strict:
                    raise ValueError(f"{mismatch}: size differs from the annotation "
                                     "(--strict); no score recorded")
                mismatched[image_id] = mismatch
                continue
            rotated += back is not None
            det = predictor(image)
            t = predictor.last_timings
            decode_ms.append(t["resize"] + t["peaks"] + t["limbs"] + t["assembly"])
            network_ms.append(t["network"])
            results.extend(_mapped(coco_results(image_id, det, category), back))
            continue
        results.extend(coco_results(image_id, det, category))
    _unreadable(failed, len(image_ids), images_dir, strict, done=True)
    scored = [i for i in image_ids if i not in failed and i not in mismatched]
    people = sum(len(gt_keypoints(coco, i, spec)) for i in scored)
    if not people:
        raise ValueError(f"{ann_file}: no annotated people in the {len(scored)} images "
                         "to score")
    stats, ev = coco_stats(coco, results, scored, spec)
    report = {k: round(v, 4) for k, v in stats.items()}
    report.update(
        images=len(scored), people=people, detections=len(results),
        decode_ms=_ms_summary(decode_ms), failures=failure_classes(coco, ev, scored, spec),
        mode=("oracle" if oracle else "model"), annotations=str(ann_file), skeleton=spec.name,
        settings={"height": height if oracle else predictor.height,
                  "scales": [1.0] if oracle else list(predictor.scales),
                  "flip": False if oracle else predictor.flip,
                  "precision": "fp32" if oracle else predictor.precision,
                  "decode": asdict(params)},
    )
    if oracle:
        report["settings"]["oracle_noise"] = oracle_noise
    else:
        report["network_ms"] = _ms_summary(network_ms)
        report["unreadable_images"] = list(failed.values())
        report["size_mismatch"] = list(mismatched.values())
        report["exif_rotated"] = rotated
    return report


def _annotation_frame(path: Path, image: np.ndarray, info: dict):
    """``(matrix, mismatch)``: the 3x3 affine taking upright detections to the
    annotation's frame (None: the same frame), and a one-line reason when the decoded
    size is neither the annotation's nor, under the EXIF rule (``io.orientation``), its
    transpose."""
    size, annotated = (image.shape[1], image.shape[0]), (info["width"], info["height"])
    if size == annotated:
        return None, None
    orientation = read_orientation(path)
    if size == annotated[::-1] and annotation_frame(size, annotated, orientation) == "stored":
        return np.linalg.inv(orientation_matrix(orientation, annotated)), None
    return None, (f"{path}: decoded {size[0]}x{size[1]}, the annotation says "
                  f"{annotated[0]}x{annotated[1]}")


def _mapped(results: list[dict], matrix) -> list[dict]:
    """COCO results with their found keypoints mapped by the 3x3 affine ``matrix``."""
    if matrix is None:
        return results
    for r in results:
        k = np.array(r["keypoints"], np.float64).reshape(-1, 3)
        found = k[:, 2] > 0
        k[found, :2] = k[found, :2] @ matrix[:2, :2].T + matrix[:2, 2]
        r["keypoints"] = [round(float(v), 3) for v in k.reshape(-1)]
    return results


def _unreadable(failed: dict, total: int, images_dir, strict: bool,
                done: bool = False) -> None:
    """Raise ``ValueError`` when unreadable images are refused (``strict``) or, once
    ``done``, when none was readable."""
    if failed and (strict or (done and len(failed) == total)):
        first = next(iter(failed.values()))
        raise ValueError(f"{len(failed)} of {total} images unreadable in {images_dir} "
                         f"(first: {first}); no score recorded")


def format_report(report: dict) -> str:
    """A readable table of an ``evaluate`` report."""
    lines = [f"{report['mode']} evaluation: {report['images']} images, "
             f"{report['people']} people, {report['detections']} detections"]
    lines.append("  ".join(f"{k} {report[k]:.3f}" for k in _STAT_NAMES[:5]))
    lines.append("  ".join(f"{k} {report[k]:.3f}" for k in _STAT_NAMES[5:]))
    d = report["decode_ms"]
    lines.append(f"decode ms: median {d['median']:.2f}  p90 {d['p90']:.2f}  max {d['max']:.2f}")
    if "network_ms" in report:
        n = report["network_ms"]
        lines.append(f"network ms: median {n['median']:.1f}  p90 {n['p90']:.1f}")
    f = report["failures"]
    lines.append(f"missed people: {f['missed']} (fewer than 4 keypoints {f['few_keypoints']}, "
                 f"no neck {f['no_neck']}, other {f['other']}); found but imprecise "
                 f"(OKS < 0.75): {f['imprecise']}")
    if report.get("exif_rotated"):
        lines.append(f"scored in the annotations' frame: {report['exif_rotated']} photos "
                     "annotated on their stored pixels (EXIF orientation)")
    odd = report.get("size_mismatch")
    if odd:
        lines.append(f"size differs from the annotation: {len(odd)} images, left out of the "
                     f"score with their people (first: {odd[0]})")
    bad = report.get("unreadable_images")
    if bad:
        lines.append(f"unreadable images: {len(bad)}, left out of the score with their "
                     f"people (first: {bad[0]})")
    return "\n".join(lines)
