"""The price table of templates/values.yaml (`prices`), checked at its lines, and what an
endpoint costs an hour with it.

    prices:
      currency: USD
      default: {cpuHour: 0.04, memoryGiBHour: 0.005, gpuHour: {"*": 2.5, NVIDIA-L4: 0.8}}
      production: {cpuHour: 0.05}

An environment's entry replaces the default's figures it names (gpuHour product by product);
`*` under gpuHour prices a product the table does not name. A replica is billed for what it
requests: the scheduler sets that aside whether it is used or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..check.load import Document
from ..diagnostics import Diagnostic

PRICES = "prices"
DEFAULT = "default"
ANY_PRODUCT = "*"
FIGURES = ("cpuHour", "memoryGiBHour", "gpuHour")
PRICE_TABLE_INVALID = "MG901"
NO_GPU_PRICE = "MG902"


@dataclass(frozen=True)
class Rates:
    """One environment's prices."""

    cpu_hour: float = 0.0
    memory_gib_hour: float = 0.0
    gpu_hour: dict[str, float] = field(default_factory=dict)

    def gpu(self, product: str | None) -> float | None:
        """An hour of one GPU of `product` (None: unnamed), or None when nothing prices it."""
        if product and product in self.gpu_hour:
            return self.gpu_hour[product]
        return self.gpu_hour.get(ANY_PRODUCT)


@dataclass(frozen=True)
class PriceTable:
    currency: str
    by_environment: dict[str, Rates]
    default: Rates

    def rates(self, environment: str) -> Rates:
        return self.by_environment.get(environment, self.default)


NO_PRICES = PriceTable("", {}, Rates())


@dataclass(frozen=True)
class Replica:
    """What one replica requests."""

    cpu: float  # cores
    memory: int  # bytes
    gpus: int
    product: str | None


def hourly(replica: Replica, replicas: int, rates: Rates) -> float | None:
    """What `replicas` replicas cost an hour; None when their GPUs have no price."""
    gpu = rates.gpu(replica.product) if replica.gpus else 0.0
    if gpu is None:
        return None
    one = replica.cpu * rates.cpu_hour + replica.memory / 2**30 * rates.memory_gib_hour
    return round(replicas * (one + replica.gpus * gpu), 6)


def read(values: Document | None) -> tuple[PriceTable, list[Diagnostic]]:
    """The price table templates/values.yaml declares (none: every figure 0), or the
    findings at the lines that make it unusable."""
    if values is None or PRICES not in values.data:
        return NO_PRICES, []
    table = values.data[PRICES]
    if not isinstance(table, dict):
        return NO_PRICES, [_bad(values, [PRICES], "prices must be a mapping")]
    problems: list[Diagnostic] = []
    currency = table.get("currency")
    if not isinstance(currency, str) or not currency.strip():
        problems.append(_bad(values, [PRICES], "prices.currency must name a currency, e.g. USD"))
    entries = {name: entry for name, entry in table.items() if name != "currency"}
    for name, entry in entries.items():
        _check_entry(values, name, entry, problems)
    if problems:
        return NO_PRICES, problems
    default = _over(Rates(), entries.pop(DEFAULT, {}))
    merged = {name: _over(default, entry) for name, entry in entries.items()}
    return PriceTable(currency, merged, default), []


def _check_entry(values: Document, name: str, entry: Any, problems: list[Diagnostic]) -> None:
    where = [PRICES, name]
    if not isinstance(entry, dict):
        problems.append(_bad(values, where, f"prices.{name} must be a mapping of {_listed()}"))
        return
    for key, value in entry.items():
        if key not in FIGURES:
            problems.append(
                _bad(values, [*where, key], f"prices.{name}.{key} is not a price: {_listed()}")
            )
        elif key == "gpuHour":
            if not isinstance(value, dict):
                message = f"prices.{name}.gpuHour must map GPU products (or *) to prices"
                problems.append(_bad(values, [*where, key], message))
                continue
            for product, price in value.items():
                _price(values, [*where, key, product], price, problems)
        else:
            _price(values, [*where, key], value, problems)


def _price(values: Document, where: list, price: Any, problems: list[Diagnostic]) -> None:
    number = isinstance(price, int | float) and not isinstance(price, bool)
    if not number or not math.isfinite(price) or price < 0:
        dotted = ".".join(str(part) for part in where)
        problems.append(
            _bad(values, where, f"{dotted} must be a number of 0 or more, not {price!r}")
        )


def _over(default: Rates, entry: dict[str, Any]) -> Rates:
    return Rates(
        float(entry.get("cpuHour", default.cpu_hour)),
        float(entry.get("memoryGiBHour", default.memory_gib_hour)),
        {**default.gpu_hour, **{k: float(v) for k, v in entry.get("gpuHour", {}).items()}},
    )


def _listed() -> str:
    return ", ".join(FIGURES)


def _bad(values: Document, where: list, message: str) -> Diagnostic:
    return values.finding(
        where,
        PRICE_TABLE_INVALID,
        message,
        'fix the price table in templates/values.yaml (docs/plan.md, "Cost")',
    )
