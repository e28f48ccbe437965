"""The calculation: the GPU memory an endpoint needs, from its model (model.py) and the engine
flags modelgate renders, against what its GPUs offer (docs/plan.md, "GPU fit").

    weights   each tensor's exact bytes on the GPUs: as stored, or at the dtype the engine
              loads floating-point weights in, or at the bytes a quantization on load leaves
    KV cache  2 (K and V) x layers x KV heads x head dim x bytes per element
              x the context the engine allows x the sequences that hold it at once
    reserve   the engine's activations and runtime, per GPU (its record, with the source)
    available the product's memory x the engine's memory utilisation x the GPUs it shards over
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...engines import GpuMemory
from .model import DTYPE_BYTES, Model, layer_of
from .products import Product

FLOAT32_SERVED_AS = "float16"  # vLLM's and TGI's dtype "auto" for a float32 checkpoint


class BadFlag(Exception):
    """An engine flag whose value the fit cannot take; `index` is its place in the args."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Settings:
    """What the engine's flags (or defaults) say about its memory."""

    context: int
    sequences: int
    batch: int
    key_bytes: float
    value_bytes: float
    served_bytes: float  # of floating-point weights, where the engine casts them
    quantized_bytes: float | None  # of decoder matrices quantized on load
    shards: int
    utilisation: float
    gpu_layers: int | None  # None: every layer


@dataclass(frozen=True)
class Need:
    weights: int
    kv_cache: int
    reserve: int
    kv_per_token: int  # of every layer on the GPUs, all sequences: KV bytes per context token

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.reserve


def flag(args: Sequence[str], names: Sequence[str]) -> tuple[int, str] | None:
    """(index, value) of the last of `names` in args, as `--name value` or `--name=value`."""
    found = None
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                found = (index + 1, args[index + 1])
            elif arg.startswith(f"{name}="):
                found = (index, arg[len(name) + 1 :])
    return found


def _number(args: Sequence[str], names: Sequence[str], default: float, kind: type) -> float:
    found = flag(args, names)
    if found is None:
        return default
    index, text = found
    try:
        value = kind(text)
    except ValueError:
        raise BadFlag(index, f"{text!r} is not a {kind.__name__} ({names[0]})") from None
    if value < 0 or (kind is float and not 0 < value <= 1):
        raise BadFlag(index, f"{text!r} is out of range for {names[0]}")
    return value


def settings(memory: GpuMemory, args: Sequence[str], model: Model, gpus: int) -> Settings:
    attention = model.attention
    own_context = attention.context if attention else 0
    context_flags = memory.context_flags
    if flag(args, context_flags) is None and memory.fallback_context_flags:
        context_flags = memory.fallback_context_flags
    context = int(_number(args, context_flags, memory.default_context, int))
    context = context or own_context
    padding = memory.context_padding
    served = _served_dtype(memory, args, attention.dtype if attention else "float32")
    key = _kv_bytes(memory, args, memory.kv_dtype_flags, served)
    value = _kv_bytes(memory, args, memory.kv_value_dtype_flags or memory.kv_dtype_flags, served)
    quantization = flag(args, memory.quantization_flags)
    layers = _number(args, memory.gpu_layer_flags, -1, int) if memory.gpu_layer_flags else -1
    if memory.gpu_layer_flags and flag(args, memory.gpu_layer_flags) is None:
        layers = memory.default_gpu_layers if memory.default_gpu_layers is not None else -1
    return Settings(
        context=-(-context // padding) * padding,
        sequences=int(_number(args, memory.sequence_flags, memory.default_sequences, int)) or 1,
        batch=int(_number(args, memory.batch_flags, memory.default_batch, int)),
        key_bytes=key,
        value_bytes=value,
        served_bytes=DTYPE_BYTES[served],
        quantized_bytes=memory.quantized_on_load.get(quantization[1]) if quantization else None,
        shards=int(_number(args, memory.tensor_parallel_flags, memory.default_tensor_parallel, int))
        or gpus,
        utilisation=_number(args, memory.utilisation_flags, memory.default_utilisation, float),
        gpu_layers=None if layers < 0 else int(layers),
    )


def _served_dtype(memory: GpuMemory, args: Sequence[str], model_dtype: str) -> str:
    """The dtype floating-point weights (and an "auto" KV cache) are in on the GPUs."""
    found = flag(args, memory.dtype_flags) if memory.dtype_flags else None
    if found is not None and found[1] != "auto":
        if found[1] not in DTYPE_BYTES:
            raise BadFlag(found[0], f"{found[1]!r} is not a dtype modelgate sizes")
        return found[1]
    if model_dtype not in DTYPE_BYTES:
        return "float32"
    return (
        FLOAT32_SERVED_AS
        if memory.casts_weights and DTYPE_BYTES[model_dtype] == 4
        else (model_dtype)
    )


def _kv_bytes(memory: GpuMemory, args: Sequence[str], names: Sequence[str], served: str) -> float:
    found = flag(args, names) if names else None
    chosen = found[1] if found else memory.default_kv_dtype
    if chosen in memory.kv_dtypes:
        return memory.kv_dtypes[chosen]
    if found is not None and memory.default_kv_dtype:  # the engine knows only its list
        raise BadFlag(found[0], f"{chosen!r} is not a KV-cache type of {names[0]} modelgate sizes")
    return DTYPE_BYTES[served]


def need(memory: GpuMemory, model: Model, chosen: Settings) -> Need:
    attention = model.attention
    layers = attention.layers if attention else 0
    offloaded = layers if chosen.gpu_layers is None else min(chosen.gpu_layers, layers)
    weights = sum(
        _loaded_bytes(memory, tensor, chosen)
        for tensor in model.tensors
        if _on_gpus(tensor.name, chosen.gpu_layers, layers)
    )
    per_token = 0
    if memory.kv_cache and attention is not None:
        heads = attention.kv_heads
        if memory.tensor_parallel_flags and chosen.shards > 1:  # KV heads split, or copied
            heads = chosen.shards * max(1, attention.kv_heads // chosen.shards)
        per_layer = heads * (
            attention.key_dim * chosen.key_bytes + attention.value_dim * chosen.value_bytes
        )
        per_token = math.ceil(offloaded * per_layer * chosen.sequences)
    return Need(
        weights=weights,
        kv_cache=per_token * chosen.context,
        reserve=memory.reserve * chosen.shards,
        kv_per_token=per_token,
    )


def _on_gpus(name: str, gpu_layers: int | None, layers: int) -> bool:
    """llama.cpp's -ngl N offloads decoder layers 0..N-1, and the output layer once N passes
    the decoder's; the token embeddings stay on the CPU (llama-model.cpp, load_tensors)."""
    if gpu_layers is None:
        return True
    layer = layer_of(name)
    if layer is not None:
        return layer < gpu_layers
    return gpu_layers > layers and not name.startswith("token_embd")


def _loaded_bytes(memory: GpuMemory, tensor, chosen: Settings) -> int:
    if (
        chosen.quantized_bytes is not None
        and tensor.floating
        and tensor.dims == 2
        and layer_of(tensor.name) is not None
    ):
        return math.ceil(tensor.elements * chosen.quantized_bytes)
    if memory.casts_weights and tensor.floating:
        return math.ceil(tensor.elements * chosen.served_bytes)
    return tensor.stored_bytes


def available(product: Product, chosen: Settings) -> int:
    return int(product.memory * chosen.utilisation) * chosen.shards


def largest_context(needed: Need, room: int, chosen: Settings, own_context: int) -> int | None:
    """The largest context whose KV cache fits beside the weights and reserve, in the
    engine's padding steps, at most the model's own; None where there is no KV cache."""
    if not needed.kv_per_token:
        return None
    left = room - needed.weights - needed.reserve
    tokens = max(0, left // needed.kv_per_token)
    return min(tokens, own_context) if own_context else tokens


def smallest_product(
    needed: Need, products: Sequence[Product], accelerator: str, chosen: Settings
) -> Product | None:
    return next(
        (
            product
            for product in sorted(products)
            if product.accelerator == accelerator and available(product, chosen) >= needed.total
        ),
        None,
    )


def padded_down(tokens: int, padding: int) -> int:
    return tokens // padding * padding
