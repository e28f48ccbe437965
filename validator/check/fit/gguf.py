"""GGUF headers (ggml-org/ggml, docs/gguf.md, versions 2 and 3): metadata key-value pairs, then
one info per tensor (name, dimensions, ggml type, offset). Parsed here over a read-only
memory map, so that a hostile count or length can never allocate: every read is checked
against the file's size and the limits below before it is made."""

from __future__ import annotations

import math
import mmap
import struct
from pathlib import Path

from .model import Attention, Model, Tensor, Unreadable, positive, read_mapped

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MAX_TENSORS = 1 << 20
MAX_KEYS = 1 << 20
MAX_NAME = 1 << 16  # ggml's own limit is 64 bytes; keys and names are short
MAX_KEPT_STRING = 1 << 12  # longer strings (chat templates) are skipped, not kept
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 2
MAX_ITEMS = 1 << 21  # items of an array walked one by one: a vocabulary is under 300,000
DEFAULT_ALIGNMENT = 32
# ggml type id -> (name, elements per block, bytes per block): ggml.h / gguf-py constants
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}
_FLOATING = {"F32", "F16", "BF16", "F64"}
# metadata value type -> struct format (8: string, 9: array)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALARS |= {11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


class _Cursor:
    def __init__(self, data: mmap.mmap | bytes, shown: str) -> None:
        self.data, self.at, self.shown = data, 0, shown

    def take(self, count: int) -> bytes:
        if count < 0 or self.at + count > len(self.data):
            raise Unreadable(
                f"{self.shown}: the header asks for {count} bytes at byte {self.at} of a file "
                f"of {len(self.data)}"
            )
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def skip(self, count: int) -> None:
        if count < 0 or self.at + count > len(self.data):
            raise Unreadable(f"{self.shown}: the header runs past the end of the file")
        self.at += count

    def unpack(self, fmt: str) -> int | float | bool:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self, limit: int) -> str | None:
        """A string, or None where it is longer than `limit` (then skipped)."""
        length = int(self.unpack("<Q"))
        if length > limit:
            self.skip(length)
            return None
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise Unreadable(f"{self.shown}: a string at byte {self.at} is not UTF-8") from None


def read(path: Path, shown: str) -> Model:
    return read_mapped(path, shown, 24, "too short for a GGUF header", parse)


def parse(data: mmap.mmap | bytes, shown: str) -> Model:
    cursor = _Cursor(data, shown)
    if cursor.take(4) != MAGIC:
        raise Unreadable(f"{shown}: no GGUF magic: not a GGUF file")
    version = cursor.unpack("<I")
    if version not in VERSIONS:
        raise Unreadable(f"{shown}: GGUF version {version}; modelgate reads versions 2 and 3")
    tensor_count, key_count = cursor.unpack("<Q"), cursor.unpack("<Q")
    if tensor_count > MAX_TENSORS or key_count > MAX_KEYS:
        raise Unreadable(
            f"{shown}: {tensor_count} tensors and {key_count} metadata keys, over the limits "
            f"of {MAX_TENSORS} and {MAX_KEYS}"
        )
    metadata = {}
    for _ in range(int(key_count)):
        key = cursor.string(MAX_NAME)
        if key is None:
            raise Unreadable(f"{shown}: a metadata key over {MAX_NAME} bytes")
        metadata[key] = _value(cursor, int(cursor.unpack("<I")), 0)
    infos = [_tensor_info(cursor) for _ in range(int(tensor_count))]
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not (isinstance(alignment, int) and alignment > 0 and alignment & (alignment - 1) == 0):
        raise Unreadable(f"{shown}: general.alignment {alignment!r} is not a power of two")
    start = -(-cursor.at // alignment) * alignment
    tensors = [_tensor(info, len(data) - start, shown) for info in infos]
    return Model(tuple(tensors), _attention(metadata, shown))


def _value(cursor: _Cursor, kind: int, depth: int) -> object:
    if kind in _SCALARS:
        return cursor.unpack(_SCALARS[kind])
    if kind == STRING:
        return cursor.string(MAX_KEPT_STRING)
    if kind != ARRAY or depth >= MAX_ARRAY_DEPTH:
        raise Unreadable(f"{cursor.shown}: metadata value of type {kind} at byte {cursor.at}")
    item_kind, count = int(cursor.unpack("<I")), int(cursor.unpack("<Q"))
    if item_kind in _SCALARS:
        cursor.skip(count * struct.calcsize(_SCALARS[item_kind]))
    else:
        if count > len(cursor.data) - cursor.at:  # every item takes a byte at least
            raise Unreadable(f"{cursor.shown}: an array of {count} items past the end of file")
        if count > MAX_ITEMS:
            raise Unreadable(
                f"{cursor.shown}: an array of {count} strings or arrays, over the limit of "
                f"{MAX_ITEMS}"
            )
        for _ in range(count):
            _value(cursor, item_kind, depth + 1)
    return _Array(count)


class _Array(int):
    """An array's length: arrays are skipped (a per-layer list is not a single value)."""


def _tensor_info(cursor: _Cursor) -> tuple[str, list[int], int, int]:
    name = cursor.string(MAX_NAME)
    if name is None:
        raise Unreadable(f"{cursor.shown}: a tensor name over {MAX_NAME} bytes")
    dims = int(cursor.unpack("<I"))
    if dims > MAX_DIMS:
        raise Unreadable(f"{cursor.shown}: tensor {name!r} has {dims} dimensions, over 4")
    shape = [int(cursor.unpack("<Q")) for _ in range(dims)]
    return name, shape, int(cursor.unpack("<I")), int(cursor.unpack("<Q"))


def _tensor(info: tuple[str, list[int], int, int], data_size: int, shown: str) -> Tensor:
    name, shape, kind, offset = info
    if kind not in GGML_TYPES:
        raise Unreadable(f"{shown}: tensor {name!r} has ggml type {kind}, unknown to modelgate")
    type_name, block, block_bytes = GGML_TYPES[kind]
    elements = math.prod(shape)
    if elements % block:
        raise Unreadable(
            f"{shown}: tensor {name!r} has {elements} elements, not whole blocks of {block} "
            f"({type_name})"
        )
    size = elements // block * block_bytes
    if offset + size > data_size:
        raise Unreadable(
            f"{shown}: tensor {name!r} ends at byte {offset + size} of a data section of "
            f"{data_size}"
        )
    return Tensor(name, type_name, elements, size, type_name in _FLOATING, len(shape))


def _attention(metadata: dict[str, object], shown: str) -> Attention:
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise Unreadable(f"{shown}: no general.architecture in the metadata")

    def need(key: str, default: object = None) -> int:
        value = metadata.get(f"{architecture}.{key}", default)
        if value is None:
            raise Unreadable(f"{shown}: no {architecture}.{key}, which the KV cache's size needs")
        if isinstance(value, _Array):
            raise Unreadable(
                f"{shown}: {architecture}.{key} differs by layer; modelgate sizes one value"
            )
        return positive(value, f"{architecture}.{key}", shown)

    heads = need("attention.head_count")
    embedding = need("embedding_length")
    return Attention(
        layers=need("block_count"),
        kv_heads=need("attention.head_count_kv", heads),
        key_dim=need("attention.key_length", embedding // heads),
        value_dim=need("attention.value_length", embedding // heads),
        context=need("context_length"),
        dtype="float16",  # llama.cpp's KV cache is f16 unless --cache-type-k/-v say otherwise
    )
