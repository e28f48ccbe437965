"""`modelgate new`: a spec that is valid in every other respect, with placeholders where only its
author knows the answer (validator/check/placeholders.py), which validation refuses until they are
replaced (MG122)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..check import pickles, placeholders, targets, workspace
from ..check.policy.checks import PICKLE_FORMATS
from ..engines import COMPONENTS, ENGINES, Engine
from ..render import templates

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXTENSIONS = {
    "sklearn": "model.joblib",
    "xgboost": "model.bst",
    "lightgbm": "model.txt",
    "onnx": "model.onnx",
    "pytorch": "model.pt",
    "tensorflow": "saved_model/",  # a folder: pods check its tree digest, never an archive's
    "huggingface": "model/",  # a snapshot folder, where the engine cannot pin a Hub revision
    "gguf": "model.gguf",
    "custom": "model.bin",
}
CARD_DIR = Path("docs") / "models"
# An image reference pinned by digest: what MG-SEC-001 requires of every image a spec names
PINNED_IMAGE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$"
)


class ScaffoldError(Exception):
    """The request cannot become a valid spec (bad name, unsupported engine and format)."""


def new_spec(
    root: Path,
    name: str,
    engine: str,
    model_format: str,
    owner: str | None = None,
    team: str = placeholders.TEAM,
    components: dict[str, str] | None = None,
) -> str:
    """`components` maps transformer or explainer to its image ("" for a placeholder)."""
    if not NAME.match(name) or len(name) > 63:
        raise ScaffoldError(f"'{name}' is not a DNS-1123 label (a-z, 0-9 and '-', at most 63)")
    chosen = _components(name, engine, components or {})
    allowed = _allowed_formats(root, engine)
    if allowed is not None and model_format not in allowed:
        raise ScaffoldError(
            f"engine {engine} does not serve format {model_format}; it serves: {', '.join(allowed)}"
        )
    context = _context(name, engine, model_format, owner or _git_email(root), team)
    context["components"] = chosen
    return templates.environment(root).get_template("new/modeldeployment.yaml.j2").render(context)


def write_new(root: Path, name: str, text: str) -> Path:
    path = root / workspace.SPEC_DIR / f"{name}.yaml"
    if path.exists():
        raise ScaffoldError(f"{path.relative_to(root)} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def new_card(root: Path, name: str) -> str:
    """A model card with a placeholder under each section the policy asks for (MG-CMP-004)."""
    context = {"name": name, "sections": _card_sections(root), "marker": placeholders.MARKER}
    return templates.environment(root).get_template("new/modelcard.md.j2").render(context)


def write_card(root: Path, name: str, text: str) -> Path | None:
    """docs/models/NAME.md, unless a card is already there: None then."""
    path = root / CARD_DIR / f"{name}.md"
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _card_sections(root: Path) -> list[str]:
    from ..check import policy

    rules, problems = policy.load_policy(root)
    sections = [] if problems else rules.parameters.get("modelCardSections") or []
    return [str(section) for section in sections]


def _context(name: str, engine: str, model_format: str, owner: str, team: str) -> dict[str, Any]:
    record = ENGINES[engine]
    llm = record.llm
    image = record.image_only
    file = EXTENSIONS.get(model_format, "model.bin")
    hub = model_format == "huggingface" and bool(record.revision)  # pinned by revision
    artifact = (
        f"hf://{placeholders.ORGANISATION}/{name}" if hub else f"s3://model-artifacts/{name}/{file}"
    )
    # kept in the repository: what the local target serves here, and pickle-based files,
    # which validate scans there (MG241) and the policy takes from nowhere else (MG-SEC-009)
    if model_format != "huggingface" and (
        (record.local and record.serves_locally(model_format))
        or model_format in PICKLE_FORMATS
        or pickles.is_pickle_based(file)
    ):
        artifact = f"models/artifacts/{name}/{file}"
    source = {"image": "registry"} if image else {"artifact": artifact}
    spec = {"model": {**source, "format": model_format}, "engine": {"name": engine}}
    return {
        "runs_here": targets.runs_on_this_machine(spec),
        "name": name,
        "owner": owner,
        "team": team,
        "contact": owner,
        "format": model_format,
        "engine": engine,
        "engine_version": (record.takes_version and record.default_version) or None,
        "protocol": record.protocols[0],
        "runtime": record.named_runtimes.get(model_format) or _custom_runtime(record, model_format),
        "image": f"registry.example.com/ml/{name}@{placeholders.ZERO_DIGEST}" if image else None,
        "artifact": artifact,
        "digest_field": "treeSha256" if artifact.endswith("/") else "sha256",
        "digest": None if hub else placeholders.ZERO_SHA256,
        "revision": placeholders.ZERO_REVISION if hub else None,
        "license": placeholders.LICENSE,
        "description": placeholders.MARKED_TEXT.format(f"what {name} does, in a sentence or two."),
        "signature": bool(record.model_config),
        "gpu": llm,
        "cpu": "4" if llm else "1",
        "memory": "16Gi" if llm else "1Gi",
        "readiness": 600 if llm else 120,
    }


def _components(name: str, engine: str, images: dict[str, str]) -> list[dict[str, Any]]:
    """The KServe components to scaffold beside the predictor, each with its image or a
    placeholder pinned by digest."""
    chosen = []
    for component in (c for c in COMPONENTS if c in images):
        if component not in ENGINES[engine].components:
            takers = [n for n, record in ENGINES.items() if component in record.components]
            raise ScaffoldError(
                f"engine {engine} runs no {component} beside the model; "
                f"{' or '.join(takers)} does (--engine {takers[0]})"
            )
        image = images[component]
        if image and not PINNED_IMAGE.match(image):
            raise ScaffoldError(
                f"--{component} {image} is not an image pinned by digest: write "
                "registry/repository@sha256:<64 hex> (MG-SEC-001)"
            )
        placeholder = f"registry.example.com/ml/{name}-{component}@{placeholders.ZERO_DIGEST}"
        chosen.append({"name": component, "image": image or placeholder, "todo": not image})
    return chosen


def _custom_runtime(record: Engine, model_format: str) -> str | None:
    """A custom model on an engine that loads models by class (MLServer) names its class;
    the scaffold leaves a placeholder for it."""
    return placeholders.RUNTIME if record.runtimes and model_format == "custom" else None


def _allowed_formats(root: Path, engine: str) -> list[str] | None:
    from ..check import policy

    rules, problems = policy.load_policy(root)
    if problems:
        return None
    return list(rules.parameters["engines"].get(engine, {}).get("formats", []))


def _git_email(root: Path) -> str:
    from ..git import run_git

    done = run_git(root, "config", "user.email", timeout=10)
    return (done.stdout.strip() if done else "") or placeholders.OWNER
