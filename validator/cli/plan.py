"""`modelgate plan`: what a change will do per endpoint and environment, against REF."""

from __future__ import annotations

import argparse
from pathlib import PurePosixPath
from typing import Any

from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of

FORMATS = ("text", "markdown", "json")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "plan", help="what a change does to each endpoint and environment, against a git ref"
    )
    parser.add_argument(
        "paths", nargs="*", help="spec files to plan (default: every spec the change touches)"
    )
    parser.add_argument(
        "--changed-since",
        metavar="REF",
        help="compare with what this git ref renders (default with spec files: HEAD)",
    )
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument(
        "--approved-by",
        action="append",
        default=[],
        metavar="LOGIN[,LOGIN...]",
        help="who approved the change (repeatable, or comma-separated): a security reviewer's "
        "approval lets an endpoint's exposure change (policy parameter securityReviewers)",
    )
    parser.add_argument(
        "--live",
        action="append",
        default=[],
        metavar="ENV=KUBECONFIG",
        help="also compare ENV's rendered objects with the cluster KUBECONFIG names (read "
        "access only; repeat per environment)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    from .. import plan
    from ..report.plan import format_plan

    if not args.paths and not args.changed_since:
        output.error("plan what? name spec files or --changed-since REF")
        return EXIT_USAGE
    live = dict(item.partition("=")[::2] for item in args.live)
    if any(not env or not path for env, path in live.items()):
        output.error("--live takes ENV=KUBECONFIG, for example staging=/path/to/kubeconfig")
        return EXIT_USAGE
    root = root_of(args)
    ref = args.changed_since or "HEAD"
    approvers = [login.strip() for given in args.approved_by for login in given.split(",")]
    try:
        planned = plan.run(root, ref, args.paths, [a for a in approvers if a], live=live)
    except plan.GitError as exc:
        output.error(f"--changed-since {ref}: {exc}" if args.changed_since else f"{ref}: {exc}")
        return EXIT_USAGE
    planned_names = {endpoint.name for endpoint in planned.plan.endpoints}
    unknown = [p for p in args.paths if PurePosixPath(p).stem not in planned_names]
    if unknown and not planned.unplanned:
        output.error(
            f"no spec {', '.join(unknown)} here or at {ref}",
            "name spec files in models/ (models/NAME.yaml)",
        )
        return EXIT_USAGE
    if planned.unplanned:
        output.diagnostics(planned.diagnostics)
        output.error(
            "no plan: the change does not render",
            "fix the findings above (`modelgate validate` shows them too)",
        )
        return EXIT_FINDINGS
    output.block(format_plan(args.format, planned.plan))
    return EXIT_FINDINGS if planned.failed() else EXIT_OK
