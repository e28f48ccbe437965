"""Local deploy + smoke-test time against a raw `mlserver start` of the same model to ready.

    .venv/bin/python benchmarks/deploy.py [--repeat 3]

The peer is what anyone would do by hand: start MLServer on the rendered settings and poll
the model's ready endpoint. modelgate does more in its figure (validate, render, verify the
artifact's sha256, smoke-test, tear down), so the ratio is the price of those guarantees.
Target: at most 1.2x. Prints figures; exits 0 whether or not the target holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_RATIO = 1.2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_mlserver_to_ready() -> float:
    workdir = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
    port = free_port()
    env = {**os.environ, "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(free_port())}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "mlserver"), "start", str(ROOT / "rendered/local/iris")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v2/models/iris/ready", timeout=2
                ) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            if process.poll() is not None:
                raise SystemExit("mlserver exited before the model was ready")
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def modelgate_deploy() -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "modelgate"), "deploy", "models/iris.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"modelgate deploy failed:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw = min(raw_mlserver_to_ready() for _ in range(args.repeat))
    ours = min(modelgate_deploy() for _ in range(args.repeat))
    ratio = ours / raw
    print(f"local deploy benchmark: iris on MLServer, best of {args.repeat}\n")
    print(f"{'figure':<44} {'seconds':>8}")
    print(f"{'raw mlserver start to model ready':<44} {raw:8.3f}")
    print(f"{'modelgate deploy (validate..smoke..teardown)':<44} {ours:8.3f}")
    print(f"\nratio modelgate / raw: {ratio:.2f}x")
    verdict = "MET" if ratio <= TARGET_RATIO else "MISSED"
    print(f"target: at most {TARGET_RATIO}x: {verdict}")
    print(
        f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
