"""`modelgate catalog`: write the model catalog (HTML and Markdown) for people who do not
read YAML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..paths import LinkOut
from ..report.output import Output
from .common import EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    parser = commands.add_parser("catalog", help="write the model catalog (HTML and Markdown)")
    parser.add_argument(
        "--out", type=Path, default=Path("catalog"), help="output directory (default: catalog/)"
    )
    parser.add_argument(
        "--live",
        action="append",
        default=[],
        metavar="ENV=KUBECONFIG",
        help="read what serves in ENV from the records in the cluster KUBECONFIG names "
        "(repeat per environment)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    from jinja2 import TemplateNotFound

    from ..deploy import ledger
    from ..report.catalog import build

    root = root_of(args)
    out = args.out if args.out.is_absolute() else root / args.out
    if out.exists() and not out.is_dir():
        output.error(f"--out {args.out} is a file; name a directory")
        return EXIT_USAGE
    live = dict(item.partition("=")[::2] for item in args.live)
    if any(not env or not path for env, path in live.items()):
        output.error("--live takes ENV=KUBECONFIG, for example staging=/path/to/kubeconfig")
        return EXIT_USAGE
    try:
        written = build(root, out, live=live)
    except (LinkOut, TemplateNotFound):
        raise  # a link in the repository (MG118) or a missing template: said by the command line
    except OSError as exc:
        output.error(f"cannot write the catalog to {out}: {exc.strerror}")
        return EXIT_USAGE
    for path in written:
        output.line(f"wrote {path}")
    note = ledger.read(root).note
    if note:
        output.error(f"warning: {note}", "the last deploys shown leave those lines out")
    return EXIT_OK
