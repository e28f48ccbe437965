"""`modelgate smoke NAME`: smoke-test or load-check a deployment left running by --keep."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..check import workspace
from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, root_of

if TYPE_CHECKING:
    from ..deploy.smoke import SmokeResult

MAX_CONCURRENCY = 256  # connections at once; more measures the client, not the model


def register(commands: Any) -> None:
    parser = commands.add_parser("smoke", help="smoke-test or load-check a running deployment")
    parser.add_argument("name", help="a deployment left running by `deploy --keep`")
    parser.add_argument(
        "--load",
        type=int,
        metavar="REQUESTS",
        help="send the smoke requests this many times and report latency",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help=f"requests in flight at once with --load (1 to {MAX_CONCURRENCY}, default 4)",
    )
    parser.set_defaults(handler=run)


def show_results(output: Output, results: Sequence[SmokeResult], details: bool = False) -> None:
    """One line per smoke request; with `details`, the findings of each failed one."""
    for item in results:
        status = item.status if item.status is not None else "-"
        output.line(
            f"  smoke {'pass' if item.passed else 'FAIL'}  {item.name:<24} "
            f"HTTP {status}  {item.latency_ms:7.1f} ms"
        )
        if details:
            output.diagnostics(item.diagnostics)


def run(args: argparse.Namespace, output: Output) -> int:
    from .. import deploy
    from ..check import stand_ins
    from ..deploy import ledger, local, smoke

    if args.load is not None and args.load < 1:
        output.error("--load must be at least 1")
        return EXIT_USAGE
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        output.error(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
        return EXIT_USAGE
    root = root_of(args)
    state = deploy.kept(root, args.name)
    if state is None:
        for ignored in local.distrusted(root):
            if ignored.path.endswith(f"/{args.name}.json"):
                output.error(f"warning: {ignored.message}", ignored.hint)
        last = (ledger.history(root, args.name) or [{}])[-1]
        if last.get("result") == ledger.DIED:
            output.error(f"{last.get('error')} ({last.get('time')}): deploy it again with --keep")
        else:
            output.error(f"no running deployment named '{args.name}': deploy it with --keep")
        return EXIT_FINDINGS
    spec = root / workspace.SPEC_DIR / f"{args.name}.yaml"
    result = workspace.validate([spec], root)
    if result.failed() or not result.valid_documents():
        output.diagnostics(result.diagnostics)
        return EXIT_FINDINGS
    document = result.valid_documents()[0]
    protocol = document.data["spec"]["engine"]["protocol"]
    endpoint = smoke.Endpoint(args.name, state.base_url, protocol, state.target)
    stand_in = stand_ins.description(document.data["spec"]) if state.target == "local" else ""
    if stand_in:  # the local target serves the stand-in the spec names, never the model
        output.line(f"{args.name}: smoke-tested on a stand-in: {stand_in}")
    if not args.load:
        results = smoke.run(document, endpoint)
        show_results(output, results, details=True)
        return EXIT_OK if all(item.passed for item in results) else EXIT_FINDINGS
    report = smoke.load_check(document, endpoint, args.load, args.concurrency)
    output.line(
        f"load check {args.name}: {report.requests} requests, concurrency {args.concurrency}, "
        f"{report.seconds:.2f} s, {report.throughput:.1f} req/s, errors {report.errors} "
        f"({report.error_rate:.1%})"
    )
    output.line(f"  {'request':<24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, values in report.latencies_ms.items():
        p50, p95, p99 = (smoke.percentile(values, share) for share in (0.5, 0.95, 0.99))
        output.line(f"  {name:<24} {p50:8.2f} {p95:8.2f} {p99:8.2f}")
    output.diagnostics(report.diagnostics)
    return EXIT_FINDINGS if report.diagnostics else EXIT_OK
