"""PCK@0.2 (and, for weights of the file's own skeleton, OKS AP with its sigmas) of one or
more weights on a COCO keypoint file, joints matched by name: e.g. the lsp14 model and the
COCO-18 default model on the 12 joints they share, on LSPET's held-out last 1,000::

    python benchmarks/tools/lspet_pck.py --ann runs/lspet/lspet_lsp14_test.json \\
        --images ../shared/data/lspet/images --weights runs/lspet/ft/last.pt weights/default.pt \\
        --joints shared --height 256 --json benchmarks/lspet_lsp14_test.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf.data.records import file_keypoints, load_ground_truth  # noqa: E402
from openpaf.evaluate import evaluate  # noqa: E402
from openpaf.pck import evaluate_pck  # noqa: E402
from openpaf.predict import Predictor  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ann", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--weights", nargs="+", required=True)
    ap.add_argument("--joints", default="shared",
                    help="'shared' (the joints every model and the file label alike) or "
                         "names, comma-separated")
    ap.add_argument("--height", type=int, default=None, help="network input height")
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    predictors = [Predictor.from_checkpoint(w, device="cpu", height=args.height)
                  for w in args.weights]
    names = file_keypoints(load_ground_truth(args.ann))
    # shared: named alike in the file and every model, and labelled in each (a derived
    # point such as COCO-18's neck, the shoulders' mid-point, is not LSP's neck)
    made = {p.spec.keypoints[d.index] for p in predictors for d in p.spec.derived}
    joints = [n for n in names if n not in made and all(n in p.spec.keypoints
                                                        for p in predictors)] \
        if args.joints == "shared" else args.joints.split(",")
    reports = []
    for w, p in zip(args.weights, predictors):
        r = {"weights": w, "pck": evaluate_pck(args.ann, args.images, p, joints=joints,
                                               max_images=args.max_images)}
        if p.spec.dataset_keypoints == names:
            ev = evaluate(args.ann, args.images, predictor=p, max_images=args.max_images)
            r["oks"] = {k: ev[k] for k in ("AP", "AP50", "AP75", "AR")}
        reports.append(r)
        print(f"{w}: PCK@0.2 {r['pck']['PCK']:.3f} on {len(joints)} joints"
              + (f", OKS AP {r['oks']['AP']:.3f}" if "oks" in r else ""))
    if args.json:
        args.json.write_text(json.dumps({"joints": joints, "runs": reports}, indent=1))


if __name__ == "__main__":
    main()
