"""What a change touches, for `validate --changed-since REF` and `render --check
--changed-since REF`: the specs to check, the rest taken as they were at REF.

REF is the base of the change (a pull request's target branch), which passed the full
checks; a spec the change does not touch is as it was there, so it passed too. What the
change touches is what `deploy --changed-since` deploys (validator/check/changes.py): the specs it
edits, the specs whose artifact or whose engine's templates it changes, every spec when it
changes policies, shared templates, templates/values.yaml or modelgate itself; for `render
--check`, also the specs whose files under rendered/ it changes, and every spec when it
changes crds/ (the schemas rendered custom resources are checked against). The untouched
specs still take part in the cross-file checks with their facts (facts.py), and the report
says what was not checked again (MG125).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..diagnostics import Diagnostic, Severity
from . import changes, facts, load
from .facts import Facts

NOT_RECHECKED = "MG125"
RENDERED = "rendered"
CRDS = "crds"  # render.crds.CRDS_DIR; validate does not load the render stage
ROLES = "_rbac"  # rendered/ENV/_rbac/ (render.RBAC): made from every spec of ENV
ADMISSION = "_admission"  # rendered/ENV/_admission/ (render.ADMISSION): from the policy
LISTED = 5  # unchanged specs named one by one in the note; the rest are counted


@dataclass
class Scope:
    """The outcome of comparing the work tree with REF."""

    ref: str
    checked: list[Path] = field(default_factory=list)  # the spec files to check
    unchanged: list[str] = field(default_factory=list)  # shown paths of the others
    everything: PurePosixPath | None = None  # the change that touches every spec
    changed: list[PurePosixPath] = field(default_factory=list)
    known: dict[str, Facts | None] = field(default_factory=dict)  # every spec's facts
    names: set[str] = field(default_factory=set)  # names whose rendered files may change

    @property
    def partial(self) -> bool:
        return self.everything is None


def scope(
    root: Path,
    files: Sequence[Path | str],
    shown: Sequence[str],
    ref: str,
    rendered: bool = False,
) -> Scope:
    """The specs among `files` (displayed as `shown`) that the change since REF touches.
    With `rendered`, a change to a spec's files under rendered/ touches it too. Raises
    changes.GitError when git cannot compare (no work tree, an unknown REF)."""
    known = facts.collect(files, root, shown)
    usable = {name for name, value in known.items() if facts.checkable(value)}
    # the artifacts, stand-ins and their scripts in the repository, as the facts name them
    named = {value[i] for name in usable if (value := known[name]) for i in facts.FILES}
    files_named = sorted({path for path in map(changes.repository_path, named) if path})
    # rendered/: what the change commits or stages there (the index against REF, without a
    # look at each of its files on disk); edits left out of the index are no part of it
    staged = [RENDERED] if rendered else []
    # crds/: the schemas every rendered custom resource is checked against
    watched = [*files_named, *([CRDS] if rendered else [])]
    changed = changes.changed_files(root, ref, also=watched, staged=staged)
    everything = changes.touches_everything(changed) or (
        next((path for path in changed if path.parts[0] == CRDS or _roles(path)), None)
        if rendered
        else None
    )
    result = Scope(ref, changed=changed, known=known, everything=everything)
    if everything is not None:
        result.checked = [Path(path) for path in files]
        return result
    touched = _touched(known, usable, changed, dict(zip(shown, files, strict=True)))
    names = _rendered_names(changed) if rendered else set()
    for path, name in zip(files, shown, strict=True):
        value = known[name]
        # a spec whose facts do not read as a valid spec's is checked: it says why
        if name in touched or name not in usable or (value is not None and value[0] in names):
            result.checked.append(Path(path))
            result.names.add(PurePosixPath(name).stem)
            if value is not None and isinstance(value[0], str):
                result.names.add(value[0])
        else:
            result.unchanged.append(name)
    result.names |= names | _removed_names(root, changed)
    return result


def _touched(
    known: dict[str, Facts | None],
    usable: set[str],
    changed: Sequence[PurePosixPath],
    files: dict[str, Path | str],
) -> set[str]:
    """The specs changes.affected finds, asked only about those a changed file other than
    a spec itself could concern (an artifact, a stand-in, an engine's templates or lock)."""
    paths = {str(path) for path in changed}
    touched = {name for name in known if name in paths}
    if all(_is_spec(path) or path.parts[0] == RENDERED for path in changed):
        return touched  # only specs changed (or removed): nothing else to ask
    if not any(changes.engine_lock(path) or changes.model_card(path) for path in changed):
        # an artifact, a stand-in or its script, an engine's templates: the facts name them
        peers = [facts.peer(name, known[name]) for name in sorted(usable)]  # type: ignore[arg-type]
        return touched | {doc.path for doc in changes.affected(peers, list(changed))}
    # an engine's lock or a model card: the specs run from the lock are known by their
    # model's format, those that name the card by spec.compliance.modelCard, which the facts
    # do not hold: asked of each spec whole
    return touched | {name for name in sorted(usable) if _concerns(files[name], name, changed)}


def _concerns(path: Path | str, name: str, changed: Sequence[PurePosixPath]) -> bool:
    """The change concerns this spec, as changes.affected says of it loaded whole; a spec
    that does not load or is not shaped as one is checked, and its findings say why."""
    document, _ = load.load_file(Path(path), name)
    if document is None:
        return True
    try:
        return bool(changes.affected([document], list(changed)))
    except (KeyError, TypeError, AttributeError):
        return True


def _roles(path: PurePosixPath) -> bool:
    """rendered/ENV/_rbac/...: the deployer's Roles, made from every spec of ENV, and
    rendered/ENV/_admission/..., made from the policy and waivers: judged whole."""
    return len(path.parts) > 3 and path.parts[0] == RENDERED and path.parts[2] in (ROLES, ADMISSION)


def _is_spec(path: PurePosixPath) -> bool:
    return len(path.parts) == 2 and path.parts[0] == "models" and path.suffix in (".yaml", ".yml")


def _rendered_names(changed: Sequence[PurePosixPath]) -> set[str]:
    """The NAME of every changed rendered/TARGET/NAME/FILE (not the deployer's Roles in
    rendered/ENV/_rbac/, which every spec of ENV makes)."""
    return {
        path.parts[2]
        for path in changed
        if path.parts[0] == RENDERED
        and len(path.parts) > 3
        and path.parts[2] not in (ROLES, ADMISSION)
    }


def _removed_names(root: Path, changed: Sequence[PurePosixPath]) -> set[str]:
    """The names of specs the change deletes (their rendered files must go with them)."""
    return {path.stem for path in changed if _is_spec(path) and not os.path.lexists(root / path)}


def within(root: Path, found: Scope) -> tuple[str, ...]:
    """Where under rendered/ a partial check looks for files no spec renders: the
    directories of the specs it renders and of the specs the change deletes, the
    ApplicationSets, and every file the change adds or edits there."""
    base = root / RENDERED
    try:
        targets = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
    except OSError:
        targets = []
    prefixes = {f"{RENDERED}/{target}/{name}/" for target in targets for name in found.names}
    prefixes.add(f"{RENDERED}/argocd/")
    prefixes.update(
        str(path)
        for path in found.changed
        if path.parts[0] == RENDERED and (len(path.parts) < 4 or path.parts[2] != ROLES)
    )
    return tuple(sorted(prefixes))


def note(found: Scope, rendered: bool = False) -> Diagnostic:
    """MG125 (information): what a partial run did not check again, or why it checked all."""
    if found.everything is not None:
        message = (
            f"every spec checked: {found.everything} changed since {found.ref}, "
            "and that concerns every spec"
        )
        return Diagnostic("models", 0, 0, NOT_RECHECKED, Severity.INFO, message, "")
    count = len(found.unchanged)
    named = ", ".join(found.unchanged[:LISTED]) + (
        f" and {count - LISTED} more" if count > LISTED else ""
    )
    what = (
        f"rendered/ files of {count} spec(s) unchanged since {found.ref} were not rendered again"
        if rendered
        else f"{count} spec(s) unchanged since {found.ref} were not checked again"
    )
    message = (
        f"{what} (they are as they were there, where they passed): every spec in models/ but "
        f"the {len(found.checked)} checked" + (f": {named}" if count else "")
    )
    if rendered:
        message += (
            "; the deployer Roles (rendered/ENV/_rbac/) were checked for what the checked "
            "specs need, not for grants no spec needs any more"
        )
    hint = (
        "the full check runs where the change is merged: `modelgate validate` and `render --check`"
    )
    return Diagnostic("models", 0, 0, NOT_RECHECKED, Severity.INFO, message, hint)
