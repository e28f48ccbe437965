"""The environments a repository deploys to, as templates/values.yaml declares them once:
their names, the order a merge reaches them in, and how each cluster receives rendered/ENV/.

    environments:
      staging: {delivery: argocd, autoSync: true}
      production: {delivery: argocd}

- `argocd`: Argo CD syncs rendered/ENV/ through the ApplicationSet rendered/argocd/ENV.yaml.
  With `autoSync` it follows the branch by itself; without it only `modelgate rollout` syncs,
  at the commit it is given. Production never auto-syncs: its reviewers approve a commit, and
  the rollout syncs exactly that one.
- `push`: `modelgate rollout` applies rendered/ENV/ server-side with the environment's
  kubeconfig. No ApplicationSet is rendered for it, so two managers never fight over one object.

A spec that names an environment not declared here is refused (MG216), with the nearest
declared name; the section's own mistakes are reported where they are written (MG217).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..diagnostics import Diagnostic
from . import load

UNDECLARED = "MG216"
INVALID = "MG217"
ARGOCD, PUSH = "argocd", "push"
DELIVERIES = (ARGOCD, PUSH)
# the environment whose changes reviewers approve one commit at a time: never synced by itself
PRODUCTION = "production"
_SETTINGS = ("delivery", "autoSync")


@dataclass(frozen=True)
class Environment:
    name: str
    delivery: str
    auto_sync: bool = False

    @property
    def argocd(self) -> bool:
        return self.delivery == ARGOCD


def from_values(values: Mapping[str, Any]) -> dict[str, Environment] | None:
    """The declared environments in rollout order; None where the values declare none.
    Lenient: an entry of the wrong shape is left out (check_values reports it)."""
    section = values.get("environments")
    if not isinstance(section, dict):
        return None
    return {
        name: Environment(name, entry["delivery"], entry.get("autoSync") is True)
        for name, entry in section.items()
        if isinstance(entry, dict) and entry.get("delivery") in DELIVERIES
    }


def check_values(document: load.Document) -> list[Diagnostic]:
    section = document.data.get("environments")
    if section is None:
        return []
    if not isinstance(section, dict) or not section:
        return [_bad(document, ["environments"], "environments must map each name to its delivery")]
    problems: list[Diagnostic] = []
    for name, entry in section.items():
        where: list[str | int | load.Key] = ["environments", name]
        if not isinstance(entry, dict):
            problems.append(_bad(document, where, f"environments.{name} must be a mapping"))
            continue
        problems += [
            _bad(
                document,
                [*where, load.Key(key)],
                f"environments.{name}.{key} is not an environment setting",
                f"the settings are: {', '.join(_SETTINGS)}",
            )
            for key in entry
            if key not in _SETTINGS
        ]
        problems += _check_entry(document, name, entry)
    return problems


def _check_entry(document: load.Document, name: str, entry: dict[str, Any]) -> list[Diagnostic]:
    where: list[str | int | load.Key] = ["environments", name]
    if "delivery" not in entry:
        return [
            _bad(
                document,
                where,
                f"environment '{name}' names no delivery",
                f"add `delivery: {ARGOCD}` (Argo CD syncs rendered/{name}/) or "
                f"`delivery: {PUSH}` (the rollout applies it server-side)",
            )
        ]
    if entry["delivery"] not in DELIVERIES:
        return [
            _bad(
                document,
                [*where, "delivery"],
                f"environments.{name}.delivery must be one of {', '.join(DELIVERIES)}",
            )
        ]
    auto = entry.get("autoSync", False)
    if not isinstance(auto, bool):
        return [
            _bad(document, [*where, "autoSync"], f"environments.{name}.autoSync is true or false")
        ]
    if auto and entry["delivery"] == PUSH:
        return [
            _bad(
                document,
                [*where, "autoSync"],
                f"environment '{name}' is delivered by push: nothing syncs it by itself",
                "remove autoSync, or deliver the environment through argocd",
            )
        ]
    if auto and name == PRODUCTION:
        return [
            _bad(
                document,
                [*where, "autoSync"],
                "production never syncs by itself: only the production rollout syncs it, at the "
                "commit its reviewers approved",
                "remove autoSync from production",
            )
        ]
    return []


def check_spec(
    document: load.Document, declared: Mapping[str, Environment] | None
) -> list[Diagnostic]:
    """MG216 at every environment of the spec that templates/values.yaml does not declare."""
    spec = document.data.get("spec")
    names = spec.get("environments") if isinstance(spec, dict) else None
    if not isinstance(names, list):
        return []
    known = sorted(declared or {})
    return [
        document.finding(
            ["spec", "environments", index],
            UNDECLARED,
            f"environment '{name}' is not declared in templates/values.yaml",
            _suggestion(name, known),
        )
        for index, name in enumerate(names)
        if isinstance(name, str) and name not in known
    ]


def _suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'? The declared environments are: {', '.join(known)}"
    if known:
        return (
            f"the declared environments are: {', '.join(known)}; declare a new one under "
            "`environments:` in templates/values.yaml, with its delivery"
        )
    return "declare it under `environments:` in templates/values.yaml, with its delivery"


def _bad(document: load.Document, where: list, message: str, hint: str = "") -> Diagnostic:
    return document.finding(
        where,
        INVALID,
        message,
        hint or "see docs/delivery.md for the environments section of the values",
    )
