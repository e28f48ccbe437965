"""`modelgate new NAME`: scaffold a spec whose placeholders are all validation refuses."""

from __future__ import annotations

import argparse
from typing import Any

from ..engines import COMPONENTS, ENGINES, EVERY_FORMAT
from ..report.output import Output
from .common import EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "new", help="scaffold a spec to fill in: validation refuses its placeholders until replaced"
    )
    parser.add_argument("name", help="deployment name (DNS-1123 label)")
    parser.add_argument("--engine", required=True, choices=sorted(ENGINES))
    parser.add_argument("--format", dest="model_format", required=True, choices=EVERY_FORMAT)
    parser.add_argument("--owner", help="owner email (default: git config user.email)")
    parser.add_argument("--team", help="the team that runs the model (default: a placeholder)")
    for component in COMPONENTS:
        parser.add_argument(
            f"--{component}",
            nargs="?",
            const="",
            metavar="IMAGE",
            help=f"add a KServe {component} beside the predictor, running IMAGE (pinned by "
            "digest; a placeholder when left out)",
        )
    parser.add_argument(
        "--stdout", action="store_true", help="print the spec instead of writing it"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    from ..check import load, placeholders
    from . import scaffold

    root = root_of(args)
    try:
        components = {c: getattr(args, c) for c in COMPONENTS if getattr(args, c) is not None}
        text = scaffold.new_spec(
            root,
            args.name,
            args.engine,
            args.model_format,
            args.owner,
            args.team or placeholders.TEAM,
            components,
        )
    except scaffold.ScaffoldError as exc:
        output.error(str(exc))
        return EXIT_USAGE
    document, problems = load.load_text(text, f"models/{args.name}.yaml")
    if document is None or problems:  # our own template must always produce a loadable spec
        raise RuntimeError(f"modelgate new produced an unreadable spec: {problems}")
    if args.stdout:
        output.block(text)
        return EXIT_OK
    try:
        path = scaffold.write_new(root, args.name, text)
    except scaffold.ScaffoldError as exc:
        output.error(str(exc))
        return EXIT_USAGE
    card = scaffold.write_card(root, args.name, scaffold.new_card(root, args.name))
    written = f"{path.relative_to(root)}" + (f" and {card.relative_to(root)}" if card else "")
    output.line(
        f"wrote {written}: replace every TODO and digest of zeros (validation refuses them), "
        "then `modelgate validate` and `modelgate render`"
    )
    return EXIT_OK
