"""What several commands share: exit codes, the repository root, validating named specs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..check import changed, workspace
from ..diagnostics import Diagnostic
from ..report.output import Output

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def root_of(args: argparse.Namespace) -> Path:
    return (args.root or workspace.find_root()).resolve()


def validated(args: argparse.Namespace, paths: Sequence[str]) -> workspace.Validation:
    root = root_of(args)
    return workspace.validate(workspace.discover(root, paths), root)


@dataclass
class ChangedScope:
    """What `--changed-since` leaves to check, and the note that says so."""

    partial: bool
    checked: list[Path]
    known: dict
    scope: changed.Scope
    note: Diagnostic


def changed_scope(
    args: argparse.Namespace,
    output: Output,
    root: Path,
    files: Sequence[Path | str],
    rendered: bool = False,
) -> ChangedScope | None:
    """The spec files among `files` that the change since --changed-since touches; None
    (a usage error, already said) when git cannot tell."""
    from ..check.changes import GitError

    listed = list(files)
    shown = [workspace.display_path(path, root) for path in listed]
    try:
        found = changed.scope(root, listed, shown, args.changed_since, rendered=rendered)
    except GitError as exc:
        output.error(f"--changed-since {args.changed_since}: {exc}")
        return None
    note = changed.note(found, rendered=rendered)
    return ChangedScope(found.partial, found.checked, found.known, found, note)
