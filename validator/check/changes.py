"""Which specs a change touches: the specs edited since a git ref, the specs whose artifact
(kept in the repository) changed, or the stand-in they name or its script, or their model
card (docs/models/), or the headers recorded for their GPU fit (models/headers/), every spec
whose engine's templates changed, every spec the local target runs from an engine
environment whose lock changed (locks/engine-NAME.txt), and every spec when policies, shared
templates or templates/values.yaml changed; for the checks (touches_everything), also when
modelgate itself changed.

`deploy --changed-since`, `validate --changed-since` and `render --check --changed-since`
all ask this module; nothing here imports more than the loader (pre-commit speed)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from ..engines import (
    APPLICATION_TEMPLATE,
    APPLICATIONSET_TEMPLATE,
    APPPROJECT_TEMPLATE,
    COMPOSE_TEMPLATE,
    ENGINES,
)
from ..git import run_git
from . import stand_ins
from .fit.recorded import shown_path as recorded_headers
from .load import Document

CARDS = "docs/models"  # the model cards `modelgate new` writes, which MG-CMP-004 reads
WATCHED = ("models", "templates", "policies", CARDS)
# templates every spec renders whatever its engine: the docker target's compose file (every
# spec with a model image), the ApplicationSets, the teams' Argo CD projects and the file of
# each model the ApplicationSets' generators read (every environment Argo CD delivers)
_EVERY_ENGINE = (
    COMPOSE_TEMPLATE,
    APPLICATIONSET_TEMPLATE,
    APPPROJECT_TEMPLATE,
    APPLICATION_TEMPLATE,
)
# modelgate's own code and pins, where a repository holds them (this one does): a change to
# the tool changes what every spec renders to and how it is checked; but for the engines'
# own environments (locks/engine-NAME.txt), which concern the specs run from them
TOOL = ("validator", "pyproject.toml", "locks")
LOCK_PREFIX = "engine-"  # locks/engine-NAME.txt (deploy/environments.py takes it from here)
_WATCHED_ROOTS = {tuple(name.split("/")) for name in (*WATCHED, *TOOL)}


class GitError(Exception):
    pass


def changed_files(
    root: Path, ref: str, also: Iterable[str] = (), staged: Iterable[str] = ()
) -> list[PurePosixPath]:
    """Files changed between REF and the working tree (committed or not), under the watched
    directories and the paths `also` names (artifacts), relative to root; and under the
    paths `staged` names, files changed between REF and the index (committed or staged: a
    large generated tree is compared without a look at each of its files on disk)."""
    if ref.startswith("-"):
        raise GitError("a git ref cannot start with '-'")
    inside = run_git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None:
        raise GitError("cannot run git")
    if inside.returncode != 0:
        raise GitError(f"{root} is not in a git work tree; it compares commits")
    # an artifact under a watched directory is watched already: thousands of pathspecs
    # would cost git more than the diff itself
    also = [
        path
        for path in also
        if not any(PurePosixPath(path).parts[: len(r)] == r for r in _WATCHED_ROOTS)
    ]
    watched = [*WATCHED, *TOOL, *also]
    names = _diff(root, ref, watched)
    staged = list(staged)
    if staged:
        names += _diff(root, ref, staged, "--cached")
    untracked = run_git(
        root, "--literal-pathspecs", "ls-files", "-z", "--others", "--exclude-standard",
        "--", *watched,
    )  # fmt: skip
    names += untracked.stdout.split("\0") if untracked else []
    return sorted({PurePosixPath(name) for name in names if name})


def _diff(root: Path, ref: str, paths: list[str], *options: str) -> list[str]:
    # literal: an artifact's file name is not a pattern; relative: paths as root sees them
    git = ("--literal-pathspecs", "diff", *options, "--name-only", "-z", "--relative")
    done = run_git(root, *git, "--end-of-options", ref, "--", *paths)
    if done is None or done.returncode != 0:
        stderr = done.stderr.strip() if done else ""
        first = (stderr.splitlines() or [f"git diff {ref} failed"])[0]
        raise GitError(first.removeprefix("fatal: "))
    return done.stdout.split("\0")


def affected(documents: list[Document], changed: list[PurePosixPath]) -> list[Document]:
    """The documents a set of changed files concerns, in their original order."""
    paths = {str(path) for path in changed}
    # a changed file touches the artifact it is, and every folder artifact it lies in
    touched = {str(folder) for path in changed for folder in (path, *path.parents)}
    # modelgate's own code and pins do not change what is deployed: rendered/ holds that
    everything = any(_every_spec(path) for path in changed)
    engines = {p.parts[1] for p in changed if p.parts[0] == "templates" and len(p.parts) > 2}
    templates = {_template(p) for p in changed if p.parts[0] == "templates"}
    locks = {p.stem.removeprefix(LOCK_PREFIX) for p in changed if engine_lock(p)}
    return [
        doc
        for doc in documents
        if everything
        or doc.path in paths
        or any(path in touched for path in _repository_paths(doc))
        or doc.data["spec"]["engine"]["name"] in engines
        or not templates.isdisjoint(ENGINES[doc.data["spec"]["engine"]["name"]].templates)
        or (locks and _environment(doc) in locks)
        or (model_card_of(doc) or "") in paths
        or recorded_headers(str(doc.data["metadata"]["name"])) in paths
    ]


def model_card(path: PurePosixPath) -> bool:
    """A file under docs/models/: a model card some spec may name."""
    return path.parts[:2] == tuple(CARDS.split("/"))


def model_card_of(document: Document) -> str | None:
    compliance = document.data["spec"].get("compliance") or {}
    card = compliance.get("modelCard") if isinstance(compliance, dict) else None
    return repository_path(card) if isinstance(card, str) else None


def _template(path: PurePosixPath) -> str:
    """A template's name as engine records give it (relative to templates/)."""
    return "/".join(path.parts[1:])


def engine_lock(path: PurePosixPath) -> bool:
    """locks/engine-NAME.txt: the environment an engine runs from on the local target."""
    return len(path.parts) == 2 and path.parts[0] == "locks" and path.name.startswith(LOCK_PREFIX)


def _environment(document: Document) -> str | None:
    """The engine environment the local target runs the spec (or its stand-in) from, if any."""
    spec = stand_ins.served_spec(document.data["spec"])
    return ENGINES[spec["engine"]["name"]].local_environment(spec["model"]["format"]) or None


def artifacts(documents: Sequence[Document]) -> list[str]:
    """The in-repository artifacts of `documents` (their stand-ins and the scripts that make
    them included), for `changed_files` to watch."""
    return sorted({path for doc in documents for path in _repository_paths(doc)})


def _repository_paths(document: Document) -> list[str]:
    """The spec's artifact, stand-in and stand-in script that lie in the repository."""
    stand_in = stand_ins.of(document.data["spec"]) or {}
    found = [
        artifact_of(document),
        *(repository_path(stand_in.get(f)) for f in ("artifact", "script")),
    ]
    return [path for path in found if path]


def artifact_of(document: Document) -> str | None:
    """The spec's artifact as a path relative to the repository root, or None when it has
    none there (a URI, an image, a path out of the repository)."""
    return repository_path(document.data["spec"]["model"].get("artifact"))


def repository_path(artifact: str | None) -> str | None:
    """A path as given in a spec, relative to the repository root; None for a URI or a path
    out of the repository."""
    if not artifact or "://" in artifact:
        return None
    normal = posixpath.normpath(artifact)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        return None
    return normal


def touches_everything(changed: Iterable[PurePosixPath]) -> PurePosixPath | None:
    """The first changed file that concerns every spec's checks (a policy, a shared template,
    templates/values.yaml, modelgate itself), or None."""
    return next(
        (
            path
            for path in changed
            if _every_spec(path) or (path.parts[0] in TOOL and not engine_lock(path))
        ),
        None,
    )


def _every_spec(path: PurePosixPath) -> bool:
    """A policy or a shared template (templates/values.yaml included)."""
    return path.parts[0] == "policies" or _shared_template(path)


def _shared_template(path: PurePosixPath) -> bool:
    """templates/values.yaml, an included part (templates/_NAME/), a template every engine's
    specs render, or one in a folder that is no engine's."""
    if path.parts[0] != "templates":
        return False
    return (
        len(path.parts) == 2
        or path.parts[1].startswith("_")
        or path.parts[1] not in ENGINES
        or _template(path) in _EVERY_ENGINE
    )
