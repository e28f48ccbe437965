"""Cost grows with the change, not the repository: issue 17's targets at 1,000, 10,000 and
30,000 specs, next to today's commands measured in the same run.

    .venv/bin/python benchmarks/scale.py [--counts 1000,10000,30000] [--repeat 3]
                                         [--quiet-load 3 --max-wait 30] [--today main]

For each count: a repository made by render.py's make_repository (the four examples,
renamed, cycled), rendered and committed on `main`, and a branch `change` that edits one spec
(m-00041's maxReplicas) and its rendered files, as a pull request does. Every figure is a
cold `modelgate` process; CPU is user + system time of the command and every process it
waited for (workers, git); memory is the peak resident size of its largest process.

- pre-commit hook: `modelgate validate models/m-00041.yaml` in the repository, once with no
  facts index (the cache as `make venv` leaves it: validator/cli/precompile.py) and then warm
  (median of --repeat); the peer is the same command on one of the project's own 4 specs.
  Target at 10,000 specs: <= 0.3 s, the same as in the 4-spec repository.
- pull request in CI: a fresh clone at `change` on a fresh runner, whose cache holds only
  what `make venv` compiled: `validate --changed-since origin/main` then `render --check
  --changed-since origin/main` (best of --repeat, the cache reset each time); also with an
  empty cache, as if `make venv` compiled nothing. Today's commands on the same clone,
  `validate` and `render --check`, are its peer. Target at 10,000: <= 1.5 s for both.
- everything, cold, on the clone (the merge workflow's checks): `validate` and `render
  --check`. Targets at 10,000: validate <= 4 s, render --check <= 12 s, <= 1 GiB.
- today's commands, as --today (a git ref of this project, `main` by default) has them: its
  modelgate (its validator/, run with this environment's dependencies) on the same
  repository, with a cache of its own: the pre-commit hook (`validate FILE`, warm, median),
  a pull request (`validate` + `render --check` on the clone, nothing cached: a fresh
  runner), and everything (`validate`, `render --check`, warm).
- how cost grows: a least-squares line through the counts, for each command: its cost per
  1,000 specs and the fixed part.

The machine is usually shared: before each large measurement the script waits (at most
--max-wait seconds) for the 1-minute load average to fall under --quiet-load, and prints the
load it measured under. Exits 0 whether or not the targets hold.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHANGED = "m-00041"  # a chat assistant (vLLM): every fourth spec from m-00001
TARGETS = {  # at 10,000 specs
    "precommit": 0.3,
    "pull request": 1.5,
    "validate": 4.0,
    "render --check": 12.0,
    "memory": 1024.0,  # MiB
}
TARGET_COUNT = 10_000


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mib: float
    load: float

    def __add__(self, other: Run) -> Run:
        return Run(
            self.wall + other.wall,
            self.cpu + other.cpu,
            max(self.rss_mib, other.rss_mib),
            max(self.load, other.load),
        )


def make_repository(count: int, parent: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "benchmarks/render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_repository(count, parent)


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """The 1-minute load average once it is under `limit`, or after `max_wait` seconds."""
    waited = 0.0
    while os.getloadavg()[0] >= limit and waited < max_wait:
        time.sleep(10)
        waited += 10
    return os.getloadavg()[0]


def today_tree(ref: str, parent: Path) -> Path | None:
    """REF's validator/ in a directory of its own (compiled, as `make venv` compiles it), or
    None when this checkout has no such ref."""
    tree = parent / "today"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "validator"], cwd=ROOT, capture_output=True
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    compileall.compile_dir(tree / "validator", quiet=1)
    return tree


def today_env(tree: Path, cache: Path, fresh: bool = False) -> dict[str, str]:
    """Runs `modelgate` with REF's validator/ first on the path (the repository it runs in
    has no validator/ of its own to shadow it) and a cache of its own."""
    return {**cache_env(cache, fresh=fresh), "PYTHONPATH": str(tree)}


def measure(argv: Sequence[str], cwd: Path, env: dict[str, str], expect: int = 0) -> Run:
    """One cold command: wall time, CPU of it and the processes it waited for, peak RSS."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} exited {process.returncode}:\n{errors[-3000:]!r}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, load)


def modelgate(*args: str) -> list[str]:
    return [str(BIN / "modelgate"), *args]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=GIT_ENV)


GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def cache_env(directory: Path, fresh: bool = False, installed: bool = False) -> dict[str, str]:
    """The environment of a run whose cache is `directory`: emptied when `fresh`, then
    holding what `make venv` compiles when `installed`."""
    if fresh:
        shutil.rmtree(directory, ignore_errors=True)
    env = {**os.environ, "MODELGATE_CACHE_DIR": str(directory)}
    if installed:
        precompile = [sys.executable, "-m", "validator.cli.precompile"]
        subprocess.run(precompile, env=env, check=True, cwd=ROOT)
    return env


def build(count: int, parent: Path) -> tuple[Path, Path]:
    """The repository (main, then the branch `change` checked out) and a fresh clone of it."""
    root = make_repository(count, parent)
    env = cache_env(parent / "cache")
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(modelgate("--root", str(root), "render"), **quiet)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"{count} specs")
    git(root, "checkout", "-q", "-b", "change")
    spec = root / "models" / f"{CHANGED}.yaml"
    spec.write_text(spec.read_text().replace("maxReplicas: 6", "maxReplicas: 7"))
    subprocess.run(modelgate("--root", str(root), "render", str(spec)), **quiet)
    git(root, "commit", "-q", "-am", f"{CHANGED}: one more replica")
    clone = parent / "clone"
    git(parent, "clone", "-q", str(root), str(clone))
    return root, clone


@dataclass
class Figures:
    count: int
    precommit_cold: Run
    precommit_warm: Run
    pull_request: Run
    pull_request_empty_cache: Run
    validate: Run
    render_check: Run
    today: Today | None


@dataclass
class Today:
    """Today's commands (--today's code) on the same repository."""

    precommit: Run
    pull_request: Run
    validate: Run
    render_check: Run


def changed_since(clone: Path, env: dict[str, str]) -> Run:
    """What the pull-request workflow runs: both commands, for what the change touches."""
    base = "origin/main"
    return measure(modelgate("validate", "--changed-since", base), clone, env) + measure(
        modelgate("render", "--check", "--changed-since", base), clone, env
    )


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda run: run.wall)


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(run.wall for run in runs),
        statistics.median(run.cpu for run in runs),
        max(run.rss_mib for run in runs),
        max(run.load for run in runs),
    )


def measure_today(
    tree: Path, root: Path, clone: Path, parent: Path, runs: int, quiet: float, max_wait: float
) -> Today:
    """Today's hook, pull request and full checks, with --today's code."""
    hook = modelgate("validate", f"models/{CHANGED}.yaml")
    env = today_env(tree, parent / "today-cache", fresh=True)
    measure(hook, root, env)  # its compiled schemas and templates, as a developer has them
    wait_for_quiet(quiet, max_wait)
    precommit = median([measure(hook, root, env) for _ in range(runs)])
    pull_request, validate, render_check = [], [], []
    for _ in range(runs):
        wait_for_quiet(quiet, max_wait)  # a fresh runner: nothing cached
        fresh = today_env(tree, parent / "today-pr-cache", fresh=True)
        pull_request.append(
            measure(modelgate("validate"), clone, fresh)
            + measure(modelgate("render", "--check"), clone, fresh)
        )
        wait_for_quiet(quiet, max_wait)
        validate.append(measure(modelgate("validate"), clone, env))
        wait_for_quiet(quiet, max_wait)
        render_check.append(measure(modelgate("render", "--check"), clone, env))
    return Today(precommit, best(pull_request), best(validate), best(render_check))


def measure_count(
    count: int, repeat: int, quiet: float, max_wait: float, tree: Path | None
) -> Figures:
    parent = Path(tempfile.mkdtemp(prefix=f"bench-scale-{count}-"))
    try:
        print(f"  building {count} specs ...", file=sys.stderr, flush=True)
        root, clone = build(count, parent)
        print(f"  measuring {count} specs ...", file=sys.stderr, flush=True)
        hook = modelgate("validate", f"models/{CHANGED}.yaml")
        wait_for_quiet(quiet, max_wait)
        cold = measure(hook, root, cache_env(parent / "hook-cache", fresh=True, installed=True))
        warm = [measure(hook, root, cache_env(parent / "hook-cache")) for _ in range(repeat)]
        pull_request, empty = [], []
        for _ in range(repeat):
            wait_for_quiet(quiet, max_wait)  # CI: a fresh runner, only `make venv` before
            env = cache_env(parent / "pr-cache", fresh=True, installed=True)
            pull_request.append(changed_since(clone, env))
            wait_for_quiet(quiet, max_wait)
            empty.append(changed_since(clone, cache_env(parent / "pr-cache", fresh=True)))
        env = cache_env(parent / "full-cache")
        measure(modelgate("validate"), clone, env)  # compiles the schemas once, like a runner
        runs = max(1, repeat if count <= TARGET_COUNT else 1)
        validate, render_check = [], []
        for _ in range(runs):
            wait_for_quiet(quiet, max_wait)
            validate.append(measure(modelgate("validate"), clone, env))
            wait_for_quiet(quiet, max_wait)
            render_check.append(measure(modelgate("render", "--check"), clone, env))
        today = None
        if tree is not None:
            print(f"  measuring today's commands at {count} specs ...", file=sys.stderr, flush=True)
            today = measure_today(tree, root, clone, parent, runs, quiet, max_wait)
        return Figures(
            count,
            cold,
            median(warm),
            best(pull_request),
            best(empty),
            best(validate),
            best(render_check),
            today,
        )
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def small_hook(repeat: int) -> Run:
    """The peer of the pre-commit figure: the same command in the project's 4-spec models/."""
    env = cache_env(Path(tempfile.mkdtemp(prefix="bench-scale-small-")))
    measure(modelgate("validate", "models/iris.yaml"), ROOT, env)  # warm the caches
    runs = [measure(modelgate("validate", "models/iris.yaml"), ROOT, env) for _ in range(repeat)]
    shutil.rmtree(env["MODELGATE_CACHE_DIR"], ignore_errors=True)
    return median(runs)


# --- reporting --------------------------------------------------------------------------


def row(label: str, run: Run, note: str = "") -> str:
    return (
        f"{label:<58} {run.wall:8.3f} {run.cpu:8.3f} {run.rss_mib:8.0f} {run.load:6.1f}  {note}"
    ).rstrip()


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares: (seconds per 1,000 specs, fixed seconds)."""
    if len(points) < 2:
        count, seconds = points[0]
        return 1000 * seconds / count, 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return 1000 * slope, mean_y - slope * mean_x


def verdict(run: Run, target: float, today: Run | None) -> str:
    """MET or MISSED against the target, with CPU time and the load beside the wall time, and
    today's figure for the same work."""
    shown = f"{run.wall:.3f} s wall, {run.cpu:.3f} s CPU, load {run.load:.1f}"
    was = f"; today {today.wall:.3f} s wall, {today.cpu:.3f} s CPU" if today else ""
    if run.wall <= target:
        return f"MET ({shown}{was})"
    return f"MISSED ({shown}: {run.wall / target:.2f}x the target, {why(run, target)}{was})"


def why(run: Run, target: float) -> str:
    """Whether the CPU the work needs fits the target: within it on one core, the wait was
    for a core (the load); within it only on every core, it depends on the part that runs in
    parallel; beyond that, the work itself is too much for this machine."""
    cores = os.cpu_count() or 1
    if run.cpu <= target:
        return f"its {run.cpu:.3f} s of CPU fit in the target: the load made the difference"
    if run.cpu / cores <= target:
        return (
            f"its {run.cpu:.3f} s of CPU fit in the target only if all of it ran in parallel "
            f"on {cores} free cores"
        )
    return (
        f"its {run.cpu:.3f} s of CPU take {run.cpu / cores:.3f} s on {cores} free cores at "
        "best: the work itself misses"
    )


def memory_verdict(mib: float, today: float | None) -> str:
    was = f"; today {today:.0f} MiB" if today is not None else ""
    word = "MET" if mib <= TARGETS["memory"] else "MISSED"
    return f"{word} ({mib:.0f} MiB{was})"


def report(figures: list[Figures], small: Run, repeat: int, today_ref: str) -> list[str]:
    lines = [
        f"scale benchmark: one changed spec, cold processes, best of {repeat} (pre-commit: median)",
        f"today: the same commands with {today_ref}'s modelgate, in the same run",
        "",
        f"{'figure':<58} {'wall s':>8} {'cpu s':>8} {'MiB':>8} {'load':>6}",
        row("pre-commit hook, 4 specs (the project's models/)", small),
    ]
    for found in figures:
        n = f"{found.count:,}"
        today = found.today
        lines.append("")
        if today:
            lines.append(row(f"{n}: pre-commit hook, today", today.precommit))
        lines += [
            row(f"{n}: pre-commit hook, facts index cold", found.precommit_cold),
            row(f"{n}: pre-commit hook, facts index warm", found.precommit_warm),
        ]
        if today:
            lines.append(
                row(f"{n}: pull request, today: validate + render --check", today.pull_request)
            )
        lines += [
            row(f"{n}: pull request, --changed-since, fresh runner", found.pull_request),
            row(f"{n}: pull request, --changed-since, empty cache", found.pull_request_empty_cache),
        ]
        if today:
            lines.append(row(f"{n}: everything: validate, today", today.validate))
        lines.append(row(f"{n}: everything: validate", found.validate))
        if today:
            lines.append(row(f"{n}: everything: render --check, today", today.render_check))
        lines.append(row(f"{n}: everything: render --check", found.render_check))
        if today:
            lines.append(
                f"{n}: today / now: pre-commit hook "
                f"{today.precommit.wall / found.precommit_warm.wall:.1f}x, pull request "
                f"{today.pull_request.wall / found.pull_request.wall:.1f}x, validate "
                f"{today.validate.wall / found.validate.wall:.2f}x, render --check "
                f"{today.render_check.wall / found.render_check.wall:.2f}x; "
                f"hook warm / 4-spec hook {found.precommit_warm.wall / small.wall:.2f}x"
            )
    lines.append("")
    picks: list[tuple[str, Callable[[Figures], Run | None]]] = [
        ("validate (everything)", lambda f: f.validate),
        ("render --check (everything)", lambda f: f.render_check),
        ("pull request (--changed-since)", lambda f: f.pull_request),
        ("pre-commit hook (index warm)", lambda f: f.precommit_warm),
        ("today: validate", lambda f: f.today.validate if f.today else None),
        ("today: render --check", lambda f: f.today.render_check if f.today else None),
        ("today: pull request", lambda f: f.today.pull_request if f.today else None),
        ("today: pre-commit hook", lambda f: f.today.precommit if f.today else None),
    ]
    for label, pick in picks:
        runs = [(f.count, run) for f in figures if (run := pick(f)) is not None]
        if not runs:
            continue
        wall = fit([(count, run.wall) for count, run in runs])
        cpu = fit([(count, run.cpu) for count, run in runs])
        lines.append(
            f"cost per 1,000 specs, {label}: {wall[0]:.3f} s wall ({cpu[0]:.3f} s CPU), "
            f"fixed {wall[1]:.3f} s"
        )
    lines.append("")
    at = next((f for f in figures if f.count == TARGET_COUNT), None)
    if at is None:
        lines.append(f"targets: judged at {TARGET_COUNT:,} specs, which this run did not measure")
    else:
        was = at.today
        peak = max(at.validate.rss_mib, at.render_check.rss_mib)
        lines += [
            f"target: pre-commit hook at 10,000 specs under {TARGETS['precommit']} s: "
            + verdict(at.precommit_warm, TARGETS["precommit"], was.precommit if was else None),
            f"target: pull request at 10,000 specs under {TARGETS['pull request']} s: "
            + verdict(at.pull_request, TARGETS["pull request"], was.pull_request if was else None),
            f"target: validate everything at 10,000 specs under {TARGETS['validate']} s: "
            + verdict(at.validate, TARGETS["validate"], was.validate if was else None),
            f"target: render --check everything at 10,000 specs under "
            f"{TARGETS['render --check']} s: "
            + verdict(
                at.render_check, TARGETS["render --check"], was.render_check if was else None
            ),
            "target: peak memory at 10,000 specs under 1 GiB: "
            + memory_verdict(
                peak, max(was.validate.rss_mib, was.render_check.rss_mib) if was else None
            ),
        ]
    counts = sorted(f.count for f in figures)
    if len(counts) >= 3 and counts[0] <= 1000 and counts[-1] >= 3 * TARGET_COUNT:
        per_spec = {
            label: 1e3 * fit([(f.count, pick(f).cpu) for f in figures])[0]  # us a spec
            for label, pick in (
                ("pre-commit hook", lambda f: f.precommit_warm),
                ("pull request", lambda f: f.pull_request),
                ("validate", lambda f: f.validate),
                ("render --check", lambda f: f.render_check),
            )
        }
        listed = ", ".join(f"{label} {cost:.1f} us" for label, cost in per_spec.items())
        lines.append(
            f"target: figures at {', '.join(f'{n:,}' for n in counts)} specs and the fitted "
            f"cost per spec: MET (CPU a spec: {listed})"
        )
    lines.append(
        f"machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; load is the 1-minute average when each figure started; "
        "CPU is user + system time of the command and every process it waited for"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,10000,30000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quiet-load", type=float, default=3.0)
    parser.add_argument("--max-wait", type=float, default=30.0)
    parser.add_argument("--today", default="main", help="the git ref whose commands are today's")
    args = parser.parse_args()
    counts = [int(part) for part in args.counts.split(",") if part]
    small = small_hook(max(args.repeat, 5))  # the cache as a developer's machine has it
    parent = Path(tempfile.mkdtemp(prefix="bench-scale-today-"))
    try:
        tree = today_tree(args.today, parent)
        if tree is None:
            print(f"  no git ref {args.today}: today's commands not measured", file=sys.stderr)
        figures = [
            measure_count(n, args.repeat, args.quiet_load, args.max_wait, tree) for n in counts
        ]
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print("\n".join(report(figures, small, args.repeat, args.today)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
