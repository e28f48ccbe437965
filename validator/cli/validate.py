"""`modelgate validate`: check specs against the schema and the policies; report in a format."""

from __future__ import annotations

import argparse
import gc
from typing import Any

from ..check import workspace
from ..report import FORMAT_NAMES, Report, format_report
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, changed_scope, root_of


def register(commands: Any) -> None:
    parser = commands.add_parser("validate", help="check specs against the schema")
    parser.add_argument("paths", nargs="*", help="spec files or directories (default: models/)")
    parser.add_argument("--format", choices=FORMAT_NAMES, default="text")
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--env", help="check the rules of this environment only")
    parser.add_argument(
        "--changed-since",
        metavar="REF",
        help="check only the specs a change since this git ref touches (those it edits, whose "
        "artifact or engine templates it changes; all of them when it changes policies, "
        "shared templates, values or modelgate); the others take part in cross-file checks",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    gc.disable()  # a short run that builds many small objects: collection costs ~10% here
    root = root_of(args)
    if args.changed_since and not args.paths:  # names: the change picks the few to check
        files = workspace.every_spec(root)
    else:
        files = workspace.discover(root, args.paths)
    if not files:
        where = ", ".join(args.paths) if args.paths else str(root / workspace.SPEC_DIR)
        output.error(f"no spec files found under {where}")
        return EXIT_USAGE
    peers, known, note = workspace.peers_of(root, args.paths), None, None
    locks_changed = False
    if args.changed_since:
        found = changed_scope(args, output, root, files)
        if found is None:
            return EXIT_USAGE
        files, note = found.checked, found.note
        if found.partial:
            peers, known = workspace.every_spec(root), found.known
            locks_changed = any(path.parts[0] == "locks" for path in found.scope.changed)
    result = workspace.validate(
        files,
        root,
        environment=args.env,
        peers=peers,
        known=known,
        every_waiver=note is not None,
        locks_changed=locks_changed,
    )
    diagnostics = [*result.diagnostics, *([note] if note else [])]
    shown = [workspace.display_path(path, root) for path in files]
    weakened = result.policy.weakened(args.changed_since) if result.policy is not None else []
    report = Report(diagnostics, shown, result.rules(), weakened, strict=args.strict)
    output.block(format_report(args.format, report))
    return EXIT_FINDINGS if result.failed(args.strict) else EXIT_OK
