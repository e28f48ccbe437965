"""Safetensors headers: an 8-byte little-endian length, then that many bytes of JSON naming
each tensor's dtype, shape and byte range (huggingface/safetensors, "Format"). Only the header
is read; its sizes are bounded before anything is allocated, and every tensor's range must
match its dtype and shape."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

from .model import Tensor, Unreadable

MAX_HEADER = 100_000_000  # the safetensors library's own limit (MAX_HEADER_SIZE)
MAX_INDEX = 64 * 2**20  # an index names tensors and shards: a 70B model's is 60 KB
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_SHARD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$")  # a file beside the index
# dtype -> (bytes per element, floating point)
DTYPES: dict[str, tuple[float, bool]] = {
    "BOOL": (1, False),
    "U8": (1, False),
    "I8": (1, False),
    "F8_E5M2": (1, False),  # already quantized: engines load it as stored
    "F8_E4M3": (1, False),
    "F8_E8M0": (1, False),
    "I16": (2, False),
    "U16": (2, False),
    "F16": (2, True),
    "BF16": (2, True),
    "I32": (4, False),
    "U32": (4, False),
    "F32": (4, True),
    "F64": (8, True),
    "I64": (8, False),
    "U64": (8, False),
}


def read_file(path: Path, shown: str) -> list[Tensor]:
    """The tensors a .safetensors file's header lists (only the header is read)."""
    try:
        with path.open("rb") as file:
            size = path.stat().st_size
            prefix = file.read(8)
            length = _length(prefix, size, shown)
            header = file.read(length)
    except OSError as exc:
        raise Unreadable(f"{shown}: cannot be read ({exc.strerror})") from None
    return parse_header(header, shown, size - 8 - length)


def _length(prefix: bytes, size: int, shown: str) -> int:
    if len(prefix) < 8:
        raise Unreadable(f"{shown}: {len(prefix)} bytes, too short for a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER:
        raise Unreadable(
            f"{shown}: header of {length} bytes, over the {MAX_HEADER}-byte limit of the format"
        )
    if size is not None and 8 + length > size:
        raise Unreadable(f"{shown}: header of {length} bytes in a file of {size}")
    return length


def header_length(prefix: bytes, shown: str) -> int:
    """The length its first 8 bytes give a header (for ranged reads of a remote file)."""
    return _length(prefix, 8 + MAX_HEADER, shown)


def parse_header(header: bytes, shown: str, data_size: int | None) -> list[Tensor]:
    """The tensors a header lists; `data_size`, when the file's size is known, bounds their
    byte ranges."""
    try:
        entries = json.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{shown}: the safetensors header is not JSON ({exc})") from None
    if not isinstance(entries, dict):
        raise Unreadable(f"{shown}: the safetensors header is not a JSON object")
    return [
        _tensor(name, entry, shown, data_size)
        for name, entry in entries.items()
        if name != "__metadata__"
    ]


def _tensor(name: str, entry: Any, shown: str, data_size: int | None) -> Tensor:
    where = f"{shown}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise Unreadable(f"{where} is not a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise Unreadable(f"{where} has dtype {dtype!r}, which safetensors does not define")
    if not (isinstance(shape, list) and all(_whole(d) for d in shape) and len(shape) <= 16):
        raise Unreadable(f"{where} has shape {shape!r}, not a list of whole numbers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_whole, offsets))):
        raise Unreadable(f"{where} has data_offsets {offsets!r}, not [begin, end]")
    begin, end = offsets
    elements = math.prod(shape)
    size, floating = DTYPES[dtype]
    if end < begin or end - begin != elements * size:
        raise Unreadable(
            f"{where}: data_offsets {offsets} hold {end - begin} bytes, where {dtype} "
            f"{shape} takes {int(elements * size)}"
        )
    if data_size is not None and end > data_size:
        raise Unreadable(f"{where} ends at byte {end} of a data section of {data_size}")
    return Tensor(name, dtype, elements, end - begin, floating, len(shape))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62


def shards(index_text: bytes, shown: str) -> tuple[list[str], int | None]:
    """The shard files an index names, in order, and its metadata.total_size if any."""
    if len(index_text) > MAX_INDEX:
        raise Unreadable(f"{shown}: {len(index_text)} bytes, over the {MAX_INDEX}-byte limit")
    try:
        index = json.loads(index_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{shown}: not JSON ({exc})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise Unreadable(f"{shown}: no weight_map naming the shard of each tensor")
    named = list(dict.fromkeys(weight_map.values()))
    for shard in named:
        if not (isinstance(shard, str) and _SHARD.match(shard)):
            raise Unreadable(
                f"{shown}: weight_map names {shard!r}, not a .safetensors file beside the index"
            )
    total = (index.get("metadata") or {}).get("total_size")
    return named, total if _whole(total) else None


def read_folder(folder: Path, shown: str) -> list[Tensor]:
    """Every tensor of a model folder: the shards its index names (each header read), else
    its one model.safetensors."""
    index = folder / INDEX
    if index.is_file():
        named, _ = shards(_bounded_read(index, f"{shown}/{INDEX}"), f"{shown}/{INDEX}")
        missing = [shard for shard in named if not (folder / shard).is_file()]
        if missing:
            raise Unreadable(
                f"{shown}/{INDEX} names {missing[0]}, which is not in the folder "
                f"({len(missing)} of {len(named)} shards missing)"
            )
        return [t for shard in named for t in read_file(folder / shard, f"{shown}/{shard}")]
    single = folder / SINGLE
    if single.is_file():
        return read_file(single, f"{shown}/{SINGLE}")
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return read_file(found[0], f"{shown}/{found[0].name}")
    raise Unreadable(
        f"{shown}: no {INDEX} and no single .safetensors file: the weights cannot be sized"
    )


def _bounded_read(path: Path, shown: str) -> bytes:
    if path.stat().st_size > MAX_INDEX:
        raise Unreadable(f"{shown}: over the {MAX_INDEX}-byte limit of an index")
    return path.read_bytes()
