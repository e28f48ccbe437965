"""Write tiny-llama.gguf: a stand-in for a real Llama model, small enough for every test run.
(models/artifacts/tiny-qwen2/make.py writes the Qwen2 one with this code.)

Real weights do not fit a CPU test runner; this model has the same architecture (Llama: RMS
norms, rotary attention, a SwiGLU feed-forward) and format (GGUF) with random weights: two
layers, about 120,000 parameters, and a byte-level BPE tokenizer (GPT-2's byte alphabet, plus
merges learned from a few sentences below). It answers nonsense, at once, through the very
server code and protocol the real model would use.

It runs in the environment the local target serves GGUF models from (the gguf and numpy
versions of locks/engine-llamacpp.txt), from the repository root:

    python -m validator.cli.environments llamacpp   # prints its directory
    ENV/bin/python models/artifacts/tiny-llama/make.py

A fixed seed and no timestamps: the file is the same bytes for those versions, so its sha256
in models/tiny-llama.yaml changes only when they do.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

OUTPUT = Path(__file__).with_name("tiny-llama.gguf")
SENTENCES = (
    "Hello! How can I help you today?",
    "The model answers every question in one word.",
    "Say hello in one word.",
    "A tiny model is enough to test a server's protocol.",
    "Deploy, smoke-test, then merge.",
)
MERGES = 64
EMBEDDING, HEADS, LAYERS, FEED_FORWARD, CONTEXT = 64, 4, 2, 128, 256
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)
SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>")


@dataclass(frozen=True)
class Architecture:
    """What a model family's GGUF file says beyond the shared shape (llama.cpp reads it)."""

    name: str  # general.architecture
    model: str  # general.name
    tokenizer_pre: str  # the pre-tokenizer llama.cpp splits text with
    specials: tuple[str, ...]  # control tokens, after the learned ones
    bos: str
    eos: str
    add_bos: bool
    chat_template: str
    attention_bias: bool = False  # biases on the query, key and value projections
    rope_base: float | None = None  # rope.freq_base; None: llama.cpp's default (10000)


LLAMA = Architecture(
    "llama", "tiny-llama", "default", SPECIALS, SPECIALS[0], SPECIALS[1], True, CHAT_TEMPLATE
)


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in for each byte (the byte-level BPE alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


def learn_merges(alphabet: list[str]) -> list[tuple[str, str]]:
    """Plain BPE over the sentences' words: the most frequent adjacent pair, again and again
    (ties broken by the pair itself, so the result does not depend on dict order)."""
    words = Counter()
    for sentence in SENTENCES:
        for index, word in enumerate(sentence.split(" ")):
            text = ("" if index == 0 else " ") + word
            words[tuple(alphabet[b] for b in text.encode("utf-8"))] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(MERGES):
        pairs = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        words = Counter({_merge(word, best): count for word, count in words.items()})
    return merges


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


def tensors(vocabulary: int, architecture: Architecture = LLAMA) -> dict[str, np.ndarray]:
    """Random weights (numpy shapes are GGUF's dimensions reversed)."""
    random = np.random.default_rng(0)

    def weight(*shape: int) -> np.ndarray:
        return (random.standard_normal(shape) * 0.02).astype(np.float32)

    found = {
        "token_embd.weight": weight(vocabulary, EMBEDDING),
        "output_norm.weight": np.ones(EMBEDDING, dtype=np.float32),
        "output.weight": weight(vocabulary, EMBEDDING),
    }
    for layer in range(LAYERS):
        block = f"blk.{layer}"
        found |= {
            f"{block}.attn_norm.weight": np.ones(EMBEDDING, dtype=np.float32),
            f"{block}.attn_q.weight": weight(EMBEDDING, EMBEDDING),
            f"{block}.attn_k.weight": weight(EMBEDDING, EMBEDDING),
            f"{block}.attn_v.weight": weight(EMBEDDING, EMBEDDING),
            f"{block}.attn_output.weight": weight(EMBEDDING, EMBEDDING),
            f"{block}.ffn_norm.weight": np.ones(EMBEDDING, dtype=np.float32),
            f"{block}.ffn_gate.weight": weight(FEED_FORWARD, EMBEDDING),
            f"{block}.ffn_up.weight": weight(FEED_FORWARD, EMBEDDING),
            f"{block}.ffn_down.weight": weight(EMBEDDING, FEED_FORWARD),
        }
        if architecture.attention_bias:
            found |= {f"{block}.attn_{x}.bias": weight(EMBEDDING) for x in "qkv"}
    return found


def make(output: Path = OUTPUT, architecture: Architecture = LLAMA) -> str:
    alphabet = byte_alphabet()
    merges = learn_merges(alphabet)
    specials = architecture.specials
    tokens = [*alphabet, *(left + right for left, right in merges), *specials]
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(specials))
    types += [gguf.TokenType.CONTROL] * len(specials)
    writer = gguf.GGUFWriter(str(output), architecture.name)
    writer.add_name(architecture.model)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    if architecture.rope_base is not None:
        writer.add_rope_freq_base(architecture.rope_base)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(architecture.tokenizer_pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{left} {right}" for left, right in merges])
    writer.add_bos_token_id(tokens.index(architecture.bos))
    writer.add_eos_token_id(tokens.index(architecture.eos))
    writer.add_add_bos_token(architecture.add_bos)
    writer.add_chat_template(architecture.chat_template)
    for name, array in tensors(len(tokens), architecture).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hashlib.sha256(output.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{make(target)}")
