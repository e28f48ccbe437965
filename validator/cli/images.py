"""`modelgate images list | pin [--check]`: the engine images the repository renders, and
their digest pins in templates/values.yaml (validator/render/images.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..check import workspace
from ..check.load import Document
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of

TIMEOUT = 30.0  # seconds per registry request


def register(commands: Any) -> None:
    parser = commands.add_parser("images", help="engine images and their digest pins")
    actions = parser.add_subparsers(dest="images_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="every engine image the repository renders, with its pin (no network); exit 1 "
        "when one has none",
    )
    listing.set_defaults(handler=run_list)
    pin = actions.add_parser(
        "pin",
        help="resolve every engine image's tag to its digest in the mirror (imageMirror) and "
        "write the pins into templates/values.yaml",
    )
    pin.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a pin is missing, unused, or differs from the mirror",
    )
    pin.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        metavar="SECONDS",
        help=f"per registry request (default {TIMEOUT:g})",
    )
    pin.set_defaults(handler=run_pin)


def run_list(args: argparse.Namespace, output: Output) -> int:
    from ..render import images

    loaded = _load(root_of(args), output)
    if loaded is None:
        return EXIT_FINDINGS
    values, documents = loaded
    needed = images.wanted(documents, values.data)
    held = images.pins(values.data)
    mirror = str(values.data.get(images.MIRROR_KEY) or "").rstrip("/")
    for reference, why in needed.items():
        pinned = held.get(reference, "not pinned")
        output.line(f"{mirror}/{reference} {pinned} ({', '.join(why)})")
    for reference in sorted(set(held) - set(needed)):
        output.line(f"{mirror}/{reference} {held[reference]} (not used by any engine or spec)")
    missing = images.missing(values, needed)
    output.diagnostics(missing)
    if missing:
        output.error(f"{len(missing)} engine image(s) not pinned; run `{images.PIN_COMMAND}`")
        return EXIT_FINDINGS
    output.line(f"{len(needed)} engine image(s), every one pinned by digest")
    return EXIT_OK


def run_pin(args: argparse.Namespace, output: Output) -> int:
    from ..render import images, write_values
    from ..render.registry import resolve

    if not args.timeout > 0:
        output.error("--timeout needs a number of seconds above 0")
        return EXIT_USAGE
    root = root_of(args)
    loaded = _load(root, output)
    if loaded is None:
        return EXIT_FINDINGS
    values, documents = loaded
    pinning = images.pin(
        values, documents, lambda host, name, tag: resolve(host, name, tag, args.timeout)
    )
    if pinning.diagnostics:
        output.diagnostics(pinning.diagnostics)
        output.error("nothing written: the mirror could not give every digest")
        return EXIT_FINDINGS
    if args.check:
        findings = images.stale(values, pinning)
        output.diagnostics(findings)
        if findings:
            output.error(f"{len(findings)} pin(s) out of date; run `{images.PIN_COMMAND}`")
            return EXIT_FINDINGS
        output.line(f"{len(pinning.resolved)} engine image(s) pinned as the mirror serves them")
        return EXIT_OK
    try:
        text = images.rewrite(values, pinning.resolved)
    except images.CannotRewrite as exc:
        output.error(
            f"{exc}; nothing written",
            "keep `images:` a top-level block of `REPOSITORY:TAG: sha256:...` lines",
        )
        return EXIT_FINDINGS
    changes = pinning.changes()
    if text != values.text:
        write_values(root, text)
    for reference, before, after in changes:
        if after is None:
            output.line(f"dropped {reference} {before} (not used by any engine or spec)")
        else:
            output.line(f"pinned {reference} {after}{' (was ' + before + ')' if before else ''}")
    output.line(
        f"{len(pinning.resolved)} engine image(s) pinned in templates/values.yaml, "
        f"{len(changes)} changed" + ("; run `modelgate render`" if changes else "")
    )
    return EXIT_OK


def _load(root: Path, output: Output) -> tuple[Document, list[Document]] | None:
    """templates/values.yaml and every spec, or None (findings reported): the images a
    repository renders depend on the engine versions its specs name."""
    from ..render import values_document

    values = values_document(root)
    if values is None:
        output.error(
            "templates/values.yaml is missing: it names the mirror and holds the pins",
            "write templates/values.yaml with imageMirror (docs/spec.md, Engine images)",
        )
        return None
    validation = workspace.validate(workspace.discover(root), root, policies=False)
    if validation.failed():
        output.diagnostics(validation.diagnostics)
        output.error(
            "fix the specs first: the engine versions they name decide which images are pinned"
        )
        return None
    return values, validation.valid_documents()
