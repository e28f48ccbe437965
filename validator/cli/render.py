"""`modelgate render`: render specs into rendered/, or check that it is up to date."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..check import workspace
from ..diagnostics import Diagnostic
from ..report import FORMAT_NAMES, Report, format_report
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, ChangedScope, changed_scope, root_of


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
        "--changed-since",
        metavar="REF",
        help="with --check: render and compare only what a change since this git ref touches "
        "(the specs validate --changed-since checks, those whose rendered/ files it changes, "
        "the ApplicationSets); the rest of rendered/ is taken as it was at REF",
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
    if args.changed_since and not args.check:
        output.error("--changed-since checks what a change touches: use it with --check")
        return EXIT_USAGE
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
    )
    found = None
    files = _listed(args, root)
    if args.changed_since:
        found = changed_scope(args, output, root, files, rendered=True)
        if found is None:
            return EXIT_USAGE
        if found.partial:
            return _check_changed(args, output, root, renderer, loaded, found)
        files = found.checked
    _preload(renderer, files)
    within = render.scope(args.env)
    listing = None
    if args.check:
        renderer.compare = True  # each spec's files are compared where they are rendered
        if not args.paths:
            listing = _Listing(root, within)
    # each spec is rendered right after its own checks, in the process that loaded it
    validation = workspace.validate(
        files, root, follow=renderer, loaded_policy=loaded, alongside=listing
    )
    rendering = render.run(validation, root, renderer, subset=bool(args.paths))
    failed = validation.failed() or rendering.failed()
    report = _reporter(args, output, validation, files, root)
    if args.check:
        # a subset cannot know which files are orphans: only the whole set can
        listed = listing.found if listing is not None else None
        broken = _failed_specs(validation, files, root)
        findings, diff = render.drift(
            rendering.files, root, not args.paths, within, listed, held=set(broken.values())
        )
        notes = [found.note] if found is not None else []
        checked = [*validation.diagnostics, *rendering.diagnostics]
        _report_check(args, output, report, checked, findings, notes, diff, broken)
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


def _preload(renderer: Any, files: Sequence[object]) -> None:
    """Every template compiled before the workers fork, when there will be workers: a few
    specs compile only the templates they use (with no cache, compiling all costs more
    than rendering one spec)."""
    from .. import render

    if len(files) >= render.PARALLEL_FROM:
        renderer.preload()


class _Listing:
    """rendered/'s files, listed by this process while the workers render the specs."""

    def __init__(self, root: Path, within: tuple[str, ...]) -> None:
        self.root, self.within = root, within
        self.found: set[str] | None = None

    def __call__(self) -> None:
        from .. import render

        self.found = render.present(self.root, self.within)


def _listed(args: argparse.Namespace, root: Path) -> list[Path]:
    """The spec files to render; for --changed-since over all of models/, their names only
    (Path objects for thousands of specs cost more than rendering the one that changed)."""
    if args.changed_since and not args.paths:
        return workspace.every_spec(root)  # type: ignore[return-value]
    return workspace.discover(root, args.paths)


def _check_changed(
    args: argparse.Namespace,
    output: Output,
    root: Path,
    renderer: Any,
    loaded: Any,
    found: ChangedScope,
) -> int:
    """render --check of what a change touches: its specs, validated against the others'
    facts and rendered; the ApplicationSets, from every spec's environments; the files
    under rendered/ of those specs, of the specs it deletes and those it edits there."""
    from .. import render
    from ..check import changed, facts

    renderer.compare = True
    _preload(renderer, found.checked)
    validation = workspace.validate(
        found.checked,
        root,
        follow=renderer,
        loaded_policy=loaded,
        peers=workspace.every_spec(root),
        known=found.known,
        every_waiver=True,
        locks_changed=any(path.parts[0] == "locks" for path in found.scope.changed),
    )
    # an ApplicationSet per environment, and the Role that syncs its Applications: the
    # unchanged specs' names and environments are all they need
    unchanged = {shown: found.known[shown] for shown in found.scope.unchanged}
    environments = sorted({env for value in unchanged.values() if value for env in value[1] or ()})
    others = [facts.peer(shown, value) for shown, value in unchanged.items() if value]
    # the deployer Role of an environment none of the unchanged specs deploys to is made
    # from the checked specs alone
    roles = {
        env for doc in validation.valid_documents() for env in doc.data["spec"]["environments"]
    } - set(environments)
    rendering = render.run(validation, root, renderer, subset=True, others=others, roles=roles)
    within = changed.within(root, found.scope)
    if args.env:  # that environment's directory and ApplicationSet, as render --env keeps to
        directory, applicationset = render.scope(args.env)
        within = (*(prefix for prefix in within if prefix.startswith(directory)), applicationset)
    broken = _failed_specs(validation, found.checked, root)
    findings, diff = render.drift(rendering.files, root, True, within, held=set(broken.values()))
    if not broken:  # a spec that failed renders nothing: its Role's grants cannot be judged
        findings += render.missing_grants(rendering, root, roles)
    report = _reporter(args, output, validation, found.checked, root)
    checked = [*validation.diagnostics, *rendering.diagnostics]
    _report_check(args, output, report, checked, findings, [found.note], diff, broken)
    failed = validation.failed() or rendering.failed() or bool(findings)
    return EXIT_FINDINGS if failed else EXIT_OK


def _failed_specs(
    validation: workspace.Validation, files: Sequence[Path | str], root: Path
) -> dict[str, str]:
    """The specs among `files` with an error left standing: their paths as shown, and the
    names their rendered directories have (metadata.name, else the file's name)."""
    diagnostics = validation.diagnostics
    broken = {d.path for d in diagnostics if d.severity.value == "error" and not d.waived}
    if not broken:
        return {}
    named = {doc.path: doc.data.get("metadata", {}).get("name") for doc in validation.documents}
    failed = {}
    for file in files:
        shown = workspace.display_path(file, root)
        if shown in broken:
            name = named.get(shown)
            failed[shown] = name if isinstance(name, str) else Path(shown).stem
    return failed


def _report_check(
    args: argparse.Namespace,
    output: Output,
    report: Callable[[list[Diagnostic]], None],
    checked: list[Diagnostic],
    findings: list[Diagnostic],
    notes: list[Diagnostic],
    diff: str,
    broken: dict[str, str],
) -> None:
    """render --check's verdict: a spec that failed its checks first (its rendered files were
    not compared, so they are neither drift nor orphans), then the diff of the others."""
    text = args.format == "text"
    if broken:
        output.error(
            f"{len(broken)} spec(s) failed their checks, so their rendered files were not "
            f"compared: {', '.join(broken)}",
            "fix the findings on the spec(s) below, then run `modelgate render` (it writes "
            "nothing while a spec fails)",
        )
        if text:
            report(checked)
            checked = []
    if text:
        output.block(diff)
    report([*checked, *findings, *notes])
    if findings:
        then = " once the specs pass" if broken else ""
        output.error(f"{len(findings)} rendered file(s) out of date; run `modelgate render`{then}")


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
        weakened = (
            validation.policy.weakened(getattr(args, "changed_since", None))
            if validation.policy is not None
            else []
        )
        content = Report(
            sorted(diagnostics, key=Diagnostic.sort_key), shown, validation.rules(), weakened
        )
        output.block(format_report(args.format, content))

    return report
