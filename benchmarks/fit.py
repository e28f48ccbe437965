"""How long does the GPU fit take for a 70B model from its safetensors headers alone?

A repository with one vLLM spec of an hf:// model with Llama-3-70B's shapes (80 layers, 8192
hidden, 64 heads, 8 KV heads, 28672 feed-forward, 128256 vocabulary, bfloat16) whose
config.json, index and 30 shard headers are recorded in models/headers/ (as `modelgate fit
refresh` writes them): the fit (check.fit.assess: the record read and checked against its
sha256s, every header parsed, the calculation) on 4 x NVIDIA-A100-SXM4-80GB with tensor
parallel 4, best of R. Target: at most 50 ms.

It is a report, not a test: it exits 0 whether or not the target is met.

    .venv/bin/python benchmarks/fit.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from validator.check import load  # noqa: E402
from validator.check.fit import assess, products, recorded  # noqa: E402

REVISION = "a" * 40
SOURCE = "hf://meta-llama/Meta-Llama-3-70B-Instruct"
LAYERS, HIDDEN, HEADS, KV, FFN, VOCAB, SHARDS = 80, 8192, 64, 8, 28672, 128256, 30
TARGET_MS = 50.0


def tensors() -> dict[str, list[int]]:
    head = HIDDEN // HEADS
    found = {"model.embed_tokens.weight": [VOCAB, HIDDEN]}
    for layer in range(LAYERS):
        block = f"model.layers.{layer}"
        found |= {
            f"{block}.self_attn.q_proj.weight": [HIDDEN, HIDDEN],
            f"{block}.self_attn.k_proj.weight": [KV * head, HIDDEN],
            f"{block}.self_attn.v_proj.weight": [KV * head, HIDDEN],
            f"{block}.self_attn.o_proj.weight": [HIDDEN, HIDDEN],
            f"{block}.mlp.gate_proj.weight": [FFN, HIDDEN],
            f"{block}.mlp.up_proj.weight": [FFN, HIDDEN],
            f"{block}.mlp.down_proj.weight": [HIDDEN, FFN],
            f"{block}.input_layernorm.weight": [HIDDEN],
            f"{block}.post_attention_layernorm.weight": [HIDDEN],
        }
    return found | {"model.norm.weight": [HIDDEN], "lm_head.weight": [VOCAB, HIDDEN]}


def record() -> dict:
    names = list(tensors().items())
    per_shard = math.ceil(len(names) / SHARDS)
    files, weight_map = {}, {}
    for number in range(SHARDS):
        shard = f"model-{number + 1:05}-of-{SHARDS:05}.safetensors"
        header, offset = {}, 0
        for name, shape in names[number * per_shard : (number + 1) * per_shard]:
            size = math.prod(shape) * 2
            header[name] = {
                "dtype": "BF16",
                "shape": shape,
                "data_offsets": [offset, offset + size],
            }
            offset += size
            weight_map[name] = shard
        files[shard] = _entry("header", json.dumps(header))
    config = {
        "num_hidden_layers": LAYERS,
        "hidden_size": HIDDEN,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV,
        "max_position_embeddings": 8192,
        "torch_dtype": "bfloat16",
    }
    files["config.json"] = _entry("text", json.dumps(config))
    files["model.safetensors.index.json"] = _entry("text", json.dumps({"weight_map": weight_map}))
    return {"source": SOURCE, "revision": REVISION, "files": files}


def _entry(field: str, text: str) -> dict[str, str]:
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), field: text}


SPEC = f"""apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: llama-70b}}
spec:
  model: {{artifact: "{SOURCE}", revision: "{REVISION}", format: huggingface}}
  engine: {{name: vllm, protocol: openai, args: ["--tensor-parallel-size", "4",
            "--max-model-len", "8192"]}}
  resources: {{gpu: 4, acceleratorProduct: NVIDIA-A100-SXM4-80GB}}
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat
    root = Path(tempfile.mkdtemp(prefix="modelgate-fit-"))
    try:
        recorded.write(root, "llama-70b", record())
        document, problems = load.load_text(SPEC, "models/llama-70b.yaml")
        assert document is not None and not problems, problems
        values = load.load_file(ROOT / "templates" / "values.yaml")[0].data
        table = products.from_values(values)
        times, fit = [], None
        for _ in range(repeat):
            start = time.perf_counter()
            fit, findings = assess(document, root, table)
            times.append((time.perf_counter() - start) * 1000)
        assert fit is not None, findings
        best = min(times)
        size = (root / recorded.shown_path("llama-70b")).stat().st_size
        print(f"record: {SHARDS} shard headers, {len(tensors())} tensors, {size / 1e6:.2f} MB")
        print(
            f"fit: weights {fit.weights_bytes / 2**30:.1f} GiB, KV cache "
            f"{fit.kv_cache_bytes / 2**30:.2f} GiB, needed {fit.needed_bytes / 2**30:.1f} GiB "
            f"of {fit.available_bytes / 2**30:.1f} GiB on {fit.gpus} x {fit.product} "
            f"(headroom {fit.headroom:.1%})"
        )
        print(f"fit of a 70B safetensors index: best {best:.1f} ms of {repeat}")
        verdict = "MET" if best <= TARGET_MS else "MISSED"
        print(
            f"target: GPU fit of a 70B safetensors index in {TARGET_MS:.0f} ms: {verdict} "
            f"({best:.1f} ms)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
