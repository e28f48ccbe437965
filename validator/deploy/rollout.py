"""`modelgate rollout` and `modelgate revert`: a merged commit reaches one environment's real
cluster, is awaited, smoke-tested at the live endpoint and recorded there; a failed one is put
back to the last good revision by a commit.

rollout ENV COMMIT (the checkout is at COMMIT), for every model whose rendered/ENV/NAME/ the
commit changed since BASE:
1. deliver: Argo CD syncs the Application NAME-ENV at COMMIT (its `operation` field,
   argocd.py), awaited until Synced and Healthy at COMMIT; or, for push delivery, a
   server-side apply of rendered/ENV/NAME/ as the kubernetes target does;
2. the workloads' own readiness, explained by their pods (kubernetes.Rollout.ready);
3. the spec's smoke requests at the live endpoint, through a port-forward to its Service;
4. the record in the cluster (record.py): commit, manifests' digest, model digest and revision,
   verdict, times.

revert ENV COMMIT, for every model whose latest record in ENV is a failure at COMMIT: a commit
that puts models/NAME.yaml and rendered/*/NAME/ back as they were at the model's last good
commit in ENV (or before COMMIT, when nothing good was recorded), pushed to the branch (never
forced; to a branch of its own for a pull request when the push is refused), then the same
deliver, wait and smoke for that commit, and the record says what serves now. A later commit
that touched the same files stops it, naming the commits, with nothing changed.

Kubernetes and Argo CD do the orchestration: this module starts a sync or an apply, reads
what the cluster reports, and asks the model to answer.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import render
from ..check import delivery, workspace
from ..check.load import Document
from ..diagnostics import Diagnostic, error
from ..render import view
from . import (
    INTERRUPTED,
    MODEL_NOT_DEPLOYED,
    Outcome,
    argocd,
    interrupt,
    kubectl,
    readiness_timeout,
    record,
)
from .kubernetes import Manifest, Rollout, manifests_in

REVERT_CONFLICT = "MG520"
REVERT_FAILED = "MG521"
GIT_TIMEOUT = 120.0


class RolloutError(Exception):
    """The rollout cannot start: the message says why and what to do."""


@dataclass
class Result:
    """One model's rollout (or revert) in one environment."""

    name: str
    commit: str
    entry: record.Entry | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcome: Outcome | None = None

    @property
    def ok(self) -> bool:
        return not self.diagnostics


@dataclass(frozen=True)
class Context:
    root: Path
    environment: str
    delivery: delivery.Environment
    namespace: str
    prune: bool
    branch: str
    remote: str


def context(root: Path, environment: str, branch: str, remote: str) -> Context:
    values = render.load_values(root)
    declared = delivery.from_values(values) or {}
    if environment not in declared:
        raise RolloutError(
            f"environment '{environment}' is not declared in templates/values.yaml "
            f"(declared: {', '.join(declared) or 'none'})"
        )
    sync = {**{"prune": True}, **values.get("sync", {}).get("default", {})}
    sync.update(values.get("sync", {}).get(environment, {}))
    return Context(
        root,
        environment,
        declared[environment],
        values["namespace"].format(environment=environment),
        sync.get("prune") is True,
        branch,
        remote,
    )


# --- which models a commit changes ------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RolloutError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def full_commit(root: Path, ref: str) -> str:
    return git(root, "rev-parse", "--verify", f"{ref}^{{commit}}")


def changed_models(root: Path, environment: str, base: str, commit: str) -> list[str]:
    """The models whose rendered/ENV/NAME/ differs between the two commits and that the commit
    still renders (a removed folder is Argo CD's to prune, or the kubernetes target's)."""
    listed = git(root, "diff", "--name-only", base, commit, "--", f"rendered/{environment}/")
    names = {
        parts[2]
        for line in listed.splitlines()
        if len(parts := PurePosixPath(line).parts) >= 4
        and parts[2] not in (render.RBAC, render.ADMISSION)
    }
    return sorted(n for n in names if (root / "rendered" / environment / n).is_dir())


def checked_out_at(root: Path, commit: str) -> None:
    head = full_commit(root, "HEAD")
    if head != commit:
        raise RolloutError(
            f"the checkout is at {head[:12]}, not {commit[:12]}: check out the commit to roll "
            "out (the manifests and smoke requests are read from it)"
        )
    if git(root, "status", "--porcelain", "--", "models", "rendered", "templates"):
        raise RolloutError("models/, rendered/ or templates/ have uncommitted changes")


# --- one model ----------------------------------------------------------------------------------


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_of(root: Path, name: str) -> Document:
    path = root / workspace.SPEC_DIR / f"{name}.yaml"
    validation = workspace.validate([path], root)
    documents = validation.valid_documents()
    if validation.failed() or not documents:
        problems = "; ".join(d.message for d in validation.diagnostics[:3])
        raise RolloutError(f"{path.relative_to(root)} is not a valid spec here: {problems}")
    return documents[0]


def roll_out(ctx: Context, name: str, commit: str, reverts: str = "") -> Result:
    """Deliver rendered/ENV/NAME/ as the checkout has it (at `commit`), wait, smoke, record."""
    result = Result(name, commit)
    document = spec_of(ctx.root, name)
    folder = ctx.root / render.RENDERED_DIR / ctx.environment / name
    manifests = manifests_in(ctx.root, folder)
    entry = _entry(ctx, document, commit, manifests, reverts)
    outcome = Outcome(name)
    result.outcome = outcome
    waiter = Rollout(document, ctx.root, ctx.environment, manifests, outcome)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as reader:
        # the record's history, read while Argo CD syncs rather than after it serves
        earlier = reader.submit(record.history, ctx.namespace, name)
        try:
            result.diagnostics = (
                _deliver(ctx, document, commit, manifests, result)
                or waiter.ready()
                or waiter.smoke()
            )
        except (interrupt.Interrupted, KeyboardInterrupt):  # SIGINT or SIGTERM: stop waiting
            outcome.interrupted = True
            result.diagnostics = [_interrupted(ctx, document, name)]
            return result  # nothing recorded: the rollout did not finish
        except kubectl.KubectlError as exc:
            result.diagnostics = [
                document.finding(
                    ["spec", "engine"], MODEL_NOT_DEPLOYED, f"model not deployed: {exc}", _hint(ctx)
                )
            ]
    entry.finished = now()
    entry.smoke = _smoke_verdict(document, outcome)
    if result.ok:
        entry.result = record.SERVING
        entry.endpoint = waiter.endpoint().base_url
    else:
        entry.result = record.FAILED
        entry.message = "; ".join(d.message for d in result.diagnostics)[:2000]
    entry.notes.append(f"rollout took {time.monotonic() - started:.1f} s")
    record.write(ctx.namespace, entry, earlier.result())
    result.entry = entry
    return result


def _entry(
    ctx: Context, document: Document, commit: str, manifests: list[Manifest], reverts: str
) -> record.Entry:
    model = document.data["spec"]["model"]
    return record.Entry(
        environment=ctx.environment,
        model=document.data["metadata"]["name"],
        commit=commit,
        result="",
        manifests=record.manifests_digest({m.path.name: m.content for m in manifests}),
        model_digest=str(
            model.get("sha256") or model.get("treeSha256") or _image_digest(model) or ""
        ),
        revision=str(model.get("revision") or ""),
        version=str(model.get("version") or ""),
        delivery=ctx.delivery.delivery,
        started=now(),
        reverts=reverts,
    )


def _image_digest(model: dict) -> str:
    image = str(model.get("image") or "")
    return image.rpartition("@")[2] if "@" in image else ""


def _smoke_verdict(document: Document, outcome: Outcome) -> str:
    if not (document.data["spec"].get("smoke") or {}).get("requests"):
        return "readiness only (no smoke requests)"
    if not outcome.smoke:
        return "not run"
    passed = sum(1 for result in outcome.smoke if result.passed)
    word = "passed" if passed == len(outcome.smoke) else "failed"
    return f"{word} {passed}/{len(outcome.smoke)}"


def _deliver(
    ctx: Context, document: Document, commit: str, manifests: list[Manifest], result: Result
) -> list[Diagnostic]:
    if ctx.delivery.argocd:
        return _sync(ctx, document, commit, result)
    refused = kubectl.apply([m.path for m in manifests])
    if refused is None:
        result.notes.append(f"applied {len(manifests)} object(s) server-side")
        return []
    return [
        document.finding(
            ["spec", "engine"],
            MODEL_NOT_DEPLOYED,
            f"model not deployed: the cluster refused the manifests: {refused.message}",
            _hint(ctx),
        )
    ]


def _sync(ctx: Context, document: Document, commit: str, result: Result) -> list[Diagnostic]:
    application = view.application_name(result.name, ctx.environment)
    timeout = readiness_timeout(document)
    try:
        state = argocd.appeared(application, view.applicationset_name(ctx.environment))
        if state.operation_pending or state.phase in argocd.RUNNING:
            state = _after_running(application, timeout)
        if argocd.settled(state, commit):
            result.notes.append(f"Argo CD had already synced {application} at {commit[:12]}")
        else:
            argocd.sync(application, commit, ctx.prune, state.sync_options)
        state = argocd.wait(
            application,
            commit,
            timeout,
            lambda other: _same_manifests(ctx, result.name, commit, other),
        )
    except argocd.SyncFailed as exc:
        return [
            document.finding(
                ["spec", "smoke", "readinessTimeoutSeconds"],
                MODEL_NOT_DEPLOYED,
                f"model not deployed: {application}: {exc}",
                "the reason is Argo CD's, from the Application's status; `kubectl -n "
                f"{view.ARGOCD_NAMESPACE} get application {application} -o yaml` shows it whole",
            )
        ]
    result.notes.append(f"Argo CD: {argocd.describe(state)}")
    return []


def _after_running(application: str, timeout: float) -> argocd.State:
    """Wait for an operation under way (an automated sync) to end before asking for ours."""
    deadline = time.monotonic() + timeout
    while True:
        state = argocd.State.of(argocd.get(application))
        if not (state.operation_pending or state.phase in argocd.RUNNING):
            return state
        if time.monotonic() >= deadline:
            raise argocd.SyncFailed(f"another sync is still under way: {argocd.describe(state)}")
        interrupt.pause(argocd.POLL_SECONDS)


def _same_manifests(ctx: Context, name: str, commit: str, other: str) -> bool:
    folder = f"{render.RENDERED_DIR}/{ctx.environment}/{name}/"
    done = subprocess.run(
        ["git", "diff", "--quiet", commit, other, "--", folder],
        cwd=ctx.root, capture_output=True, timeout=GIT_TIMEOUT, check=False,
    )  # fmt: skip
    return done.returncode == 0  # 1: they differ; 128: `other` is not a commit we have


def _interrupted(ctx: Context, document: Document, name: str) -> Diagnostic:
    where = (
        f"Argo CD goes on with Application {view.application_name(name, ctx.environment)} as it "
        "has it"
        if ctx.delivery.argocd
        else "the objects applied stay as the cluster has them"
    )
    return document.finding(
        ["metadata", "name"],
        INTERRUPTED,
        f"rollout interrupted while waiting: nothing was reverted or recorded; {where}",
        "run the rollout again for this commit to wait, smoke-test and record it",
    )


def _hint(ctx: Context) -> str:
    return (
        f"check the kubeconfig and that a cluster admin applied rendered/{ctx.environment}/"
        f"{render.RBAC}/ (the deployer's rights)"
    )


# --- revert -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revert:
    commit: str  # the revert commit
    pushed_to: str  # the branch it was pushed to
    restored: str  # the commit whose files it put back


def failed_at(ctx: Context, commit: str) -> list[str]:
    """The models whose latest record in the environment is a failure at `commit`."""
    return sorted(
        name
        for name, entry in record.every_model(ctx.namespace).items()
        if entry.commit == commit and entry.result == record.FAILED
    )


def model_paths(root: Path, name: str, *commits: str) -> list[str]:
    """The spec and every rendered folder of the model, at any of the commits."""
    found = {f"{workspace.SPEC_DIR}/{name}.yaml"}
    for commit in commits:
        listed = git(root, "ls-tree", "-d", "--name-only", commit, f"{render.RENDERED_DIR}/")
        for folder in listed.splitlines():
            if git(root, "ls-tree", "--name-only", commit, f"{folder}/{name}"):
                found.add(f"{folder}/{name}")
    return sorted(found)


def make_revert(ctx: Context, name: str, failed: str) -> Revert:
    """Commit the model's files as they were at its last good commit on top of the branch and
    push it; RolloutError (nothing changed) when a later commit touched the same files."""
    remote_branch = f"{ctx.remote}/{ctx.branch}"
    git(ctx.root, "fetch", "--quiet", ctx.remote, ctx.branch)
    good = record.last_good(ctx.namespace, name)
    restored = good.commit if good else full_commit(ctx.root, f"{failed}^")
    files = model_paths(ctx.root, name, failed, restored)
    later = git(ctx.root, "log", "--format=%h %s", f"{failed}..{remote_branch}", "--", *files)
    if later:
        raise RolloutError(
            f"{REVERT_CONFLICT} the revert of {name} does not apply cleanly: later commits on "
            f"{ctx.branch} changed its files: {'; '.join(later.splitlines())}; nothing was "
            f"changed. Revert by hand: put {', '.join(files)} back as at {restored[:12]}"
        )
    with _worktree(ctx.root, remote_branch) as tree:
        for path in files:
            if git(tree, "ls-tree", "--name-only", restored, path):
                git(tree, "rm", "-r", "--quiet", "--ignore-unmatch", "--", path)
                git(tree, "checkout", restored, "--", path)
            else:
                git(tree, "rm", "-r", "--quiet", "--ignore-unmatch", "--", path)
        why = (
            f"the last good version ({restored[:12]})"
            if good
            else f"the version before {failed[:12]} (nothing good was recorded)"
        )
        git(
            tree, "-c", "user.name=modelgate", "-c", "user.email=modelgate@localhost",
            "commit", "--quiet", "--allow-empty", "-m",
            f"Revert {name} in {ctx.environment} to {why}\n\n"
            f"The rollout of {failed} to {ctx.environment} failed; see "
            f"`modelgate history {name} --env {ctx.environment}`.",
        )  # fmt: skip
        commit = full_commit(tree, "HEAD")
        pushed = _push(tree, ctx, commit, name)
    git(ctx.root, "fetch", "--quiet", ctx.remote, pushed)
    return Revert(commit, pushed, restored)


def _push(tree: Path, ctx: Context, commit: str, name: str) -> str:
    """Push to the branch, never forced; where that is refused (a protected branch), to a
    branch of its own for a pull request."""
    done = subprocess.run(
        ["git", "push", "--quiet", ctx.remote, f"{commit}:refs/heads/{ctx.branch}"],
        cwd=tree, capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode == 0:
        return ctx.branch
    branch = f"modelgate/revert-{name}-{ctx.environment}-{commit[:12]}"
    git(tree, "push", "--quiet", ctx.remote, f"{commit}:refs/heads/{branch}")
    return branch


@contextlib.contextmanager
def _worktree(root: Path, ref: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="modelgate-revert-"))
    tree = folder / "tree"
    git(root, "worktree", "add", "--quiet", "--detach", str(tree), ref)
    try:
        yield tree
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)],
            cwd=root, capture_output=True, timeout=GIT_TIMEOUT, check=False,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def revert_and_verify(ctx: Context, name: str, failed: str) -> Result:
    """The revert commit, then the same rollout at it: what serves now, said and recorded."""
    revert = make_revert(ctx, name, failed)
    if revert.pushed_to != ctx.branch:
        result = Result(name, revert.commit)
        result.diagnostics = [
            error(
                f"{workspace.SPEC_DIR}/{name}.yaml",
                0,
                0,
                REVERT_FAILED,
                f"the revert could not be pushed to {ctx.branch}; it is on branch "
                f"{revert.pushed_to}: open a pull request from it. Until it is merged the "
                f"failed commit {failed[:12]} stays what {ctx.branch} says",
                "merge the revert's pull request; the merge's rollout then verifies it",
            )
        ]
        return result
    with _worktree(ctx.root, revert.commit) as tree:
        at_revert = Context(
            tree, ctx.environment, ctx.delivery, ctx.namespace, ctx.prune, ctx.branch, ctx.remote
        )
        if not (tree / workspace.SPEC_DIR / f"{name}.yaml").is_file():
            return _removed(at_revert, name, revert, failed)
        result = roll_out(at_revert, name, revert.commit, reverts=failed)
    result.notes.insert(
        0,
        f"reverted by commit {revert.commit[:12]} on {ctx.branch} "
        f"(files of {revert.restored[:12]})",
    )
    return result


def _removed(ctx: Context, name: str, revert: Revert, failed: str) -> Result:
    """A model whose first rollout failed: the revert removed it; say so and record it."""
    result = Result(name, revert.commit)
    entry = record.Entry(
        environment=ctx.environment,
        model=name,
        commit=revert.commit,
        result=record.REVERTED,
        delivery=ctx.delivery.delivery,
        message=f"the model was new at {failed[:12]} and its rollout failed: the revert "
        "removed it, nothing of it serves",
        started=now(),
        finished=now(),
        reverts=failed,
    )
    record.write(ctx.namespace, entry)
    result.entry = entry
    result.notes.append(entry.message)
    return result
