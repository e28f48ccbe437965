"""How long rendering takes: N synthetic specs through every target, checks included.

    .venv/bin/python benchmarks/render.py [--count 1000] [--repeat 3]

The specs cycle through the four project examples (MLServer, vLLM, Triton, KServe with an
image), renamed, so every template runs: local MLServer settings, Kubernetes manifests per
environment, compose files and the Argo CD ApplicationSets. Figures:
- modelgate cold: `modelgate render` in a new process into an empty rendered/ (every file
  parsed back and checked against the Kubernetes schemas);
- modelgate warm, in-process, without and with the CRD schemas (../shared/crds if present);
- the peer: Jinja2 alone rendering the same templates to strings, nothing checked.
Target: 1,000 specs x every target under 2 s on 2 cores. Exits 0 whether or not it holds.
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
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from validator import kube, render, workspace  # noqa: E402

BIN = Path(sys.executable).parent
EXAMPLES = ("iris", "chat-assistant", "fraud-onnx", "churn-kserve")
CRDS = ROOT.parent / "shared" / "crds"
TARGET_S = 2.0


def make_repository(count: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-render-"))
    for part in ("templates", "policies", "models/artifacts"):
        shutil.copytree(ROOT / part, root / part)
    examples = [yaml.safe_load((ROOT / f"models/{name}.yaml").read_text()) for name in EXAMPLES]
    for index in range(count):
        spec = examples[index % len(examples)]
        name = f"m-{index:05d}"
        spec["metadata"]["name"] = name
        endpoint = spec["spec"].get("endpoint", {})
        endpoint.pop("port", None)  # hosts and ports must be unique across specs (MG-OPS-040)
        if "host" in endpoint:
            endpoint["host"] = f"{name}.models.example.com"
        (root / "models" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def cold(root: Path) -> None:
    shutil.rmtree(root / "rendered", ignore_errors=True)
    done = subprocess.run(
        [str(BIN / "modelgate"), "--root", str(root), "render"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"modelgate render failed:\n{done.stdout}{done.stderr[-2000:]}")


def jinja_only(root: Path, documents: list, values: dict) -> int:
    """The peer: the same templates rendered to strings, nothing parsed back or checked."""
    from validator import view
    from validator.engines import ENGINES

    count = 0
    for document in documents:
        engine = ENGINES[document.data["spec"]["engine"]["name"]]
        for environment in document.data["spec"]["environments"]:
            context = {"v": view.cluster(document, environment, values)}
            context["v"]["triton_config"] = ""
            for template in engine.cluster:
                render._template(root, template).render(context)
                count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = make_repository(args.count)
    try:
        result = workspace.validate(workspace.discover(root, []), root)
        if result.failed():
            raise SystemExit(f"generated specs do not validate: {result.diagnostics[:3]}")
        documents = result.valid_documents()
        values = render.load_values(root)
        cold_s = best(args.repeat, lambda: cold(root))
        files = sum(1 for p in (root / "rendered").rglob("*") if p.is_file())
        warm_s = best(args.repeat, lambda: render.render_all(documents, root))
        with_crds = None
        if CRDS.is_dir():
            schemas = kube.Schemas.from_dirs([CRDS])
            with_crds = best(args.repeat, lambda: render.render_all(documents, root, schemas))
        peer = best(args.repeat, lambda: jinja_only(root, documents, values))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"render benchmark: {args.count} specs, {files} files, best of {args.repeat}\n")
    print(f"{'figure':<46} {'seconds':>8} {'ms/spec':>8}")
    rows = [
        ("modelgate cold (CLI, writes rendered/)", cold_s),
        ("modelgate warm (in-process, no CRDs)", warm_s),
        ("modelgate warm (in-process, with CRDs)", with_crds),
        ("peer: Jinja2 alone, cluster templates", peer),
    ]
    for label, seconds in rows:
        if seconds is None:
            print(f"{label:<46} {'skipped: no ' + str(CRDS):>8}")
        else:
            print(f"{label:<46} {seconds:8.3f} {1000 * seconds / args.count:8.3f}")
    print(f"\nratio modelgate warm / Jinja2 alone: {warm_s / peer:.2f}x")
    budget = TARGET_S * args.count / 1000
    verdict = "MET" if cold_s < budget else "MISSED"
    print(
        f"target: 1,000 specs x every target under 2 s: {verdict} (cold {cold_s:.3f} s"
        f"{'' if args.count == 1000 else f', budget {budget:.2f} s for {args.count}'})"
    )
    print(
        f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
