"""OpenVINO IR v10 -> a ``LightweightPose``: the IR as ``openvino_ir_graph`` reads it,
matched onto openpaf's modules, and the weight format that ``weights import`` and
``--weights FILE.xml`` use.

Mapping by structure, not names: the activation graph is walked from ``data`` in a
depth-first topological order (ties by layer id), and the i-th conv is matched with the
model's i-th ``ConvAct`` in execution order (traced with ``torch.fx``). Every pair must
agree on weight shape (channels, kernel, groups), stride, padding, dilation, activation,
and on which convs feed it (residual sums and concatenation order included); both
outputs must come from the matching convs. Any mismatch, unsupported layer, or a ``.bin``
too short for a constant is a one-line ``CheckpointError`` naming the layer.

``sniff`` recognises the ``.xml`` by content (a ``<net ... version="N">`` root; versions
other than 10 are then refused by ``read`` with that reason) and also accepts the
``.bin`` when the ``.xml`` of the same stem beside it is an IR: the pair is one model,
and the ``.bin`` alone has no header to sniff.
"""
from __future__ import annotations

import datetime
import operator
from pathlib import Path

import numpy as np
import torch
import torch.fx

from ... import __version__
from ...model.layers import ConvAct
from ...model.lightweight import LightweightConfig, LightweightPose
from ...model.registry import get_config
from ...structures import InputNorm, Maps
from ..checkpoint import file_sha256, format_norm
from . import Imported, WeightFormat, register_format
from .openvino_ir_graph import (INPUT, IR_VERSION, ConvSpec, IrGraph, Walk, ir_paths,
                                is_ir_xml, walk)
from .openvino_ir_graph import fake_quantize  # noqa: F401 - part of this module's API

# (xml sha256, bin sha256) -> (source, licence) of IRs openpaf knows.
KNOWN_IRS = {
    ("c3a47de94906e6b3256eb16af7274141b2fc9f6c7889a02d96ef430b9bc321d3",
     "fc7e9dde0f4a34876cfbbd266388a59526a8c8c1bc9394ce4827b7a007d20f82"):
    ("Intel Open Model Zoo human-pose-estimation-0001, FP16-INT8 IR, OMZ release 2021.2",
     "Apache-2.0"),
}
CONVERSION = ("conv weights: u8 Const -> FakeQuantize(levels=255, per-output-channel "
              "ranges) dequantised to float32 by the FakeQuantize-1 formula; biases and "
              "ranges f16 -> float32; input Multiply/Add moved to the normalisation; "
              "activation FakeQuantize (levels=256, OpenVINO's INT8 execution) dropped: "
              "this float model runs without activation quantisation")


# --- the model's structure, and matching ----------------------------------------------

class _ConvActTracer(torch.fx.Tracer):
    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return isinstance(m, ConvAct) or super().is_leaf_module(m, qualname)


_ACT_NAMES = {torch.nn.ReLU: "relu", torch.nn.ELU: "elu", torch.nn.ReLU6: "relu6"}


def model_structure(model: torch.nn.Module) -> tuple[list[ConvSpec], dict]:
    """The model's ``ConvAct`` convs in execution order (with the convs feeding each) and
    ``{"heatmaps": sources, "pafs": sources}`` of its last stage."""
    graph = _ConvActTracer().trace(model)
    modules = dict(model.named_modules())
    convs, values = [], {}
    for node in graph.nodes:
        if node.op == "placeholder":
            values[node] = (INPUT,)
        elif node.op == "call_module" and isinstance(modules[node.target], ConvAct):
            convs.append(_model_conv(node.target, modules[node.target],
                                     values[node.args[0]], len(convs)))
            values[node] = (len(convs) - 1,)
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            values[node] = tuple(sorted(values[node.args[0]] + values[node.args[1]]))
        elif node.op == "call_function" and node.target is torch.cat:
            values[node] = tuple(s for a in node.args[0] for s in values[a])
        elif node.op == "call_function" and node.target is Maps:
            values[node] = Maps(*(values[a] for a in node.args))
        elif node.op == "call_function" and node.target is getattr:
            values[node] = getattr(values[node.args[0]], node.args[1])
        elif node.op == "output":
            return convs, values[node.args[0][-1]]._asdict()
        else:
            raise AssertionError(f"model_structure: unexpected fx node {node.format_node()}")
    raise AssertionError("model_structure: the traced graph has no output")


def _model_conv(name: str, m: ConvAct, sources: tuple, index: int) -> ConvSpec:
    c = m.conv
    act = _ACT_NAMES[type(m.act)] if m.act is not None else None
    return ConvSpec(name, tuple(c.weight.shape), tuple(c.stride), tuple(c.padding),
                    tuple(c.dilation), c.groups, act, sources, index=index)


_CHECKED = ("weight_shape", "stride", "padding", "dilation", "groups", "act", "sources")


def match(g: IrGraph, found: Walk, model: LightweightPose) -> dict[str, torch.Tensor]:
    """Pair the IR's convs with the model's, check every attribute; return a state dict."""
    convs, outputs = model_structure(model)
    for i, ir in enumerate(found.convs):
        if i >= len(convs):
            raise g.error(f"{ir.where}: conv {i + 1} of {len(found.convs)}, the "
                          f"{model.config.arch} model has only {len(convs)}")
        ours = convs[i]
        for attr in _CHECKED:
            a, b = getattr(ir, attr), getattr(ours, attr)
            if a != b:
                raise g.error(f"{ir.where}: {_fmt(attr, a)} but the model's {ours.where} "
                              f"(conv {i + 1}) has {_fmt(attr, b)}")
    if len(found.convs) != len(convs):
        raise g.error(f"{len(found.convs)} convs but the model has {len(convs)}")
    _match_outputs(g, found, outputs, model)
    state = {}
    for ir, ours in zip(found.convs, convs):
        bias = ir.bias if ir.bias is not None else np.zeros(ir.weight_shape[0], np.float32)
        state[f"{ours.where}.conv.weight"] = torch.from_numpy(np.ascontiguousarray(ir.weight))
        state[f"{ours.where}.conv.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return state


def _fmt(attr: str, value) -> str:
    if attr == "sources":
        return "inputs from " + ", ".join("the network input" if s == INPUT else
                                          f"conv {s + 1}" for s in value)
    return f"{attr.replace('_', ' ')} {value}"


def _match_outputs(g: IrGraph, found: Walk, outputs: dict, model: LightweightPose) -> None:
    """The IR's two Results (told apart by channel count) come from the model's last
    heatmap and PAF convs."""
    if len(found.outputs) != 2:
        raise g.error(f"{len(found.outputs)} outputs; expected heatmaps and PAFs")
    channels = {"heatmaps": model.num_heatmaps, "pafs": model.num_pafs}
    by_channels = {ch: (src, where) for ch, src, where in found.outputs}
    for kind, src in outputs.items():
        if channels[kind] not in by_channels:
            raise g.error(f"no output with {channels[kind]} channels ({kind}); the outputs "
                          f"have {sorted(by_channels)}")
        ir_src, where = by_channels[channels[kind]]
        if ir_src != src:
            raise g.error(f"{where}: {_fmt('sources', ir_src)}, but the model's {kind} have "
                          f"{_fmt('sources', src)}")


# --- the format ------------------------------------------------------------------------

def read_ir(path: Path) -> Imported:
    """Read an IR into a float32 ``LightweightPose`` (eval mode) + normalisation."""
    xml, bin_ = ir_paths(Path(path))
    g = IrGraph(xml, bin_)
    found = walk(g)
    stages = sum(l.type == "Concat" for l in g.layers.values())
    config = LightweightConfig(refinement_stages=stages)
    with torch.device("meta"):
        model = LightweightPose(config)
    model.load_state_dict(match(g, found, model), strict=True, assign=True)
    order = "RGB" if _meta(g, "reverse_input_channels") == "True" else "BGR"
    norm = InputNorm(order, found.scale, found.offset)
    variant = ("lightweight_mobilenet_v1"
               if config == get_config("lightweight_mobilenet_v1") else None)
    notes = [f"{found.dropped_fq} activation FakeQuantize layers (INT8 execution) dropped: "
             "maps differ slightly from OpenVINO's INT8 ones"] if found.dropped_fq else []
    return Imported(model.eval(), norm, _manifest(g, norm, config, found), variant, notes)


def _meta(g: IrGraph, key: str) -> str | None:
    el = g.root.find(f"meta_data/cli_parameters/{key}")
    return el.get("value") if el is not None else None


def _manifest(g: IrGraph, norm: InputNorm, config: LightweightConfig, found: Walk) -> dict:
    shas = (file_sha256(g.xml_path), file_sha256(g.bin_path))
    source, licence = KNOWN_IRS.get(shas, (
        f"OpenVINO IR v{IR_VERSION} network '{g.root.get('name')}'",
        "unknown: not an IR openpaf knows; check where it came from"))
    return {
        "source": source,
        "source_files": [str(g.xml_path.resolve()), str(g.bin_path.resolve())],
        "source_sha256": {g.xml_path.name: shas[0], g.bin_path.name: shas[1]},
        "source_format": f"OpenVINO IR v{IR_VERSION}",
        "licence": licence,
        "normalisation": format_norm(norm),
        "conversion": CONVERSION,
        "activation_fake_quantize_dropped": found.dropped_fq,
        "refinement_stages": config.refinement_stages,
        "created_by": f"openpaf {__version__} weights import",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }


class OpenVinoIrFormat(WeightFormat):
    name = "openvino-ir"
    description = "OpenVINO IR v10 .xml + .bin (lightweight OpenPose, e.g. OMZ FP16-INT8)"

    def sniff(self, path: Path, head: bytes) -> bool:
        if path.suffix.lower() == ".bin":
            xml = path.with_suffix(".xml")
            if not xml.is_file():
                return False
            with open(xml, "rb") as f:
                head = f.read(len(head) or 4096)
        return is_ir_xml(head)

    def read(self, path: Path) -> Imported:
        return read_ir(path)


register_format(OpenVinoIrFormat())
