"""What the fit needs of a model, whatever format its files are in: every tensor with its dtype
and exact bytes, and the attention shape that sizes its KV cache. The readers (safetensors.py,
gguf.py, onnx.py, config.py) make these from the model's own headers, never from a name."""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class Unreadable(Exception):
    """A header that is missing, malformed or out of bounds; the message names the file and
    what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    dtype: str  # as the file names it: BF16, F32, Q4_K, FLOAT16
    elements: int
    stored_bytes: int
    floating: bool  # a floating-point dtype an engine may load in another one
    dims: int = 2


@dataclass(frozen=True, slots=True)
class Attention:
    """The shape of the KV cache of one token: K and V of each layer."""

    layers: int
    kv_heads: int
    key_dim: int
    value_dim: int
    context: int  # the model's own context length (max_position_embeddings, context_length)
    dtype: str  # the floating-point dtype the model computes in: bfloat16, float16, float32


@dataclass(frozen=True, slots=True)
class Model:
    tensors: tuple[Tensor, ...]
    attention: Attention | None  # None: no KV cache (an ONNX model)

    @property
    def stored_bytes(self) -> int:
        return sum(tensor.stored_bytes for tensor in self.tensors)


DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}
# the decoder layer a tensor belongs to, in Hugging Face and GGUF names
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|blk)\.(\d+)\.")


def layer_of(name: str) -> int | None:
    found = _LAYER.search(name)
    return int(found.group(1)) if found else None


def positive(value: object, what: str, where: str) -> int:
    """A whole number above zero, or Unreadable naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Unreadable(f"{where}: {what} is {value!r}, not a whole number above zero")
    return value


def read_mapped(
    path: Path, shown: str, shortest: int, too_short: str, parse: Callable[[mmap.mmap, str], Model]
) -> Model:
    """parse() of the file mapped into memory (a reader then touches only the header pages),
    refused with `too_short` below `shortest` bytes; Unreadable when it cannot be read."""
    try:
        with path.open("rb") as file:
            if path.stat().st_size < shortest:
                raise Unreadable(f"{shown}: {too_short}")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return parse(data, shown)
    except OSError as exc:
        raise Unreadable(f"{shown}: cannot be read ({exc.strerror})") from None
