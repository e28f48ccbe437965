"""`modelgate fit refresh [SPECS...]`: record the headers of each hf:// model (config.json and
the safetensors headers, at the spec's pinned revision) in models/headers/NAME.json, which
validation sizes the GPU fit from (validator/check/fit/recorded.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..check import load, workspace
from ..check.fit import recorded
from ..check.fit.model import Unreadable
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, root_of

CODE = "MG262"


def register(commands: Any) -> None:
    parser = commands.add_parser("fit", help="the GPU fit's recorded model headers")
    actions = parser.add_subparsers(dest="action", required=True)
    refresh = actions.add_parser(
        "refresh",
        help="read each hf:// model's config.json and safetensors headers at its pinned "
        "revision from the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN) into models/headers/",
    )
    refresh.add_argument("specs", nargs="*", help="spec files (default: every spec)")
    refresh.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    root = root_of(args)
    failed = False
    for path in workspace.discover(root, args.specs):
        shown = workspace.display_path(path, root)
        document, problems = load.load_file(Path(path), shown)
        if document is None or problems:
            output.diagnostics(problems)
            failed = True
            continue
        model = (document.data.get("spec") or {}).get("model") or {}
        artifact, revision = model.get("artifact", ""), model.get("revision")
        if not (isinstance(artifact, str) and artifact.startswith(recorded.HF)):
            continue
        name = document.data["metadata"]["name"]
        if not revision:
            output.error(f"{shown}: {artifact} pins no revision: nothing to record")
            failed = True
            continue
        try:
            record = recorded.fetch(artifact, revision)
        except Unreadable as exc:
            output.error(f"{CODE} {shown}: {exc}", "check the revision and the Hub's address")
            failed = True
            continue
        written = recorded.write(root, name, record)
        output.line(
            f"{workspace.display_path(written, root)}: {artifact}@{revision}, "
            f"{len(record['files'])} files"
        )
    return EXIT_FINDINGS if failed else EXIT_OK
