"""A Hugging Face model's config.json: the attention shape its KV cache has (transformers'
PretrainedConfig names: num_hidden_layers, num_attention_heads, num_key_value_heads,
head_dim, hidden_size, max_position_embeddings, torch_dtype)."""

from __future__ import annotations

import json
from typing import Any

from .model import Attention, Unreadable, positive

MAX_CONFIG = 4 * 2**20
NAME = "config.json"


def attention(text: bytes, shown: str) -> Attention:
    if len(text) > MAX_CONFIG:
        raise Unreadable(f"{shown}: {len(text)} bytes, over the {MAX_CONFIG}-byte limit")
    try:
        config = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{shown}: not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise Unreadable(f"{shown}: not a JSON object")
    # a multimodal model's language model keeps its own config
    if "num_hidden_layers" not in config and isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    return _attention(config, shown)


def _attention(config: dict[str, Any], shown: str) -> Attention:
    def need(key: str) -> int:
        if key not in config:
            raise Unreadable(f"{shown}: no {key}, which the KV cache's size needs")
        return positive(config[key], key, shown)

    layers = need("num_hidden_layers")
    heads = need("num_attention_heads")
    kv_heads = (
        positive(config["num_key_value_heads"], "num_key_value_heads", shown)
        if config.get("num_key_value_heads") is not None
        else heads
    )
    if config.get("head_dim") is not None:
        head_dim = positive(config["head_dim"], "head_dim", shown)
    else:
        hidden = need("hidden_size")
        if hidden % heads:
            raise Unreadable(f"{shown}: hidden_size {hidden} is not a multiple of {heads} heads")
        head_dim = hidden // heads
    dtype = config.get("torch_dtype", config.get("dtype", "float32"))
    if not isinstance(dtype, str):
        raise Unreadable(f"{shown}: torch_dtype is {dtype!r}, not a dtype name")
    return Attention(
        layers=layers,
        kv_heads=kv_heads,
        key_dim=head_dim,
        value_dim=head_dim,
        context=need("max_position_embeddings"),
        dtype=dtype,
    )
