"""OpenVINO IR v10 (``.xml`` graph + ``.bin`` constants) read without the ``openvino``
package: ``xml.etree`` for the graph, numpy for the constants. The walk of its
activation graph gives the convs in order (``ConvSpec``), the outputs and the input
normalisation; ``openvino_ir`` matches them onto openpaf's modules.

What the reader does with each layer type (anything else is refused):

- ``Parameter`` (exactly one), then ``Multiply``/``Add`` by constants: the input
  normalisation, which goes into the checkpoint's ``InputNorm``, not into the weights.
  Channel order BGR (OMZ's convention), RGB if the IR was converted with
  ``reverse_input_channels``.
- ``Convolution`` / ``GroupConvolution``: weights are a constant subgraph (``Const(u8) ->
  Convert -> FakeQuantize(levels=255)``, plus a ``Reshape`` to ``(G, O/G, I/G, kh, kw)`` for
  groups), folded to float32 exactly as FakeQuantize-1 defines it. The following
  ``Add`` of a constant is the bias (absent: zero); ``ReLU`` / ``Elu`` (alpha 1) is the
  activation.
- ``FakeQuantize`` on activations (levels=256) is OpenVINO's INT8 execution: dropped, so
  the float model runs unquantised (the manifest says so).
- ``Add`` of two activations (residual), ``Concat`` on channels, ``Result``.

A missing ``.bin`` or one too short for a constant, an unsupported layer type or
attribute is a one-line ``CheckpointError`` naming the layer.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checkpoint import CheckpointError

IR_VERSION = 10
DTYPES = {"f16": np.float16, "f32": np.float32, "u8": np.uint8, "i8": np.int8,
          "i32": np.int32, "i64": np.int64}
INPUT = -1                       # "source" id of the network input in conv signatures
_NET_ROOT = re.compile(rb'(\xef\xbb\xbf)?\s*(<\?xml[^>]*\?>\s*)?(<!--.*?-->\s*)*'
                       rb'<net\b([^>]*)>', re.S)        # BOM, declaration, comments, root


# --- the IR graph and its constants ----------------------------------------------------

@dataclass
class Layer:
    id: str
    name: str
    type: str
    attrs: dict
    inputs: list = field(default_factory=list)     # source layer ids, by input port
    channels: int | None = None                   # dim 1 of the first output, if any

    def where(self) -> str:
        return f"layer '{self.name}' (id {self.id}, {self.type})"


class IrGraph:
    """The parsed ``.xml`` plus the raw ``.bin`` bytes; ``const(id)`` folds constants."""

    def __init__(self, xml_path: Path, bin_path: Path):
        self.xml_path, self.bin_path = xml_path, bin_path
        self.root = _parse_xml(xml_path)
        self.layers = {l.id: l for l in map(_layer, _children(self.root, "layers"))}
        self.consumers: dict[str, list[str]] = defaultdict(list)
        edges = sorted(_children(self.root, "edges"), key=lambda e: int(e.get("to-port")))
        inputs: dict[str, list[str]] = defaultdict(list)
        for e in edges:
            src, dst = e.get("from-layer"), e.get("to-layer")
            if src not in self.layers or dst not in self.layers:
                raise self.error(f"edge {src} -> {dst} names a layer that does not exist")
            inputs[dst].append(src)
            self.consumers[src].append(dst)
        for lid, srcs in inputs.items():
            self.layers[lid].inputs = srcs
        self.bin = np.fromfile(bin_path, dtype=np.uint8)
        self._consts: dict[str, np.ndarray] = {}

    def error(self, what: str, layer: Layer | None = None) -> CheckpointError:
        where = ""
        if layer is not None:
            user = f" of '{self.user_of(layer.id)}'" if layer.type in _FOLDERS else ""
            where = f"{layer.where()}{user}: "
        return CheckpointError(f"{self.xml_path.name}: {where}{what}")

    def user_of(self, lid: str) -> str:
        """Name of the first non-constant layer that constant ``lid`` feeds."""
        seen = set()
        while self.layers[lid].type in _FOLDERS and self.consumers[lid] and lid not in seen:
            seen.add(lid)
            lid = self.consumers[lid][0]
        return self.layers[lid].name

    def const(self, lid: str) -> np.ndarray:
        """Value of the constant subgraph ending at layer ``lid`` (float32 unless ints)."""
        if lid not in self._consts:
            layer = self.layers[lid]
            fold = _FOLDERS.get(layer.type)
            if fold is None:
                raise self.error("not a constant: openpaf folds only Const, Convert, "
                                 "FakeQuantize and Reshape into weights", layer)
            self._consts[lid] = fold(self, layer)
        return self._consts[lid]

    def read_const(self, layer: Layer) -> np.ndarray:
        """A ``Const`` layer's array from the ``.bin``, after checking type, size, offset."""
        a = layer.attrs
        dtype = DTYPES.get(a.get("element_type", ""))
        if dtype is None:
            raise self.error(f"element type {a.get('element_type')!r} is not supported",
                             layer)
        shape = _ints(a.get("shape", ""))
        offset, size = int(a.get("offset", -1)), int(a.get("size", -1))
        if size != int(np.prod(shape)) * np.dtype(dtype).itemsize or offset < 0:
            raise self.error(f"size {size} bytes does not fit shape {shape} of {dtype.__name__}",
                             layer)
        if offset + size > self.bin.size:
            raise self.error(f"{self.bin_path.name} is truncated: bytes {offset}..{offset + size}"
                             f" needed, the file has {self.bin.size}", layer)
        return self.bin[offset:offset + size].view(dtype).reshape(shape)


def _parse_xml(path: Path) -> ET.Element:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise CheckpointError(f"{path.name}: not valid XML ({e})") from None
    version = root.get("version")
    if root.tag != "net" or version != str(IR_VERSION):
        raise CheckpointError(f"{path.name}: OpenVINO IR version {version}; openpaf reads "
                              f"IR v{IR_VERSION}")
    return root


def _children(root: ET.Element, tag: str) -> list[ET.Element]:
    el = root.find(tag)
    return list(el) if el is not None else []


def _layer(el: ET.Element) -> Layer:
    data = el.find("data")
    port = el.find("output/port")
    dims = [int(d.text) for d in port.findall("dim")] if port is not None else []
    return Layer(el.get("id"), el.get("name", ""), el.get("type", ""),
                 dict(data.attrib) if data is not None else {},
                 channels=dims[1] if len(dims) > 1 else None)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def fake_quantize(x, in_low, in_high, out_low, out_high, levels: int) -> np.ndarray:
    """OpenVINO FakeQuantize-1, elementwise with numpy broadcasting, in float32.

    ``x <= min(in_low, in_high)`` -> ``out_low``; ``x > max(...)`` -> ``out_high``; else
    ``round((x - in_low) / (in_high - in_low) * (levels - 1)) / (levels - 1) *
    (out_high - out_low) + out_low`` (round half away from zero).
    """
    x, il, ih, ol, oh = (np.asarray(v, np.float32) for v in
                         (x, in_low, in_high, out_low, out_high))
    q = (x - il) / (ih - il) * np.float32(levels - 1)
    q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
    y = q / np.float32(levels - 1) * (oh - ol) + ol
    y = np.where(x <= np.minimum(il, ih), ol, y)
    return np.where(x > np.maximum(il, ih), oh, y).astype(np.float32)


def _fold_const(g: IrGraph, layer: Layer) -> np.ndarray:
    return g.read_const(layer)


def _fold_convert(g: IrGraph, layer: Layer) -> np.ndarray:
    dtype = DTYPES.get(layer.attrs.get("destination_type", ""))
    if dtype is None:
        raise g.error(f"destination type {layer.attrs.get('destination_type')!r} is not "
                      "supported", layer)
    x = g.const(layer.inputs[0])
    return x.astype(np.float32 if np.issubdtype(dtype, np.floating) else dtype)


def _fold_fake_quantize(g: IrGraph, layer: Layer) -> np.ndarray:
    if len(layer.inputs) != 5:
        raise g.error(f"{len(layer.inputs)} inputs, FakeQuantize has 5", layer)
    x, il, ih, ol, oh = (g.const(i) for i in layer.inputs)
    try:
        return fake_quantize(x, il, ih, ol, oh, int(layer.attrs["levels"]))
    except ValueError as e:
        raise g.error(f"ranges do not broadcast to the weights ({e})", layer) from None


def _fold_reshape(g: IrGraph, layer: Layer) -> np.ndarray:
    x, shape = g.const(layer.inputs[0]), [int(v) for v in g.const(layer.inputs[1])]
    if layer.attrs.get("special_zero", "false").lower() == "true":
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    try:
        return x.reshape(shape)
    except ValueError:
        raise g.error(f"cannot reshape {list(x.shape)} to {shape}", layer) from None


_FOLDERS = {"Const": _fold_const, "Convert": _fold_convert,
            "FakeQuantize": _fold_fake_quantize, "Reshape": _fold_reshape}


# --- walking the activation graph ------------------------------------------------------

@dataclass
class ConvSpec:
    """One conv as found in the IR (weights in torch layout) or in the model."""

    where: str
    weight_shape: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    act: str | None = None
    sources: tuple = ()
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stage: str = "conv"              # IR walk: "conv" -> "bias" -> "act"
    index: int = -1                  # position in execution order


@dataclass
class Walk:
    """What the walk found: convs in order, outputs, normalisation, dropped FQs."""

    convs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)     # (channels, sources) per Result
    scale: float = 1.0
    offset: float = 0.0
    dropped_fq: int = 0
    values: dict = field(default_factory=dict)      # layer id -> ("input", ) | sources | conv


def topological_order(g: IrGraph, start: str) -> list[str]:
    """Layers reachable from ``start``, depth-first, each after all its reachable inputs."""
    reach, todo = {start}, [start]
    while todo:
        for c in g.consumers[todo.pop()]:
            if c not in reach:
                reach.add(c)
                todo.append(c)
    pending = {lid: sum(s in reach for s in g.layers[lid].inputs) for lid in reach}
    order, stack = [], [start]
    while stack:
        lid = stack.pop()
        order.append(lid)
        for c in sorted(g.consumers[lid], key=int, reverse=True):
            pending[c] -= 1
            if pending[c] == 0:
                stack.append(c)
    return order


def walk(g: IrGraph) -> Walk:
    """Walk the activation graph from the single ``Parameter``; see the module docstring."""
    params = [l for l in g.layers.values() if l.type == "Parameter"]
    if len(params) != 1:
        raise g.error(f"{len(params)} Parameter layers; openpaf reads single-input IRs")
    w = Walk()
    for lid in topological_order(g, params[0].id):
        layer = g.layers[lid]
        handler = _HANDLERS.get(layer.type)
        if handler is None:
            raise g.error("layer type not supported by openpaf's IR reader", layer)
        w.values[lid] = handler(g, layer, w)
    return w


def _inputs(g: IrGraph, layer: Layer, w: Walk, acts: int | None = 1,
            consts: int | None = 0) -> tuple[list, list]:
    """``(values of activation inputs, ids of constant inputs)``, after checking their
    numbers (None: any)."""
    act = [w.values[s] for s in layer.inputs if s in w.values]
    const = [s for s in layer.inputs if s not in w.values]
    if (acts is not None and len(act) != acts) or (consts is not None and len(const) != consts):
        raise g.error(f"{len(act)} activation and {len(const)} constant inputs; openpaf "
                      f"reads this type with {acts} and {consts}", layer)
    return act, const


def _sources(value) -> tuple:
    if isinstance(value, ConvSpec):
        return (value.index,)
    return (INPUT,) if value == "input" else value


def _on_parameter(g, layer, w):
    return "input"


def _on_fake_quantize(g, layer, w):
    (value,), _ = _inputs(g, layer, w, consts=4)
    w.dropped_fq += 1
    return value


def _on_conv(g, layer, w):
    (value,), consts = _inputs(g, layer, w, consts=1)
    weight = g.const(consts[0])
    groups = 1
    if layer.type == "GroupConvolution":
        if weight.ndim != 5:
            raise g.error(f"grouped weights {list(weight.shape)} are not 5-D", layer)
        groups = weight.shape[0]
        weight = weight.reshape(-1, *weight.shape[2:])
    a = layer.attrs
    if a.get("auto_pad", "explicit") not in ("explicit", "notset"):
        raise g.error(f"auto_pad={a['auto_pad']} is not supported", layer)
    pads = _ints(a.get("pads_begin", "0,0"))
    if pads != _ints(a.get("pads_end", "0,0")):
        raise g.error(f"asymmetric pads {a.get('pads_begin')} / {a.get('pads_end')}", layer)
    spec = ConvSpec(layer.where(), tuple(weight.shape), tuple(_ints(a["strides"])),
                    tuple(pads), tuple(_ints(a["dilations"])), groups,
                    sources=_sources(value), weight=weight, index=len(w.convs))
    w.convs.append(spec)
    return spec


def _on_add(g, layer, w):
    values, consts = _inputs(g, layer, w, acts=None, consts=None)
    if len(values) == 2 and not consts:                    # residual
        return tuple(sorted(_sources(values[0]) + _sources(values[1])))
    (value,), (const,) = _inputs(g, layer, w, consts=1)
    c = g.const(const)
    if value == "input":
        w.offset = w.offset + _uniform(g, layer, c, "offset")
        return value
    if not isinstance(value, ConvSpec) or value.stage != "conv":
        raise g.error("adding a constant is supported only as a conv bias or input offset",
                      layer)
    if c.size != value.weight_shape[0]:
        raise g.error(f"bias of {c.size} values for {value.weight_shape[0]} channels", layer)
    _single_consumer(g, layer)
    value.bias, value.stage = c.reshape(-1).astype(np.float32), "bias"
    return value


def _on_multiply(g, layer, w):
    (value,), (const,) = _inputs(g, layer, w, consts=1)
    if value != "input":
        raise g.error("Multiply is supported only as the input normalisation", layer)
    k = _uniform(g, layer, g.const(const), "scale")
    w.scale, w.offset = w.scale * k, w.offset * k
    return value


def _on_activation(g, layer, w):
    (value,), _ = _inputs(g, layer, w)
    if not isinstance(value, ConvSpec) or value.stage == "act":
        raise g.error("an activation is supported only right after a conv (and its bias)",
                      layer)
    if layer.type == "Elu" and float(layer.attrs.get("alpha", 1.0)) != 1.0:
        raise g.error(f"Elu alpha {layer.attrs['alpha']} (openpaf's ELU has alpha 1)", layer)
    _single_consumer(g, layer)
    value.act, value.stage = layer.type.lower(), "act"
    return value


def _on_concat(g, layer, w):
    values, _ = _inputs(g, layer, w, acts=None)
    if int(layer.attrs.get("axis", 1)) != 1:
        raise g.error("only channel concatenation (axis 1) of activations is supported",
                      layer)
    return tuple(s for v in values for s in _sources(v))


def _on_result(g, layer, w):
    (value,), _ = _inputs(g, layer, w)
    src = g.layers[layer.inputs[0]]
    w.outputs.append((src.channels, _sources(value), layer.where()))
    return value


_HANDLERS = {"Parameter": _on_parameter, "FakeQuantize": _on_fake_quantize,
             "Convolution": _on_conv, "GroupConvolution": _on_conv, "Add": _on_add,
             "Multiply": _on_multiply, "ReLU": _on_activation, "Elu": _on_activation,
             "Concat": _on_concat, "Result": _on_result}


def _uniform(g: IrGraph, layer: Layer, c: np.ndarray, what: str) -> float:
    if c.size == 0 or not np.all(c == c.reshape(-1)[0]):
        raise g.error(f"input {what} differs between channels; openpaf's normalisation "
                      "has one value", layer)
    return float(c.reshape(-1)[0])


def _single_consumer(g: IrGraph, layer: Layer) -> None:
    """A conv's output must not be used before its bias/activation is applied."""
    if len(g.consumers[layer.inputs[0]]) != 1:
        raise g.error("the conv output before this layer has other consumers", layer)


# --- the files ---------------------------------------------------------------------

def ir_paths(path: Path) -> tuple[Path, Path]:
    """``(xml, bin)`` of the IR that ``path`` (either file) belongs to."""
    xml, bin_ = path.with_suffix(".xml"), path.with_suffix(".bin")
    if path.suffix.lower() != ".bin":
        xml = path
    for p in (xml, bin_):
        if not p.is_file():
            raise CheckpointError(f"{path.name}: OpenVINO IR needs {p.name} beside it; "
                                  "not found")
    return xml, bin_


def is_ir_xml(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts an XML document whose root is
    ``<net ... version="...">`` (an OpenVINO IR)."""
    m = _NET_ROOT.match(head)
    return bool(m and re.search(rb'\bversion\s*=\s*"\d+"', m.group(4)))
