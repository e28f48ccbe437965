"""`modelgate smoke NAME [--load N --concurrency C]` against a real kept MLServer."""

from __future__ import annotations

import pytest

from validator.smoke import percentile

from .conftest import Scaffold, run_cli
from .test_deploy_local import engine_processes

pytestmark = pytest.mark.engine


@pytest.fixture
def kept(scaffold: Scaffold):
    spec = scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "deploy", str(spec), "--keep")
    assert result.code == 0, result.out + result.err
    yield scaffold
    run_cli("--root", str(scaffold.root), "stop", "iris")
    assert engine_processes(scaffold.root) == []


def smoke(scaffold: Scaffold, *args: str):
    return run_cli("--root", str(scaffold.root), "smoke", "iris", *args)


def test_smoke_and_load_check_pass(kept: Scaffold) -> None:
    once = smoke(kept)
    assert once.code == 0 and "smoke pass  setosa" in once.out
    loaded = smoke(kept, "--load", "200", "--concurrency", "4")
    assert loaded.code == 0, loaded.out + loaded.err
    assert "load check iris: 200 requests, concurrency 4" in loaded.out
    assert "errors 0 (0.0%)" in loaded.out
    rows = [line.split() for line in loaded.out.splitlines() if line.strip().startswith("setosa")]
    p50, p95, p99 = map(float, rows[0][1:])
    assert 0 < p50 <= p95 <= p99


def test_latency_budget_fails_the_load_check(kept: Scaffold) -> None:
    spec = kept.root / "models" / "iris.yaml"
    spec.write_text(spec.read_text().replace("maxLatencyMs: 500", "maxLatencyMs: 0.001"))
    result = smoke(kept, "--load", "50", "--concurrency", "2")
    assert result.code == 1
    assert (
        "MG602 load check: 'setosa' p95 is" in result.err
        and "over its 0.001 ms budget" in result.err
    )


def test_error_budget_fails_the_load_check(kept: Scaffold) -> None:
    spec = kept.root / "models" / "iris.yaml"
    spec.write_text(
        spec.read_text()
        .replace("equals: [0]}", "equals: [2]}")
        .replace(
            "    readinessTimeoutSeconds: 60",
            "    readinessTimeoutSeconds: 60\n    errorBudget: 0.4",
        )
    )
    result = smoke(kept, "--load", "40", "--concurrency", "2")
    assert result.code == 1
    assert "MG602 load check: 20 of 40 requests failed (50.0%), over the error budget of 40.0%" in (
        result.err
    )


def test_no_running_deployment(scaffold: Scaffold) -> None:
    scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "smoke", "iris", "--load", "10")
    assert result.code == 1 and "no running deployment named 'iris'" in result.err


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([], 0.5) == 0.0 and percentile([7.0], 0.99) == 7.0
