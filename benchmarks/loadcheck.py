"""How much the load check itself adds to the latency it measures.

    .venv/bin/python benchmarks/loadcheck.py [--requests 2000]

Deploys the iris model with --keep, then sends the same smoke request N times, one at a time,
over one keep-alive connection: first with a plain http.client loop (the peer: no checks),
then with `modelgate smoke iris --load N --concurrency 1` logic in-process (expectations
checked per response). Compares median latencies. Target: the load check adds under 10%.
Prints figures; exits 0 whether or not the target holds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import validator.deploy as deploy_stage  # noqa: E402
from validator.check import workspace  # noqa: E402
from validator.deploy import smoke  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_OVERHEAD = 0.10


def plain_loop(url: str, body: dict, count: int) -> list[float]:
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    payload = json.dumps(body).encode()
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        connection.request("POST", address.path, payload, {"Content-Type": "application/json"})
        connection.getresponse().read()
        latencies.append((time.perf_counter() - began) * 1000)
    connection.close()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    deploy = subprocess.run(
        [str(BIN / "modelgate"), "deploy", "models/iris.yaml", "--keep"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if deploy.returncode != 0:
        raise SystemExit(f"deploy failed:\n{deploy.stdout}{deploy.stderr}")
    try:
        state = deploy_stage.kept(ROOT, "iris")
        assert state is not None, "the kept deployment is not found"
        document = workspace.validate([ROOT / "models/iris.yaml"], ROOT).valid_documents()[0]
        first = document.data["spec"]["smoke"]["requests"][0]
        document.data["spec"]["smoke"]["requests"] = [first]
        protocol = document.data["spec"]["engine"]["protocol"]
        endpoint = smoke.Endpoint("iris", state.base_url, protocol, state.target)
        plain_loop(endpoint.inference_url, first["body"], 200)  # warm-up
        plain = statistics.median(plain_loop(endpoint.inference_url, first["body"], args.requests))
        report = smoke.load_check(document, endpoint, args.requests, 1)
        ours = statistics.median(report.latencies_ms[first["name"]])
    finally:
        subprocess.run(
            [str(BIN / "modelgate"), "stop", "iris"], cwd=ROOT, capture_output=True, check=False
        )
    overhead = ours / plain - 1
    print(f"load check overhead: {args.requests} sequential requests, one connection\n")
    print(f"{'figure':<40} {'median ms':>10}")
    print(f"{'plain http.client loop':<40} {plain:10.3f}")
    print(f"{'modelgate load check (checks on)':<40} {ours:10.3f}")
    print(f"\noverhead: {overhead:+.1%}")
    verdict = "MET" if overhead < TARGET_OVERHEAD else "MISSED"
    print(f"target: under {TARGET_OVERHEAD:.0%}: {verdict}")
    print(
        f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
