"""The accelerator products the clusters offer, as templates/values.yaml's `accelerators`
table declares them: each product's name (the vendor's product label, as
spec.resources.acceleratorProduct names it), its memory, and its vendor.

    accelerators:
      NVIDIA-A100-SXM4-80GB: {memory: 80Gi}
      AMD_Instinct_MI300X_OAM: {memory: 192Gi, accelerator: amd}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ... import quantities
from ...diagnostics import Diagnostic
from ...engines import EVERY_ACCELERATOR
from .. import load

KEY = "accelerators"
INVALID = "MG263"
_FIELDS = ("memory", "accelerator")


@dataclass(frozen=True, order=True)
class Product:
    memory: int  # bytes; first, so that products sort smallest first
    name: str
    accelerator: str = EVERY_ACCELERATOR[0]


def from_values(values: Mapping[str, Any]) -> tuple[Product, ...]:
    """The declared products, smallest memory first (lenient: check_values reports a
    product of the wrong shape, which is left out here)."""
    table = values.get(KEY)
    if not isinstance(table, Mapping):
        return ()
    found = []
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            continue
        memory = quantities.to_bytes(entry.get("memory"))
        accelerator = entry.get("accelerator", EVERY_ACCELERATOR[0])
        if memory and accelerator in EVERY_ACCELERATOR:
            found.append(Product(memory, str(name), accelerator))
    return tuple(sorted(found))


def check_values(document: load.Document) -> list[Diagnostic]:
    table = document.data.get(KEY)
    if table is None:
        return []
    if not isinstance(table, dict):
        return [_bad(document, [KEY], f"{KEY} must map each product name to its memory")]
    problems = []
    for name, entry in table.items():
        where = [KEY, name]
        if not isinstance(entry, dict):
            problems.append(_bad(document, where, f"{KEY}.{name} must be {{memory: QUANTITY}}"))
            continue
        problems += [
            _bad(document, [*where, load.Key(key)], f"{KEY}.{name}.{key} is not a product field")
            for key in entry
            if key not in _FIELDS
        ]
        memory = quantities.to_bytes(entry.get("memory"))
        if not memory:
            problems.append(
                _bad(
                    document,
                    [*where, "memory"] if "memory" in entry else where,
                    f"{KEY}.{name}.memory must be a quantity of bytes above zero, like 80Gi",
                )
            )
        if entry.get("accelerator", EVERY_ACCELERATOR[0]) not in EVERY_ACCELERATOR:
            problems.append(
                _bad(
                    document,
                    [*where, "accelerator"],
                    f"{KEY}.{name}.accelerator must be one of {', '.join(EVERY_ACCELERATOR)}",
                )
            )
    return problems


def _bad(document: load.Document, where: list, message: str) -> Diagnostic:
    return document.finding(
        where,
        INVALID,
        message,
        "write each product as NAME: {memory: 80Gi} (and accelerator: amd or intel for "
        "another vendor); see docs/plan.md, 'GPU fit'",
    )
