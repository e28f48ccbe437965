"""`modelgate publish`: push repository artifacts to the artifact store clusters fetch from
(validator/deploy/publish.py)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..diagnostics import has_errors
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of, validated

TIMEOUT = 30.0  # seconds per registry request; an upload gets ten times as long


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "publish",
        help="push each spec's repository artifact to the artifact store (an oci:// store: "
        "its model image, by the digest rendered/ names); credentials from "
        "MODELGATE_REGISTRY_USERNAME and MODELGATE_REGISTRY_PASSWORD",
    )
    parser.add_argument("specs", nargs="*", help="spec files (default: every spec)")
    parser.add_argument(
        "--changed-since",
        metavar="REF",
        help="only the specs changed since this git ref (or whose artifact changed)",
    )
    parser.add_argument("--env", metavar="ENV", help="only the specs deployed to ENV")
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        metavar="SECONDS",
        help=f"per registry request (default {TIMEOUT:g})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    from ..deploy import publish
    from ..render import load_values

    if not args.timeout > 0:
        output.error("--timeout needs a number of seconds above 0")
        return EXIT_USAGE
    root = root_of(args)
    result = validated(args, args.specs)
    if result.failed():
        output.diagnostics(result.diagnostics)
        output.error("nothing published: fix the specs first")
        return EXIT_FINDINGS
    documents = result.valid_documents()
    if args.env:
        documents = [d for d in documents if args.env in d.data["spec"]["environments"]]
    if args.changed_since:
        documents = _changed(root, documents, args.changed_since, output)
        if documents is None:
            return EXIT_USAGE
    documents = publish.publishable(documents)
    if not documents:
        output.line("nothing to publish: no spec in scope keeps its artifact in the repository")
        return EXIT_OK

    def each(done: publish.Published) -> None:
        output.line(
            f"{done.name}: {done.state} {done.reference} (tag {done.tag}, {done.seconds:.1f} s)"
        )

    publishing = publish.run(
        documents, root, load_values(root), os.environ, timeout=args.timeout, each=each
    )
    output.diagnostics(publishing.diagnostics)
    if has_errors(publishing.diagnostics):
        failed = len({d.path for d in publishing.diagnostics})
        output.error(f"{failed} artifact(s) not published; {len(publishing.published)} published")
        return EXIT_FINDINGS
    output.line(f"{len(publishing.published)} artifact(s) in the store")
    return EXIT_OK


def _changed(root: Any, documents: list, ref: str, output: Output) -> list | None:
    from ..check.changes import GitError, affected, artifacts, changed_files

    try:
        return affected(documents, changed_files(root, ref, also=artifacts(documents)))
    except GitError as exc:
        output.error(f"--changed-since {ref}: {exc}")
        return None
