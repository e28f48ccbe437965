"""The few policy checks JSON Schema cannot express, each a small function with a name.

A rule in policies/*.yaml refers to one by `check: NAME`; the rule keeps its id, severity,
rationale and examples in the YAML like any other. Spec checks see one spec; repository
checks see every spec at once (uniqueness across files).

A repository check compares identities only (facts.IDENTITIES: name, endpoint host and port)
and reads only the fields scan.FIELDS lists: a run that checks some specs (the pre-commit
hook, --changed-since) gives it the checked specs and the others that share an identity with
one of them, found through the facts index without reading the rest. A check that compares
anything else needs facts.py taught first (tests/test_facts.py holds the list).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ... import paths
from ...engines import engine_for, loads_pickles, verified_by_pod
from ...secrets import ANY_TOKEN, TOKEN_START, find_secret
from .. import fetched, licenses, model_cards, pickles, targets
from ..load import Document, Key
from ..schema import dotted
from .rules import OTHER_ENVIRONMENTS

JsonPath = list[str | int]
SpecFinding = tuple[JsonPath, str]
RepositoryFinding = tuple[Document, JsonPath, str]


@dataclass(frozen=True)
class Context:
    root: Path
    parameters: dict[str, Any]
    # the environments the spec is judged for (validate --env, else the spec's own); what
    # per-environment parameters (licenses, pickleArtifacts) are looked up by
    environments: tuple[str, ...] = ()

    def per_environment(self, name: str) -> dict[str, Any]:
        """Parameter `name`'s value for each environment judged: its own entry, else the
        entry `*` (every environment not named); environments with neither are left out."""
        table = self.parameters.get(name) or {}
        chosen = {env: table.get(env, table.get(OTHER_ENVIRONMENTS)) for env in self.environments}
        return {env: value for env, value in chosen.items() if value is not None}


SpecCheck = Callable[[Document, Context], Iterator[SpecFinding]]
RepositoryCheck = Callable[[list[Document], Context], Iterator[RepositoryFinding]]


def artifact_inside_repository(document: Document, context: Context) -> Iterator[SpecFinding]:
    artifact = document.data["spec"]["model"].get("artifact")
    if not artifact or "://" in artifact:
        return
    where: JsonPath = ["spec", "model", "artifact"]
    path = PurePosixPath(artifact)
    if path.is_absolute() or artifact.startswith("\\") or re.match(r"^[A-Za-z]:", artifact):
        yield where, f"artifact path '{artifact}' is absolute"
    elif "\\" in artifact:
        yield where, f"artifact path '{artifact}' uses backslashes; write it with '/'"
    elif ".." in path.parts:
        yield where, f"artifact path '{artifact}' climbs out with '..'"
    else:
        local = context.root / artifact
        if local.exists() and paths.leads_out(local, context.root):
            yield where, f"artifact path '{artifact}' is a symlink that leaves the repository"


def no_inline_secrets(document: Document, context: Context) -> Iterator[SpecFinding]:
    engine = document.data["spec"]["engine"]
    for index, variable in enumerate(engine.get("env", [])):
        value = variable.get("value")
        if not isinstance(value, str):
            continue
        kind = find_secret(value, suspicious_name=variable.get("name", ""))
        if kind:
            yield (
                ["spec", "engine", "env", index, "value"],
                f"environment variable {variable['name']} holds {kind} inline",
            )
    for index, argument in enumerate(engine.get("args", [])):
        kind = find_secret(argument)
        if kind:
            yield ["spec", "engine", "args", index], f"engine argument holds {kind} inline"
    # decoded text, not the file's: YAML escapes ("\x41KIA...") must not hide a token. A
    # token in one value is a token in all of them joined; the literal prefixes gate the
    # full patterns, which gate the walk that finds where (a quarter of specs say "risk-").
    joined = "\n".join(_string_values(document.data))
    if not (TOKEN_START.search(joined) and ANY_TOKEN.search(joined)):
        return
    for path, value in _strings(document.data, []):
        if isinstance(path[-1], Key):  # a key lands in rendered files as surely as a value
            kind = find_secret(value, entropy=False)
            if kind:
                yield path, f"a key of {dotted(path[:-1])} holds {kind}"
            continue
        if path[:3] in (["spec", "engine", "env"], ["spec", "engine", "args"]):
            continue
        kind = find_secret(value, entropy=False)
        if kind:
            yield path, f"{dotted(path)} holds {kind}"


def scaling_bounds(document: Document, context: Context) -> Iterator[SpecFinding]:
    scaling = document.data["spec"].get("scaling", {})
    low, high = scaling.get("minReplicas"), scaling.get("maxReplicas")
    cap = context.parameters.get("maxReplicasCap", math.inf)
    if low is not None and high is not None and low > high:
        yield ["spec", "scaling", "minReplicas"], f"minReplicas {low} exceeds maxReplicas {high}"
    if high is not None and high > cap:
        yield ["spec", "scaling", "maxReplicas"], f"maxReplicas {high} exceeds the cap of {cap}"


def engine_supports_format(document: Document, context: Context) -> Iterator[SpecFinding]:
    spec = document.data["spec"]
    engine, model_format = spec["engine"]["name"], spec["model"]["format"]
    allowed = context.parameters.get("engines", {}).get(engine)
    if allowed is None:
        yield ["spec", "engine", "name"], f"engine {engine} is not on the allowed list"
        return
    if model_format not in allowed.get("formats", []):
        yield (
            ["spec", "model", "format"],
            f"engine {engine} does not serve format {model_format} "
            f"(allowed: {', '.join(allowed.get('formats', []))})",
        )
    version = spec["engine"].get("version")
    patterns = allowed.get("versions")
    if not engine_for(spec).takes_version:
        return  # its mode runs the cluster's servers, whose installation decides (MG226)
    if patterns and not (version and any(fnmatch.fnmatchcase(version, p) for p in patterns)):
        where: JsonPath = ["spec", "engine", "version" if version else "name"]
        yield where, f"{engine} version {version or '(unset)'} is not one of {', '.join(patterns)}"


def smoke_tested_before_merge(document: Document, context: Context) -> Iterator[SpecFinding]:
    """The pull-request workflow deploys a changed spec on the local target (an artifact of
    the repository on an engine that starts here, or a stand-in) or the docker target (a
    model image); any other spec's smoke tests first run after merge."""
    spec = document.data["spec"]
    if targets.runs_on_this_machine(spec):
        return
    model = spec["model"]
    source = model.get("artifact") or model.get("image") or "?"
    yield (
        ["spec", "smoke"] if "smoke" in spec else ["spec"],
        f"neither the local nor the docker target runs it (engine {spec['engine']['name']}, "
        f"model {source}): its smoke tests would first run after merge",
    )


def model_card_complete(document: Document, context: Context) -> Iterator[SpecFinding]:
    """A model card named by a repository path exists, and has text under each section the
    policy parameter modelCardSections names. A URL is not fetched."""
    reference = document.data["spec"].get("compliance", {}).get("modelCard")
    if not reference or not model_cards.in_repository(reference):
        return
    where: JsonPath = ["spec", "compliance", "modelCard"]
    try:
        card = model_cards.read(context.root, reference)
    except model_cards.Unreadable as exc:
        yield where, f"model card {exc}"
        return
    missing = card.missing(list(context.parameters.get("modelCardSections") or []))
    if missing:
        yield where, f"model card {reference} has no text under {', '.join(missing)}"


def license_allowed(document: Document, context: Context) -> Iterator[SpecFinding]:
    """The licence expression can be met, in every environment judged, with licences the
    policy parameter `licenses` allows there: none its `deny` patterns match and, where it
    has an `allow` list, only licences that list matches. A text that is no SPDX expression
    is MG243's finding."""
    text = document.data["spec"].get("compliance", {}).get("license")
    if text is None:
        return
    try:
        parsed = licenses.parse(text)
    except licenses.NotSpdx:
        return
    refused = [
        f"{why} in {env}"
        for env, lists in context.per_environment("licenses").items()
        if (why := _license_refusal(parsed, lists))
    ]
    if refused:
        yield (
            ["spec", "compliance", "license"],
            f"license {parsed.expression} is not allowed: {'; '.join(refused)} "
            "(policy parameter licenses)",
        )


def _license_refusal(parsed: licenses.License, lists: dict[str, Any]) -> str:
    """Why no choice of `parsed` is allowed by `lists` ({deny, allow}); "" when one is."""
    deny, allow = list(lists.get("deny") or []), lists.get("allow")
    reasons = []
    for choice in parsed.choices:
        denied = [i for i in choice if _matches(i, deny)]
        unlisted = [i for i in choice if allow is not None and not _matches(i, list(allow))]
        if not denied and not unlisted:
            return ""
        reasons.append(
            f"{', '.join(denied)} denied" if denied else f"{', '.join(unlisted)} not allowed"
        )
    return " or ".join(dict.fromkeys(reasons))


def _matches(license_id: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(license_id.lower(), str(p).lower()) for p in patterns)


PICKLE_FORMATS = pickles.PICKLE_FORMATS
ALLOWED, CHECKED, SCANNED, FORBIDDEN = "allowed", "checked", "scanned", "forbidden"


def pickle_artifacts_allowed(document: Document, context: Context) -> Iterator[SpecFinding]:
    """A pickle-based artifact (format sklearn or pytorch, a runtime that loads pickles, or a
    file that holds one) only where the policy parameter pickleArtifacts allows it:
    everywhere (allowed); scanned, or from a store when the pod checks its digest before the
    server starts (checked); only when modelgate scanned the bytes the pod loads: in the
    repository, or fetched from an https:// host at validate time with the sha256 the pod
    checks (scanned); or nowhere (forbidden)."""
    spec = document.data["spec"]
    artifact = spec["model"].get("artifact")
    if not artifact or not _pickle_based(document, artifact, context.root):
        return
    remote = "://" in artifact
    checked = verified_by_pod(spec)
    # what the spec deploys to: `validate --env production` judges every spec by production's
    # rules, and a spec that never goes there deploys no pickle there
    deployed = set(spec.get("environments", ()))
    rules = {
        env: rule
        for env, rule in context.per_environment("pickleArtifacts").items()
        if env in deployed
    }
    unscanned = ""
    if remote and SCANNED in rules.values():
        unscanned = _unscanned(spec, checked)
    refused = [
        env
        for env, rule in rules.items()
        if rule == FORBIDDEN
        or (rule == SCANNED and unscanned)
        or (rule == CHECKED and remote and not checked)
    ]
    if not refused:
        return
    if all(rules[env] == FORBIDDEN for env in refused) or not remote:
        kind = "a pickle-based artifact"
    elif all(rules[env] == CHECKED for env in refused):
        kind = (
            "a pickle-based artifact from a store, never scanned, whose digest its pod does "
            "not check before the server starts,"
        )
    else:
        kind = (
            "a pickle-based artifact from outside the repository whose bytes modelgate did "
            f"not scan ({unscanned}),"
        )
    yield (
        ["spec", "model", "artifact"],
        f"{artifact} is {kind} and is not allowed in {', '.join(refused)} "
        "(policy parameter pickleArtifacts)",
    )


def _unscanned(spec: dict[str, Any], checked: bool) -> str:
    """Why a remote artifact's bytes are not the ones modelgate scanned and the pod checks;
    "" when they are."""
    if not fetched.fetchable(spec["model"]):
        return "only a file on an https:// host with a sha256 is fetched to be scanned"
    if not checked:
        return "its pod does not check its sha256 before the server starts"
    copy = fetched.fetch(spec["model"])
    return copy.problem and f"fetching it failed: {copy.problem}"


def _pickle_based(document: Document, artifact: str, root: Path) -> bool:
    model = document.data["spec"]["model"]
    if model["format"] in PICKLE_FORMATS or loads_pickles(document.data["spec"]):
        return True
    if "://" in artifact:
        return pickles.is_pickle_based(artifact.rstrip("/"))
    return bool(pickles.pickles_held(document, root))


def pickle_imports_allowed(document: Document, context: Context) -> Iterator[SpecFinding]:
    """Every name a pickle of the spec's artifact imports when it loads (in the repository,
    or fetched from an https:// host) is on the allow-list, the policy parameter
    pickleGlobals: what the model libraries' own files need. One finding per name, which a
    waiver of this rule for the spec may name (its `globals`)."""
    allowed = set(context.parameters.get("pickleGlobals") or ())
    located = fetched.located(document.data["spec"])
    for held in pickles.pickles_held(document, context.root, located):
        for name in held.verdict.imports:
            if name not in allowed:
                yield (
                    ["spec", "model", "artifact"],
                    f"{held.shown} imports {name} when it loads, which is not on the allow-list "
                    "of what model files need (policy parameter pickleGlobals)",
                )


def runtime_selection(document: Document, context: Context) -> Iterator[SpecFinding]:
    """A runtime a spec defines is used by the specs that name it: it may ask KServe to choose
    it for models that name no runtime (autoSelect, then the highest priority) only for the
    formats the policy parameter runtimeAutoSelect lists, within maxRuntimePriority. In the
    namespace every model shares, it would otherwise take over the other teams' models."""
    runtime = document.data["spec"].get("runtime")
    if not runtime:
        return
    allowed = set(context.parameters.get("runtimeAutoSelect") or [])
    cap = context.parameters.get("maxRuntimePriority", 0)
    for index, entry in enumerate(runtime["formats"]):
        where: JsonPath = ["spec", "runtime", "formats", index]
        if entry.get("autoSelect") and entry["name"] not in allowed:
            yield (
                [*where, "autoSelect"],
                f"the runtime would be chosen for every {entry['name']} model of the namespace "
                "that names no runtime (autoSelect)",
            )
        priority = entry.get("priority")
        if priority is not None and priority > cap:
            yield [*where, "priority"], f"runtime priority {priority} exceeds the cap of {cap}"


TEAM = "{team}"  # in a teamServiceAccounts pattern: the spec's metadata.team


def service_account_of_team(document: Document, context: Context) -> Iterator[SpecFinding]:
    """spec.serviceAccountName is one of the spec's team's accounts: a pattern the policy
    parameter teamServiceAccounts lists for the team (`*`: for every team not named)."""
    account = document.data["spec"].get("serviceAccountName")
    if account is None:
        return
    team = document.data["metadata"]["team"]
    table = context.parameters.get("teamServiceAccounts") or {}
    patterns = [p.replace(TEAM, team) for p in table.get(team, table.get("*")) or []]
    if not any(fnmatch.fnmatchcase(account, pattern) for pattern in patterns):
        yield (
            ["spec", "serviceAccountName"],
            f"service account {account} is not one of team {team}'s "
            f"({', '.join(patterns) or 'none'})",
        )


def unique_endpoints(documents: list[Document], context: Context) -> Iterator[RepositoryFinding]:
    """A host name is one route wherever the specs run, so hosts are unique in the repository.
    Ports collide only where specs share a machine: the local and docker targets run here and
    share its ports, while in a cluster every pod has an address of its own."""
    yield from _taken_twice(documents, "host", "")
    here = [doc for doc in documents if targets.runs_on_this_machine(doc.data["spec"])]
    yield from _taken_twice(
        here, "port", "; both run on this machine, whose ports the local and docker targets share"
    )


def _taken_twice(documents: list[Document], field: str, why: str) -> Iterator[RepositoryFinding]:
    """Every spec whose spec.endpoint.FIELD an earlier one already took, at that field."""
    owners: dict[Any, Document] = {}
    for document in documents:
        value = document.data["spec"].get("endpoint", {}).get(field)
        if value is None:
            continue
        if value in owners:
            yield (
                document,
                ["spec", "endpoint", field],
                f"endpoint {field} {value} is already used by {owners[value].path}{why}",
            )
        else:
            owners[value] = document


def _string_values(node: Any) -> list[str]:
    """Every mapping key and string value in `node`, without the paths _strings builds (those
    are only wanted for the rare spec whose text looks like it holds a token)."""
    found, pending = [], [node]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            found.append(current)
        elif isinstance(current, dict):
            found.extend(current)
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return found


def _strings(node: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    """Every string value with its path, and every mapping key with its path ending in a Key."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield [*path, Key(key)], key
            yield from _strings(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, [*path, index])


SPEC_CHECKS: dict[str, SpecCheck] = {
    "artifact_inside_repository": artifact_inside_repository,
    "no_inline_secrets": no_inline_secrets,
    "scaling_bounds": scaling_bounds,
    "engine_supports_format": engine_supports_format,
    "model_card_complete": model_card_complete,
    "license_allowed": license_allowed,
    "pickle_artifacts_allowed": pickle_artifacts_allowed,
    "pickle_imports_allowed": pickle_imports_allowed,
    "smoke_tested_before_merge": smoke_tested_before_merge,
    "runtime_selection": runtime_selection,
    "service_account_of_team": service_account_of_team,
}
REPOSITORY_CHECKS: dict[str, RepositoryCheck] = {
    "unique_endpoints": unique_endpoints,
}
CHECKS = {**SPEC_CHECKS, **REPOSITORY_CHECKS}
