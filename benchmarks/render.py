"""How long rendering takes: N synthetic specs through every target, checks included.

    .venv/bin/python benchmarks/render.py [--count 1000] [--repeat 3]

The specs cycle through the four project examples (MLServer, vLLM, Triton, KServe with an
image), renamed, so every template runs: local MLServer settings, Kubernetes manifests per
environment, compose files and the Argo CD ApplicationSets. Every figure includes
validating the specs (schema and policies) and reading every rendered file back and
checking it against the strict Kubernetes schemas; the cold figures (`modelgate render`)
also judge every rendered object by the policy's output rules.

Figures, each the best of --repeat runs:
- cold render: `modelgate render` in a new process into an empty rendered/, in memory
  (tmpfs, when the machine has one) and on the disk the temporary directory is on;
- cold check: `modelgate render --check` against an up-to-date rendered/ (what CI and the
  pre-commit hook run: everything but the writing);
- first run: the cold render once more with an empty modelgate cache (compiled schemas and
  templates are made and stored);
- warm, in-process, without and with the CRD schemas (../shared/crds if present), and with
  the strict YAML loader alone reading files back (the fast parser switched off);
- peers: the disk creating the same files from plain Python, and Jinja2 alone rendering the
  same cluster templates to strings, nothing checked.
Target: 1,000 specs x every target under 2 s on 2 cores (cold render in memory).
Exits 0 whether or not it holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from validator import render  # noqa: E402
from validator.check import workspace  # noqa: E402
from validator.render import kube_schemas, readback  # noqa: E402

BIN = Path(sys.executable).parent
EXAMPLES = ("iris", "chat-assistant", "fraud-onnx", "churn-kserve")
CRDS = ROOT.parent / "shared" / "crds"
MEMORY = Path("/dev/shm")
TARGET_S = 2.0


def make_repository(count: int, parent: Path | None = None) -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-render-", dir=parent))
    # the examples' artifacts and model cards, which every copy of an example names
    for part in ("templates", "policies", "models/artifacts", "docs/models"):
        shutil.copytree(ROOT / part, root / part)
    examples = [yaml.safe_load((ROOT / f"models/{name}.yaml").read_text()) for name in EXAMPLES]
    for index in range(count):
        spec = examples[index % len(examples)]
        name = f"m-{index:05d}"
        spec["metadata"]["name"], example = name, spec["metadata"]["name"]
        for request in spec["spec"].get("smoke", {}).get("requests", []):
            if isinstance(request.get("body"), dict) and request["body"].get("model") == example:
                request["body"]["model"] = name  # clients call it by its name (MG285)
        endpoint = spec["spec"].get("endpoint", {})
        endpoint.pop("port", None)  # hosts and ports must be unique across specs (MG-OPS-040)
        if "host" in endpoint:
            endpoint["host"] = f"{name}.models.example.com"
        (root / "models" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def best(repeat: int, run: Callable[[], object], before: Callable[[], object] = lambda: None):
    times = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def modelgate(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [str(BIN / "modelgate"), "--root", str(root), "render", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"modelgate render {args} failed:\n{done.stdout}{done.stderr[-2000:]}")


def empty_rendered(root: Path, part: str = "rendered") -> None:
    """Remove root/part and let the file system settle: deleting thousands of files right
    before a timed run slows the next writes on some disks (discard, journal)."""
    shutil.rmtree(root / part, ignore_errors=True)
    os.sync()
    time.sleep(0.5)


def cold_render(root: Path, repeat: int) -> float:
    return best(repeat, lambda: modelgate(root), lambda: empty_rendered(root))


def first_run(root: Path) -> float:
    """One cold render with an empty cache directory."""
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    try:
        empty_rendered(root)
        env = {**os.environ, "MODELGATE_CACHE_DIR": str(cache)}
        started = time.perf_counter()
        modelgate(root, env=env)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def plain_writes(root: Path, files: list[render.RenderedFile]) -> None:
    """The disk's own cost: the same files created from plain Python, nothing else."""
    base = root / "peer-writes"
    made: set[str] = set()
    for item in files:
        target = os.path.join(base, item.path)
        directory = os.path.dirname(target)
        if directory not in made:
            os.makedirs(directory, exist_ok=True)
            made.add(directory)
        with open(target, "wb") as stream:
            stream.write(item.content.encode())


def jinja_only(root: Path, documents: list, values: dict) -> int:
    """The peer: the same templates rendered to strings, nothing parsed back or checked."""
    from validator.engines import ENGINES
    from validator.render import view

    renderer = render.Renderer(root)
    count = 0
    for document in documents:
        engine = ENGINES[document.data["spec"]["engine"]["name"]]
        for environment in document.data["spec"]["environments"]:
            context = {"v": view.cluster(document, environment, values)}
            context["v"]["triton_config"] = ""
            for template in engine.cluster:
                renderer.templates.get(template).render(context)
                count += 1
    return count


def strict_loader_only(documents: list, root: Path) -> None:
    fast_parser, readback.fast_parser = readback.fast_parser, lambda: None
    try:
        render.render_all(documents, root)
    finally:
        readback.fast_parser = fast_parser


def row(label: str, seconds: float | None, count: int, note: str = "") -> str:
    if seconds is None:
        return f"{label:<58} {'skipped':>8}  {note}"
    return f"{label:<58} {seconds:8.3f} {1000 * seconds / count:8.3f}  {note}".rstrip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    in_memory = MEMORY.is_dir() and os.access(MEMORY, os.W_OK)
    memory_root = make_repository(args.count, MEMORY if in_memory else None)
    disk_root = make_repository(args.count)
    try:
        result = workspace.validate(workspace.discover(disk_root, []), disk_root)
        if result.failed():
            raise SystemExit(f"generated specs do not validate: {result.diagnostics[:3]}")
        documents = result.valid_documents()
        rendering = render.render_all(documents, disk_root)
        files = len(rendering.files)
        rows = []
        memory_s = cold_render(memory_root, args.repeat)
        where = "in memory (tmpfs)" if in_memory else "on disk: no tmpfs here"
        rows.append((f"modelgate render, cold, empty rendered/, {where}", memory_s))
        rows.append(
            (
                "modelgate render --check, cold, rendered/ up to date",
                best(args.repeat, lambda: modelgate(memory_root, "--check")),
            )
        )
        rows.append(("modelgate render, cold, empty rendered/, on disk", None))
        disk_s = cold_render(disk_root, args.repeat)
        rows[-1] = (rows[-1][0], disk_s)
        disk_peer = best(
            args.repeat,
            lambda: plain_writes(disk_root, rendering.files),
            lambda: empty_rendered(disk_root, "peer-writes"),
        )
        rows.append((f"peer: plain Python creating the same {files} files on disk", disk_peer))
        rows.append(("modelgate render, first run: empty cache, in memory", first_run(memory_root)))
        warm_s = best(args.repeat, lambda: render.render_all(documents, disk_root))
        rows.append(("modelgate warm (in-process, no CRDs)", warm_s))
        with_crds = None
        if CRDS.is_dir():
            schemas = kube_schemas.Schemas.from_dirs([CRDS])
            with_crds = best(args.repeat, lambda: render.render_all(documents, disk_root, schemas))
        rows.append(("modelgate warm (in-process, with CRDs)", with_crds))
        rows.append(
            (
                "modelgate warm, strict YAML loader only",
                best(args.repeat, lambda: strict_loader_only(documents, disk_root)),
            )
        )
        values = render.load_values(disk_root)
        jinja_s = best(args.repeat, lambda: jinja_only(disk_root, documents, values))
        rows.append(("peer: Jinja2 alone, cluster templates, unchecked", jinja_s))
    finally:
        shutil.rmtree(memory_root, ignore_errors=True)
        shutil.rmtree(disk_root, ignore_errors=True)
    print(f"render benchmark: {args.count} specs, {files} files, best of {args.repeat}\n")
    print(f"{'figure':<58} {'seconds':>8} {'ms/spec':>8}")
    for label, seconds in rows:
        note = f"no {CRDS}" if seconds is None and "CRDs" in label else ""
        print(row(label, seconds, args.count, note))
    print(f"\nratio modelgate warm / Jinja2 alone: {warm_s / jinja_s:.2f}x")
    print(
        f"disk render - memory render: {disk_s - memory_s:.3f} s "
        f"(the disk alone needs {disk_peer:.3f} s to create the files)"
    )
    budget = TARGET_S * args.count / 1000
    verdict = "MET" if memory_s < budget else "MISSED"
    scaled = "" if args.count == 1000 else f", budget {budget:.2f} s for {args.count}"
    print(
        f"target: 1,000 specs x every target under 2 s: {verdict} "
        f"(cold render {where} {memory_s:.3f} s{scaled}; on disk {disk_s:.3f} s)"
    )
    print(
        f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
