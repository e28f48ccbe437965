"""An engine's lock (locks/engine-NAME.txt) installs what its dependency group in
pyproject.toml resolves to, and nothing else: the lock's own `# via` annotations are the
resolver's graph, and every pin must be reached from a requirement the group declares. A
package no declared input requires (a wheel whose .pth runs in every Python of the engine's
environment, say) is refused at its line, as is a root the group does not declare.

Offline, a pin's hashes cannot be checked against the index; a pin that another lock of the
repository holds at the same version must carry the same hashes (one edited by hand does
not), and the installer refuses any other mismatch when it downloads.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..diagnostics import Diagnostic, error

LOCK_DIR = "locks"
GROUP_PREFIX = "engine-"
UNREQUIRED = "MG305"
HASHES_DIFFER = "MG306"
ROOT_UNDECLARED = "MG307"
ROOT = "modelgate (pyproject.toml"  # how uv names the project's own requirements in `# via`
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")  # a requirement's project name


@dataclass
class Pin:
    name: str
    version: str
    line: int
    hashes: set[str] = field(default_factory=set)
    via: list[str] = field(default_factory=list)


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(text: str) -> list[Pin]:
    """The pins of a `uv pip compile` lock, each with its hashes and `# via` entries."""
    pins: list[Pin] = []
    in_via = False
    for number, line in enumerate(text.splitlines(), start=1):
        match = _PIN.match(line)
        if match:
            pins.append(Pin(normal(match[1]), match[3], number))
            in_via = False
        elif pins and (hashes := _HASH.findall(line)):
            pins[-1].hashes.update(hashes)
        elif pins and line.strip().startswith("# via"):
            rest = line.strip().removeprefix("# via").strip()
            in_via = not rest
            if rest:
                pins[-1].via.append(rest)
        elif pins and in_via and line.strip().startswith("#   "):
            pins[-1].via.append(line.strip().removeprefix("#").strip())
        else:
            in_via = False
    return pins


def check(root: Path) -> list[Diagnostic]:
    directory = root / LOCK_DIR
    locks = sorted(directory.glob(f"{GROUP_PREFIX}*.txt")) if directory.is_dir() else []
    if not locks:
        return []
    groups = _groups(root)
    if groups is None:
        return []
    every = {path: _read(path, root) for path in sorted(directory.glob("*.txt"))}
    known: dict[tuple[str, str], list[tuple[str, Pin]]] = {}
    for path, pins in every.items():
        for pin in pins or []:
            known.setdefault((pin.name, pin.version), []).append((path.name, pin))
    findings: list[Diagnostic] = []
    for path in locks:
        shown = f"{LOCK_DIR}/{path.name}"
        pins = every.get(path)
        if pins is None:
            continue
        group = path.stem
        findings.extend(_graph_findings(shown, group, pins, groups.get(group)))
        findings.extend(_hash_findings(shown, pins, known))
    return findings


def _read(path: Path, root: Path) -> list[Pin] | None:
    if paths.link_finding(path, root):  # a link out: the file is another check's finding
        return None
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def _groups(root: Path) -> dict[str, set[str]] | None:
    """The names each engine-NAME dependency group of pyproject.toml requires."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    groups = data.get("dependency-groups", {})
    return {
        name: {normal(m[1]) for item in items if isinstance(item, str) and (m := _NAME.match(item))}
        for name, items in groups.items()
        if name.startswith(GROUP_PREFIX) and isinstance(items, list)
    }


def _graph_findings(
    shown: str, group: str, pins: list[Pin], declared: set[str] | None
) -> list[Diagnostic]:
    """Every pin reached from the group's declared requirements through `# via`."""
    own_root = f"{ROOT}:{group})"
    findings = []
    roots = set()
    for pin in pins:
        if any(entry.startswith(ROOT) for entry in pin.via):
            if declared is None or pin.name not in declared or own_root not in pin.via:
                findings.append(
                    _finding(
                        shown,
                        pin.line,
                        ROOT_UNDECLARED,
                        f"{pin.name}=={pin.version} is in the lock as a requirement of the "
                        f"project, but the dependency group {group} of pyproject.toml does not "
                        "declare it",
                    )
                )
                continue
            roots.add(pin.name)
    required_by: dict[str, set[str]] = {}
    for pin in pins:
        required_by.setdefault(pin.name, set()).update(normal(v.split(" ")[0]) for v in pin.via)
    reached = set(roots)
    changed = True
    while changed:
        changed = False
        for name, parents in required_by.items():
            if name not in reached and parents & reached:
                reached.add(name)
                changed = True
    for pin in pins:
        if pin.name not in reached and not any(e.startswith(ROOT) for e in pin.via):
            findings.append(
                _finding(
                    shown,
                    pin.line,
                    UNREQUIRED,
                    f"{pin.name}=={pin.version} is required by nothing the dependency group "
                    f"{group} declares (its `# via`: {', '.join(pin.via) or 'none'})",
                )
            )
    return findings


def _hash_findings(
    shown: str, pins: list[Pin], known: dict[tuple[str, str], list[tuple[str, Pin]]]
) -> list[Diagnostic]:
    findings = []
    for pin in pins:
        differing = [
            where
            for where, other in known[(pin.name, pin.version)]
            if other is not pin and pin.hashes != other.hashes
        ]
        if differing:
            where = differing[0]
            findings.append(
                _finding(
                    shown,
                    pin.line,
                    HASHES_DIFFER,
                    f"{pin.name}=={pin.version} has other hashes than in locks/{where}: "
                    "one of them was edited by hand",
                )
            )
    return findings


def _finding(shown: str, line: int, code: str, message: str) -> Diagnostic:
    return error(shown, line, 1, code, message, "run `make lock` and commit what it writes")
