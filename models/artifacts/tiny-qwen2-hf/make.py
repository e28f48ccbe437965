"""Write model/: a random-weight Qwen2 in Hugging Face's layout, the stand-in vLLM serves for
models/chat-assistant.yaml (Qwen2.5-0.5B-Instruct) on the local target.

What vLLM reads of the real model, at a size every test run can afford: the architecture
(Qwen2ForCausalLM: grouped-query attention with biases on the query, key and value
projections, rope base 1,000,000, tied embeddings), its context limit (32,768 positions, so
that --max-model-len is judged as on the real model), the tokenizer type (Qwen2Tokenizer: a
byte-level BPE after Qwen2's pre-tokenizer split, NFC-normalised, with <|endoftext|>,
<|im_start|> and <|im_end|>) and Qwen2.5's ChatML chat template. The weights are random
(two layers, 64 dimensions) and the BPE is learned here from a few sentences: it answers
nonsense, at once, through vLLM's own server and OpenAI API.

It runs in the vLLM environment (the safetensors, tokenizers and numpy versions of
locks/engine-vllm.txt), from the repository root:

    python -m validator.cli.environments vllm   # prints its directory
    ENV/bin/python models/artifacts/tiny-qwen2-hf/make.py

A fixed seed, sorted keys and no timestamps: the folder is the same bytes for those
versions, so its treeSha256 in models/chat-assistant.yaml (spec.smoke.standIn) changes only
when they, or this script, do.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

OUTPUT = Path(__file__).with_name("model")
SENTENCES = (
    "Hello! How can I help you today?",
    "The model answers every question in one word.",
    "Say hello in one word.",
    "A tiny model is enough to test a server's protocol.",
    "Deploy, smoke-test, then merge.",
)
MERGES = 64
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, LAYERS, FEED_FORWARD = 64, 2, 1, 32, 2, 128
CONTEXT = 32768  # Qwen2.5-0.5B-Instruct's max_position_embeddings
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIALS = (ENDOFTEXT, IM_START, IM_END)
# Qwen2's pre-tokenizer split (its tokenizer.json), before the byte-level mapping
SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2.5's chat template without its tool-calling branches: the default system message,
# then ChatML turns
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def learn_merges() -> list[tuple[str, str]]:
    """Plain BPE over the sentences' byte-level words: the most frequent adjacent pair, again
    and again (ties broken by the pair itself, so the result does not depend on dict order)."""
    alphabet = byte_alphabet()
    words: Counter[tuple[str, ...]] = Counter()
    for sentence in SENTENCES:
        for index, word in enumerate(sentence.split(" ")):
            text = ("" if index == 0 else " ") + word
            words[tuple(alphabet[byte] for byte in text.encode("utf-8"))] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(MERGES):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = Counter({_merge(word, best): count for word, count in words.items()})
    return merges


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in for each byte (what the ByteLevel pre-tokenizer maps to)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged, index = [], 0
    while index < len(word):
        if word[index : index + 2] == pair:
            merged.append(pair[0] + pair[1])
            index += 2
        else:
            merged.append(word[index])
            index += 1
    return tuple(merged)


def tokenizer() -> Tokenizer:
    merges = learn_merges()
    tokens = [*byte_alphabet(), *dict.fromkeys(left + right for left, right in merges)]
    made = Tokenizer(models.BPE({token: i for i, token in enumerate(tokens)}, merges))
    made.normalizer = normalizers.NFC()
    made.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    made.decoder = decoders.ByteLevel()
    made.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in SPECIALS]
    )
    return made


def weights(vocabulary: int) -> dict[str, np.ndarray]:
    """Random weights under Qwen2ForCausalLM's names (the output layer is the embedding's)."""
    random = np.random.default_rng(0)

    def weight(*shape: int) -> np.ndarray:
        return (random.standard_normal(shape) * 0.02).astype(np.float32)

    found = {
        "model.embed_tokens.weight": weight(vocabulary, HIDDEN),
        "model.norm.weight": np.ones(HIDDEN, dtype=np.float32),
    }
    query, key_value = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    for layer in range(LAYERS):
        block = f"model.layers.{layer}"
        found |= {
            f"{block}.input_layernorm.weight": np.ones(HIDDEN, dtype=np.float32),
            f"{block}.self_attn.q_proj.weight": weight(query, HIDDEN),
            f"{block}.self_attn.q_proj.bias": weight(query),
            f"{block}.self_attn.k_proj.weight": weight(key_value, HIDDEN),
            f"{block}.self_attn.k_proj.bias": weight(key_value),
            f"{block}.self_attn.v_proj.weight": weight(key_value, HIDDEN),
            f"{block}.self_attn.v_proj.bias": weight(key_value),
            f"{block}.self_attn.o_proj.weight": weight(HIDDEN, query),
            f"{block}.post_attention_layernorm.weight": np.ones(HIDDEN, dtype=np.float32),
            f"{block}.mlp.gate_proj.weight": weight(FEED_FORWARD, HIDDEN),
            f"{block}.mlp.up_proj.weight": weight(FEED_FORWARD, HIDDEN),
            f"{block}.mlp.down_proj.weight": weight(HIDDEN, FEED_FORWARD),
        }
    return found


def config(vocabulary: int, ids: dict[str, int]) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocabulary,
        "hidden_size": HIDDEN,
        "intermediate_size": FEED_FORWARD,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": CONTEXT,
        "max_window_layers": LAYERS,
        "use_sliding_window": False,
        "sliding_window": None,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-06,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": "float32",
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": ids[IM_END],
    }


def tokenizer_config(ids: dict[str, int]) -> dict:
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": {
            str(ids[token]): {
                "content": token,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for token in SPECIALS
        },
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "split_special_tokens": False,
        "model_max_length": CONTEXT,
        "chat_template": CHAT_TEMPLATE,
    }


def generation_config(ids: dict[str, int]) -> dict:
    return {
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": [ids[IM_END], ids[ENDOFTEXT]],
        "pad_token_id": ids[ENDOFTEXT],
        "do_sample": True,
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
    }


def make(output: Path = OUTPUT) -> None:
    output.mkdir(parents=True, exist_ok=True)
    made = tokenizer()
    vocabulary = made.get_vocab_size(with_added_tokens=True)
    ids = {token: made.token_to_id(token) for token in SPECIALS}
    (output / "tokenizer.json").write_text(made.to_str(pretty=True) + "\n", encoding="utf-8")
    for name, content in (
        ("config.json", config(vocabulary, ids)),
        ("tokenizer_config.json", tokenizer_config(ids)),
        ("generation_config.json", generation_config(ids)),
    ):
        text = json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (output / name).write_text(text, encoding="utf-8")
    save_file(weights(vocabulary), str(output / "model.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    make(target)
    print(target)
