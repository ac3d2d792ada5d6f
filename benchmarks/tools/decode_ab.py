"""Decode time of this checkout against another (e.g. main before a change) on the oracle
maps of a COCO file, interleaved image by image in one process so that load from other
processes hits both alike. The other checkout's ``openpaf`` is copied to a temporary
folder and imported under another name. A benchmark, not a test::

    git archive main | tar -x -C /tmp/main_copy
    python benchmarks/tools/decode_ab.py /tmp/main_copy --repeats 15
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf import decode as ours  # noqa: E402
from openpaf.evaluate import (ORACLE_HEIGHT, gt_keypoints, load_ground_truth,  # noqa: E402
                              oracle_maps)
from openpaf.preprocess import geometry  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", type=Path, help="the other checkout (its openpaf/ folder is used)")
    ap.add_argument("--ann", default=str(ROOT.parent / "shared/data/coco/val.json"))
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(args.other / "openpaf", tmp / "openpaf_other")
    sys.path.insert(0, str(tmp))
    import openpaf_other.decode as other
    coco = load_ground_truth(args.ann)
    maps = []
    for i in sorted(coco.getImgIds()):
        info = coco.loadImgs(i)[0]
        geo = geometry((info["width"], info["height"]), ORACLE_HEIGHT)
        maps.append((*oracle_maps(gt_keypoints(coco, i), geo), geo))
    runs = {"this": (ours, ours.get_params(), []), "other": (other, other.get_params(), [])}
    for rep in range(args.repeats):
        order = ("this", "other") if rep % 2 else ("other", "this")
        for heat, paf, geo in maps:
            for name in order:
                mod, params, times = runs[name]
                t0 = time.perf_counter()
                mod.decode(heat, paf, params, scale=geo.map_scale, image_size=geo.image_size)
                times.append(time.perf_counter() - t0)
    ms = {k: np.array(v[2]).reshape(args.repeats, len(maps)) * 1e3 for k, v in runs.items()}
    for k, t in ms.items():
        print(f"{k}: {t.min(0).mean():.3f} ms/img (per image min over repeats), "
              f"median repeat {np.median(t.mean(1)):.3f} ms/img")
    print(f"ratio this/other: {ms['this'].min(0).sum() / ms['other'].min(0).sum():.3f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
