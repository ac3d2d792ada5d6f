"""TensorFlow ``GraphDef`` reader that decodes the protobuf wire format directly.

No TensorFlow and no ``protobuf`` package: ``read_graphdef(path) -> {name: Node}`` walks
the bytes of ``GraphDef -> NodeDef(name, op, input, attr) -> AttrValue -> TensorProto``.
Only the fields a frozen inference graph uses are decoded; others are skipped. Tensors
become numpy arrays (``tensor_content`` is little-endian; ``float_val``/``int_val`` give
scalars or fills). Any malformed input is a one-line ``CheckpointError`` naming the node.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..checkpoint import CheckpointError

# DataType enum -> little-endian numpy dtype (tensorflow/core/framework/types.proto)
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?",
          19: "<f2"}
# TensorProto value fields -> (wire format of one element, how to read it)
_VALUE_FIELDS = {5: "f", 6: "d", 7: "varint", 10: "varint", 11: "varint", 13: "varint"}


class WireError(ValueError):
    """Malformed protobuf bytes (re-raised as a CheckpointError naming the node)."""


@dataclass(frozen=True)
class Node:
    """One ``NodeDef``: ``inputs`` without ``^control`` deps; ``attr`` values decoded."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attr: dict[str, Any] = field(default_factory=dict)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated (the data ends inside a varint)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _signed(v: int) -> int:
    """Two's complement of a 64-bit varint (negative int32/int64 values)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field_number, wire_type, value)`` of one message; value is int or bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise WireError(f"unsupported wire type {wire} (field {num})")
        if pos > end:
            raise WireError(f"truncated (the data ends inside field {num})")
        yield num, wire, value


def _packed(wire: int, value: Any, kind: str) -> list:
    """Elements of one (packed or unpacked) repeated scalar field."""
    if kind == "varint":
        if wire == 0:
            return [_signed(value)]
        out, pos = [], 0
        while pos < len(value):
            v, pos = _varint(value, pos)
            out.append(_signed(v))
        return out
    if wire == 2:
        if len(value) % struct.calcsize(kind):
            raise WireError("packed values of a partial size")
        return list(struct.unpack(f"<{len(value) // struct.calcsize(kind)}{kind}", value))
    return list(struct.unpack(f"<{kind}", value))


def _shape(buf: bytes) -> tuple[int, ...]:
    """``TensorShapeProto`` -> dims (-1 for unknown)."""
    dims = []
    for num, _, value in fields(buf):
        if num == 2:
            size = next((_signed(v) for n, _, v in fields(value) if n == 1), 0)
            dims.append(size)
    return tuple(dims)


def tensor(buf: bytes) -> np.ndarray:
    """``TensorProto`` -> numpy array of its dtype and shape."""
    dtype, shape, content, values = None, (), None, []
    for num, wire, value in fields(buf):
        if num == 1:
            dtype = value
        elif num == 2:
            shape = _shape(value)
        elif num == 4:
            content = value
        elif num in _VALUE_FIELDS:
            values += _packed(wire, value, _VALUE_FIELDS[num])
    if dtype not in DTYPES:
        raise WireError(f"unsupported tensor dtype {dtype}")
    size = int(np.prod(shape, dtype=np.int64))
    if content is not None:
        if len(content) != size * np.dtype(DTYPES[dtype]).itemsize:
            raise WireError(f"tensor content has {len(content)} bytes, shape {shape} "
                            f"needs {size * np.dtype(DTYPES[dtype]).itemsize}")
        return np.frombuffer(content, DTYPES[dtype]).reshape(shape).copy()
    return _from_values(values, dtype, shape, size)


def _from_values(values: list, dtype: int, shape: tuple, size: int) -> np.ndarray:
    """Typed value list -> array; fewer values than ``size`` repeat the last (TF rule)."""
    if len(values) > size or (size and not values):
        raise WireError(f"tensor has {len(values)} values, shape {shape} needs {size}")
    out = np.empty(size, DTYPES[dtype])
    if dtype == 19:                         # half_val carries the fp16 bit patterns
        values = np.asarray(values, np.uint16).view(np.float16)
    if size:
        out[:len(values)] = values
        out[len(values):] = values[-1]
    return out.reshape(shape)


def _list(buf: bytes) -> list:
    """``AttrValue.ListValue`` -> python list (strings, ints, floats, shapes...)."""
    out: list = []
    for num, wire, value in fields(buf):
        if num == 2:
            out.append(bytes(value).decode("utf-8", "replace"))
        elif num in (3, 6):
            out += _packed(wire, value, "varint")
        elif num == 4:
            out += _packed(wire, value, "f")
        elif num == 5:
            out += [bool(v) for v in _packed(wire, value, "varint")]
        elif num == 7:
            out.append(_shape(value))
        elif num == 8:
            out.append(tensor(value))
    return out


def attr_value(buf: bytes) -> Any:
    """``AttrValue`` -> list | str | int | float | bool | shape tuple | ndarray | None."""
    for num, _, value in fields(buf):
        if num == 1:
            return _list(value)
        if num == 2:
            return bytes(value).decode("utf-8", "replace")
        if num in (3, 6):
            return _signed(value)
        if num == 4:
            return struct.unpack("<f", value)[0]
        if num == 5:
            return bool(value)
        if num == 7:
            return _shape(value)
        if num == 8:
            return tensor(value)
    return None


def node(buf: bytes) -> Node:
    """``NodeDef`` bytes -> ``Node``."""
    name, op, inputs, attr = "", "", [], {}
    for num, _, value in fields(buf):
        if num == 1:
            name = bytes(value).decode("utf-8", "replace")
        elif num == 2:
            op = bytes(value).decode("utf-8", "replace")
        elif num == 3:
            inputs.append(bytes(value).decode("utf-8", "replace"))
        elif num == 5:
            entry = dict((n, v) for n, _, v in fields(value))
            attr[bytes(entry.get(1, b"")).decode()] = attr_value(entry.get(2, b""))
    return Node(name, op, tuple(i for i in inputs if not i.startswith("^")), attr)


def _node_name(buf: bytes) -> str:
    """Best-effort name of a (possibly damaged) NodeDef, for error messages."""
    try:
        for num, _, value in fields(buf):
            if num == 1:
                return repr(bytes(value).decode("utf-8", "replace"))
    except WireError:
        pass
    return "(unnamed)"


def parse_graphdef(data: bytes, what: str = "GraphDef") -> dict[str, Node]:
    """``GraphDef`` bytes -> ``{name: Node}`` in file order; one-line errors."""
    nodes: dict[str, Node] = {}
    last = "the start"
    try:
        for num, wire, value in fields(memoryview(data)):
            if num != 1 or wire != 2:
                continue
            try:
                n = node(value)
            except WireError as e:
                raise CheckpointError(f"{what}: node {_node_name(value)}: {e}") from None
            nodes[n.name] = n
            last = repr(n.name)
    except WireError as e:
        hint = "" if str(e).startswith("truncated") else " (not a GraphDef?)"
        raise CheckpointError(f"{what}: {e} in the node after {last}{hint}") from None
    if not nodes:
        raise CheckpointError(f"{what}: no nodes (not a TensorFlow GraphDef)")
    return nodes


def looks_like_graphdef(head: bytes) -> bool:
    """Cheap check of a file's first bytes: a ``NodeDef`` (field 1) whose first field is
    a printable ASCII name (field 1) that fits in ``head``."""
    try:
        key, pos = _varint(head, 0)
        _, pos = _varint(head, pos)
        name_key, pos = _varint(head, pos)
        size, pos = _varint(head, pos)
    except WireError:
        return False
    name = bytes(head[pos:pos + size])
    return (key == name_key == 0x0A and 0 < size == len(name) and name.isascii()
            and name.decode().isprintable())


def read_graphdef(path: Path) -> dict[str, Node]:
    """Read a frozen ``.pb`` file; see ``parse_graphdef``."""
    return parse_graphdef(Path(path).read_bytes(), what=Path(path).name)
