"""GPU fit: whether an endpoint's model fits the GPUs its spec asks for, computed from the
model's own files (safetensors, GGUF or ONNX headers, config.json) and the engine flags
modelgate renders (docs/plan.md, "GPU fit"). Run by validate for each spec (check), and by
the plan for each endpoint (endpoint_fit).

Findings: MG260 does not fit (at spec.resources, with the figures, the largest context that
fits and the smallest product that does); MG261 fits with under 10% headroom; MG262 a model
header missing or malformed; MG264 a product the accelerators table does not list; MG265 fit
not computed (the weights are not where modelgate reads them); MG266 an engine flag it cannot
read; MG267 shards over more GPUs than the spec asks for; MG268 a record of other headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import paths
from ...diagnostics import Diagnostic, Severity
from ...engines import ENGINES, EVERY_ACCELERATOR, GpuMemory, engine_for
from .. import load
from . import config, gguf, memory, onnx, products, recorded, safetensors
from .model import Model, Unreadable
from .products import Product

DOES_NOT_FIT, LITTLE_HEADROOM, UNREADABLE, UNKNOWN_PRODUCT = "MG260", "MG261", "MG262", "MG264"
NOT_COMPUTED, BAD_FLAG, TOO_FEW_GPUS, OTHER_RECORD = "MG265", "MG266", "MG267", "MG268"
HEADROOM_WARNING = 0.10
READ_FORMATS = ("huggingface", "gguf", "onnx")  # the formats whose headers are read
_RESOURCES = ["spec", "resources"]
_ARTIFACT = ["spec", "model", "artifact"]


@dataclass(frozen=True)
class Fit:
    """An endpoint's GPU memory: what it needs per replica, what its GPUs offer."""

    weights_bytes: int
    kv_cache_bytes: int
    reserve_bytes: int
    needed_bytes: int
    available_bytes: int
    product: str  # the product judged: the spec's, else the smallest of its vendor's
    gpus: int  # the GPUs the engine shards over
    headroom: float  # (available - needed) / available; negative: does not fit
    largest_context: int | None  # the largest context that fits; None: no KV cache
    smallest_product: str | None  # the smallest product of the table that fits; None: none
    context: int = 0
    sequences: int = 1
    batch: int = 0  # the sequences the engine batches in the cache (reported)
    utilisation: float = 1.0
    product_named: bool = True  # False: the spec names no product; the smallest was judged
    # the sequences of the full context the memory left after weights and reserve holds at
    # once (vLLM and TGI give it all to the KV cache); None: no KV cache
    sequences_at_full_context: int | None = None
    reserve_source: str = ""

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.available_bytes


class _Finding(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def endpoint_fit(document: load.Document, root: Path, values: Mapping[str, Any]) -> Fit | None:
    """The fit of a valid spec's endpoint; None where its engine loads no weights onto GPUs
    modelgate sizes, it asks for no GPU, or the fit cannot be computed (validate says why)."""
    fit, _ = assess(document, root, products.from_values(values))
    return fit


def check(document: load.Document, root: Path, table: Sequence[Product]) -> list[Diagnostic]:
    return assess(document, root, table)[1]


def assess(
    document: load.Document, root: Path, table: Sequence[Product]
) -> tuple[Fit | None, list[Diagnostic]]:
    spec = document.data["spec"]
    gpus = spec.get("resources", {}).get("gpu", 0)
    if spec["engine"]["name"] not in ENGINES or not gpus:
        return None, []
    engine = engine_for(spec)
    if engine.gpu_memory is None or "artifact" not in spec["model"]:
        return None, []
    try:
        product = _product(document, table)
        model = _model(document, root)
        fit = _fit(document, engine.gpu_memory, model, product, table, gpus)
    except _Finding as finding:
        return None, [finding.diagnostic]
    return fit, _verdict(document, fit)


def _product(document: load.Document, table: Sequence[Product]) -> Product:
    """The product the spec names; where it names none, the scheduler may place it on any
    node of its vendor: the smallest product of that vendor the table lists."""
    resources = document.data["spec"]["resources"]
    accelerator = resources.get("accelerator", EVERY_ACCELERATOR[0])
    named = resources.get("acceleratorProduct")
    if named is not None:
        found = next((p for p in table if p.name == named), None)
        if found is None:
            raise _Finding(
                document.finding(
                    [*_RESOURCES, "acceleratorProduct"],
                    UNKNOWN_PRODUCT,
                    f"acceleratorProduct {named} is not in the accelerators table of "
                    "templates/values.yaml: its memory is unknown, so the fit cannot be judged",
                    f"add {named}: {{memory: QUANTITY}} under accelerators in "
                    "templates/values.yaml, or name a product listed there",
                )
            )
        return found
    offered = [p for p in table if p.accelerator == accelerator]
    if not offered:
        raise _Finding(
            _not_computed(
                document,
                [*_RESOURCES, "gpu"],
                f"GPU fit not computed: the accelerators table of templates/values.yaml lists "
                f"no {accelerator} product, and the spec names none",
                "declare the products the clusters offer under accelerators in "
                "templates/values.yaml, or set spec.resources.acceleratorProduct",
            )
        )
    return min(offered)


def _model(document: load.Document, root: Path) -> Model:
    spec = document.data["spec"]
    artifact, model_format = spec["model"]["artifact"], spec["model"].get("format", "")
    try:
        if artifact.startswith(recorded.HF):
            return _recorded(document, root, artifact)
        if "://" in artifact:
            raise _Finding(
                _not_computed(
                    document,
                    _ARTIFACT,
                    f"GPU fit not computed: the weights are in a store ({artifact}) modelgate "
                    "does not read; it sizes weights in the repository and hf:// models",
                    "commit the model (or its headers) in the repository, or watch the "
                    "engine's start-up log for out-of-memory errors",
                )
            )
        if model_format not in READ_FORMATS:
            raise _Finding(
                _not_computed(
                    document,
                    ["spec", "model", "format"],
                    f"GPU fit not computed: modelgate sizes {', '.join(READ_FORMATS)} models "
                    f"from their headers, not {model_format}",
                    "watch the engine's start-up log for out-of-memory errors, or export "
                    "the model as ONNX",
                )
            )
        return local_model(root, artifact, model_format)
    except Unreadable as exc:
        raise _Finding(
            document.finding(
                _ARTIFACT,
                UNREADABLE,
                f"GPU fit: {exc}",
                "the fit reads the sizes from the model's own headers: commit the model "
                "files whole, as the engine loads them",
            )
        ) from None


def _recorded(document: load.Document, root: Path, artifact: str) -> Model:
    name = document.data["metadata"]["name"]
    revision = document.data["spec"]["model"].get("revision", "")
    try:
        return recorded.load(root, name, artifact, revision)
    except recorded.NotRecorded:
        raise _Finding(
            _not_computed(
                document,
                _ARTIFACT,
                f"GPU fit not computed: the headers of {artifact} at revision "
                f"{revision or '(none pinned)'} are not recorded in "
                f"{recorded.shown_path(name)}",
                f"run `modelgate fit refresh {document.path}` where the Hugging Face Hub is "
                "reachable, and commit what it writes",
            )
        ) from None
    except recorded.Mismatch as exc:
        raise _Finding(
            document.finding(
                ["spec", "model", "revision"],
                OTHER_RECORD,
                f"GPU fit: {exc}",
                f"run `modelgate fit refresh {document.path}` and commit what it writes",
            )
        ) from None


def local_model(root: Path, artifact: str, model_format: str) -> Model:
    """The model kept in the repository at `artifact`, as its own files describe it."""
    path = root / artifact
    if paths.leads_out(path, root):
        raise Unreadable(f"{artifact} leads out of the repository through a symbolic link")
    if path.is_file():
        return _file(path, artifact, model_format)
    if not path.is_dir():
        raise Unreadable(f"{artifact} is not in the repository")
    if model_format == "huggingface":
        config_path = path / config.NAME
        if not config_path.is_file():
            raise Unreadable(f"{artifact}/config.json is missing: the KV cache cannot be sized")
        attention = config.attention(config_path.read_bytes(), f"{artifact}/config.json")
        return Model(tuple(safetensors.read_folder(path, artifact)), attention)
    suffix = {"gguf": ".gguf", "onnx": ".onnx"}.get(model_format)
    found = sorted(path.rglob(f"*{suffix}")) if suffix else []
    if len(found) != 1:
        raise Unreadable(
            f"{artifact}: {len(found)} {suffix or model_format} files; the fit sizes one"
        )
    return _file(found[0], f"{artifact}/{found[0].relative_to(path)}", model_format)


def _file(path: Path, shown: str, model_format: str) -> Model:
    if model_format == "gguf" or path.suffix == ".gguf":
        return gguf.read(path, shown)
    if model_format == "onnx" or path.suffix == ".onnx":
        return onnx.read(path, shown)
    if path.suffix == ".safetensors":
        config_path = path.with_name(config.NAME)
        if not config_path.is_file():
            raise Unreadable(f"{shown}: no config.json beside it: the KV cache cannot be sized")
        attention = config.attention(config_path.read_bytes(), f"{config_path.name}")
        return Model(tuple(safetensors.read_file(path, shown)), attention)
    raise Unreadable(f"{shown}: a {model_format or path.suffix} file, which the fit cannot size")


def _fit(
    document: load.Document,
    gpu_memory: GpuMemory,
    model: Model,
    product: Product,
    table: Sequence[Product],
    gpus: int,
) -> Fit:
    args = [str(arg) for arg in document.data["spec"]["engine"].get("args", [])]
    try:
        chosen = memory.settings(gpu_memory, args, model, gpus)
    except memory.BadFlag as exc:
        raise _Finding(
            document.finding(
                ["spec", "engine", "args", exc.index],
                BAD_FLAG,
                f"GPU fit: engine flag {exc}",
                "write the value the engine takes",
            )
        ) from None
    if chosen.shards > gpus:
        raise _Finding(
            document.finding(
                [*_RESOURCES, "gpu"],
                TOO_FEW_GPUS,
                f"the engine shards the model over {chosen.shards} GPUs, and the spec asks "
                f"for {gpus}: it does not start",
                f"set spec.resources.gpu to {chosen.shards}, or shard over {gpus}",
            )
        )
    needed = memory.need(gpu_memory, model, chosen)
    room = memory.available(product, chosen)
    own = model.attention.context if model.attention else 0
    largest = memory.largest_context(needed, room, chosen, own)
    smallest = memory.smallest_product(needed, table, product.accelerator, chosen)
    return Fit(
        weights_bytes=needed.weights,
        kv_cache_bytes=needed.kv_cache,
        reserve_bytes=needed.reserve,
        needed_bytes=needed.total,
        available_bytes=room,
        product=product.name,
        gpus=chosen.shards,
        headroom=(room - needed.total) / room if room else -1.0,
        largest_context=(
            memory.padded_down(largest, gpu_memory.context_padding) if largest is not None else None
        ),
        smallest_product=smallest.name if smallest else None,
        context=chosen.context if needed.kv_per_token else 0,
        sequences=chosen.sequences,
        batch=chosen.batch,
        utilisation=chosen.utilisation,
        product_named="acceleratorProduct" in document.data["spec"]["resources"],
        sequences_at_full_context=(
            max(0, room - needed.weights - needed.reserve) // needed.kv_cache
            if needed.kv_cache
            else None
        ),
        reserve_source=gpu_memory.reserve_source,
    )


def _verdict(document: load.Document, fit: Fit) -> list[Diagnostic]:
    if fit.headroom >= HEADROOM_WARNING:
        return []
    figures = describe(fit)
    if not fit.fits:
        return [
            document.finding(
                _RESOURCES,
                DOES_NOT_FIT,
                f"the model does not fit the GPUs: {figures}",
                _remedy(fit),
            )
        ]
    warning = document.finding(
        _RESOURCES,
        LITTLE_HEADROOM,
        f"the model fits the GPUs with {fit.headroom:.1%} headroom, under "
        f"{HEADROOM_WARNING:.0%}: {figures}",
        _remedy(fit),
    )
    return [_as(warning, Severity.WARNING)]


def describe(fit: Fit) -> str:
    """The figures of a fit, in words a reviewer reads."""
    kv = (
        f" + KV cache {gib(fit.kv_cache_bytes)} ({fit.context} tokens x {fit.sequences} "
        f"sequence{'s' if fit.sequences != 1 else ''})"
        if fit.context
        else ""
    )
    product = fit.product if fit.product_named else f"{fit.product} (none named: the smallest)"
    return (
        f"needs {gib(fit.needed_bytes)} (weights {gib(fit.weights_bytes)}{kv} + reserve "
        f"{gib(fit.reserve_bytes)}), {fit.gpus} x {product} at {fit.utilisation:.0%} offer "
        f"{gib(fit.available_bytes)}"
    )


def _remedy(fit: Fit) -> str:
    ways = []
    if fit.largest_context is not None and fit.largest_context < fit.context:
        ways.append(
            f"the largest context that fits is {fit.largest_context} tokens"
            if fit.largest_context
            else "no context fits beside the weights"
        )
    ways.append(
        f"the smallest product of the table that fits is {fit.smallest_product}"
        if fit.smallest_product
        else f"no product of the table fits {fit.gpus} GPU(s)"
    )
    return "; ".join(ways) + "; or shard over more GPUs, or quantize the weights or KV cache"


def gib(count: int) -> str:
    return f"{count / 2**30:.2f} GiB"


def _not_computed(document: load.Document, where: list, message: str, hint: str) -> Diagnostic:
    # information, as other "not checked" findings (MG125, MG405): it says what was not
    # judged and how to have it judged, and fails nothing
    return _as(document.finding(where, NOT_COMPUTED, message, hint), Severity.INFO)


def _as(diagnostic: Diagnostic, severity: Severity) -> Diagnostic:
    return Diagnostic(
        diagnostic.path,
        diagnostic.line,
        diagnostic.col,
        diagnostic.rule,
        severity,
        diagnostic.message,
        diagnostic.hint,
    )


__all__ = ["Fit", "check", "describe", "endpoint_fit", "products"]
