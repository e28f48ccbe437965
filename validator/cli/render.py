"""`modelgate render`: render specs into rendered/, or check that it is up to date."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..check import workspace
from ..diagnostics import Diagnostic
from ..report import FORMAT_NAMES, Report, format_report
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    parser = commands.add_parser("render", help="render specs into rendered/")
    parser.add_argument("paths", nargs="*", help="spec files or directories (default: models/)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when rendered/ is out of date",
    )
    parser.add_argument(
        "--crds",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="directory of CustomResourceDefinition files to check custom resources "
        "against, besides the repository's crds/ (repeatable)",
    )
    parser.add_argument(
        "--env",
        metavar="ENV",
        help="only this environment's manifests and ApplicationSet (not the local and docker "
        "targets' files); pruning and --check stay inside rendered/ENV",
    )
    parser.add_argument(
        "--format",
        choices=FORMAT_NAMES,
        default="text",
        help="how to report findings (the policy's output rules among them); other formats "
        "than text print the report alone, without --check's diff",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, output: Output) -> int:
    from .. import render
    from ..check import policy
    from ..render import crds

    gc.disable()
    root = root_of(args)
    missing = [str(path) for path in args.crds if not path.is_dir()]
    if missing:
        output.error(f"--crds needs a directory: {', '.join(missing)}")
        return EXIT_USAGE
    schemas = crds.repository_schemas(root, args.crds)
    if schemas.problems:
        output.diagnostics(schemas.problems)
        return EXIT_FINDINGS
    loaded = policy.load_policy(root)
    # the output rules judge every rendered object; a broken policy renders nothing
    renderer = render.Renderer(
        root, schemas, environment=args.env, policy=None if loaded[1] else loaded[0]
    ).preload()
    files = workspace.discover(root, args.paths)
    # each spec is rendered right after its own checks, in the process that loaded it
    validation = workspace.validate(files, root, follow=renderer, loaded_policy=loaded)
    rendering = render.run(validation, root, renderer, subset=bool(args.paths))
    failed = validation.failed() or rendering.failed()
    within = render.scope(args.env)
    report = _reporter(args, output, validation, files, root)
    if args.check:
        # a subset cannot know which files are orphans: only the whole set can
        findings, diff = render.drift(rendering.files, root, not args.paths, within)
        if args.format == "text":
            output.block(diff)
        report([*validation.diagnostics, *rendering.diagnostics, *findings])
        if findings:
            output.error(f"{len(findings)} rendered file(s) out of date; run `modelgate render`")
        return EXIT_FINDINGS if failed or findings else EXIT_OK
    links = render.links(rendering.files, root)
    report([*validation.diagnostics, *rendering.diagnostics, *links])
    if failed or links:
        output.error("nothing written: fix the findings above first")
        return EXIT_FINDINGS
    written, removed = render.write(rendering.files, root, prune=not args.paths, within=within)
    documents = validation.valid_documents()
    if args.env:
        documents = [d for d in documents if args.env in d.data["spec"]["environments"]]
    where = f"{render.RENDERED_DIR}/{args.env}" if args.env else render.RENDERED_DIR
    summary = (
        f"rendered {len(documents)} spec(s) into {where}/: "
        f"{len(written)} file(s) changed, {len(removed)} removed"
    )
    if args.format == "text":
        output.line(summary)
    else:
        output.error(summary)  # stdout holds the report alone
    return EXIT_OK


def _reporter(
    args: argparse.Namespace,
    output: Output,
    validation: workspace.Validation,
    files: list[Path],
    root: Path,
) -> Callable[[list[Diagnostic]], None]:
    """How the command reports its findings: as text on stderr, or one report on stdout."""
    if args.format == "text":
        return output.diagnostics

    def report(diagnostics: list[Diagnostic]) -> None:
        shown = [workspace.display_path(path, root) for path in files]
        shown += sorted({d.path for d in diagnostics} - set(shown))
        weakened = validation.policy.weakened() if validation.policy is not None else []
        content = Report(
            sorted(diagnostics, key=Diagnostic.sort_key), shown, validation.rules(), weakened
        )
        output.block(format_report(args.format, content))

    return report
