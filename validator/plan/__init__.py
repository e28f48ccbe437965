"""`modelgate plan`: what a change will do, per endpoint and environment, before it merges.

    REF (git: its specs, its committed rendered/) ──┐
                                                    ├─ compare ─> Plan ─> text | markdown | json
    work tree (specs checked, rendered in memory) ──┘      │
                                                           └─ changeRules ─> findings

A plan compares what the change renders with what REF renders: model, engine, capacity,
exposure (security-relevant), policy (waivers, weakened rules), GPU fit, cost per hour from
the price table, and the objects created, changed and deleted. REF is read from git, never
checked out. Entry: plan.run(...) -> Planned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..check import changes, load, workspace
from ..check.changes import GitError
from ..diagnostics import Diagnostic, Severity, has_errors
from . import compare, policy_delta, prices, refusals, sides
from .endpoint import Endpoint
from .fit import endpoint_fit
from .model import DELETED, Plan

__all__ = ["GitError", "Planned", "run"]


@dataclass
class Planned:
    plan: Plan
    # what kept the change from rendering (no plan then), the price table's and the change
    # rules' findings
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unplanned: bool = False  # the change does not render (or the price table is unusable)

    def failed(self) -> bool:
        return has_errors(self.diagnostics)


def run(
    root: Path,
    ref: str,
    files: Sequence[str] = (),
    approvers: Sequence[str] = (),
    today: dt.date | None = None,
    live: dict[str, str] | None = None,
) -> Planned:
    """The plan of the change from REF to the work tree: of the specs `files` names, or of
    every spec the change touches. Raises GitError when REF cannot be read."""
    commit = sides.resolve(root, ref)
    changed = changes.changed_files(root, ref)
    names = _names(root, files, changed)
    from ..check.policy import load_policy
    from ..render import values_document

    loaded = load_policy(root)
    values = values_document(root)
    table, problems = prices.read(values)
    plan = Plan(ref, commit, table.currency)
    if problems:
        return Planned(plan, problems, unplanned=True)
    before = sides.at_ref(root, commit, names)
    table_before = _prices_at(root, commit, table)
    present = [
        root / "models" / f"{name}{suffix}" for name in names for suffix in workspace.SPEC_SUFFIXES
    ]
    after = sides.of_change(root, [path for path in present if path.is_file()], loaded)
    if after.failed:
        return Planned(plan, after.diagnostics, unplanned=True)
    waivers = policy_delta.waiver_changes(root, commit, today or dt.date.today())
    for key in sorted(set(before.endpoints) | set(after.side.endpoints)):
        old, new = before.endpoints.get(key), after.side.endpoints.get(key)
        document = after.side.documents.get(key[0]) or before.documents.get(key[0])
        shown = document.path if document is not None else f"models/{key[0]}.yaml"
        endpoint = compare.endpoint(old, new, shown, table, table_before)
        endpoint.waivers = [w for w in waivers if w.spec == key[0]]
        if new is not None and key[0] in after.side.documents:
            endpoint.fit = endpoint_fit(after.side.documents[key[0]], root, _values(values))
        plan.endpoints.append(endpoint)
    if any(path.parts[0] == "policies" for path in changed):
        plan.weakened = policy_delta.weakened_by_change(root, commit, loaded[0])
    documents = {**before.documents, **after.side.documents}
    context = refusals.Context(
        plan, loaded[0], documents, set(approvers), _team_cost(root, table, after.side)
    )
    diagnostics = [*_unpriced(plan, documents, table), *refusals.judge(context)]
    plan.findings = diagnostics
    if live:
        from . import live as live_diff

        plan.live = live_diff.compare(root, live, after.side)
    return Planned(plan, diagnostics)


def _prices_at(root: Path, commit: str, now: prices.PriceTable) -> prices.PriceTable:
    """REF's price table, for what the endpoints cost there; the change's where REF's is
    unusable (it passed its checks there, so only a repository without one)."""
    from ..render import TEMPLATE_DIR, VALUES_FILE

    name = f"{commit}:{TEMPLATE_DIR}/{VALUES_FILE}"
    raw = sides.read_blobs(root, [name]).get(name)
    document = load.load_bytes(raw, f"{TEMPLATE_DIR}/{VALUES_FILE}")[0] if raw else None
    table, problems = prices.read(document)
    return now if problems or document is None else table


def _values(document: load.Document | None) -> dict:
    return document.data if document is not None else {}


def _names(root: Path, files: Sequence[str], changed: list[PurePosixPath]) -> list[str]:
    """The spec names to plan: those `files` names, else those the change edits, adds or
    deletes, and every spec when it changes what every spec renders (templates/, values,
    modelgate itself)."""
    if files:
        return sorted({PurePosixPath(name).stem for name in files})
    everything = any(
        path.parts[0] == "templates"
        or (path.parts[0] in changes.TOOL and not changes.engine_lock(path))
        for path in changed
    )
    named = {
        path.stem
        for path in changed
        if len(path.parts) == 2
        and path.parts[0] == "models"
        and path.suffix in workspace.SPEC_SUFFIXES
    }
    if everything:
        named |= {Path(path).stem for path in workspace.every_spec(root)}
    return sorted(named)


def _unpriced(
    plan: Plan, documents: dict[str, load.Document], table: prices.PriceTable
) -> list[Diagnostic]:
    """MG902 (a warning) where an endpoint's GPUs have no price in the table."""
    if not table.currency:
        return []
    found = {}
    for endpoint in plan.endpoints:
        if endpoint.status == DELETED or endpoint.cost_after is None:
            continue
        if endpoint.cost_after.at_max is None and endpoint.name in documents:
            document = documents[endpoint.name]
            product = endpoint.facts.get("capacity.gpuProduct") or "(none named)"
            line, col = document.locate(["spec", "resources", "acceleratorProduct"])
            found[endpoint.name] = Diagnostic(
                document.path,
                line,
                col,
                prices.NO_GPU_PRICE,
                Severity.WARNING,
                f"no GPU price for {product} in {endpoint.environment}: its cost is not known",
                "add the product (or `*`) under prices.*.gpuHour in templates/values.yaml",
            )
    return list(found.values())


def _team_cost(
    root: Path, table: prices.PriceTable, side: sides.Side
) -> Callable[[str, str], float]:
    """A team's hourly cost in an environment at max replicas: the change's specs as
    rendered, every other spec of models/ as the work tree has it (read only when a budget
    is asked about)."""
    cache: dict[str, list[Endpoint]] = {}

    def endpoints() -> list[Endpoint]:
        if "all" not in cache:
            found = dict(side.endpoints)
            for path in workspace.every_spec(root):
                name = Path(path).stem
                if name in side.documents:
                    continue
                document, problems = load.load_file(Path(path), f"models/{Path(path).name}")
                spec = document.data.get("spec") if document is not None else None
                if problems or not isinstance(spec, dict):
                    continue
                for env in spec.get("environments") or []:
                    found[(name, env)] = sides.endpoint_of(name, env, document)
            cache["all"] = list(found.values())
        return cache["all"]

    def team_cost(team: str, environment: str) -> float:
        rates = table.rates(environment)
        return sum(
            compare.cost(endpoint, rates).at_max or 0.0
            for endpoint in endpoints()
            if endpoint.team == team and endpoint.environment == environment
        )

    return team_cost
