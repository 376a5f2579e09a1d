"""A small reader for TensorFlow frozen graphs (GraphDef protobuf) without TensorFlow.

Only what converting constant weights needs: node names, ops, inputs and ``Const`` tensors.
It decodes the protobuf wire format directly (varints and length-delimited fields).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TensorFlow DataType enum values -> numpy dtypes (the ones frozen weights use).
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) for each field of one message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, bytes] = field(default_factory=dict)

    def tensor(self) -> np.ndarray:
        """The value of a ``Const`` node."""
        if "value" not in self.attrs:
            raise ValueError(f"node {self.name} ({self.op}) holds no tensor")
        for number, _, value in _fields(self.attrs["value"]):
            if number == 8:  # AttrValue.tensor
                return _tensor(value)
        raise ValueError(f"node {self.name} has no tensor value")


def _tensor(data: bytes) -> np.ndarray:
    dtype, shape, content = None, [], None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(data):
        if number == 1:
            dtype = _DTYPES.get(int(value))
            if dtype is None:
                raise ValueError(f"unsupported tensor dtype {value}")
        elif number == 2:
            for dim_number, _, dim in _fields(value):
                if dim_number == 2:
                    size = next((v for n, _, v in _fields(dim) if n == 1), 0)
                    shape.append(int(size))
        elif number == 4:
            content = value
        elif number == 5:  # float_val: packed or not
            floats.extend(struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else struct.unpack("<f", value))
        elif number == 7:  # int_val
            if wire == 2:
                pos = 0
                while pos < len(value):
                    item, pos = _varint(value, pos)
                    ints.append(item)
            else:
                ints.append(int(value))
    if dtype is None:
        raise ValueError("tensor without dtype")
    if content is not None:
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    values = floats if floats else ints
    if not values:
        return np.zeros(shape, dtype=dtype)
    array = np.array(values, dtype=dtype)
    # TensorFlow stores a constant filled with one value as that single value.
    return np.full(shape, array[0], dtype=dtype) if array.size == 1 else array.reshape(shape)


def read_graph(path: str | Path) -> dict[str, Node]:
    """Every node of a frozen GraphDef, by name, in graph order."""
    data = Path(path).read_bytes()
    nodes: dict[str, Node] = {}
    for number, _, value in _fields(data):
        if number != 1:  # GraphDef.node
            continue
        node = Node(name="", op="")
        for n, _, v in _fields(value):
            if n == 1:
                node.name = v.decode()
            elif n == 2:
                node.op = v.decode()
            elif n == 3:
                node.inputs.append(v.decode())
            elif n == 5:
                key, attr = "", b""
                for en, _, ev in _fields(v):
                    if en == 1:
                        key = ev.decode()
                    elif en == 2:
                        attr = ev
                node.attrs[key] = attr
        nodes[node.name] = node
    return nodes
