"""LSPET's ``joints.mat`` -> COCO keypoint files with the ``lsp14`` skeleton in their
category (research use only: LSPET's licence). The last ``--test`` images (default
1,000) go to the test file and are never trained on::

    python benchmarks/tools/lspet_to_coco.py ../shared/data/lspet --out runs/lspet
    # -> runs/lspet/lspet_lsp14_train.json (1-9000), runs/lspet/lspet_lsp14_test.json (9001-10000)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from openpaf.data.lsp import image_sizes, lsp_to_coco, read_lsp_joints  # noqa: E402
from openpaf.skeleton import get_spec  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lspet", type=Path, help="folder with joints.mat and images/")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--skeleton", default=str(ROOT / "configs/skeletons/lsp14.yaml"),
                    help="the skeleton file (LSP's 14 joints in LSP's order)")
    ap.add_argument("--test", type=int, default=1000, help="the last N images are the test set")
    args = ap.parse_args(argv)
    spec = get_spec(args.skeleton)
    joints = read_lsp_joints(args.lspet / "joints.mat")
    names = [f"im{i + 1:05d}.jpg" for i in range(len(joints))]
    sizes = image_sizes(args.lspet / "images", names)
    args.out.mkdir(parents=True, exist_ok=True)
    cut = len(joints) - args.test
    for split, indices in (("train", range(cut)), ("test", range(cut, len(joints)))):
        path = args.out / f"lspet_{spec.name}_{split}.json"  # LSPET licence -> manifests
        doc = lsp_to_coco(joints, sizes, names, spec, indices)
        path.write_text(json.dumps(doc))
        print(f"{path}: {len(doc['images'])} images, {len(doc['annotations'])} people")


if __name__ == "__main__":
    main()
