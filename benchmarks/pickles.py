"""How long does judging model files by their bytes take, next to picklescan alone, and what
does it add to `modelgate validate` on 1,000 specs?

  example artifacts   every file under models/artifacts/: modelgate's scan (sniff, sha256,
                      walk of every opcode and import, picklescan on the walked opcodes) with
                      an empty cache, next to picklescan.scan_file_path on the same file
  100 MB joblib       a joblib file of 100 MB of float64 weights and a small estimator, plain
                      and gzip'd: the same two figures
  validate 1,000      `modelgate validate` in a new process on 1,000 specs that serve the iris
                      model (artifact in the repository), with this checkout and with
                      --baseline REF (its validator/ and policies/), each with an empty cache
                      and a warm one; CPU seconds (user + system, of the process and its
                      children), best of R. Target: this checkout within 10 % of the baseline

It is a report, not a test: it exits 0 whether or not the target is met, and non-zero only
when something could not run.

    .venv/bin/python benchmarks/pickles.py [--count 1000] [--repeat 3] [--baseline REF]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "models" / "artifacts"
TARGET_RATIO = 1.10
# main just before pickles were judged by their content (the merge of that work is 1ddd2cd):
# "today's time" the scan must stay within 10 % of
BEFORE_SCAN = "1624569ca6d49aebc23ba57543ac0fa5e6f2ad49"


def _module(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / f"benchmarks/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def best(repeat: int, run: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def modelgate_scan(path: Path, cache: Path) -> Callable[[], None]:
    from validator.check import pickles

    def run() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        pickles._SEEN.clear()
        os.environ["MODELGATE_CACHE_DIR"] = str(cache)
        verdict = pickles.scan_file(path)
        assert not verdict.unreadable, (path, verdict)

    return run


def picklescan_alone(path: Path) -> Callable[[], None]:
    import logging

    from picklescan import scanner

    logging.getLogger("picklescan").disabled = True
    return lambda: scanner.scan_file_path(str(path))


def big_joblib(folder: Path, compress: int | tuple[str, int]) -> Path:
    import joblib
    import numpy
    from sklearn.linear_model import LogisticRegression

    path = folder / f"big-{compress[0] if compress else 'plain'}.joblib"
    weights = numpy.random.default_rng(0).standard_normal(100 * 1024 * 1024 // 8)
    model = LogisticRegression()
    model.coef_ = weights.reshape(-1, 4)
    joblib.dump(model, path, compress=compress)
    return path


def files_table(paths: Sequence[Path], repeat: int, cache: Path) -> list[str]:
    lines = ["| file | MB | modelgate scan (ms) | picklescan alone (ms) |", "|---|---|---|---|"]
    for path in paths:
        ours = best(repeat, modelgate_scan(path, cache))
        theirs = best(repeat, picklescan_alone(path))
        size = path.stat().st_size / 1e6
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
        lines.append(f"| {shown} | {size:.2f} | {ours * 1000:.1f} | {theirs * 1000:.1f} |")
    return lines


def repository(count: int, parent: Path, policies_from: str | None) -> Path:
    """COUNT specs serving the iris model, its artifact, and policies/ and templates/values.yaml
    (of REF, if given: that validator reads them)."""
    root = parent / (f"at-{policies_from}" if policies_from else "here")
    _module("validate").write_specs(root, count)  # type: ignore[attr-defined]
    if policies_from:
        shutil.rmtree(root / "policies")
        shutil.rmtree(root / "templates")
        _extract(policies_from, "policies", root)
        _extract(policies_from, "templates/values.yaml", root)
    return root


def _extract(ref: str, path: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, path], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def validate_cpu(root: Path, env: dict[str, str], repeat: int, cache: Path, cold: bool) -> float:
    """CPU seconds of `modelgate validate` over ROOT/models, best of `repeat`."""
    runs = []
    argv = [sys.executable, "-m", "validator.cli", "--root", str(root), "validate"]
    for _ in range(repeat + (0 if cold else 1)):
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        process = subprocess.Popen(
            argv, cwd=root, env={**env, "MODELGATE_CACHE_DIR": str(cache)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:  # findings would measure their reporting
            raise SystemExit(f"validate failed in {root}:\n{errors[-2000:]!r}")
        runs.append(usage.ru_utime + usage.ru_stime)
    return min(runs if cold else runs[1:])


def validate_table(count: int, repeat: int, baseline: str, parent: Path) -> list[str]:
    here = repository(count, parent, None)
    there = repository(count, parent, baseline)
    tree = parent / "baseline"
    tree.mkdir()
    _extract(baseline, "validator", tree)
    ours_env = {**os.environ, "PYTHONPATH": str(REPO)}
    base_env = {**os.environ, "PYTHONPATH": str(tree)}
    lines = [
        f"| validate {count} specs | this checkout (CPU s) | {baseline} (CPU s) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    targets = []
    for cold in (True, False):
        ours = validate_cpu(here, ours_env, repeat, parent / "cache-here", cold)
        theirs = validate_cpu(there, base_env, repeat, parent / "cache-there", cold)
        ratio = ours / theirs
        verdict = "MET" if ratio <= TARGET_RATIO else "MISSED"
        label = "empty cache" if cold else "warm cache"
        lines.append(f"| {label} | {ours:.2f} | {theirs:.2f} | {ratio:.3f} | {verdict} |")
        targets.append(
            f"target: validate {count} specs within 10 % of {baseline} ({label}): {verdict} "
            f"({ratio:.3f})"
        )
    return [*lines, "", *targets]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=BEFORE_SCAN, help="git ref to compare validate with")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory(prefix="bench-pickles-") as temporary:
        parent = Path(temporary)
        cache = parent / "scan-cache"
        examples = sorted(p for p in ARTIFACTS.rglob("*") if p.is_file())
        big = [big_joblib(parent, 0), big_joblib(parent, ("gzip", 3))]
        print("# pickles.py\n", flush=True)
        print("\n".join([*files_table(examples, args.repeat, cache), ""]), flush=True)
        print("\n".join([*files_table(big, max(1, args.repeat - 1), cache), ""]), flush=True)
        print("\n".join(validate_table(args.count, args.repeat, args.baseline, parent)))
    cpus = os.cpu_count()
    print(f"\nmachine: {platform.platform()}, Python {platform.python_version()}, {cpus} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
