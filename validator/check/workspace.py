"""The validate stage over a set of files: find the specs under models/ (never through a link
out of the repository), then load -> schema -> names -> endpoint exposure -> policy for each,
in worker processes when there are many, with an optional follow stage (render) run on each
valid spec in the worker that checked it."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import memo, parallel
from ..codes import BUILTIN_RULES
from ..diagnostics import Diagnostic, RuleInfo, error, has_errors
from ..git import run_git
from . import (
    artifacts,
    capabilities,
    codeowners,
    delivery,
    engine_locks,
    exposure,
    facts,
    fetched,
    fit,
    licenses,
    load,
    names,
    pickles,
    platform,
    pod,
    schema,
    served_name,
    stand_in,
    unfinished,
)

SPEC_DIR = "models"
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class Validation:
    """The outcome of validating a set of spec files."""

    documents: list[load.Document] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    policy: Any = None  # the policy.Policy that was applied, if any
    followed: dict[str, Any] = field(default_factory=dict)  # follow()'s results, by path

    def rules(self) -> dict[str, RuleInfo]:
        """Descriptions of every rule that can appear in the diagnostics."""
        described = dict(BUILTIN_RULES)
        if self.policy is not None:
            described.update((rule.id, rule.info()) for rule in self.policy.every_rule())
        return described

    def valid_documents(self) -> list[load.Document]:
        """Specs with no error left standing: an error an approved waiver accepts does not
        hold its spec back (rendering it, deploying it is what the waiver is for)."""
        broken = {d.path for d in self.diagnostics if d.severity.value == "error" and not d.waived}
        return [doc for doc in self.documents if doc.path not in broken]

    def failed(self, strict: bool = False) -> bool:
        return has_errors(self.diagnostics, strict)


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest directory upward holding models/, else the start."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / SPEC_DIR).is_dir():
            return candidate
    return here


def discover(root: Path, paths: Sequence[str] = ()) -> list[Path]:
    """Spec files named on the command line (files or directories), or all of models/."""
    if not paths:
        paths = [str(root / SPEC_DIR)]
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            # names, not Paths, are sorted: the same order (Paths compare by their parts),
            # at a tenth of the cost for thousands of specs
            listed = sorted(os.listdir(path))
            found.extend(path / name for name in listed if _is_spec_name(name))
        else:
            found.append(path)
    return found


def display_path(path: Path | str, root: Path) -> str:
    text, base = os.fspath(path), os.fspath(root)
    if text.startswith(base + os.sep) and _normal(text):  # the common case, without a syscall
        return text[len(base) + 1 :]
    try:  # abspath, not resolve(): no symlink look-ups per file, and the user's own path
        return os.path.relpath(os.path.abspath(path), root)
    except ValueError:  # another drive on Windows
        return str(path)


def _normal(text: str) -> bool:
    """An absolute path with no '.', '..' or empty part, which relpath would change (a
    part starting with a dot goes the long way too)."""
    return text.startswith(os.sep) and f"{os.sep}." not in text and os.sep * 2 not in text


def validate(
    files: Iterable[Path],
    root: Path,
    environment: str | None = None,
    policies: bool = True,
    peers: Iterable[Path | str] = (),
    follow: Callable[[load.Document], Any] | None = None,
    loaded_policy: tuple[Any, list[Diagnostic]] | None = None,
    known: Mapping[str, facts.Facts | None] | None = None,
    every_waiver: bool = False,
    alongside: Callable[[], object] | None = None,
    locks_changed: bool = False,
) -> Validation:
    """load -> schema -> identity -> policy, for every file; cross-file checks at the end.

    `peers` are the other specs of the repository when only some files are checked (a
    pre-commit run, a change): they take part in cross-file checks with their facts
    (facts.py: names, environments, engines, endpoints; read from the facts index, a scan,
    or `known`, the facts the caller already has by shown path), but findings are only
    reported for `files`. `every_waiver` judges every waiver's own validity (expiry,
    approver) and calls a waiver of a spec that no longer exists stale, as a full run does;
    otherwise only the waivers of `files` are looked at. `alongside` runs in this process
    while worker processes check the files (parallel.fork_map). The engine locks are checked
    in a full run, and in a partial one whose change touches them (`locks_changed`).

    `follow` is the next stage (rendering), run on each document that passes its own file's
    checks, in the process that loaded it: the document need not travel to another one.
    Its results are in `followed`; cross-file findings may still fail some of those specs.
    `loaded_policy` is policy.load_policy(root)'s result when the caller already has it.
    """
    with memo.run():
        return _validate(
            list(files), root, environment, policies, list(peers), follow, loaded_policy,
            known, every_waiver, alongside, locks_changed,
        )  # fmt: skip


def _validate(
    files: list[Path],
    root: Path,
    environment: str | None,
    policies: bool,
    peer_paths: list[Path | str],
    follow: Callable[[load.Document], Any] | None,
    loaded_policy: tuple[Any, list[Diagnostic]] | None,
    known: Mapping[str, facts.Facts | None] | None,
    every_waiver: bool,
    alongside: Callable[[], object] | None,
    locks_changed: bool,
) -> Validation:
    result = Validation()
    if policies:
        from . import policy

        result.policy, problems = loaded_policy or policy.load_policy(root)
        if problems:
            result.diagnostics.extend(problems)
            result.policy = None
    # what the clusters offer for spec.endpoint: read once, for every spec
    declared, problems = platform.read(root)
    result.diagnostics.extend(problems)
    check = _FileCheck(root, result.policy, environment, follow, declared)
    if len(files) >= PARALLEL_FROM:
        _compile_before_forking(result.policy)
    checked = parallel.fork_map(check, list(files), PARALLEL_FROM, alongside)
    policy_findings: list[Diagnostic] = []
    for document, problems, findings, followed in checked:
        result.diagnostics.extend(problems)
        policy_findings.extend(findings)
        if document is not None:
            result.documents.append(document)
        if followed is not None:
            result.followed[document.path] = followed
    others = _peers(peer_paths, root, result, known)
    # the specs a cross-file finding may be made at: the checked ones, and the others that
    # share a name, host or port with one of them (a full run reports the later of two)
    involved = {doc.path for doc in [*result.documents, *others.documents]}
    result.diagnostics.extend(
        names.check_unique_names(
            _in_path_order([*result.documents, *others.documents]), only=involved
        )
    )
    if result.policy is not None:
        every_name = (facts.every_name(others.facts) | _names(result)) if every_waiver else None
        # a spec that does not load still has a name a waiver may give: its file's
        known_specs = _names(result) | {Path(file).stem for file in files}
        result.diagnostics.extend(
            _cross_file_policy(
                result,
                policy_findings,
                root,
                environment,
                others.valid(),
                complete=not peer_paths,
                every_name=every_name,
                known_specs=known_specs if not peer_paths else None,
            )
        )
    result.diagnostics.extend(committed_state(root))
    result.diagnostics.extend(codeowners.check(root))
    if not peer_paths or locks_changed:  # the locks are read whole: tens of ms
        result.diagnostics.extend(engine_locks.check(root))
    result.diagnostics.sort(key=Diagnostic.sort_key)
    return result


def _cross_file_policy(
    result: Validation,
    findings: list[Diagnostic],
    root: Path,
    environment: str | None,
    others: list[load.Document],
    complete: bool,
    every_name: set[str] | None,
    known_specs: set[str] | None,
) -> list[Diagnostic]:
    from . import policy

    broken = {d.path for d in result.diagnostics if d.severity.value == "error"}
    documents = [doc for doc in result.documents if doc.path not in broken]
    if others:
        documents = _in_path_order([*documents, *others])
    findings = findings + policy.evaluate_cross_file(documents, result.policy, root, environment)
    return policy.apply_waivers(
        findings,
        documents,
        result.policy,
        root,
        complete,
        every_name=every_name,
        known_specs=known_specs,
    )


def _names(result: Validation) -> set[str]:
    return {name for doc in result.documents if (name := names.spec_name(doc)) is not None}


def _in_path_order(documents: list[load.Document]) -> list[load.Document]:
    """Specs in the order of their paths, as a full run lists them: the later of two specs
    is the one a cross-file finding is reported at, whichever of them was named."""
    return sorted(documents, key=lambda doc: doc.path)


@dataclass
class _Peers:
    """The other specs, for cross-file checks: the facts of each, by shown path, and whole
    documents of those that share an identity with a checked spec."""

    facts: dict[str, facts.Facts | None] = field(default_factory=dict)
    documents: list[load.Document] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)  # of those, the ones the schema refuses

    def valid(self) -> list[load.Document]:
        return [doc for doc in self.documents if doc.path not in self.invalid]


def _peers(
    paths: Sequence[Path | str],
    root: Path,
    result: Validation,
    known: Mapping[str, facts.Facts | None] | None,
) -> _Peers:
    """The other specs' facts (facts.py: from the index, a scan or `known`), and, loaded
    whole from their files, those that share an identity with a checked spec (a name, an
    endpoint host or port): the cross-file checks compare identities (see
    policy/checks.py), so no other spec can take part in a finding that involves the
    checked ones, and no index entry can make one up."""
    mine = {doc.path for doc in result.documents}
    listed = [(path, display_path(path, root)) for path in paths]
    listed = [(path, shown) for path, shown in listed if shown not in mine]
    if not listed:
        return _Peers()
    if known is None or any(shown not in known for _, shown in listed):
        known = facts.collect([path for path, _ in listed], root, [shown for _, shown in listed])
    found = {shown: known[shown] for _, shown in listed}
    sharing = facts.sharing(found, [facts.of_document(doc) for doc in result.documents])
    others = _Peers(found)
    for path, shown in listed:
        if shown not in sharing or _links_outside(Path(path), root) or _special(Path(path)):
            continue
        document, problems = load.load_file(Path(path), shown)
        if document is None:
            continue
        others.documents.append(document)
        if problems or schema.check(document):
            others.invalid.add(shown)
    return others


@dataclass(frozen=True)
class _FileCheck:
    """Everything one file's checks need, so that worker processes can run them."""

    root: Path
    policy: Any
    environment: str | None
    follow: Callable[[load.Document], Any] | None = None
    offered: platform.Platform | None = None  # None: templates/values.yaml was refused

    def __call__(self, path: Path) -> tuple[load.Document | None, list[Diagnostic], list, Any]:
        shown = display_path(path, self.root)
        if _links_outside(path, self.root):
            return None, [_outside_link(path, shown)], [], None
        if _special(path):
            return None, [_not_a_file(shown)], [], None
        document, problems = load.load_file(path, shown)
        if document is None:
            return None, problems, [], None
        problems = [
            *problems,
            *schema.check(document),
            *names.check_file_name(document),
            *names.check_environments(document),
            *names.check_runtime_name(document),
        ]
        if any(d.severity.value == "error" for d in problems):
            return document, problems, [], None
        problems.extend(capabilities.check(document))
        problems.extend(pod.check(document))
        problems.extend(licenses.check(document))
        problems.extend(unfinished.check(document))
        problems.extend(names.check_team(document))
        changed = artifacts.check(document, self.root)
        # a changed or unhashable artifact is not the one reviewed: nothing to scan in it
        located = fetched.located(document.data["spec"])
        problems.extend(changed or pickles.check(document, self.root, located))
        problems.extend(stand_in.check(document, self.root))
        problems.extend(served_name.check(document))
        if self.offered is not None:
            problems.extend(exposure.check(document, self.offered))
            problems.extend(delivery.check_spec(document, self.offered.environments))
            if not changed:  # the artifact reviewed, whose headers the fit reads
                problems.extend(fit.check(document, self.root, self.offered.accelerators))
        findings = []
        if self.policy is not None:
            from . import policy

            findings = policy.evaluate_spec(document, self.policy, self.root, self.environment)
        followed = self.follow(document) if self.follow else None
        return document, problems, findings, followed


SYMLINK_OUTSIDE = "MG115"


def _special(path: Path) -> bool:
    """A FIFO, socket or device named like a spec: opening a FIFO would wait forever."""
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except OSError:  # missing or unreadable: load_file reports it
        return False


def _not_a_file(shown: str) -> Diagnostic:
    return error(
        shown,
        0,
        0,
        load.UNREADABLE,
        "not a regular file (a FIFO, socket or device): not read",
        "a spec is a plain YAML file",
    )


def _links_outside(path: Path, root: Path) -> bool:
    """A spec that is a symlink to a file outside the repository: a pull request could
    point one at a CI runner's credentials and have validation print what it holds."""
    try:
        return path.is_symlink() and not path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a broken or looping link: load_file reports it
        return False


def _outside_link(path: Path, shown: str) -> Diagnostic:
    return error(
        shown,
        1,
        1,
        SYMLINK_OUTSIDE,
        f"spec file is a symlink to {os.readlink(path)}, outside the repository",
        "commit the spec itself under models/, not a link to a file elsewhere",
    )


STATE_COMMITTED = "MG117"
STATE_DIR = ".modelgate"


def committed_state(root: Path) -> list[Diagnostic]:
    """MG117 for each file git tracks under .modelgate/: modelgate's state (kept servers, the
    ledger, locks) belongs to the machine it runs on, and a checkout must not bring its own."""
    listed = run_git(root, "ls-files", "-z", "--", STATE_DIR, timeout=10)
    if listed is None or listed.returncode != 0:  # no git, or not a git work tree
        return []
    return [
        error(
            name,
            1,
            1,
            STATE_COMMITTED,
            f".modelgate/ is committed: git tracks {name}; modelgate's state comes from the "
            "machine it runs on, never from a commit",
            "git rm -r --cached .modelgate and add .modelgate/ to .gitignore",
        )
        for name in listed.stdout.split("\0")
        if name
    ]


PARALLEL_FROM = 256  # files; below this, starting a second process costs more than it saves


def _compile_before_forking(loaded: Any) -> None:
    """The spec schema's and the rules' compiled checks, made once here: with an empty cache,
    each forked worker would otherwise generate every one of them again."""
    schema.check_compiled()
    for rule in loaded.rules if loaded is not None else ():
        rule.compile()


def peers_of(root: Path, paths: Sequence[str]) -> list[str]:
    """Every spec file in models/ when only some were named, none when all are checked
    anyway."""
    return every_spec(root) if paths else []


def every_spec(root: Path) -> list[str]:
    """Every spec file in models/, in discovery order, as strings (thousands of Path
    objects cost more than checking one spec)."""
    directory = os.path.join(root, SPEC_DIR)
    try:
        listed = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, name) for name in listed if _is_spec_name(name)]


def _is_spec_name(name: str) -> bool:
    """A name ending in .yaml or .yml, as Path.suffix sees it (".yaml" alone has none)."""
    return name.endswith(SPEC_SUFFIXES) and "." in name.lstrip(".")
