"""OpenVINO IR import against the shared OMZ IR, and parity with Intel's own runtime.

The reference maps in ``fixtures/openvino_hpe0001.npz`` were made by the real
``openvino`` runtime (2026.4, CPU plugin defaults: INT8 convs, bf16 elsewhere) with
``benchmarks/tools/openvino_reference.py`` on three 368-pixel-high crops of shared COCO
train photos; no test here imports openvino unless it is installed.

Tolerance (our float32 model vs OpenVINO's INT8 execution), measured on the fixtures
2026-11-30, bound with margin:

- mean |diff| per map type: measured 0.0013-0.0022, bound 0.004;
- max |diff|: measured 0.19-0.27 (a few cells at peaks, where OpenVINO's quantised
  activations clip: simulating the IR's activation FakeQuantize in float reproduces
  OpenVINO's peak values), bound 0.4;
- peaks (3x3 local maxima >= 0.3) of either side have one >= 0.15 on the other within
  2 map cells (16 input pixels): all 594 (300 + 294) do, 94% at the same cell (bound
  85%), 99.8% within one cell (the rest: a ridge with two near-equal maxima).
"""
import hashlib
import importlib.util
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from openpaf.model import count_parameters, get_config
from openpaf.preprocess import geometry, prepare
from openpaf.structures import InputNorm
from openpaf.weights.checkpoint import CheckpointError
from openpaf.weights.formats import detect_format, import_weights
from openpaf.weights.formats.openvino_ir import fake_quantize, read_ir

from conftest import ROOT, SHARED_DATA, require

IR = (ROOT.parent / "shared" / "models" / "openvino" / "human-pose-estimation-0001"
      / "FP16-INT8" / "human-pose-estimation-0001.xml")
IR_SHA256 = {"human-pose-estimation-0001.xml":
             "c3a47de94906e6b3256eb16af7274141b2fc9f6c7889a02d96ef430b9bc321d3",
             "human-pose-estimation-0001.bin":
             "fc7e9dde0f4a34876cfbbd266388a59526a8c8c1bc9394ce4827b7a007d20f82"}
FIXTURE = Path(__file__).parent / "fixtures" / "openvino_hpe0001.npz"
TRAIN_IMAGES = SHARED_DATA / "coco" / "train"
MEAN_BOUND, MAX_BOUND = 0.004, 0.4
PEAK, PEAK_LOW, PEAK_RADIUS, SAME_CELL = 0.3, 0.15, 2, 0.85


@pytest.fixture(scope="module")
def imported():
    return read_ir(require(IR))


def crop_input(i: int, fixture, norm: InputNorm):
    """The fixture's i-th network input, rebuilt like the reference tool built it."""
    name = str(fixture[f"name_{i}"])
    x0, y0, w, h = (int(v) for v in fixture[f"crop_{i}"])
    img = cv2.imread(str(require(TRAIN_IMAGES / name)), cv2.IMREAD_COLOR)
    crop = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
    geo = geometry((w, h), h)
    raw = prepare(crop, geo, InputNorm("BGR", 1.0, 0.0)).transpose(1, 2, 0)
    sha = hashlib.sha256(np.ascontiguousarray(raw.astype(np.uint8)).tobytes()).hexdigest()
    assert sha == str(fixture[f"input_sha256_{i}"]), f"{name}: input differs from the fixture's"
    return torch.from_numpy(prepare(crop, geo, norm))[None]


def peaks(maps: np.ndarray, threshold: float) -> np.ndarray:
    """``(N, 3)`` [channel, y, x] of 3x3 local maxima ``>= threshold``."""
    c, h, w = maps.shape
    pad = np.pad(maps, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    around = np.stack([pad[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]).max(0)
    return np.argwhere((maps >= threshold) & (maps >= around))


def peak_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each peak of ``a`` (>= PEAK): cells (Chebyshev) to the nearest peak of ``b``
    (>= PEAK_LOW) in the same channel; inf when that channel has none."""
    pa, pb = peaks(a, PEAK), peaks(b, PEAK_LOW)
    d = np.abs(pa[:, None, 1:] - pb[None, :, 1:]).max(-1).astype(float)
    d[pa[:, None, 0] != pb[None, :, 0]] = np.inf
    return d.min(1) if len(pb) else np.full(len(pa), np.inf)


def test_fake_quantize_follows_the_opset1_formula():
    u8 = np.array([0, 1, 127, 254, 255], np.float32)
    got = fake_quantize(u8, 0, 254, -2.0, 2.0, 255)
    np.testing.assert_allclose(got, [-2, -2 + 4 / 254, 0, 2, 2], atol=1e-6)
    # per-channel ranges broadcast; rounding is half away from zero; out of range clips
    x = np.array([[0.24, 0.26, 0.5], [-1, 0.125, 9]], np.float32)
    got = fake_quantize(x, 0, 1, np.array([[0], [10]]), np.array([[1], [20]]), 5)
    np.testing.assert_allclose(got, [[0.25, 0.25, 0.5], [10, 12.5, 20]], atol=1e-6)


def test_imports_the_omz_model_with_its_normalisation_and_provenance(imported):
    assert imported.variant == "lightweight_mobilenet_v1"
    assert imported.model.config == get_config("lightweight_mobilenet_v1")
    assert count_parameters(imported.model) == 4_099_058
    assert not imported.model.training
    # the IR's own Multiply and Add (f16): BGR (x - 128) / 255
    assert imported.normalisation == InputNorm("BGR", 0.0039215087890625, -0.501953125)
    m = imported.manifest
    assert m["source"] == ("Intel Open Model Zoo human-pose-estimation-0001, FP16-INT8 IR, "
                           "OMZ release 2021.2")
    assert m["source_sha256"] == IR_SHA256 and m["licence"] == "Apache-2.0"
    assert "FakeQuantize" in m["conversion"] and m["activation_fake_quantize_dropped"] == 63


def test_maps_match_openvinos_runtime(imported):
    fixture = np.load(FIXTURE)
    distances = []
    for i in range(3):
        maps = imported.model.predict(crop_input(i, fixture, imported.normalisation))
        for kind, ours in zip(("heatmaps", "pafs"), maps):
            ref = fixture[f"{kind}_{i}"].astype(np.float32)
            diff = np.abs(ours[0].numpy() - ref)
            assert diff.mean() < MEAN_BOUND and diff.max() < MAX_BOUND, (i, kind)
        ours, ref = maps.heatmaps[0, :18].numpy(), fixture[f"heatmaps_{i}"][:18].astype(
            np.float32)
        distances += [peak_distances(ref, ours), peak_distances(ours, ref)]
    d = np.concatenate(distances)
    assert len(d) > 250 and d.max() <= PEAK_RADIUS
    assert (d == 0).mean() >= SAME_CELL


def test_sniffs_by_content_and_accepts_the_bin(tmp_path):
    xml = require(IR)
    renamed = tmp_path / "model.txt"
    shutil.copy(xml, renamed)
    assert detect_format(renamed).name == "openvino-ir"
    assert detect_format(xml.with_suffix(".bin")).name == "openvino-ir"
    (tmp_path / "lonely.bin").write_bytes(b"\0" * 64)
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?>\n<config version="10"/>\n')
    assert detect_format(tmp_path / "lonely.bin") is None
    assert detect_format(other) is None


# --- malformed IRs: one line naming the layer, nothing written -------------------------

def _layer(root, lid):
    return root.find(f"layers/layer[@id='{lid}']")


def _set(lid, path, **attrs):
    def edit(root):
        _layer(root, lid).find(path).attrib.update(attrs)
    return edit


def _retype(root):
    _layer(root, "20").set("type", "Swish")


def _swap_concat_inputs(root):
    edges = [e for e in root.find("edges") if e.get("to-layer") == "666"]
    a, b = (e for e in edges if e.get("to-port") in ("0", "1"))
    a.attrib["to-port"], b.attrib["to-port"] = b.get("to-port"), a.get("to-port")


MALFORMED = {
    "truncated bin": (None, "'Mconv7_stage2_L2", "truncated"),
    "size vs shape": (_set("10", "data", shape="32,3,3,4"), "(id 10, Const)", "does not fit"),
    "wrong weight shape": (_set("10", "data", shape="32,27,1,1"), "'conv1'", "weight shape"),
    "wrong stride": (_set("17", "data", strides="1,1"), "'conv1'", "stride"),
    "unknown layer": (_retype, "'relu1' (id 20, Swish)", "not supported"),
    "concat order": (_swap_concat_inputs, "'Mconv1_stage2_L1/sq", "inputs from conv 39, conv 37"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_ir_is_one_line_naming_the_layer(tmp_path, case):
    edit, layer, what = MALFORMED[case]
    xml = require(IR)
    bad_xml, out = tmp_path / "bad.xml", tmp_path / "out.pt"
    tree = ET.parse(xml)
    if edit is not None:
        edit(tree.getroot())
    tree.write(bad_xml)
    data = xml.with_suffix(".bin").read_bytes()
    bad_xml.with_suffix(".bin").write_bytes(data[:-100] if edit is None else data)
    with pytest.raises(CheckpointError) as info:
        import_weights(bad_xml, out)
    msg = str(info.value)
    assert "\n" not in msg and layer in msg and what in msg, msg
    assert not out.exists()


def test_fixture_is_what_the_runtime_gives_when_openvino_is_installed():
    pytest.importorskip("openvino", reason="optional: checks the fixture against openvino",
                        exc_type=ImportError)
    path = ROOT / "benchmarks" / "tools" / "openvino_reference.py"
    spec = importlib.util.spec_from_file_location("openvino_reference", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    fixture = np.load(FIXTURE)
    compiled, precision = tool.compile_ir(require(IR), 2, f32=False)
    name, x0, y0, w = tool.CROPS[0]
    x, sha = tool.crop_input(require(TRAIN_IMAGES), name, x0, y0, w)
    assert sha == str(fixture["input_sha256_0"]) and precision == str(fixture["precision"])
    heatmaps, pafs = tool.run(compiled, x)
    np.testing.assert_allclose(heatmaps, fixture["heatmaps_0"], atol=2e-3)
    np.testing.assert_allclose(pafs, fixture["pafs_0"], atol=2e-3)


def test_ir_reading_is_apart_from_matching_onto_our_modules():
    """Issue 21 tidy-up: openvino_ir.py (607 lines) read the IR graph and matched it onto
    the model; the graph reader is now its own module, without torch or the model."""
    import ast
    from openpaf.weights.formats import openvino_ir, openvino_ir_graph
    tree = ast.parse(Path(openvino_ir_graph.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names} | {n.module or "" for n in ast.walk(tree)
                                  if isinstance(n, ast.ImportFrom)}
    assert not any(n.startswith(("torch", "model")) or "model" in n for n in names), names
    for module in (openvino_ir, openvino_ir_graph):
        assert len(Path(module.__file__).read_text().splitlines()) < 450
