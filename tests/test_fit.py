"""GPU fit (validator/check/fit/): models written here in their real formats (safetensors with
config.json, GGUF, ONNX protobuf), validated as specs of each engine against products whose
memory puts them just inside and just outside the fit; hostile and broken headers; an hf://
model's headers read through the Hugging Face client from a local Hub (HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import http.server
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from validator.check import workspace
from validator.check.fit import gguf, memory, onnx, safetensors
from validator.check.fit.model import Attention, Model, Unreadable
from validator.engines import ENGINES

from .conftest import PROJECT, Scaffold, run_cli, tree_sha256

CHAT = (PROJECT / "models" / "chat-assistant.yaml").read_text(encoding="utf-8")
TINY_LLAMA = PROJECT / "models" / "artifacts" / "tiny-llama" / "tiny-llama.gguf"
FOLDER = "models/artifacts/tiny-hf"
REVISION = "7ae557604adf67be50417f59c2c2f167def9a775"
# a small Hugging Face decoder: grouped-query attention, bfloat16 matrices and float32 norms
LAYERS, HIDDEN, HEADS, KV_HEADS, VOCAB, FFN, CONTEXT = 2, 64, 4, 2, 128, 128, 2048
HEAD_DIM = HIDDEN // HEADS
CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "num_hidden_layers": LAYERS,
    "hidden_size": HIDDEN,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
    "intermediate_size": FFN,
    "vocab_size": VOCAB,
    "max_position_embeddings": CONTEXT,
    "torch_dtype": "bfloat16",
}
ENV = "    env:\n      - name: HF_TOKEN\n        valueFrom: {name: huggingface, key: token}\n"
CHAT_ENDPOINT = CHAT[CHAT.index("  endpoint:\n") : CHAT.index("  environments:")]
INTERNAL_ENDPOINT = "  endpoint:\n    visibility: internal\n    auth: {type: none}\n    tls: true\n"
SIZES = {"BF16": 2, "F32": 4, "F16": 2, "I32": 4}


def hf_tensors(
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    kv: int = KV_HEADS,
    ffn: int = FFN,
    vocab: int = VOCAB,
    heads: int = HEADS,
) -> dict:
    """name -> (dtype, shape), as a Qwen2/Llama checkpoint names them."""
    head = hidden // heads
    found = {"model.embed_tokens.weight": ("BF16", [vocab, hidden])}
    for layer in range(layers):
        block = f"model.layers.{layer}"
        found |= {
            f"{block}.self_attn.q_proj.weight": ("BF16", [hidden, hidden]),
            f"{block}.self_attn.k_proj.weight": ("BF16", [kv * head, hidden]),
            f"{block}.self_attn.v_proj.weight": ("BF16", [kv * head, hidden]),
            f"{block}.self_attn.o_proj.weight": ("BF16", [hidden, hidden]),
            f"{block}.mlp.gate_proj.weight": ("BF16", [ffn, hidden]),
            f"{block}.mlp.up_proj.weight": ("BF16", [ffn, hidden]),
            f"{block}.mlp.down_proj.weight": ("BF16", [hidden, ffn]),
            f"{block}.input_layernorm.weight": ("F32", [hidden]),
            f"{block}.post_attention_layernorm.weight": ("F32", [hidden]),
        }
    return found | {
        "model.norm.weight": ("F32", [hidden]),
        "lm_head.weight": ("BF16", [vocab, hidden]),
    }


def safetensors_bytes(tensors: dict, with_data: bool = True) -> bytes:
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + (bytes(offset) if with_data else b"")


def elements(tensors: dict) -> int:
    return sum(math.prod(shape) for _, shape in tensors.values())


def write_hf_model(root: Path) -> Path:
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "model.safetensors").write_bytes(safetensors_bytes(hf_tensors()))
    return folder


def without_stand_in(text: str) -> str:
    start = text.index("    standIn:\n")
    return text[:start] + text[text.index("    requests:\n", start) :]


def spec_text(
    engine: str, artifact_lines: str, args: list[str], gpus: int = 1, product: str = ""
) -> str:
    text = without_stand_in(CHAT)
    text = text.replace(
        "    artifact: hf://Qwen/Qwen2.5-0.5B-Instruct\n"
        f"    revision: {REVISION}  # the commit reviewed (MG-SEC-008)\n"
        "    format: huggingface\n",
        artifact_lines,
    )
    text = text.replace("    name: vllm\n    version: 0.6.3\n", f"    name: {engine}\n")
    text = text.replace(
        '    args: ["--max-model-len=4096", "--gpu-memory-utilization=0.90"]\n',
        f"    args: {json.dumps(args)}\n",
    )
    text = text.replace(
        "    gpu: 1\n",
        f"    gpu: {gpus}\n" + (f"    acceleratorProduct: {product}\n" if product else ""),
    )
    return text


def hf_folder_lines(root: Path) -> str:
    return (
        f"    artifact: {FOLDER}\n    treeSha256: {tree_sha256(root / FOLDER)}\n"
        "    format: huggingface\n"
    )


def with_products(root: Path, products: dict[str, int]) -> None:
    values = root / "templates" / "values.yaml"
    text = values.read_text()
    start = text.index("accelerators:\n")
    end = text.index("\n\n", start)
    table = "".join(f"  {name}: {{memory: {size}}}\n" for name, size in products.items())
    values.write_text(text[:start] + "accelerators:\n" + table.rstrip("\n") + text[end:])


def fit_findings(root: Path, spec: Path) -> list:
    result = workspace.validate([spec], root, policies=False)
    others = [d for d in result.diagnostics if d.severity.value == "error" and d.rule[:4] != "MG26"]
    assert others == [], others
    return [d for d in result.diagnostics if d.rule.startswith("MG26")]


def vllm_need(context: int, shards: int = 1, utilisation: float = 0.9) -> tuple[int, float]:
    """The test's own arithmetic: vLLM casts every float tensor to bfloat16 (the config's)."""
    weights = elements(hf_tensors()) * 2
    kv = 2 * LAYERS * KV_HEADS * HEAD_DIM * 2 * context
    return weights + kv + ENGINES["vllm"].gpu_memory.reserve * shards, utilisation


def just(need: int, utilisation: float) -> tuple[int, int]:
    """Product memories just inside and just outside `need` at `utilisation`."""
    inside = math.ceil(need / utilisation)
    while int(inside * utilisation) < need:
        inside += 1
    outside = inside - 1
    while int(outside * utilisation) >= need:
        outside -= 1
    return inside, outside


@pytest.mark.parametrize("engine", ["vllm", "tgi"])
def test_a_huggingface_model_just_fits_and_just_does_not(scaffold: Scaffold, engine: str) -> None:
    write_hf_model(scaffold.root)
    if engine == "vllm":
        args, (need, utilisation) = ["--max-model-len=1024"], vllm_need(1024)
    else:
        args = ["--max-total-tokens", "1024", "--cuda-memory-fraction", "0.8"]
        weights = elements(hf_tensors()) * 2
        need = weights + 2 * LAYERS * KV_HEADS * HEAD_DIM * 2 * 1024
        need, utilisation = need + ENGINES["tgi"].gpu_memory.reserve, 0.8
    inside, outside = just(need, utilisation)
    with_products(scaffold.root, {"SMALL-GPU": outside, "EXACT-GPU": inside, "BIG-GPU": 2 * inside})
    lines = hf_folder_lines(scaffold.root)
    spec = scaffold.write_spec(
        "chat-assistant", spec_text(engine, lines, args, product="EXACT-GPU")
    )
    (warning,) = fit_findings(scaffold.root, spec)
    assert (warning.rule, warning.severity.value) == ("MG261", "warning")
    assert "headroom" in warning.message
    spec = scaffold.write_spec(
        "chat-assistant", spec_text(engine, lines, args, product="SMALL-GPU")
    )
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG260" and error.severity.value == "error"
    text = spec.read_text().splitlines()
    assert text[error.line - 1].strip() == "resources:"
    assert "the smallest product of the table that fits is EXACT-GPU" in error.hint
    largest = re.search(r"the largest context that fits is (\d+) tokens", error.hint)
    assert largest and int(largest.group(1)) < 1024


def test_the_largest_context_that_fits_is_the_one_that_fits(scaffold: Scaffold) -> None:
    write_hf_model(scaffold.root)
    need, utilisation = vllm_need(1000)
    inside, _ = just(need, utilisation)
    with_products(scaffold.root, {"GPU": inside})
    lines = hf_folder_lines(scaffold.root)
    spec = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", lines, ["--max-model-len", "2048"], product="GPU")
    )
    (error,) = fit_findings(scaffold.root, spec)
    largest = int(re.search(r"largest context that fits is (\d+)", error.hint).group(1))
    assert largest == 1000  # the KV cache of 1000 tokens was the room left
    spec = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", lines, [f"--max-model-len={largest}"], product="GPU")
    )
    assert [d.rule for d in fit_findings(scaffold.root, spec)] == ["MG261"]


def test_fp8_kv_cache_and_quantization_on_load_shrink_what_is_needed(scaffold: Scaffold) -> None:
    write_hf_model(scaffold.root)
    need, utilisation = vllm_need(2048)
    _, outside = just(need, utilisation)
    with_products(scaffold.root, {"GPU": outside})
    lines = hf_folder_lines(scaffold.root)
    spec = scaffold.write_spec("chat-assistant", spec_text("vllm", lines, [], product="GPU"))
    assert [d.rule for d in fit_findings(scaffold.root, spec)] == ["MG260"]
    smaller = ["--kv-cache-dtype", "fp8", "--quantization", "fp8"]
    spec = scaffold.write_spec("chat-assistant", spec_text("vllm", lines, smaller, product="GPU"))
    assert [d.rule for d in fit_findings(scaffold.root, spec)] == ["MG261"]


def test_a_spec_without_a_product_is_judged_on_the_smallest_of_its_vendor(
    scaffold: Scaffold,
) -> None:
    write_hf_model(scaffold.root)
    need, utilisation = vllm_need(2048)
    inside, outside = just(need, utilisation)
    with_products(scaffold.root, {"SMALL-GPU": outside, "GPU": inside})
    spec = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", hf_folder_lines(scaffold.root), [])
    )
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG260"
    assert "SMALL-GPU (none named: the smallest)" in error.message


def test_a_product_the_table_does_not_list_is_refused_at_its_line(scaffold: Scaffold) -> None:
    write_hf_model(scaffold.root)
    lines = hf_folder_lines(scaffold.root)
    spec = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", lines, [], product="NVIDIA-B300")
    )
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG264"
    assert spec.read_text().splitlines()[error.line - 1].strip().startswith("acceleratorProduct")


def test_an_unreadable_engine_flag_is_refused_at_its_place(scaffold: Scaffold) -> None:
    write_hf_model(scaffold.root)
    spec = scaffold.write_spec(
        "chat-assistant",
        spec_text("vllm", hf_folder_lines(scaffold.root), ["--max-model-len=lots"]),
    )
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG266" and "'lots'" in error.message


@pytest.mark.parametrize("shards", [2, 4, 8])
def test_tensor_parallel_shares_the_model_over_the_gpus(scaffold: Scaffold, shards: int) -> None:
    write_hf_model(scaffold.root)
    need, utilisation = vllm_need(2048, shards)
    # KV heads split over the shards, copied where there are fewer heads than shards
    need += 2 * LAYERS * HEAD_DIM * 2 * 2048 * (shards * max(1, KV_HEADS // shards) - KV_HEADS)
    per_gpu_inside, _ = just(math.ceil(need / shards), utilisation)
    with_products(scaffold.root, {"GPU": per_gpu_inside})
    args = ["--tensor-parallel-size", str(shards)]
    spec = scaffold.write_spec(
        "chat-assistant",
        spec_text("vllm", hf_folder_lines(scaffold.root), args, gpus=shards, product="GPU"),
    )
    assert [d.rule for d in fit_findings(scaffold.root, spec)] == ["MG261"]
    spec = scaffold.write_spec(
        "chat-assistant",
        spec_text("vllm", hf_folder_lines(scaffold.root), args, gpus=shards - 1, product="GPU"),
    )
    assert [d.rule for d in fit_findings(scaffold.root, spec)] == ["MG267"]


def test_llamacpp_offloads_the_layers_ngl_names(scaffold: Scaffold) -> None:
    target = scaffold.root / "models" / "artifacts" / "tiny-llama" / "tiny-llama.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TINY_LLAMA, target)
    model = gguf.read(target, "tiny-llama.gguf")
    weights = sum(t.stored_bytes for t in model.tensors if t.name != "token_embd.weight")
    kv = 2 * 2 * 4 * 16 * 2 * 1024  # f16 cells of both layers, 1000 rounded up to 1024
    need = weights + kv + ENGINES["llamacpp"].gpu_memory.reserve
    inside, outside = just(need, 1.0)
    with_products(scaffold.root, {"SMALL-GPU": outside, "GPU": inside})
    lines = (
        "    artifact: models/artifacts/tiny-llama/tiny-llama.gguf\n"
        "    sha256: c81a2b40671c7b4d1c97148691eac10b6bf291acba5a9dccdac3ea342a39a408\n"
        "    format: gguf\n"
    )
    image = "ghcr.io/ggml-org/llama.cpp@sha256:" + "1" * 64
    for product, rule in (("GPU", "MG261"), ("SMALL-GPU", "MG260")):
        text = spec_text("llamacpp", lines, ["-c", "1000", "-ngl", "99"], product=product)
        text = text.replace("    protocol: openai\n", f"    image: {image}\n    protocol: openai\n")
        text = text.replace(ENV, "").replace(CHAT_ENDPOINT, INTERNAL_ENDPOINT)
        spec = scaffold.write_spec("chat-assistant", text)
        assert [d.rule for d in fit_findings(scaffold.root, spec)] == [rule]


# -- hostile and broken headers: a clear finding, never a guess ----------------------------------


def test_a_truncated_safetensors_file_is_refused_at_the_artifact(scaffold: Scaffold) -> None:
    folder = write_hf_model(scaffold.root)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    spec = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", hf_folder_lines(scaffold.root), [])
    )
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG262" and "ends at byte" in error.message
    assert spec.read_text().splitlines()[error.line - 1].strip().startswith("artifact:")


def test_a_missing_config_is_refused(scaffold: Scaffold) -> None:
    (write_hf_model(scaffold.root) / "config.json").unlink()
    spec = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", hf_folder_lines(scaffold.root), [])
    )
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG262" and "config.json is missing" in error.message


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (struct.pack("<Q", 2**40) + b"{}", "over the 100000000-byte limit"),
        (struct.pack("<Q", 50) + b"{}", "header of 50 bytes in a file of"),
        (b"\x01", "too short"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_hostile_safetensors_headers(tmp_path: Path, raw: bytes, said: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(raw)
    with pytest.raises(Unreadable, match=re.escape(said)):
        safetensors.read_file(path, "model.safetensors")


def test_a_header_whose_offsets_disagree_with_its_shape_is_refused() -> None:
    header = json.dumps({"w": {"dtype": "F16", "shape": [4, 4], "data_offsets": [0, 16]}})
    with pytest.raises(Unreadable, match="hold 16 bytes, where F16 \\[4, 4\\] takes 32"):
        safetensors.parse_header(header.encode(), "model.safetensors", None)


def gguf_prefix(tensors: int, keys: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, keys)


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"GGML" + bytes(20), "no GGUF magic"),
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "GGUF version 1"),
        (gguf_prefix(2**40, 0), "over the limits"),
        # a key whose length claims more than the file holds
        (gguf_prefix(0, 1) + struct.pack("<Q", 2**15) + b"a", "a file of"),
        # an array of 2**60 strings
        (
            gguf_prefix(0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 2**60),
            "past the end of file",
        ),
    ],
)
def test_hostile_gguf_headers(raw: bytes, said: str) -> None:
    with pytest.raises(Unreadable, match=re.escape(said)):
        gguf.parse(raw + bytes(8), "model.gguf")


def test_an_array_of_more_strings_than_any_vocabulary_is_refused_before_it_is_walked() -> None:
    items = gguf.MAX_ITEMS + 1
    raw = gguf_prefix(0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, items)
    with pytest.raises(Unreadable, match="over the limit"):
        gguf.parse(raw + bytes(8 * items), "model.gguf")


def test_a_truncated_gguf_is_refused() -> None:
    raw = TINY_LLAMA.read_bytes()
    with pytest.raises(Unreadable, match="ends at byte"):
        gguf.parse(raw[: len(raw) // 2], "tiny-llama.gguf")


def test_onnx_initializers_are_sized_without_reading_their_data() -> None:
    model = onnx.read(
        PROJECT / "models" / "artifacts" / "fraud-onnx-small" / "model.onnx", "model.onnx"
    )
    # the logistic score's weights: 32 x 1 floats and a bias
    assert sorted((t.elements, t.dtype) for t in model.tensors) == [(1, "FLOAT"), (32, "FLOAT")]
    assert model.stored_bytes == 33 * 4


def onnx_initializer(dims: list[int], data_type: int) -> bytes:
    def varint(value: int) -> bytes:
        out = b""
        while True:
            byte, value = value & 0x7F, value >> 7
            out += bytes([byte | (0x80 if value else 0)])
            if not value:
                return out

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    tensor = b"".join(varint(1 << 3) + varint(d) for d in dims) + varint(2 << 3) + varint(data_type)
    # data_location EXTERNAL (14 = 1): the weights live in a file never followed
    tensor += field(8, b"w") + varint(14 << 3) + varint(1)
    return field(7, field(5, tensor))


def test_onnx_external_data_is_sized_from_dims_never_followed() -> None:
    model = onnx.parse(onnx_initializer([1024, 1024, 16], 10), "model.onnx")
    assert model.stored_bytes == 1024 * 1024 * 16 * 2


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"\x3a\xff\xff\xff\xff\x0f", "runs past its message"),
        (b"\x0a", "runs past the end"),
        (b"\xff" * 12, "over 10 bytes"),
        (onnx_initializer([4], 8), "no fixed size"),
    ],
)
def test_hostile_onnx(raw: bytes, said: str) -> None:
    with pytest.raises(Unreadable, match=re.escape(said)):
        onnx.parse(raw, "model.onnx")


def test_triton_onnx_on_a_gpu_just_fits_and_just_does_not(scaffold: Scaffold) -> None:
    artifact = scaffold.root / "models" / "artifacts" / "big" / "model.onnx"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(onnx_initializer([1024, 1024, 256], 10))  # 512 MiB of float16
    need = 1024 * 1024 * 256 * 2 + ENGINES["triton"].gpu_memory.reserve
    with_products(scaffold.root, {"SMALL-GPU": need - 1, "GPU": need})
    fraud = (PROJECT / "models" / "fraud-onnx-small.yaml").read_text()
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    fraud = fraud.replace(
        "models/artifacts/fraud-onnx-small/model.onnx", "models/artifacts/big/model.onnx", 1
    )
    fraud = fraud.replace(
        "1d57244435217e57b2493aebb4ae9cae47a33dcce32dd47a7f7e204aa8b42d60", digest, 1
    )
    for product, rule in (("GPU", "MG261"), ("SMALL-GPU", "MG260")):
        text = fraud.replace(
            '    limits: {cpu: "1", memory: 1Gi}\n',
            f'    limits: {{cpu: "1", memory: 1Gi}}\n    gpu: 1\n'
            f"    acceleratorProduct: {product}\n",
        )
        spec = scaffold.write_spec("fraud-onnx-small", text)
        assert [d.rule for d in fit_findings(scaffold.root, spec)] == [rule]


def test_an_invalid_accelerators_table_is_refused_at_its_line(scaffold: Scaffold) -> None:
    values = scaffold.root / "templates" / "values.yaml"
    values.write_text(
        values.read_text().replace("NVIDIA-L4: {memory: 24Gi}", "NVIDIA-L4: {memory: lots}")
    )
    scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "validate")
    line = values.read_text().splitlines().index("  NVIDIA-L4: {memory: lots}") + 1
    assert result.code == 1
    assert f"templates/values.yaml:{line}:" in result.out and "MG263" in result.out


# -- hf:// models: headers through the Hugging Face client, recorded -----------------------------


class _Hub(http.server.BaseHTTPRequestHandler):
    """The Hub's resolve endpoint: files by /REPO/resolve/REVISION/NAME, ranged reads, and the
    HEAD the client asks a file's ETag with (the sha256 of its content, as for large files).
    Every request is noted in `asked`: (method, path, range)."""

    files: ClassVar[dict[str, bytes]] = {}
    asked: ClassVar[list[tuple[str, str, str]]] = []

    def do_HEAD(self) -> None:
        self.asked.append(("HEAD", self.path, ""))
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        if body is not None:
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("X-Repo-Commit", REVISION)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()

    def do_GET(self) -> None:
        self.asked.append(("GET", self.path, self.headers.get("range", "")))
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        found = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("range", ""))
        if found:
            begin, end = int(found.group(1)), int(found.group(2))
            body = body[begin : end + 1]
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[tuple[str, dict[str, bytes], list[tuple[str, str, str]]]]:
    files: dict[str, bytes] = {}
    asked: list[tuple[str, str, str]] = []
    handler = type("Hub", (_Hub,), {"files": files, "asked": asked})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files, asked
    finally:
        server.shutdown()
        server.server_close()


def test_an_hf_model_s_headers_are_recorded_and_validated_offline(
    scaffold: Scaffold, hub: tuple[str, dict[str, bytes], list], tmp_path: Path
) -> None:
    endpoint, files, asked = hub
    base = f"/Qwen/Qwen2.5-0.5B-Instruct/resolve/{REVISION}"
    config = dict(
        CONFIG,
        num_hidden_layers=80,
        hidden_size=8192,
        num_attention_heads=64,
        num_key_value_heads=8,
        max_position_embeddings=8192,
    )
    files[f"{base}/config.json"] = json.dumps(config).encode()
    shards: dict[str, dict] = {}
    tensors = hf_tensors(80, 8192, 8, 28672, 128256, 64)  # Llama-3-70B's shapes
    for index, name in enumerate(tensors):
        shard = f"model-{index % 4 + 1:05}-of-00004.safetensors"
        shards.setdefault(shard, {})[name] = tensors[name]
    weight_map = {name: shard for shard, named in shards.items() for name in named}
    files[f"{base}/model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
    for shard, named in shards.items():
        files[f"{base}/{shard}"] = safetensors_bytes(named, with_data=False)
    product = "    gpu: 1\n    acceleratorProduct: NVIDIA-A100-SXM4-80GB\n"
    spec = scaffold.write_spec(
        "chat-assistant", without_stand_in(CHAT).replace("    gpu: 1\n", product)
    )
    result = run_cli("--root", str(scaffold.root), "validate", str(spec))
    assert "MG265" in result.out and "not recorded" in result.out
    refreshed = _refresh(scaffold.root, spec, endpoint, tmp_path / "cache")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    record = scaffold.root / "models" / "headers" / "chat-assistant.json"
    assert record.is_file()
    ranged = sorted((path, span) for _, path, span in asked if span)
    assert ranged == sorted((f"{base}/{shard}", "bytes=0-100000") for shard in shards)
    # again: each shard's header comes from the cache, by its content's ETag
    asked.clear()
    first = record.read_text()
    assert _refresh(scaffold.root, spec, endpoint, tmp_path / "cache").returncode == 0
    assert [path for _, path, span in asked if span] == []
    assert record.read_text() == first
    result = run_cli("--root", str(scaffold.root), "validate", str(spec))
    assert "MG260" in result.out and "the model does not fit" in result.out
    assert "smallest product of the table that fits" not in result.out  # 130 GiB on one GPU
    # another revision pinned: the record is refused, never used
    spec.write_text(spec.read_text().replace(REVISION, "c" * 40))
    result = run_cli("--root", str(scaffold.root), "validate", str(spec))
    assert "MG268" in result.out


def _refresh(root: Path, spec: Path, endpoint: str, cache: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "validator.cli", "--root", str(root), "fit", "refresh"]
    return subprocess.run(
        [*command, str(spec)],
        env={
            **os.environ,
            "MODELGATE_CACHE_DIR": str(cache),
            "HF_ENDPOINT": endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT,
    )


def test_the_flags_are_read_as_the_engines_write_them() -> None:
    assert memory.flag(["--max-model-len=4096"], ("--max-model-len",)) == (0, "4096")
    assert memory.flag(["-c", "512", "-c", "1024"], ("--ctx-size", "-c")) == (3, "1024")


# -- the arithmetic against a real engine: llama.cpp's own figures --------------------------------

LOADS = """
import sys
from llama_cpp import Llama
Llama(sys.argv[1], n_ctx=int(sys.argv[2]), n_batch=64, verbose=True)
"""


@pytest.mark.parametrize("artifact", ["tiny-llama/tiny-llama.gguf", "tiny-qwen2/tiny-qwen2.gguf"])
def test_llama_cpp_reports_the_kv_cache_and_weights_the_fit_computes(artifact: str) -> None:
    import subprocess

    from validator.deploy import environments

    python = environments.ensure("llamacpp") / "bin" / "python"
    path = PROJECT / "models" / "artifacts" / artifact
    context = 4000  # llama.cpp rounds it up to 4096 cells, as the record's padding says
    loaded = subprocess.run(
        [str(python), "-c", LOADS, str(path), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = loaded.stdout + loaded.stderr
    assert loaded.returncode == 0, log
    kv_mib = float(re.search(r"llama_kv_cache: size =\s+([\d.]+) MiB", log).group(1))
    weights_mib = float(re.search(r"model buffer size =\s+([\d.]+) MiB", log).group(1))
    model = gguf.read(path, artifact)
    engine = ENGINES["llamacpp"].gpu_memory
    chosen = memory.settings(engine, ["-c", str(context), "-ngl", "999"], model, 1)
    needed = memory.need(engine, model, chosen)
    assert chosen.context == 4096
    assert needed.kv_cache / 2**20 == pytest.approx(kv_mib, rel=0.05)
    # on the CPU build every tensor is in the model buffer, the token embeddings too
    assert model.stored_bytes / 2**20 == pytest.approx(weights_mib, rel=0.05)


QUANTIZE = """
import importlib.util, sys
from pathlib import Path
import llama_cpp
make, f32, quantized = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("tiny_llama_make", make)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module.EMBEDDING, module.FEED_FORWARD, module.LAYERS = 512, 1024, 4  # MiB, not KiB
module.make(Path(f32))
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M: Q4_K, Q6_K where it matters, F32 norms
assert llama_cpp.llama_model_quantize(f32.encode(), quantized.encode(), params) == 0
"""


def test_a_quantized_gguf_made_by_llama_cpp_is_sized_as_llama_cpp_loads_it(
    tmp_path: Path,
) -> None:
    import subprocess

    from validator.deploy import environments

    python = str(environments.ensure("llamacpp") / "bin" / "python")
    quantized = tmp_path / "q4_k_m.gguf"
    made = subprocess.run(
        [python, "-c", QUANTIZE, str(PROJECT / "models/artifacts/tiny-llama/make.py"),
         str(tmp_path / "f32.gguf"), str(quantized)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    model = gguf.read(quantized, "q4_k_m.gguf")
    assert {"Q4_K", "Q6_K", "F32"} <= {t.dtype for t in model.tensors}  # mixed precision
    loaded = subprocess.run(
        [python, "-c", LOADS, str(quantized), "2048"], capture_output=True, text=True, timeout=300
    )
    log = loaded.stdout + loaded.stderr
    assert loaded.returncode == 0, log
    kv_mib = float(re.search(r"llama_kv_cache: size =\s+([\d.]+) MiB", log).group(1))
    weights_mib = float(re.search(r"model buffer size =\s+([\d.]+) MiB", log).group(1))
    engine = ENGINES["llamacpp"].gpu_memory
    needed = memory.need(engine, model, memory.settings(engine, ["-c", "2048"], model, 1))
    assert needed.kv_cache == 0  # -ngl 0, b6000's default: nothing on the GPUs
    everything = memory.settings(engine, ["-c", "2048", "-ngl", "99"], model, 1)
    assert memory.need(engine, model, everything).kv_cache / 2**20 == pytest.approx(
        kv_mib, rel=0.05
    )
    assert model.stored_bytes / 2**20 == pytest.approx(weights_mib, rel=0.05)


def test_a_format_without_a_reader_is_not_computed_never_guessed(scaffold: Scaffold) -> None:
    artifact = scaffold.root / "models" / "artifacts" / "big" / "model.pt"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"not read")
    fraud = (PROJECT / "models" / "fraud-onnx-small.yaml").read_text()
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    fraud = fraud.replace(
        "models/artifacts/fraud-onnx-small/model.onnx", "models/artifacts/big/model.pt", 1
    )
    fraud = fraud.replace(
        "1d57244435217e57b2493aebb4ae9cae47a33dcce32dd47a7f7e204aa8b42d60", digest, 1
    )
    fraud = fraud.replace("format: onnx", "format: pytorch", 1)
    fraud = fraud.replace("memory: 1Gi}\n", "memory: 1Gi}\n    gpu: 1\n", 1)
    spec = scaffold.write_spec("fraud-onnx-small", fraud)
    (warning,) = fit_findings(scaffold.root, spec)
    assert (warning.rule, warning.severity.value) == ("MG265", "info")
    assert "not pytorch" in warning.message


def test_a_record_whose_text_differs_from_its_sha256_is_refused(scaffold: Scaffold) -> None:
    config = json.dumps(CONFIG)
    header = safetensors_bytes(hf_tensors(), with_data=False)[8:].decode()
    record = {
        "source": "hf://Qwen/Qwen2.5-0.5B-Instruct",
        "revision": REVISION,
        "files": {
            "config.json": {"sha256": hashlib.sha256(config.encode()).hexdigest(), "text": config},
            "model.safetensors": {"sha256": "0" * 64, "header": header},
        },
    }
    headers = scaffold.root / "models" / "headers"
    headers.mkdir()
    (headers / "chat-assistant.json").write_text(json.dumps(record))
    spec = scaffold.write_spec("chat-assistant", without_stand_in(CHAT))
    (error,) = fit_findings(scaffold.root, spec)
    assert error.rule == "MG262" and "differs from its sha256" in error.message
    record["files"]["model.safetensors"]["sha256"] = hashlib.sha256(header.encode()).hexdigest()
    (headers / "chat-assistant.json").write_text(json.dumps(record))
    assert fit_findings(scaffold.root, spec) == []  # a tiny model: plenty of headroom on a T4


def test_endpoint_fit_gives_the_plan_the_figures(scaffold: Scaffold) -> None:
    from validator.check import load
    from validator.check.fit import Fit, endpoint_fit

    write_hf_model(scaffold.root)
    need, _ = vllm_need(1024)
    lines = hf_folder_lines(scaffold.root)
    path = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", lines, ["--max-model-len=1024"], product="GPU")
    )
    document, _ = load.load_file(path, "models/chat-assistant.yaml")
    fit = endpoint_fit(document, scaffold.root, {"accelerators": {"GPU": {"memory": "16Gi"}}})
    assert isinstance(fit, Fit) and fit.fits
    assert (fit.product, fit.gpus, fit.smallest_product) == ("GPU", 1, "GPU")
    assert fit.needed_bytes == need == fit.weights_bytes + fit.kv_cache_bytes + fit.reserve_bytes
    assert fit.available_bytes == int(16 * 2**30 * 0.9)
    assert fit.headroom == pytest.approx((fit.available_bytes - need) / fit.available_bytes)
    assert fit.largest_context == CONTEXT  # the model's own: more would not be allowed
    kv_per_sequence = 2 * LAYERS * KV_HEADS * HEAD_DIM * 2 * 1024
    room = fit.available_bytes - fit.weights_bytes - fit.reserve_bytes
    assert fit.sequences_at_full_context == room // kv_per_sequence
    iris = load.load_text((PROJECT / "models" / "iris.yaml").read_text(), "models/iris.yaml")[0]
    assert endpoint_fit(iris, scaffold.root, {}) is None  # no GPU engine, no GPU


@pytest.mark.parametrize("shards", [2, 4])
def test_tgi_shards_over_every_gpu_of_the_pod_unless_told(scaffold: Scaffold, shards: int) -> None:
    from validator.check import load
    from validator.check.fit import endpoint_fit

    write_hf_model(scaffold.root)
    lines = hf_folder_lines(scaffold.root)
    values = {"accelerators": {"GPU": {"memory": "16Gi"}}}
    path = scaffold.write_spec(
        "chat-assistant", spec_text("tgi", lines, [], gpus=shards, product="GPU")
    )
    fit = endpoint_fit(load.load_file(path, "x.yaml")[0], scaffold.root, values)
    assert fit.gpus == shards and fit.reserve_bytes == shards * ENGINES["tgi"].gpu_memory.reserve
    path = scaffold.write_spec(
        "chat-assistant", spec_text("tgi", lines, ["--num-shard", "1"], gpus=shards, product="GPU")
    )
    assert endpoint_fit(load.load_file(path, "x.yaml")[0], scaffold.root, values).gpus == 1


def test_a_changed_record_touches_its_spec() -> None:
    from pathlib import PurePosixPath

    from validator.check import changes, load

    chat, _ = load.load_text(CHAT, "models/chat-assistant.yaml")
    iris, _ = load.load_text((PROJECT / "models" / "iris.yaml").read_text(), "models/iris.yaml")
    changed = [PurePosixPath("models/headers/chat-assistant.json")]
    assert changes.affected([chat, iris], changed) == [chat]


def test_tgi_sizes_its_cache_by_max_batch_total_tokens_over_max_total_tokens() -> None:
    engine = ENGINES["tgi"].gpu_memory
    model = Model((), Attention(2, 2, 16, 16, 4096, "bfloat16"))
    both = ["--max-batch-total-tokens", "8192", "--max-total-tokens", "1024"]
    assert memory.settings(engine, both, model, 1).context == 8192
    assert memory.settings(engine, both[2:], model, 1).context == 1024
    assert memory.settings(engine, [], model, 1).context == 4096  # the model's own


def test_the_plan_shows_the_fit_this_stage_computes(scaffold: Scaffold) -> None:
    from validator.check import load
    from validator.plan import fit as plan_fit
    from validator.report.plan import fit_line

    write_hf_model(scaffold.root)
    lines = hf_folder_lines(scaffold.root)
    path = scaffold.write_spec(
        "chat-assistant", spec_text("vllm", lines, ["--max-model-len=2048"], product="SMALL")
    )
    values = {"accelerators": {"SMALL": {"memory": "2Gi"}, "BIG": {"memory": "4Gi"}}}
    figures = plan_fit.endpoint_fit(load.load_file(path, "x.yaml")[0], scaffold.root, values)
    assert figures is not None and figures["smallest_product"] == "BIG"
    said = fit_line(figures)
    assert "on 1 x SMALL: does NOT fit" in said and "smallest product that fits: BIG" in said
