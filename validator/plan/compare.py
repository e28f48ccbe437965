"""One endpoint's REF side against the change's: the fields that differ, section by section,
the objects created, changed and deleted, and what it costs an hour on each side."""

from __future__ import annotations

from .endpoint import SECURITY, Endpoint
from .model import (
    CHANGED,
    COST,
    CREATED,
    DELETED,
    UNCHANGED,
    Cost,
    EndpointPlan,
    FieldChange,
    ObjectChange,
)
from .prices import PriceTable, hourly


def endpoint(
    before: Endpoint | None,
    after: Endpoint | None,
    spec: str,
    prices: PriceTable,
    prices_before: PriceTable | None = None,
) -> EndpointPlan:
    present = after or before
    assert present is not None
    old = before.facts() if before is not None and before.spec else {}
    new = after.facts() if after is not None else {}
    plan = EndpointPlan(
        present.name,
        present.environment,
        spec,
        _status(before, after),
        _team(after) or _team(before),
        facts=new or old,
    )
    for key in sorted(set(old) | set(new), key=_order(new or old)):
        if old.get(key) != new.get(key):
            section, _, name = key.partition(".")
            plan.changes.append(
                FieldChange(section, name, old.get(key), new.get(key), section == SECURITY)
            )
    plan.objects = objects(before, after)
    rates = prices.rates(present.environment)
    rates_before = (prices_before or prices).rates(present.environment)
    priced_before = (prices_before or prices).currency  # no table at REF: its cost is unknown
    plan.cost_before = (
        cost(before, rates_before) if before is not None and before.spec and priced_before else None
    )
    plan.cost_after = cost(after, rates) if after is not None else None
    if plan.cost_before != plan.cost_after and prices.currency:
        for label, pick in (("atMin", _at_min), ("atMax", _at_max)):
            was, now = pick(plan.cost_before), pick(plan.cost_after)
            if was != now:
                plan.changes.append(FieldChange(COST, f"perHour.{label}", was, now))
    if plan.status == UNCHANGED and (plan.changes or plan.objects):
        plan.status = CHANGED
    return plan


def _order(facts: dict) -> object:
    ranks = {key: index for index, key in enumerate(facts)}
    return lambda key: ranks.get(key, len(ranks))


def _status(before: Endpoint | None, after: Endpoint | None) -> str:
    if before is None or not before.spec:
        return CREATED
    if after is None:
        return DELETED
    return UNCHANGED


def _team(side: Endpoint | None) -> str | None:
    return None if side is None else side.team


def cost(side: Endpoint, rates: object) -> Cost:
    replica = side.replica()
    low, high = side.replicas()
    return Cost(hourly(replica, low, rates), hourly(replica, high, rates))  # type: ignore[arg-type]


def _at_min(value: Cost | None) -> float | None:
    return None if value is None else value.at_min


def _at_max(value: Cost | None) -> float | None:
    return None if value is None else value.at_max


def objects(before: Endpoint | None, after: Endpoint | None) -> list[ObjectChange]:
    """Objects by kind and name: created, changed (any rendered byte), deleted."""
    old = before.objects if before is not None else {}
    new = after.objects if after is not None else {}
    found = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            action, item = "created", new[key]
        elif key not in new:
            action, item = "deleted", old[key]
        elif old[key].body != new[key].body:
            action, item = "changed", new[key]
        else:
            continue
        found.append(ObjectChange(action, item.kind, item.name, item.file))
    return found
