"""`modelgate deploy`, and the kept deployments it leaves: `status`, `stop`, `history`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of, validated
from .smoke import show_results

if TYPE_CHECKING:
    from ..deploy import Outcome

TARGETS = ("local", "docker", "kubernetes")


def register(commands: Any) -> None:
    deploy = commands.add_parser("deploy", help="deploy specs and smoke-test their endpoints")
    deploy.add_argument("specs", nargs="*", help="spec files")
    deploy.add_argument(
        "--changed-since",
        metavar="REF",
        help="deploy the specs changed since this git ref (and those whose artifact, "
        "engine templates or policies changed)",
    )
    deploy.add_argument("--jobs", type=int, default=2, help="deploys at once (default 2)")
    deploy.add_argument(
        "--lock-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for another deploy of the same model",
    )
    deploy.add_argument(
        "--target",
        choices=TARGETS,
        default="local",
        help="where the engine runs: a local process, a Docker container, or the cluster "
        "KUBECONFIG points at",
    )
    deploy.add_argument(
        "--env", help="environment to deploy to on kubernetes (default: the spec's first)"
    )
    deploy.add_argument(
        "--context",
        metavar="CONTEXT",
        help="kubernetes: the kubeconfig context to deploy with (default: its current context)",
    )
    deploy.add_argument(
        "--namespace",
        metavar="NAMESPACE",
        help="kubernetes: the namespace you expect the model in; the deploy stops, before "
        "applying anything, when rendered/ENV/NAME puts it elsewhere",
    )
    deploy.add_argument(
        "--keep",
        action="store_true",
        help="leave the endpoint running (stop it with `modelgate stop NAME`)",
    )
    deploy.set_defaults(handler=run)

    status = commands.add_parser("status", help="list deployments left running by --keep")
    status.add_argument(
        "--env", help="what serves in this environment, from the records in its cluster"
    )
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.set_defaults(handler=run_status)

    stop = commands.add_parser("stop", help="stop a deployment left running by --keep")
    stop.add_argument("name")
    stop.add_argument("--target", choices=["local", "docker"], default="local")
    stop.set_defaults(handler=run_stop)

    history = commands.add_parser("history", help="deploy attempts of a model, from the ledger")
    history.add_argument("name")
    history.add_argument("--format", choices=["text", "json"], default="text")
    history.add_argument(
        "--env", help="the rollouts in this environment, from the record in its cluster"
    )
    history.set_defaults(handler=run_history)


def run(args: argparse.Namespace, output: Output) -> int:
    from .. import deploy

    root = root_of(args)
    if not args.specs and not args.changed_since:
        output.error("name spec files to deploy, or use --changed-since REF")
        return EXIT_USAGE
    if (args.context or args.namespace) and args.target != "kubernetes":
        output.error("--context and --namespace are for --target kubernetes")
        return EXIT_USAGE
    if args.target == "kubernetes":
        from ..deploy import kubectl

        kubectl.select(kubectl.Cluster(args.context, args.namespace))
    result = validated(args, args.specs)
    if args.target in deploy.LOOPBACK_TARGETS:  # nothing reaches a cluster: a placeholder warns
        from ..check import unfinished

        result.diagnostics = unfinished.as_warnings(result.diagnostics)
        left = [d for d in result.diagnostics if d.rule == unfinished.PLACEHOLDER]
        if left and not result.failed():
            output.diagnostics(left)
    if result.failed():
        output.diagnostics(result.diagnostics)
        output.error("model not deployed: the spec is invalid")
        return EXIT_FINDINGS
    documents = result.valid_documents()
    if args.changed_since:
        documents = _changed(root, documents, args.changed_since, output)
        if documents is None:
            return EXIT_USAGE
        target = deploy.target_named(args.target)
        for document in documents:
            if not target.can_serve(document):
                _say_not_run(output, root, document, args.target)
        documents = [d for d in documents if target.can_serve(d)]
        if not documents:
            output.line(
                f"nothing to deploy: no {args.target}-deployable spec changed since "
                f"{args.changed_since}"
            )
            return EXIT_OK
    if args.target in deploy.LOOPBACK_TARGETS:
        _say_exposure_is_left_out(output, documents, args.target)
    if args.target == "local":
        from ..deploy import local

        local.install_environments(documents, output.line)
        local.say_progress(output.line)
    done: list[Outcome] = []

    def each(outcome: Outcome) -> None:
        done.append(outcome)
        if len(documents) > 1:
            output.line(
                f"[{len(done)}/{len(documents)}] {outcome.name}: "
                f"{'deployed' if outcome.ok else 'FAILED'} in {outcome.seconds:.1f} s"
            )
        _show_outcome(output, outcome)

    outcomes = deploy.run_many(
        documents,
        root,
        args.target,
        keep=args.keep,
        lock_timeout=args.lock_timeout,
        environment=args.env,
        jobs=args.jobs,
        each=each,
    )
    if len(outcomes) > 1:
        _show_summary(output, outcomes)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FINDINGS


def _say_not_run(output: Output, root: Any, document: Any, target: str) -> None:
    """A changed spec the target cannot run: left to the other target of this machine that
    runs it (the pull-request workflow deploys on both), or said plainly and noted in the
    ledger, so that no report shows its smoke tests as passed."""
    from .. import deploy
    from ..check import targets

    name = document.data["metadata"]["name"]
    others = [
        other
        for other in targets.targets_of(document.data["spec"])
        if other in targets.ON_THIS_MACHINE and other != target
    ]
    if others:
        output.line(f"{name}: left to the {others[0]} target, which runs it")
        return
    reason = f"the {target} target cannot serve engine {document.data['spec']['engine']['name']}"
    if target == "local":
        from ..deploy import local

        refused = local.why_not_served(document)
        reason = refused[1] if refused else reason
        reason += ", and the spec names no stand-in (spec.smoke.standIn)"
    reason += "; its smoke tests did not run"
    output.line(f"{name}: not run: {reason}")
    deploy.record_not_run(document, root, target, reason)


def _say_exposure_is_left_out(output: Output, documents: list, target: str) -> None:
    from ..deploy import exposure_not_applied

    for document in documents:
        left_out = exposure_not_applied(document)
        if left_out:
            output.line(
                f"note: {document.data['metadata']['name']}: the {target} target serves on "
                f"127.0.0.1 over plain HTTP without authentication, for tests; "
                f"spec.endpoint {', '.join(left_out)} apply on Kubernetes (rendered/)"
            )


def _changed(root: Any, documents: list, ref: str, output: Output) -> list | None:
    from ..check.changes import GitError, affected, artifacts, changed_files

    try:
        return affected(documents, changed_files(root, ref, also=artifacts(documents)))
    except GitError as exc:
        output.error(f"--changed-since {ref}: {exc}")
        return None


def _show_outcome(output: Output, outcome: Outcome) -> None:
    if outcome.stand_in:
        output.line(f"{outcome.name}: smoke-tested on a stand-in: {outcome.stand_in}")
    for argument in outcome.left_out:
        output.line(f"{outcome.name}: left out of the local run: {argument}")
    show_results(output, outcome.smoke)
    if outcome.ok and outcome.endpoint:
        output.line(f"deployed {outcome.name} in {outcome.seconds:.1f} s")
        output.line(f"endpoint: {outcome.endpoint.inference_url}")
        for note in outcome.notes:
            output.line(note)
        if outcome.endpoint.target == "kubernetes":
            output.line("it stays in the cluster (remove it through Git: delete the spec)")
        elif outcome.kept:
            output.line(f"kept running; stop it with `modelgate stop {outcome.name}`")
        else:
            output.line("torn down (use --keep to leave it running)")
        return
    output.diagnostics(outcome.diagnostics)
    left = outcome.left or "nothing left running"
    output.error(f"{outcome.name} failed after {outcome.seconds:.1f} s; {left}")
    if outcome.previous:
        output.error(f"the previous deployment still serves at {outcome.previous}")


def _show_summary(output: Output, outcomes: list[Outcome]) -> None:
    output.line()
    output.line(f"{'model':<24} {'result':<9} {'seconds':>7}  {'smoke':<6} endpoint")
    for outcome in outcomes:
        passed = sum(r.passed for r in outcome.smoke)
        endpoint = outcome.endpoint.inference_url if outcome.endpoint else "-"
        stand_in = " (smoke-tested on a stand-in)" if outcome.stand_in else ""
        output.line(
            f"{outcome.name:<24} {'deployed' if outcome.ok else 'failed':<9} "
            f"{outcome.seconds:7.1f}  {passed}/{len(outcome.smoke):<4} {endpoint}{stand_in}"
        )


def run_status(args: argparse.Namespace, output: Output) -> int:
    """Kept deployments on every target that can be asked (a Docker engine that does not
    answer simply has none), and the kept local servers found dead (the ledger records it)."""
    from .. import deploy
    from ..deploy import local

    if args.env:
        from .rollout import show_live_status

        return show_live_status(args, output)
    root = root_of(args)
    found = local.survey(root)
    rows = [_status_row(state, "running") for state in local.as_run_states(found.alive)]
    rows += [_status_row(state, "running") for state in _others_running(deploy, root)]
    rows += [
        {"name": died.name, "target": "local", "state": "died", "where": str(died.pid),
         "endpoint": died.base_url, "note": died.message}
        for died in found.died
    ]  # fmt: skip
    for ignored in found.ignored:
        output.error(f"warning: {ignored.message}", ignored.hint)
    if args.format == "json":
        output.block(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    if not rows:
        output.line("nothing running (deploy with --keep to leave a model running)")
        return EXIT_OK
    output.line(f"{'NAME':<24} {'TARGET':<7} {'STATE':<8} {'WHERE':<14} ENDPOINT")
    for row in rows:
        output.line(
            f"{row['name']:<24} {row['target']:<7} {row['state']:<8} {row['where']:<14} "
            f"{row['endpoint']}"
        )
    for died in found.died:
        output.error(
            died.message,
            f"recorded in the ledger (`modelgate history {died.name}`); deploy it again with "
            "--keep",
        )
    return EXIT_OK


def _others_running(deploy: Any, root: Any) -> list:
    """Kept deployments on the targets other than local."""
    return [
        state
        for name in TARGETS
        if name != "local"
        for state in deploy.target_named(name).running(root)
    ]


def _status_row(state: Any, condition: str) -> dict[str, str]:
    return {
        "name": state.name,
        "target": state.target,
        "state": condition,
        "where": state.where,
        "endpoint": state.base_url,
        "note": "",
    }


def run_stop(args: argparse.Namespace, output: Output) -> int:
    from .. import deploy

    problems = deploy.target_named(args.target).stop(root_of(args), args.name)
    if problems:
        output.diagnostics(problems)
        return EXIT_FINDINGS
    output.line(f"stopped {args.name}")
    return EXIT_OK


def run_history(args: argparse.Namespace, output: Output) -> int:
    from ..deploy import ledger

    if args.env:
        from .rollout import show_live_history

        return show_live_history(args, output)
    read = ledger.read(root_of(args), args.name)
    records = read.records
    if read.note:
        output.error(f"warning: {read.note}", "the lines that are not records were left out")
    if args.format == "json":
        output.block(json.dumps(records, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    if not records:
        output.line(f"no deploys of {args.name} recorded")
        return EXIT_OK
    output.line(
        f"{'TIME':<26} {'RESULT':<11} {'TARGET':<10} {'COMMIT':<10} {'USER':<12} ENDPOINT OR ERROR"
    )
    for entry in records:
        # what died, failed or was not run says why; a deploy says where it answers
        said = entry.get("error") if entry.get("result") != "deployed" else ""
        shown = said or entry.get("endpoint", "")
        output.line(
            f"{entry.get('time', '?'):<26} {entry.get('result', '?'):<11} "
            f"{entry.get('target', '?'):<10} {str(entry.get('commit', ''))[:10]:<10} "
            f"{entry.get('user', '?'):<12} {shown}"
        )
    return EXIT_OK
