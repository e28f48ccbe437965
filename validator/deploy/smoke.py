"""Smoke tests: send the spec's requests to a live endpoint and check every expectation.

A failed expectation is a Diagnostic located at that expectation in the spec, so the author
sees `models/iris.yaml:44:15: MG601 ...` and knows exactly which line to look at.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..check.load import Document
from ..diagnostics import Diagnostic

SMOKE_FAILED = "MG601"
DEFAULT_TIMEOUT_S = 30.0

INFERENCE_PATHS = {
    "v2": "/v2/models/{name}/infer",
    "v1": "/v1/models/{name}:predict",
    "openai": "/v1/chat/completions",
}
READY_PATHS = {
    "v2": "/v2/models/{name}/ready",
    "v1": "/v1/models/{name}",
    "openai": "/v1/models",
}


@dataclass(frozen=True)
class Endpoint:
    """A live inference endpoint."""

    name: str
    base_url: str
    protocol: str
    target: str

    @property
    def inference_url(self) -> str:
        return self.base_url + INFERENCE_PATHS[self.protocol].format(name=self.name)

    @property
    def ready_url(self) -> str:
        return self.base_url + READY_PATHS[self.protocol].format(name=self.name)


@dataclass
class SmokeResult:
    name: str
    status: int | None
    latency_ms: float
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.diagnostics


@dataclass(frozen=True)
class Response:
    status: int | None
    body: str
    latency_ms: float
    failure: str = ""


def run(
    document: Document, endpoint: Endpoint, headers: Mapping[str, str] | None = None
) -> list[SmokeResult]:
    """`headers` go with every request: an API key the engine checks, for instance."""
    smoke = document.data["spec"].get("smoke") or {}
    return [
        _run_one(document, endpoint, index, request, headers or {})
        for index, request in enumerate(smoke.get("requests", []))
    ]


def post_json(
    url: str,
    body: Any,
    timeout: float = DEFAULT_TIMEOUT_S,
    headers: Mapping[str, str] | None = None,
) -> Response:
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={**(headers or {}), "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            payload = answer.read().decode("utf-8", "replace")
            status = answer.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read().decode("utf-8", "replace"), exc.code
    except (urllib.error.URLError, OSError) as exc:
        elapsed = (time.perf_counter() - started) * 1000
        reason = getattr(exc, "reason", exc)
        return Response(None, "", elapsed, f"no answer from {url}: {reason}")
    return Response(status, payload, (time.perf_counter() - started) * 1000)


def _run_one(
    document: Document,
    endpoint: Endpoint,
    index: int,
    request: dict[str, Any],
    headers: Mapping[str, str],
) -> SmokeResult:
    where = ["spec", "smoke", "requests", index]
    url = endpoint.base_url + request["path"] if "path" in request else endpoint.inference_url
    response = post_json(url, request["body"], headers=headers)
    result = SmokeResult(request["name"], response.status, response.latency_ms)

    def fail(path: list[str | int], message: str, hint: str = "") -> None:
        result.diagnostics.append(
            document.finding(
                where + path,
                SMOKE_FAILED,
                f"smoke request '{request['name']}': {message}",
                hint,
            )
        )

    if response.failure:
        fail([], response.failure, "the endpoint stopped answering; see the server log")
        return result
    for path, message in _check(request.get("expect", {}), response):
        fail(["expect", *path], message)
    return result


def _check(expect: dict[str, Any], response: Response) -> list[tuple[list[str | int], str]]:
    problems: list[tuple[list[str | int], str]] = []
    wanted_status = expect.get("status", 200)
    if response.status != wanted_status:
        snippet = response.body[:300].replace("\n", " ")
        problems.append(
            (
                ["status"] if "status" in expect else [],
                f"HTTP {response.status}, expected {wanted_status}: {snippet}",
            )
        )
        return problems
    budget = expect.get("maxLatencyMs")
    if budget is not None and response.latency_ms > budget:
        problems.append(
            (["maxLatencyMs"], f"took {response.latency_ms:.1f} ms, over the {budget} ms budget")
        )
    if "contains" in expect and expect["contains"] not in response.body:
        problems.append((["contains"], f"response does not contain {expect['contains']!r}"))
    if "outputs" in expect:
        problems.extend(_check_outputs(expect["outputs"], response.body))
    return problems


def _check_outputs(expected: list[dict[str, Any]], body: str) -> list[tuple[list[str | int], str]]:
    try:
        outputs = {out["name"]: out for out in json.loads(body)["outputs"]}
    except (ValueError, KeyError, TypeError):
        return [(["outputs"], f"response is not an inference response with outputs: {body[:200]}")]
    problems: list[tuple[list[str | int], str]] = []
    for index, want in enumerate(expected):
        got = outputs.get(want["name"])
        here: list[str | int] = ["outputs", index]
        if got is None:
            problems.append((here, f"no output named '{want['name']}' (got {sorted(outputs)})"))
            continue
        problems.extend(([*here, key], message) for key, message in _compare_output(want, got))
    return problems


def _compare_output(want: dict[str, Any], got: dict[str, Any]) -> list[tuple[str, str]]:
    name = want["name"]
    problems = []
    if "datatype" in want and got.get("datatype") != want["datatype"]:
        problems.append(
            (
                "datatype",
                f"output '{name}' has datatype {got.get('datatype')}, expected {want['datatype']}",
            )
        )
    if "shape" in want and not _shape_matches(want["shape"], got.get("shape")):
        problems.append(
            ("shape", f"output '{name}' has shape {got.get('shape')}, expected {want['shape']}")
        )
    data = _flatten(got.get("data", []))
    if "equals" in want and not _equal(data, _flatten(want["equals"])):
        problems.append(("equals", f"output '{name}' is {_short(data)}, expected {want['equals']}"))
    low, high = want.get("min", -math.inf), want.get("max", math.inf)
    outside = [v for v in data if isinstance(v, (int, float)) and not low <= v <= high]
    if outside:
        problems.append(
            (
                "min" if "min" in want else "max",
                f"output '{name}' has values outside [{low}, {high}]: {_short(outside)}",
            )
        )
    return problems


def _shape_matches(want: list[int], got: Any) -> bool:
    return (
        isinstance(got, list)
        and len(got) == len(want)
        and all(w == -1 or w == g for w, g in zip(want, got, strict=True))
    )


def _flatten(values: Any) -> list[Any]:
    if not isinstance(values, list):
        return [values]
    flat: list[Any] = []
    for value in values:
        flat.extend(_flatten(value))
    return flat


def _equal(got: list[Any], want: list[Any]) -> bool:
    if len(got) != len(want):
        return False
    return all(
        math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12)
        if _is_number(g) and _is_number(w)
        else g == w
        for g, w in zip(got, want, strict=True)
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(values: list[Any]) -> str:
    return str(values if len(values) <= 10 else [*values[:10], "..."])


@dataclass
class LoadReport:
    """What a load check measured, per smoke request name and overall."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: dict[str, list[float]]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def load_check(document: Document, endpoint: Endpoint, total: int, concurrency: int) -> LoadReport:
    """Send the spec's smoke requests round-robin, `total` in all, `concurrency` at a time,
    each checked against its expectations; fail on the error budget or a p95 latency over the
    request's budget. The requests sent are those one worker would send, dealt out to the
    workers: worker w sends the w-th, the (w + concurrency)-th, and so on. Only requests that
    were sent have latencies."""
    from concurrent.futures import ThreadPoolExecutor

    requests = (document.data["spec"].get("smoke") or {}).get("requests", [])
    if not requests or total < 1:
        return LoadReport(0, 0, 0.0, {})
    workers = min(concurrency, total)
    deals = [range(worker, total, workers) for worker in range(workers)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda deal: _worker(endpoint, requests, deal), deals))
    seconds = time.perf_counter() - started
    latencies: dict[str, list[float]] = {}
    errors = 0
    for worker_latencies, worker_errors in results:
        errors += worker_errors
        for name, values in worker_latencies.items():
            latencies.setdefault(name, []).extend(values)
    ordered = {r["name"]: latencies[r["name"]] for r in requests if r["name"] in latencies}
    report = LoadReport(total, errors, seconds, ordered)
    report.diagnostics = _budget_findings(document, report, requests)
    return report


def _worker(
    endpoint: Endpoint, requests: list[dict[str, Any]], deal: range
) -> tuple[dict[str, list[float]], int]:
    """Send requests[i % len(requests)] for each i in `deal`, on one connection."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(endpoint.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    latencies: dict[str, list[float]] = {}
    errors = 0
    try:
        for index in deal:
            request = requests[index % len(requests)]
            path = request.get("path") or urlsplit(endpoint.inference_url).path
            body = json.dumps(request["body"]).encode("utf-8")
            began = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                answer = connection.getresponse()
                payload = answer.read().decode("utf-8", "replace")
                response = Response(answer.status, payload, (time.perf_counter() - began) * 1000)
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                response = Response(None, "", (time.perf_counter() - began) * 1000, str(exc))
            latencies.setdefault(request["name"], []).append(response.latency_ms)
            expect = {k: v for k, v in request.get("expect", {}).items() if k != "maxLatencyMs"}
            if response.failure or _check(expect, response):
                errors += 1
    finally:
        connection.close()
    return latencies, errors


def _budget_findings(
    document: Document, report: LoadReport, requests: list[dict[str, Any]]
) -> list[Diagnostic]:
    findings = []
    budget = (document.data["spec"].get("smoke") or {}).get("errorBudget", 0.0)
    if report.error_rate > budget:
        findings.append(
            document.finding(
                ["spec", "smoke", "errorBudget"],
                LOAD_FAILED,
                f"load check: {report.errors} of {report.requests} requests failed "
                f"({report.error_rate:.1%}), over the error budget of {budget:.1%}",
                "see the smoke expectations; raise spec.smoke.errorBudget only after review",
            )
        )
    for index, request in enumerate(requests):
        limit = request.get("expect", {}).get("maxLatencyMs")
        p95 = percentile(report.latencies_ms.get(request["name"], []), 0.95)
        if limit is not None and p95 > limit:
            findings.append(
                document.finding(
                    ["spec", "smoke", "requests", index, "expect", "maxLatencyMs"],
                    LOAD_FAILED,
                    f"load check: '{request['name']}' p95 is {p95:.1f} ms, over "
                    f"its {limit} ms budget",
                    "lower the concurrency, add replicas, or revisit the budget",
                )
            )
    return findings


LOAD_FAILED = "MG602"
