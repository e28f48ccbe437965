"""`modelgate hash PATH`: the digest of an artifact file or folder, as the spec takes it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..check import artifacts
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "hash",
        help="print an artifact's digest as spec.model takes it: sha256 for a file, "
        "treeSha256 for a folder",
    )
    parser.add_argument("path", help="the artifact file or folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    if not args.path:
        output.error("an empty path names nothing: name an artifact file or folder")
        return EXIT_USAGE
    # the working directory resolved as the root is, so that a path in the repository is
    # seen inside it however the user reached it
    path = Path.cwd().resolve() / args.path
    if not path.exists():
        output.error(f"{args.path}: no such file or folder", "name an artifact file or folder")
        return EXIT_FINDINGS
    try:
        digest = artifacts.digest_of(path, root_of(args), args.path)
    except artifacts.Unhashable as exc:
        output.error(f"{artifacts.ARTIFACT_UNHASHABLE} {exc}", exc.hint)
        return EXIT_FINDINGS
    output.line(digest.spec_line())
    return EXIT_OK
