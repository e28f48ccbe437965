"""`modelgate rollout` and `modelgate revert`: a merged commit on an environment's real cluster
(validator/deploy/rollout.py), and the commit that puts back the last good version when it
fails. The merge workflow runs them, one environment after the other; so can a person."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of


def register(commands: Any) -> None:
    rollout = commands.add_parser(
        "rollout",
        help="put a merged commit on an environment's cluster: sync or apply, wait, smoke-test "
        "the live endpoint, record what serves",
    )
    _common(rollout)
    rollout.add_argument(
        "--changed-since",
        metavar="REF",
        required=True,
        help="roll out the models whose rendered/ENV/NAME/ changed since this commit",
    )
    rollout.set_defaults(handler=run_rollout)

    revert = commands.add_parser(
        "revert",
        help="after a failed rollout: commit the last good version of each failed model, push "
        "it, and verify that it serves again",
    )
    _common(revert)
    revert.set_defaults(handler=run_revert)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="the environment (templates/values.yaml)")
    parser.add_argument(
        "--commit", default="HEAD", help="the merged commit, checked out here (default HEAD)"
    )
    parser.add_argument("--branch", default="main", help="the protected branch (default main)")
    parser.add_argument("--remote", default="origin", help="the remote to push a revert to")


def run_rollout(args: argparse.Namespace, output: Output) -> int:
    from ..deploy import rollout

    try:
        ctx = rollout.context(root_of(args), args.env, args.branch, args.remote)
        commit = rollout.full_commit(ctx.root, args.commit)
        base = rollout.full_commit(ctx.root, args.changed_since)
        rollout.checked_out_at(ctx.root, commit)
        names = rollout.changed_models(ctx.root, args.env, base, commit)
    except rollout.RolloutError as exc:
        output.error(str(exc))
        return EXIT_USAGE
    if not names:
        output.line(f"{args.env}: no model changed between {base[:12]} and {commit[:12]}")
        return EXIT_OK
    output.line(
        f"{args.env}: rolling out {len(names)} model(s) at {commit[:12]} "
        f"({ctx.delivery.delivery}): {', '.join(names)}"
    )
    results = []
    for name in names:
        try:
            results.append(rollout.roll_out(ctx, name, commit))
        except rollout.RolloutError as exc:
            output.error(f"{name}: model not deployed: {exc}")
            return EXIT_FINDINGS
        _show(output, args.env, results[-1])
        if results[-1].outcome is not None and results[-1].outcome.interrupted:
            return 130
    failed = [r.name for r in results if not r.ok]
    if failed:
        output.error(
            f"{args.env}: model not deployed: {', '.join(failed)} failed at {commit[:12]}",
            f"`modelgate revert --env {args.env} --commit {commit}` puts back the last good "
            "version by a commit (the merge workflow runs it)",
        )
        return EXIT_FINDINGS
    return EXIT_OK


def run_revert(args: argparse.Namespace, output: Output) -> int:
    from ..deploy import rollout

    try:
        ctx = rollout.context(root_of(args), args.env, args.branch, args.remote)
        commit = rollout.full_commit(ctx.root, args.commit)
        names = rollout.failed_at(ctx, commit)
    except rollout.RolloutError as exc:
        output.error(str(exc))
        return EXIT_USAGE
    if not names:
        output.line(f"{args.env}: no model's latest rollout failed at {commit[:12]}")
        return EXIT_OK
    ok = True
    for name in names:
        try:
            result = rollout.revert_and_verify(ctx, name, commit)
        except rollout.RolloutError as exc:
            output.error(f"{name}: {exc}")
            ok = False
            continue
        _show(output, args.env, result)
        ok = ok and result.ok
    return EXIT_OK if ok else EXIT_FINDINGS


def _show(output: Output, environment: str, result: Any) -> None:
    output.diagnostics(result.diagnostics)
    for note in result.notes:
        output.line(f"  {result.name}: {note}")
    entry = result.entry
    if entry is None:
        return
    if entry.result == "serving":
        output.line(
            f"{result.name}: serving in {environment} at {entry.commit[:12]}, "
            f"smoke {entry.smoke}; endpoint {entry.endpoint}"
        )
    else:
        output.line(f"{result.name}: {entry.result} in {environment} at {entry.commit[:12]}")


def show_live_status(args: argparse.Namespace, output: Output) -> int:
    """`modelgate status --env ENV`: what serves in ENV, from the records in its cluster."""
    from ..deploy import kubectl, record, rollout

    try:
        ctx = rollout.context(root_of(args), args.env, "main", "origin")
        latest = record.every_model(ctx.namespace)
    except (rollout.RolloutError, kubectl.KubectlError) as exc:
        output.error(f"cannot read what serves in {args.env}: {exc}")
        return EXIT_FINDINGS
    if args.format == "json":
        rows = {name: asdict(entry) for name, entry in sorted(latest.items())}
        output.block(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    if not latest:
        output.line(f"{args.env}: no model recorded in namespace {ctx.namespace}")
        return EXIT_OK
    output.line(f"{'MODEL':<24} {'RESULT':<9} {'COMMIT':<12} {'FINISHED':<20} SMOKE / ENDPOINT")
    for name, entry in sorted(latest.items()):
        output.line(
            f"{name:<24} {entry.result:<9} {entry.commit[:12]:<12} {entry.finished:<20} "
            f"{entry.smoke}; {entry.endpoint or entry.message}"
        )
    return EXIT_OK


def show_live_history(args: argparse.Namespace, output: Output) -> int:
    """`modelgate history NAME --env ENV`: the model's rollouts recorded in ENV's cluster."""
    from ..deploy import kubectl, record, rollout

    try:
        ctx = rollout.context(root_of(args), args.env, "main", "origin")
        entries = record.history(ctx.namespace, args.name)
    except (rollout.RolloutError, kubectl.KubectlError) as exc:
        output.error(f"cannot read the record of {args.name} in {args.env}: {exc}")
        return EXIT_FINDINGS
    if args.format == "json":
        output.block(json.dumps([asdict(e) for e in entries], indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    if not entries:
        output.line(f"no rollout of {args.name} recorded in {args.env}")
        return EXIT_OK
    output.line(f"{'FINISHED':<20} {'RESULT':<9} {'COMMIT':<12} SMOKE / WHY")
    for entry in entries:
        output.line(
            f"{entry.finished:<20} {entry.result:<9} {entry.commit[:12]:<12} "
            f"{entry.smoke or ''}{'; ' + entry.message if entry.message else ''}"
        )
    return EXIT_OK
