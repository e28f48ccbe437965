"""Each engine of the local target on its example spec: install, ready time and memory.

    .venv/bin/python benchmarks/engines.py [--cold] [SPEC...]

For every example spec (default: iris, iris-xgboost, iris-kserve, fraud-onnx-small,
tiny-llama, chat-assistant on vLLM, and chat-assistant@llamacpp: the same spec with the
tiny Qwen2 in GGUF on llama.cpp as its stand-in, the size and architecture of the one vLLM
serves) it reports:

- install: how long making its engine environment took in this run (0 when it was cached;
  with --cold, every environment is installed again into a scratch cache, removed at the end,
  the downloads and built wheels of uv's own cache kept);
- ready: from starting the engine to the model's own readiness (the protocol's model-ready
  path), as `modelgate deploy` waits for it;
- smoke: the spec's smoke requests, all of them;
- RSS: the resident memory of the engine's processes (the keeper excluded) once ready.

Prints figures; exits 0 whether or not they please (non-zero only when a deploy failed).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from validator.check import stand_in, workspace  # noqa: E402
from validator.deploy import environments, local, smoke  # noqa: E402

EXAMPLES = (
    "iris",
    "iris-xgboost",
    "iris-kserve",
    "fraud-onnx-small",
    "tiny-llama",
    "chat-assistant",
    "chat-assistant@llamacpp",
)
# NAME@VARIANT: spec NAME with its stand-in replaced, to compare engines on one model
STAND_IN_VARIANTS = {
    "llamacpp": {
        "artifact": "models/artifacts/tiny-qwen2/tiny-qwen2.gguf",
        "sha256": "3870e92149b637a8efd14b59b654c3f1d08f4bee661e649a9ce511c1c1eb25f5",
        "format": "gguf",
        "engine": "llamacpp",
        "script": "models/artifacts/tiny-qwen2/make.py",
    },
}


def rss_mib(root_pid: int) -> float:
    """Resident memory of the processes under `root_pid` (itself excluded: the keeper)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, list(children.get(root_pid, []))
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)  # fmt: skip
    return total / 1024


def measure(name: str) -> tuple[str, float, float, float, float, int] | None:
    spec_name, _, variant = name.partition("@")
    spec = ROOT / "models" / f"{spec_name}.yaml"
    validation = workspace.validate([spec], ROOT)
    if validation.failed():
        print(f"{name}: invalid spec", file=sys.stderr)
        return None
    document = validation.valid_documents()[0]
    if variant:  # under a name of its own: its local files are not the spec's
        _as_variant(document.data, variant)
    environment = local._environment_of(document)
    began = time.perf_counter()
    if environment:
        environments.ensure(environment, lambda text: print(f"  {text}", flush=True))
    installed = time.perf_counter() - began
    document = stand_in.served(document)  # as the deploy serves it
    problem = local._prepare(document, ROOT)
    if problem:
        print(f"{name}: {problem.message}", file=sys.stderr)
        return None
    server, problem = local._start(document, ROOT)
    if problem or server is None:
        print(f"{name}: {problem.message if problem else 'no server'}", file=sys.stderr)
        return None
    try:
        began = time.perf_counter()
        failures = local._wait_ready(document, server)
        ready = time.perf_counter() - began
        if failures:
            print(f"{name}: {failures[0].message}\n{failures[0].hint}", file=sys.stderr)
            return None
        memory = rss_mib(server.process.pid)
        began = time.perf_counter()
        results = smoke.run(document, server.endpoint)
        smoked = time.perf_counter() - began
        passed = sum(result.passed for result in results)
        return environment or "(modelgate's)", installed, ready, smoked, memory, passed
    finally:
        server.stop()
        if variant:
            shutil.rmtree(ROOT / "rendered/local" / document.data["metadata"]["name"], True)


def _as_variant(data: dict, variant: str) -> None:
    """The spec with the variant's stand-in, named NAME-on-VARIANT (its smoke requests too)."""
    name = data["metadata"]["name"]
    data["metadata"]["name"] = f"{name}-on-{variant}"
    data["spec"]["smoke"]["standIn"] = STAND_IN_VARIANTS[variant]
    for request in data["spec"]["smoke"].get("requests", []):
        if isinstance(request.get("body"), dict) and request["body"].get("model") == name:
            request["body"]["model"] = data["metadata"]["name"]


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", default=list(EXAMPLES))
    parser.add_argument("--cold", action="store_true", help="install every environment anew")
    options = parser.parse_args(arguments)
    scratch = tempfile.mkdtemp(prefix="bench-engines-") if options.cold else ""
    if scratch:  # removed at the end: four environments take 2 GB
        os.environ["MODELGATE_CACHE_DIR"] = scratch
    try:
        return report(options.specs)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def report(specs: list[str]) -> int:
    rows, failed = [], False
    for name in specs:
        measured = measure(name)
        failed |= measured is None
        if measured:
            rows.append((name, *measured))
    print(f"{'spec':<24} {'environment':<18} {'install s':>9} {'ready s':>8} {'smoke s':>8} "
          f"{'RSS MiB':>8}  smoke passed")  # fmt: skip
    for name, environment, installed, ready, smoked, memory, passed in rows:
        print(f"{name:<24} {environment:<18} {installed:9.1f} {ready:8.2f} {smoked:8.2f} "
              f"{memory:8.0f}  {passed}")  # fmt: skip
    print(f"machine: {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
