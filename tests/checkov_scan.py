"""Checkov, an independent scanner, on the Kubernetes manifests in rendered/.

Every failed check must be listed in policies/checkov/exceptions.yaml with a reason, and every
entry there must still match a failed check (a stale entry fails too), so the list says what
is true today. tests/test_checkov.py runs this; so does `make scan`:

    .venv/bin/python tests/checkov_scan.py

Checkov has an environment of its own, installed from locks/checkov.txt (hashes required) on
first use and cached under MODELGATE_TEST_CACHE (default /var/cache/modelgate-tests, else
~/.cache/modelgate-tests when that is not writable), keyed by the lock's sha256 and the Python
version: its pins (packaging<24) conflict with the project's, and .venv stays small.

Checkov runs offline: no platform download (--skip-download, BC_SKIP_MAPPING), no version
check against PyPI (CKV_SKIP_PACKAGE_UPDATE_CHECK), no API key or CKV_* setting from the
caller's environment, no configuration file from the caller's home or working directory. A
sitecustomize module on its PYTHONPATH refuses every network connection and records it; a
scan that tried one fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from validator.check.load import EMPTY, NOT_A_MAPPING, Document, load_file
from validator.deploy.lock import held

PROJECT = Path(__file__).resolve().parents[1]
LOCK = PROJECT / "locks" / "checkov.txt"
EXCEPTIONS = PROJECT / "policies" / "checkov" / "exceptions.yaml"
EXCEPTIONS_SHOWN = "policies/checkov/exceptions.yaml"
RENDERED = PROJECT / "rendered"
DEFAULT_CACHE = Path("/var/cache/modelgate-tests")

# What keeps Checkov offline, besides --skip-download and the caller's settings removed.
OFFLINE = {
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",  # else it asks PyPI for a newer checkov
    "BC_SKIP_MAPPING": "TRUE",  # else it downloads the platform's guideline mapping
}
# Settings of the caller's environment Checkov would obey (an API key uploads results; a
# CKV_SKIP_CHECK hides failures): none of them reaches the scan.
CALLER_SETTINGS = ("BC_", "CKV_", "CHECKOV_", "PRISMA_", "PYTHON")
WORKLOAD_KINDS = {
    "Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Service",
}  # fmt: skip
ENTRY_KEYS = {"check", "reason", "resources", "files"}
ONE_KEY = "the file holds one key, `exceptions:`, a list of entries"

NETWORK_GUARD = '''\
"""Imported by every Python process of a Checkov scan (PYTHONPATH): no network access. A
connection attempt is refused and recorded in $MODELGATE_NETWORK_LOG; the scan then fails."""
import os
import socket

_log = os.environ.get("MODELGATE_NETWORK_LOG", "")


def _refuse(what):
    if _log:
        with open(_log, "a", encoding="utf-8") as stream:
            stream.write(what + "\\n")
    raise OSError("network access is refused during the Checkov scan: " + what)


def _local(sock):
    return sock.family == getattr(socket, "AF_UNIX", None)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def connect(self, address):
    if _local(self):
        return _connect(self, address)
    _refuse("connect %r" % (address,))


def connect_ex(self, address):
    if _local(self):
        return _connect_ex(self, address)
    _refuse("connect %r" % (address,))


def getaddrinfo(host, *args, **kwargs):
    _refuse("getaddrinfo %r" % (host,))


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


class Unavailable(Exception):
    """Checkov's environment cannot be installed here; the test skips with this reason."""


class ScanError(Exception):
    """Checkov ran but its answer cannot be trusted (a crash, no JSON, a network attempt)."""


class ExceptionsFileError(Exception):
    """The exceptions file is malformed; the message has file:line:col for each problem."""


# --- Checkov's environment -----------------------------------------------------------------


def cache_root() -> Path:
    configured = os.environ.get("MODELGATE_TEST_CACHE")
    if configured:
        return Path(configured)
    try:
        DEFAULT_CACHE.mkdir(parents=True, exist_ok=True)
        if os.access(DEFAULT_CACHE, os.W_OK):
            return DEFAULT_CACHE
    except OSError:
        pass
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelgate-tests"


def environment_dir(lock: Path = LOCK) -> Path:
    """Where the environment of this lock, for this Python, is cached."""
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_root() / f"checkov-{digest}-{python}"


def ensure_environment(lock: Path = LOCK) -> Path:
    """The Python of Checkov's environment, installed from `lock` on first use."""
    target = environment_dir(lock)
    python = target / "bin" / "python"
    complete = target / ".complete"
    if complete.is_file():
        return python
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Unavailable(f"cannot create {target.parent}: {exc.strerror}") from exc
    with held(target.parent / "checkov.lock"):
        if not complete.is_file():  # another run may have built it while this one waited
            shutil.rmtree(target, ignore_errors=True)  # what a killed run left half-built
            uv = _uv()
            _install([uv, "venv", "--quiet", "--python", sys.executable, str(target)])
            sync = [uv, "pip", "sync", "--quiet", "--require-hashes", "--compile-bytecode"]
            sync += ["--python", str(python)]
            _install([*sync, str(lock)])
            complete.write_text(hashlib.sha256(lock.read_bytes()).hexdigest() + "\n")
    return python


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        raise Unavailable("uv is not installed (it comes with `make venv`)")
    return found


def _install(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(
            f"cannot install Checkov from {LOCK.relative_to(PROJECT)}: {exc}"
        ) from exc
    if done.returncode != 0:
        raise Unavailable(
            f"cannot install Checkov from {LOCK.relative_to(PROJECT)}: {done.stderr.strip()[-600:]}"
        )


# --- Running Checkov -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    network_attempts: list[str]


def run_checkov(
    python: Path, arguments: Sequence[str], settings: Mapping[str, str] = OFFLINE
) -> Run:
    """`python -m checkov.main ARGUMENTS` with only `settings` of Checkov's own, a home and a
    working directory of its own (no .checkov.yaml of the caller's) and the network guard."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        home = Path(scratch)
        guard = home / "guard"
        guard.mkdir()
        (guard / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
        log = home / "network.log"
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.upper().startswith(CALLER_SETTINGS)
        }
        environment.update(
            HOME=str(home),
            XDG_CACHE_HOME=str(home / "cache"),
            CKV_CACHE_DIR=str(home / "cache"),
            PYTHONPATH=str(guard),
            MODELGATE_NETWORK_LOG=str(log),
            **settings,
        )
        try:
            done = subprocess.run(
                [str(python), "-m", "checkov.main", *arguments],
                capture_output=True,
                text=True,
                cwd=home,
                env=environment,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ScanError(f"checkov did not run: {exc}") from exc
        attempts = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return Run(done.returncode, done.stdout, done.stderr, attempts)


@dataclass(frozen=True, order=True)
class Failure:
    check: str
    resource: str
    file: str  # from the repository root: rendered/production/x/deployment.yaml
    line: int
    title: str = field(compare=False)


@dataclass
class Scan:
    version: str
    passed: int
    failures: list[Failure]
    skipped: list[Failure]  # skipped inside a manifest (checkov.io/skip annotations)
    parsing_errors: list[str]
    scanned_files: set[str]


def scan(python: Path, directory: Path = RENDERED, shown: str = "rendered") -> Scan:
    """Checkov's kubernetes checks on `directory`; file paths are reported as `shown`/..."""
    for name in (".checkov.yaml", ".checkov.yml"):
        if (directory / name).exists():
            raise ScanError(f"{shown}/{name} would configure Checkov; it has no place there")
    arguments = ["--directory", str(directory), "--framework", "kubernetes", "--skip-download"]
    run = run_checkov(python, [*arguments, "--output", "json"])
    if run.network_attempts:
        raise ScanError("Checkov tried to reach the network: " + "; ".join(run.network_attempts))
    if run.returncode not in (0, 1):
        raise ScanError(f"checkov exited {run.returncode}: {run.stderr.strip()[-1500:]}")
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        raise ScanError(f"checkov printed no JSON ({exc}): {run.stdout[:500]}") from exc
    return _parse(_kubernetes_report(report), directory, shown)


def _kubernetes_report(report: Any) -> dict[str, Any]:
    """Checkov prints one report per framework: a list of them, one, or a bare summary when
    nothing was found."""
    reports = report if isinstance(report, list) else [report]
    for candidate in reports:
        if isinstance(candidate, dict) and candidate.get("check_type") == "kubernetes":
            return candidate
    summary = reports[0] if reports and isinstance(reports[0], dict) else {}
    return {"results": {}, "summary": summary}


def _parse(report: dict[str, Any], directory: Path, shown: str) -> Scan:
    results = report.get("results") or {}
    summary = report.get("summary") or {}

    def failures(key: str) -> list[Failure]:
        return sorted(_failure(item, directory, shown) for item in results.get(key) or [])

    passed = results.get("passed_checks") or []
    everything = (
        passed + (results.get("failed_checks") or []) + (results.get("skipped_checks") or [])
    )
    return Scan(
        version=str(summary.get("checkov_version", "?")),
        passed=len(passed),
        failures=failures("failed_checks"),
        skipped=failures("skipped_checks"),
        parsing_errors=sorted(
            _shown(path, directory, shown) for path in results.get("parsing_errors") or []
        ),
        scanned_files={_shown(item["file_path"], directory, shown) for item in everything},
    )


def _failure(item: dict[str, Any], directory: Path, shown: str) -> Failure:
    lines = item.get("file_line_range") or [0]
    return Failure(
        check=item["check_id"],
        resource=item["resource"],
        file=_shown(item["file_path"], directory, shown),
        line=int(lines[0]),
        title=item.get("check_name") or "",
    )


def _shown(path: str, directory: Path, shown: str) -> str:
    """Checkov names a file from the scanned directory as /a/b.yaml, some lists by its
    absolute path: either way, `shown`/a/b.yaml."""
    if Path(path).is_relative_to(directory):
        path = Path(path).relative_to(directory).as_posix()
    return f"{shown}/{path.lstrip('/')}"


def workload_files(directory: Path = RENDERED, shown: str = "rendered") -> set[str]:
    """Files under `directory` that Checkov must have scanned: those holding a Kubernetes kind
    it has checks for, and those that are not even YAML (Checkov skips a file it cannot parse
    without a word, so the scan would vouch for a file it never read)."""
    found = set()
    for path in sorted(directory.rglob("*.yaml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError):
            documents = [{"kind": "unreadable"}]
        kinds = {doc.get("kind") for doc in documents if isinstance(doc, dict)}
        if kinds & (WORKLOAD_KINDS | {"unreadable"}):
            found.add(f"{shown}/{path.relative_to(directory).as_posix()}")
    return found


# --- The exceptions file -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One exception: a check id, why, and optionally the resources and files it covers."""

    check: str
    reason: str
    resources: tuple[str, ...]
    files: tuple[str, ...]
    where: str  # file:line:col of the entry
    pattern_places: dict[tuple[str, str], str]  # (field, pattern) -> file:line:col

    def covers(self, failure: Failure) -> bool:
        return (
            failure.check == self.check
            and (
                not self.resources or any(fnmatchcase(failure.resource, p) for p in self.resources)
            )
            and (not self.files or any(fnmatchcase(failure.file, p) for p in self.files))
        )


def load_exceptions(path: Path = EXCEPTIONS, shown: str = EXCEPTIONS_SHOWN) -> list[Entry]:
    document, problems = load_file(path, shown)
    if document is None and any(p.rule in (NOT_A_MAPPING, EMPTY) for p in problems):
        raise ExceptionsFileError(f"{shown}:1:1: {ONE_KEY}")
    if document is None:
        raise ExceptionsFileError(
            "\n".join(f"{p.path}:{p.line}:{p.col}: {p.message} ({p.hint})" for p in problems)
        )
    errors: list[str] = []
    entries = _entries(document, errors)
    if errors:
        raise ExceptionsFileError("\n".join(errors))
    return entries


def _entries(document: Document, errors: list[str]) -> list[Entry]:
    def at(path: list[str | int], message: str) -> None:
        line, col = document.locate(path)
        errors.append(f"{document.path}:{line}:{col}: {message}")

    data = document.data
    if not isinstance(data, dict) or set(data) != {"exceptions"}:
        at([], ONE_KEY)
        return []
    listed = data["exceptions"]
    if not isinstance(listed, list):
        at(["exceptions"], "`exceptions:` must be a list (write `exceptions: []` for none)")
        return []
    entries = []
    for index, item in enumerate(listed):
        entry = _entry(document, ["exceptions", index], item, at)
        if entry is not None:
            entries.append(entry)
    return entries


def _entry(document: Document, path: list[str | int], item: Any, at: Any) -> Entry | None:
    if not isinstance(item, dict):
        at(path, "an entry is a mapping: check, reason, and optionally resources and files")
        return None
    unknown = sorted(set(item) - ENTRY_KEYS)
    if unknown:
        at([*path, unknown[0]], f"unknown key {unknown[0]!r}; an entry has {sorted(ENTRY_KEYS)}")
        return None
    check, reason = item.get("check"), item.get("reason")
    ok = True
    if not isinstance(check, str) or not check.startswith(("CKV_K8S_", "CKV2_K8S_")):
        at([*path, "check"], "`check:` must be a Checkov Kubernetes check id, like CKV_K8S_43")
        ok = False
    if not isinstance(reason, str) or not reason.strip():
        at([*path, "reason"], "`reason:` must say why the check does not apply, or `TO FIX:` "
           "and the change that will fix it")  # fmt: skip
        ok = False
    patterns: dict[str, tuple[str, ...]] = {}
    places: dict[tuple[str, str], str] = {}
    for key in ("resources", "files"):
        value = item.get(key, [])
        if key in item and (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            at([*path, key], f"`{key}:` must be a non-empty list of patterns (* matches anything)")
            ok = False
            continue
        patterns[key] = tuple(value)
        for number, pattern in enumerate(value):
            line, col = document.locate([*path, key, number])
            places[(key, pattern)] = f"{document.path}:{line}:{col}"
    if not ok:
        return None
    line, col = document.locate(path)
    return Entry(
        check=check,
        reason=reason.strip(),
        resources=patterns["resources"],
        files=patterns["files"],
        where=f"{document.path}:{line}:{col}",
        pattern_places=places,
    )


# --- Comparing the two ---------------------------------------------------------------------


@dataclass
class Verdict:
    scan: Scan
    excepted: list[Failure]
    unexcepted: list[Failure]
    stale: list[str]  # file:line:col: what to remove
    unscanned: list[str]

    @property
    def clean(self) -> bool:
        return not (
            self.unexcepted
            or self.stale
            or self.scan.skipped
            or self.scan.parsing_errors
            or self.unscanned
        )

    def summary(self, shown: str = "rendered") -> str:
        scan = self.scan
        return (
            f"Checkov {scan.version} (kubernetes) on {shown}/: {scan.passed} passed, "
            f"{len(scan.failures)} failed ({len(self.excepted)} excepted in "
            f"{EXCEPTIONS_SHOWN}), {len(scan.skipped)} skipped, "
            f"{len(scan.parsing_errors)} parsing errors"
        )

    def report(self, shown: str = "rendered") -> str:
        """What is wrong and exactly what to change; empty when clean."""
        parts: list[str] = []
        if self.unexcepted:
            parts.append(_unexcepted_report(self.unexcepted))
        if self.stale:
            parts.append(
                "Stale exceptions: they match no failed check any more (fixed, or covered by "
                f"an earlier entry). Remove from {EXCEPTIONS_SHOWN}:\n"
                + "\n".join(f"  {line}" for line in self.stale)
            )
        if self.scan.skipped:
            parts.append(
                "Checks skipped inside manifests (a checkov.io/skip annotation): exceptions "
                f"belong in {EXCEPTIONS_SHOWN}, with a reason; remove the annotation:\n"
                + "\n".join(f"  {_line(f)}" for f in self.scan.skipped)
            )
        if self.scan.parsing_errors:
            parts.append(
                "Files Checkov could not parse (the scan vouches for nothing in them):\n"
                + "\n".join(f"  {path}" for path in self.scan.parsing_errors)
            )
        if self.unscanned:
            parts.append(
                f"Files under {shown}/ that Checkov did not scan (it skips a file it cannot "
                "parse without a word):\n" + "\n".join(f"  {path}" for path in self.unscanned)
            )
        return "\n\n".join(parts)


def compare(scan: Scan, entries: Sequence[Entry], workloads: set[str] | None = None) -> Verdict:
    """Each failure is excepted by the first entry that covers it; an entry, or a pattern of
    an entry, that excepts nothing is stale."""
    claimed: dict[int, list[Failure]] = {index: [] for index in range(len(entries))}
    unexcepted = []
    for failure in scan.failures:
        owner = next((i for i, entry in enumerate(entries) if entry.covers(failure)), None)
        if owner is None:
            unexcepted.append(failure)
        else:
            claimed[owner].append(failure)
    stale = []
    for index, entry in enumerate(entries):
        stale.extend(_stale(entry, claimed[index]))
    excepted = sorted(f for failures in claimed.values() for f in failures)
    unscanned = sorted((workloads or set()) - scan.scanned_files)
    return Verdict(scan, excepted, unexcepted, stale, unscanned)


def _stale(entry: Entry, claimed: list[Failure]) -> list[str]:
    if not claimed:
        narrowed = "".join(
            f" {key}: {list(patterns)}"
            for key, patterns in (("resources", entry.resources), ("files", entry.files))
            if patterns
        )
        return [f"{entry.where}: the entry for {entry.check}{narrowed}"]
    lines = []
    for key, patterns, value in (
        ("resources", entry.resources, lambda f: f.resource),
        ("files", entry.files, lambda f: f.file),
    ):
        for pattern in patterns:
            if not any(fnmatchcase(value(f), pattern) for f in claimed):
                place = entry.pattern_places[(key, pattern)]
                lines.append(f"{place}: the {key} pattern {pattern!r} of {entry.check}")
    return lines


def _line(failure: Failure) -> str:
    return f"{failure.check} {failure.resource} ({failure.file}:{failure.line}) {failure.title}"


def _unexcepted_report(failures: list[Failure]) -> str:
    by_check: dict[str, list[Failure]] = {}
    for failure in failures:
        by_check.setdefault(failure.check, []).append(failure)
    listing = "\n".join(f"  {_line(f)}" for f in failures)
    snippet = "".join(
        f"  # {group[0].title}\n"
        f"  - check: {check}\n"
        '    reason: ""  # why it does not apply here, or "TO FIX: " and the template change\n'
        "    resources:\n"
        + "".join(f"      - {resource}\n" for resource in sorted({f.resource for f in group}))
        for check, group in by_check.items()
    )
    return (
        f"Failed checks with no exception: fix the templates (then `modelgate render`), or add "
        f"an entry with a reason to {EXCEPTIONS_SHOWN}:\n{listing}\n\n"
        f"Entries to add under `exceptions:` (fill in each reason):\n{snippet.rstrip()}"
    )


def check() -> Verdict:
    """The verdict on rendered/: Checkov installed if needed, its scan compared with the
    exceptions file. The test and `make scan` both come here."""
    entries = load_exceptions()
    python = ensure_environment()
    return compare(scan(python), entries, workload_files())


def main(arguments: list[str]) -> int:
    """`make scan`: the test's verdict on rendered/, for people; exit 0 clean, 1 not, 3 when
    Checkov cannot run."""
    if arguments:
        print("usage: checkov_scan.py   (scans rendered/; no arguments)", file=sys.stderr)
        return 2
    try:
        verdict = check()
    except ExceptionsFileError as problems:
        print(problems, file=sys.stderr)
        return 1
    except (Unavailable, ScanError) as problem:
        print(f"checkov_scan: {problem}", file=sys.stderr)
        return 3
    print(verdict.summary())
    for failure in verdict.excepted:
        print(f"  excepted: {_line(failure)}")
    if verdict.clean:
        return 0
    print("\n" + verdict.report())
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
