"""`modelgate smoke NAME [--load N --concurrency C]` against a real kept MLServer."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from validator.check import load
from validator.deploy.smoke import Endpoint, load_check, percentile

from .conftest import IRIS_SPEC, Scaffold, run_cli
from .test_deploy_local import engine_processes

pytestmark = pytest.mark.engine


@pytest.fixture
def kept(scaffold: Scaffold):
    spec = scaffold.iris()
    result = run_cli("--root", str(scaffold.root), "deploy", str(spec), "--keep")
    assert result.code == 0, result.out + result.err
    yield scaffold
    run_cli("--root", str(scaffold.root), "stop", "iris")
    assert engine_processes(scaffold.root, keepers=True) == []


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


def test_as_many_workers_as_requests_send_every_smoke_request(kept: Scaffold) -> None:
    result = smoke(kept, "--load", "8", "--concurrency", "8")
    assert result.code == 0, result.out + result.err
    rows = {
        line.split()[0]: [float(value) for value in line.split()[1:]]
        for line in result.out.splitlines()
        if line.strip().startswith(("setosa", "three-species"))
    }
    assert sorted(rows) == ["setosa", "three-species"]
    assert all(min(values) > 0 for values in rows.values()), result.out


def test_a_request_never_sent_is_not_reported(kept: Scaffold) -> None:
    result = smoke(kept, "--load", "1", "--concurrency", "8")
    assert result.code == 0, result.out + result.err
    assert "setosa" in result.out and "three-species" not in result.out


@pytest.mark.parametrize("concurrency", ["0", "257", "100000"])
def test_concurrency_out_of_range_is_a_usage_error(scaffold: Scaffold, concurrency: str) -> None:
    scaffold.iris()
    result = smoke(scaffold, "--load", "10", "--concurrency", concurrency)
    assert result.code == 2 and "--concurrency" in result.err


@pytest.fixture
def recorder() -> Iterator[tuple[Endpoint, Counter[str]]]:
    """A real HTTP server that counts the requests it receives by their input shape."""
    received: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                received[str(body["inputs"][0]["shape"])] += 1
            answer = b'{"outputs": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Endpoint("iris", f"http://127.0.0.1:{server.server_port}", "v2", "local"), received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("total", "concurrency"), [(8, 8), (7, 3), (5, 64), (1, 4)])
def test_load_requests_cycle_through_the_smoke_requests_as_one_worker_would(
    recorder: tuple[Endpoint, Counter[str]], total: int, concurrency: int
) -> None:
    endpoint, received = recorder
    document, problems = load.load_text(IRIS_SPEC, "models/iris.yaml")
    assert document is not None and not problems
    report = load_check(document, endpoint, total, concurrency)
    single = Counter(["[1, 4]", "[3, 4]"][index % 2] for index in range(total))
    assert received == single
    sent = {"setosa": single["[1, 4]"], "three-species": single["[3, 4]"]}
    assert {name: len(values) for name, values in report.latencies_ms.items()} == {
        name: count for name, count in sent.items() if count
    }
    assert report.requests == total
