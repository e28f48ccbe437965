"""Write tiny-qwen2.gguf: a stand-in for a real Qwen2 model (Qwen2.5, which
models/chat-assistant.yaml serves on vLLM), small enough for every test run.

The same random-weight model as tiny-llama's (../tiny-llama/make.py: two layers, 64
dimensions, a byte-level BPE tokenizer learned from a few sentences, a fixed seed) in
Qwen2's architecture as llama.cpp reads it: biases on the attention's query, key and value
projections, rope base 1,000,000, Qwen2's pre-tokenizer, its special tokens
(<|endoftext|>, <|im_start|>, <|im_end|>) and its ChatML chat template, no BOS token added.

It runs in the llama.cpp environment (the gguf and numpy versions of
locks/engine-llamacpp.txt), from the repository root:

    python -m validator.cli.environments llamacpp   # prints its directory
    ENV/bin/python models/artifacts/tiny-qwen2/make.py

The file is the same bytes for those versions: its sha256 in models/chat-assistant.yaml
(spec.smoke.standIn) changes only when they, or the code, do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

OUTPUT = Path(__file__).with_name("tiny-qwen2.gguf")
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tiny_llama():
    """The shared code: ../tiny-llama/make.py, loaded by its path (scripts are no package)."""
    path = Path(__file__).resolve().parents[1] / "tiny-llama" / "make.py"
    spec = importlib.util.spec_from_file_location("tiny_llama_make", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def make(output: Path = OUTPUT) -> str:
    tiny = _tiny_llama()
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    qwen2 = tiny.Architecture(
        name="qwen2",
        model="tiny-qwen2",
        tokenizer_pre="qwen2",
        specials=specials,
        bos=specials[0],
        eos=specials[2],
        add_bos=False,
        chat_template=CHATML,
        attention_bias=True,
        rope_base=1_000_000.0,
    )
    return tiny.make(output, qwen2)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{make(target)}")
