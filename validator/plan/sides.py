"""The two sides a plan compares: what REF renders, read from git (its specs and the
rendered/ it committed, which passed `render --check` there) without touching the work
tree; and what the change renders, rendered in memory from the work tree's specs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..check import load, workspace
from ..check.changes import GitError
from ..check.load import Document
from ..diagnostics import Diagnostic
from ..git import run_git
from .endpoint import Endpoint, rendered_object

RENDERED = "rendered"
NOT_ENVIRONMENTS = {"argocd", "local", "docker"}  # rendered/ folders that are no cluster's
RBAC = "_rbac"
WHOLE_FOLDERS_FROM = 200  # specs; from here REF's rendered/ENV/ folders are listed whole


@dataclass
class Side:
    """Endpoints by (name, environment), and the spec documents they come from by name."""

    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)


def resolve(root: Path, ref: str) -> str:
    """REF's commit id; GitError with git's own words when REF names no commit here."""
    if ref.startswith("-"):
        raise GitError("a git ref cannot start with '-'")
    done = run_git(
        root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
    )
    if done is None:
        raise GitError("cannot run git")
    if done.returncode != 0:
        inside = run_git(root, "rev-parse", "--is-inside-work-tree")
        if inside is None or inside.returncode != 0:
            raise GitError(f"{root} is not in a git work tree; a plan compares with a commit")
        raise GitError(f"no commit named {ref!r} here (fetch it, or name a branch, tag or id)")
    return done.stdout.strip()


def read_blobs(root: Path, names: Sequence[str]) -> dict[str, bytes]:
    """The content of each object `names` gives (a blob id or COMMIT:PATH); missing ones
    are left out. One `git cat-file --batch` for all of them."""
    if not names:
        return {}
    try:
        done = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=root,
            input="".join(f"{name}\n" for name in names).encode(),
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"cannot read from git: {exc}") from exc
    out, found, offset = done.stdout, {}, 0
    for name in names:
        end = out.index(b"\n", offset)
        header = out[offset:end].split(b" ")
        offset = end + 1
        if header[-1] == b"missing" or len(header) != 3:
            continue
        size = int(header[2])
        found[name] = out[offset : offset + size]
        offset += size + 1
    return found


def at_ref(root: Path, commit: str, names: Iterable[str]) -> Side:
    """REF's side: each named spec (models/NAME.yaml) and what rendered/ENV/NAME/ held."""
    names = sorted(set(names))
    side = Side()
    specs = read_blobs(
        root,
        [f"{commit}:models/{name}{suffix}" for name in names for suffix in workspace.SPEC_SUFFIXES],
    )
    for key, raw in specs.items():
        shown = key.partition(":")[2]
        document, _ = load.load_bytes(raw, shown)
        if document is not None and isinstance(document.data.get("spec"), dict):
            side.documents[PurePosixPath(shown).stem] = document
    for name, document in side.documents.items():
        for env in document.data["spec"].get("environments") or []:
            side.endpoints.setdefault((name, env), endpoint_of(name, env, document))
    environments = _environments_at(root, commit)
    if not names or not environments:  # `ls-tree -r` of no folder would list everything
        return side
    if len(names) > WHOLE_FOLDERS_FROM:  # each environment's folder: a shorter command line
        folders = [f"{RENDERED}/{env}/" for env in environments]
    else:
        folders = [f"{RENDERED}/{env}/{name}/" for env in environments for name in names]
    listed = run_git(root, "ls-tree", "-r", "-z", "--end-of-options", commit, "--", *folders)
    if listed is None or listed.returncode != 0:
        raise GitError(f"cannot list rendered/ at {commit[:12]}")
    wanted = set(names)
    entries = []
    for line in filter(None, listed.stdout.split("\0")):
        info, _, path = line.partition("\t")
        parts = path.split("/")  # rendered/ENV/NAME/FILE
        if len(parts) == 4 and parts[2] in wanted:
            entries.append((info, path))
    blobs = read_blobs(root, [info.split(" ")[2] for info, _ in entries])
    for info, path in entries:
        content = blobs.get(info.split(" ")[2])
        if content is not None:
            _add(side, path, content.decode("utf-8", "replace"))
    return side


def endpoint_of(name: str, environment: str, document: Document) -> Endpoint:
    team = document.data.get("metadata", {}).get("team")
    return Endpoint(name, environment, document.data["spec"], team=team)


def _environments_at(root: Path, commit: str) -> list[str]:
    listed = run_git(
        root, "ls-tree", "-z", "--name-only", "--end-of-options", commit, "--", f"{RENDERED}/"
    )
    if listed is None or listed.returncode != 0:
        return []
    folders = (PurePosixPath(path).name for path in listed.stdout.split("\0") if path)
    return [name for name in folders if name not in NOT_ENVIRONMENTS]


def _add(side: Side, path: str, text: str) -> None:
    """One rendered file of rendered/ENV/NAME/ into its endpoint's objects."""
    parts = PurePosixPath(path).parts
    if len(parts) != 4 or parts[1] in NOT_ENVIRONMENTS or parts[2] == RBAC:
        return
    env, name = parts[1], parts[2]
    endpoint = side.endpoints.get((name, env))
    if endpoint is None:  # rendered for an environment the spec no longer names
        endpoint = side.endpoints[(name, env)] = Endpoint(name, env, {})
    for data in _parsed(path, text):
        item = rendered_object(path, data)
        endpoint.objects[item.key] = item


def _parsed(path: str, text: str) -> list[Any]:
    """A rendered file's objects: YAML and JSON manifests by the loader, anything else as
    its text."""
    if path.endswith((".yaml", ".yml", ".json")):
        document, _ = load.load_text(text, path)
        if document is not None:
            return [document.data]
    return [{"text": text}]


@dataclass
class Changed:
    """The change's side, and what kept a spec from rendering."""

    side: Side
    diagnostics: list[Diagnostic]
    failed: bool


def of_change(root: Path, files: Sequence[Path], loaded_policy: Any = None) -> Changed:
    """The work tree's side: the named specs checked and rendered in memory."""
    from .. import render
    from ..render import crds

    side = Side()
    if not files:
        return Changed(side, [], False)
    renderer = render.Renderer(root, crds.repository_schemas(root))
    if len(files) >= render.PARALLEL_FROM:  # compiled once, before the workers fork
        renderer.preload()
    validation = workspace.validate(files, root, follow=renderer, loaded_policy=loaded_policy)
    for document in validation.valid_documents():
        name = document.data["metadata"]["name"]
        side.documents[name] = document
        for env in document.data["spec"].get("environments") or []:
            side.endpoints[(name, env)] = endpoint_of(name, env, document)
        for item in validation.followed[document.path].files:
            _add(side, str(item.path), item.content)
    return Changed(side, validation.diagnostics, validation.failed())
