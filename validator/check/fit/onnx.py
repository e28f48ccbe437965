"""ONNX initializers: the weights of an ONNX model, read from its protobuf without the onnx
package (onnx/onnx.proto: ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto dims
= 1, data_type = 2, name = 8). Only the field headers are walked, over a read-only memory
map: raw data is skipped, never read, and external data is never followed (its size is the
initializer's dims times its dtype's, whatever file would hold it)."""

from __future__ import annotations

import math
import mmap
from pathlib import Path

from .model import Model, Tensor, Unreadable, read_mapped

MAX_INITIALIZERS = 1 << 20
MAX_DIMS = 32
GRAPH, INITIALIZER = 7, 5
DIMS, DATA_TYPE, NAME = 1, 2, 8
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
# TensorProto.DataType -> (name, bytes per element); STRING (8) has no fixed size
DATA_TYPES: dict[int, tuple[str, float]] = {
    1: ("FLOAT", 4),
    2: ("UINT8", 1),
    3: ("INT8", 1),
    4: ("UINT16", 2),
    5: ("INT16", 2),
    6: ("INT32", 4),
    7: ("INT64", 8),
    9: ("BOOL", 1),
    10: ("FLOAT16", 2),
    11: ("DOUBLE", 8),
    12: ("UINT32", 4),
    13: ("UINT64", 8),
    14: ("COMPLEX64", 8),
    15: ("COMPLEX128", 16),
    16: ("BFLOAT16", 2),
    17: ("FLOAT8E4M3FN", 1),
    18: ("FLOAT8E4M3FNUZ", 1),
    19: ("FLOAT8E5M2", 1),
    20: ("FLOAT8E5M2FNUZ", 1),
    21: ("UINT4", 0.5),
    22: ("INT4", 0.5),
    23: ("FLOAT4E2M1", 0.5),
}
_FLOATING = {"FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16"}


def read(path: Path, shown: str) -> Model:
    return read_mapped(path, shown, 1, "an empty file, not an ONNX model", parse)


def parse(data: mmap.mmap | bytes, shown: str) -> Model:
    graphs = [span for number, span in _fields(data, 0, len(data), shown) if number == GRAPH]
    if not graphs:
        raise Unreadable(f"{shown}: no graph: not an ONNX model")
    tensors = []
    for number, (begin, end) in _fields(data, *graphs[-1], shown):
        if number == INITIALIZER:
            if len(tensors) >= MAX_INITIALIZERS:
                raise Unreadable(f"{shown}: over {MAX_INITIALIZERS} initializers")
            tensors.append(_initializer(data, begin, end, shown))
    return Model(tuple(tensors), None)


def _initializer(data: mmap.mmap | bytes, begin: int, end: int, shown: str) -> Tensor:
    dims: list[int] = []
    data_type, name = 0, ""
    for number, value in _fields(data, begin, end, shown, values=True):
        if number == DIMS:
            dims.extend(value if isinstance(value, list) else [value])
            if len(dims) > MAX_DIMS:
                raise Unreadable(f"{shown}: an initializer with over {MAX_DIMS} dimensions")
        elif number == DATA_TYPE and isinstance(value, int):
            data_type = value
        elif number == NAME and isinstance(value, tuple):
            name = bytes(data[value[0] : min(value[1], value[0] + 256)]).decode("utf-8", "replace")
    if data_type not in DATA_TYPES:
        raise Unreadable(
            f"{shown}: initializer {name!r} has data type {data_type}, which has no fixed size"
        )
    type_name, size = DATA_TYPES[data_type]
    if any(d < 0 or d >= 2**62 for d in dims):
        raise Unreadable(f"{shown}: initializer {name!r} has dims {dims}")
    elements = math.prod(dims)
    return Tensor(name, type_name, elements, math.ceil(elements * size), type_name in _FLOATING)


def _fields(data, begin: int, end: int, shown: str, values: bool = False):
    """(field number, span or value) of each field of the message in data[begin:end]:
    length-delimited fields as (begin, end) spans (packed dims as a list of values when
    `values`), varints as ints."""
    at = begin
    while at < end:
        key, at = _varint(data, at, end, shown)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, at = _varint(data, at, end, shown)
            yield number, value
        elif wire == LENGTH:
            length, at = _varint(data, at, end, shown)
            if at + length > end:
                raise Unreadable(f"{shown}: a field of {length} bytes runs past its message")
            if values and number == DIMS:
                yield number, _packed(data, at, at + length, shown)
            else:
                yield number, (at, at + length)
            at += length
        elif wire in (FIXED64, FIXED32):
            at += 8 if wire == FIXED64 else 4
        else:
            raise Unreadable(f"{shown}: protobuf wire type {wire} at byte {at}: not ONNX")
    if at != end:
        raise Unreadable(f"{shown}: a field runs past its message at byte {at}")


def _packed(data, begin: int, end: int, shown: str) -> list[int]:
    found, at = [], begin
    while at < end:
        value, at = _varint(data, at, end, shown)
        found.append(value)
        if len(found) > MAX_DIMS:
            raise Unreadable(f"{shown}: an initializer with over {MAX_DIMS} dimensions")
    return found


def _varint(data, at: int, end: int, shown: str) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if at >= end:
            raise Unreadable(f"{shown}: a number runs past the end of its message")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    raise Unreadable(f"{shown}: a number of over 10 bytes at byte {at}")
