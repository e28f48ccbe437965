"""The `modelgate` command: argument parsing, one function per subcommand, exit codes.

Only this module prints. Exit codes: 0 ok, 1 findings or a failed deploy, 2 usage error,
3 internal fault (a bug in modelgate: the message asks for a report, no traceback unless
MODELGATE_DEBUG=1).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..check import names, workspace
from ..diagnostics import Diagnostic
from ..report import FORMAT_NAMES, Report, format_report
from ..report.text import format_diagnostic

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from ..check.load import Document
    from ..deploy import Outcome

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # as spec.environments allows
ENGINE_NAMES = ("docker", "kserve", "mlserver", "tgi", "triton", "vllm")
MODEL_FORMATS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnx",
    "pytorch",
    "tensorflow",
    "huggingface",
    "custom",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    environment = getattr(args, "env", None)
    if environment is not None and (
        not ENVIRONMENT.match(environment) or environment in names.TARGET_DIRECTORIES
    ):
        print(f"modelgate: --env {environment!r} is not an environment name", file=sys.stderr)
        return EXIT_USAGE
    # Installed even where SIGINT was inherited as ignored (a background job, some CI
    # runners): an explicit interrupt must still stop a deploy and what it started.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("modelgate: interrupted; everything it started was stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: never a traceback for users
        if os.environ.get("MODELGATE_DEBUG"):
            raise
        print(
            f"modelgate: internal error: {type(exc).__name__}: {exc}\n"
            "    hint: this is a bug in modelgate; rerun with MODELGATE_DEBUG=1 and report "
            "the traceback",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelgate", description="Validate, render, deploy and smoke-test ML model specs."
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: nearest directory upward with models/)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = commands.add_parser("validate", help="check specs against the schema")
    validate.add_argument("paths", nargs="*", help="spec files or directories (default: models/)")
    validate.add_argument("--format", choices=FORMAT_NAMES, default="text")
    validate.add_argument("--strict", action="store_true", help="fail on warnings too")
    validate.add_argument("--env", help="check the rules of this environment only")
    validate.set_defaults(handler=cmd_validate)

    render = commands.add_parser("render", help="render specs into rendered/")
    render.add_argument("paths", nargs="*", help="spec files or directories (default: models/)")
    render.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when rendered/ is out of date",
    )
    render.add_argument(
        "--crds",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="directory of CustomResourceDefinition files to check custom "
        "resources against (repeatable)",
    )
    render.add_argument(
        "--env",
        metavar="ENV",
        help="only this environment's manifests and ApplicationSet (not the local and docker "
        "targets' files); pruning and --check stay inside rendered/ENV",
    )
    render.set_defaults(handler=cmd_render)

    deploy = commands.add_parser("deploy", help="deploy specs and smoke-test their endpoints")
    deploy.add_argument("specs", nargs="*", help="spec files")
    deploy.add_argument(
        "--changed-since",
        metavar="REF",
        help="deploy the specs changed since this git ref (and those whose "
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
        choices=["local", "docker", "kubernetes"],
        default="local",
        help="where the engine runs: a local process, a Docker container, or the cluster "
        "KUBECONFIG points at",
    )
    deploy.add_argument(
        "--env", help="environment to deploy to on kubernetes (default: the spec's first)"
    )
    deploy.add_argument(
        "--keep",
        action="store_true",
        help="leave the endpoint running (stop it with `modelgate stop NAME`)",
    )
    deploy.set_defaults(handler=cmd_deploy)

    new = commands.add_parser("new", help="scaffold a spec that validates as written")
    new.add_argument("name", help="deployment name (DNS-1123 label)")
    new.add_argument("--engine", required=True, choices=sorted(ENGINE_NAMES))
    new.add_argument("--format", dest="model_format", required=True, choices=MODEL_FORMATS)
    new.add_argument("--owner", help="owner email (default: git config user.email)")
    new.add_argument("--team", default="my-team")
    new.add_argument("--stdout", action="store_true", help="print the spec instead of writing it")
    new.set_defaults(handler=cmd_new)

    smoke_cmd = commands.add_parser("smoke", help="smoke-test or load-check a running deployment")
    smoke_cmd.add_argument("name", help="a deployment left running by `deploy --keep`")
    smoke_cmd.add_argument(
        "--load",
        type=int,
        metavar="REQUESTS",
        help="send the smoke requests this many times and report latency",
    )
    smoke_cmd.add_argument("--concurrency", type=int, default=4)
    smoke_cmd.set_defaults(handler=cmd_smoke)

    history = commands.add_parser("history", help="deploy attempts of a model, from the ledger")
    history.add_argument("name")
    history.add_argument("--format", choices=["text", "json"], default="text")
    history.set_defaults(handler=cmd_history)

    catalog = commands.add_parser("catalog", help="write the model catalog (HTML and Markdown)")
    catalog.add_argument(
        "--out", type=Path, default=Path("catalog"), help="output directory (default: catalog/)"
    )
    catalog.set_defaults(handler=cmd_catalog)

    stop = commands.add_parser("stop", help="stop a deployment left running by --keep")
    stop.add_argument("name")
    stop.add_argument("--target", choices=["local", "docker"], default="local")
    stop.set_defaults(handler=cmd_stop)

    policies = commands.add_parser("policies", help="list and explain policy rules")
    policy_commands = policies.add_subparsers(
        dest="policy_command", metavar="ACTION", required=True
    )
    policy_list = policy_commands.add_parser("list", help="every rule with its severity")
    policy_list.set_defaults(handler=cmd_policies_list)
    explain = policy_commands.add_parser("explain", help="rationale, remediation and examples")
    explain.add_argument("rule_id", metavar="ID")
    explain.set_defaults(handler=cmd_policies_explain)

    status = commands.add_parser("status", help="list deployments left running by --keep")
    status.set_defaults(handler=cmd_status)
    return parser


def _root(args: argparse.Namespace) -> Path:
    return (args.root or workspace.find_root()).resolve()


def _validated(args: argparse.Namespace, paths: Sequence[str]) -> workspace.Validation:
    root = _root(args)
    return workspace.validate(workspace.discover(root, paths), root)


def _print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(format_diagnostic(diagnostic), file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    gc.disable()  # a short run that builds many small objects: collection costs ~10% here
    root = _root(args)
    files = workspace.discover(root, args.paths)
    if not files:
        where = ", ".join(args.paths) if args.paths else str(root / workspace.SPEC_DIR)
        print(f"modelgate: no spec files found under {where}", file=sys.stderr)
        return EXIT_USAGE
    result = workspace.validate(
        files, root, environment=args.env, peers=workspace.peers_of(root, args.paths)
    )
    shown = [workspace.display_path(path, root) for path in files]
    report = Report(result.diagnostics, shown, result.rules())
    sys.stdout.write(format_report(args.format, report))
    return EXIT_FINDINGS if result.failed(args.strict) else EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    from .. import render
    from ..render import kube_schemas

    gc.disable()
    root = _root(args)
    missing = [str(path) for path in args.crds if not path.is_dir()]
    if missing:
        print(f"modelgate: --crds needs a directory: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    schemas = kube_schemas.Schemas.from_dirs(args.crds)
    if schemas.problems:
        _print_diagnostics(schemas.problems)
        return EXIT_FINDINGS
    renderer = render.Renderer(root, schemas, environment=args.env).preload()
    # each spec is rendered right after its own checks, in the process that loaded it
    result = workspace.validate(workspace.discover(root, args.paths), root, follow=renderer)
    documents = result.valid_documents()
    if args.paths:  # a subset: no ApplicationSets and no pruning, which need every spec
        rendering = render.Rendering()
        for document in documents:
            rendering.extend(result.followed[document.path])
    else:
        rendering = render.render_all(documents, root, renderer=renderer, rendered=result.followed)
    note = render.severity_note(rendering)
    diagnostics = [*result.diagnostics, *rendering.diagnostics, *([note] if note else [])]
    failed = result.failed() or any(d.severity.value == "error" for d in rendering.diagnostics)
    if args.check:
        # a subset cannot know which files are orphans: only the whole set can
        findings, diff = render.drift(
            rendering.files, root, with_orphans=not args.paths, within=render.scope(args.env)
        )
        sys.stdout.write(diff)
        _print_diagnostics([*diagnostics, *findings])
        if findings:
            print(
                f"modelgate: {len(findings)} rendered file(s) out of date; run `modelgate render`",
                file=sys.stderr,
            )
        return EXIT_FINDINGS if failed or findings else EXIT_OK
    _print_diagnostics(diagnostics)
    if failed:
        print("modelgate: nothing written: fix the findings above first", file=sys.stderr)
        return EXIT_FINDINGS
    written, removed = render.write(
        rendering.files, root, prune=not args.paths, within=render.scope(args.env)
    )
    if args.env:
        documents = [d for d in documents if args.env in d.data["spec"]["environments"]]
    where = f"{render.RENDERED_DIR}/{args.env}" if args.env else render.RENDERED_DIR
    print(
        f"rendered {len(documents)} spec(s) into {where}/: "
        f"{len(written)} file(s) changed, {len(removed)} removed"
    )
    return EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from .. import deploy

    root = _root(args)
    if not args.specs and not args.changed_since:
        print("modelgate: name spec files to deploy, or use --changed-since REF", file=sys.stderr)
        return EXIT_USAGE
    result = _validated(args, args.specs)
    if result.failed():
        _print_diagnostics(result.diagnostics)
        print("modelgate: model not deployed: the spec is invalid", file=sys.stderr)
        return EXIT_FINDINGS
    documents = result.valid_documents()
    if args.changed_since:
        documents = _changed(root, documents, args.changed_since)
        if documents is None:
            return EXIT_USAGE
        target = deploy.backend(args.target)
        skipped = [d for d in documents if not target.can_serve(d)]
        for document in skipped:
            print(
                f"skip {document.data['metadata']['name']}: the {args.target} target cannot "
                f"serve engine {document.data['spec']['engine']['name']} with this model"
            )
        documents = [d for d in documents if target.can_serve(d)]
        if not documents:
            print(
                f"nothing to deploy: no {args.target}-deployable spec changed since "
                f"{args.changed_since}"
            )
            return EXIT_OK

    def one(document: Document) -> deploy.Outcome:
        return deploy.run(document, root, args.target, args.keep, args.lock_timeout, args.env)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(one, document) for document in documents]
        outcomes = []
        try:
            for done, future in enumerate(futures, 1):
                outcome = _outcome_of(future)
                if len(documents) > 1:
                    print(
                        f"[{done}/{len(documents)}] {outcome.name}: "
                        f"{'deployed' if outcome.ok else 'FAILED'} in {outcome.seconds:.1f} s"
                    )
                _print_outcome(outcome)
                outcomes.append(outcome)
        except KeyboardInterrupt:
            _stop_deploys(pool)
            for future in futures[len(outcomes) :]:
                if not future.cancelled():
                    _print_outcome(future.result())
            raise
    if len(outcomes) > 1:
        _print_summary(outcomes)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FINDINGS


def _outcome_of(future: Future[Outcome]) -> Outcome:
    """Wait with a timeout, so that a signal reaches the main thread while deploys run."""
    while True:
        try:
            return future.result(timeout=0.2)
        except TimeoutError:
            continue


def _stop_deploys(pool: Executor) -> None:
    """Every running deploy stops what it started; a second signal cannot cut that short."""
    from ..deploy import interrupt

    interrupt.request()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pool.shutdown(wait=True, cancel_futures=True)


def _changed(root: Path, documents: list, ref: str) -> list | None:
    from ..deploy.changes import GitError, affected, changed_files

    try:
        return affected(documents, changed_files(root, ref))
    except GitError as exc:
        print(f"modelgate: --changed-since {ref}: {exc}", file=sys.stderr)
        return None


def _print_summary(outcomes: list[Outcome]) -> None:
    print(f"\n{'model':<24} {'result':<9} {'seconds':>7}  {'smoke':<6} endpoint")
    for outcome in outcomes:
        passed = sum(r.passed for r in outcome.smoke)
        endpoint = outcome.endpoint.inference_url if outcome.endpoint else "-"
        print(
            f"{outcome.name:<24} {'deployed' if outcome.ok else 'failed':<9} "
            f"{outcome.seconds:7.1f}  {passed}/{len(outcome.smoke):<4} {endpoint}"
        )


def cmd_new(args: argparse.Namespace) -> int:
    from .. import scaffold
    from ..check import load

    root = _root(args)
    try:
        text = scaffold.new_spec(
            root, args.name, args.engine, args.model_format, args.owner, args.team
        )
    except scaffold.ScaffoldError as exc:
        print(f"modelgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    document, problems = load.load_text(text, f"models/{args.name}.yaml")
    if document is None or problems:  # our own template must always produce a loadable spec
        raise RuntimeError(f"modelgate new produced an unreadable spec: {problems}")
    if args.stdout:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        path = scaffold.write_new(root, args.name, text)
    except scaffold.ScaffoldError as exc:
        print(f"modelgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {path.relative_to(root)}: fill in the TODOs, then `modelgate validate` and "
        "`modelgate render`"
    )
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace) -> int:
    from .. import smoke
    from ..deploy import local

    root = _root(args)
    state = local.read_state(root, args.name)
    if state is None or not local.running(root):
        print(
            f"modelgate: no running deployment named '{args.name}': deploy it with --keep",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    spec = root / workspace.SPEC_DIR / f"{args.name}.yaml"
    result = workspace.validate([spec], root)
    if result.failed() or not result.valid_documents():
        _print_diagnostics(result.diagnostics)
        return EXIT_FINDINGS
    document = result.valid_documents()[0]
    endpoint = smoke.Endpoint(args.name, state.base_url, state.protocol, "local")
    if not args.load:
        results = smoke.run(document, endpoint)
        for item in results:
            print(
                f"  smoke {'pass' if item.passed else 'FAIL'}  {item.name:<24} "
                f"HTTP {item.status if item.status is not None else '-'}  {item.latency_ms:7.1f} ms"
            )
            _print_diagnostics(item.diagnostics)
        return EXIT_OK if all(item.passed for item in results) else EXIT_FINDINGS
    if args.load < 1 or args.concurrency < 1:
        print("modelgate: --load and --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    report = smoke.load_check(document, endpoint, args.load, args.concurrency)
    print(
        f"load check {args.name}: {report.requests} requests, concurrency {args.concurrency}, "
        f"{report.seconds:.2f} s, {report.throughput:.1f} req/s, errors {report.errors} "
        f"({report.error_rate:.1%})"
    )
    print(f"  {'request':<24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, values in report.latencies_ms.items():
        p50, p95, p99 = (smoke.percentile(values, share) for share in (0.5, 0.95, 0.99))
        print(f"  {name:<24} {p50:8.2f} {p95:8.2f} {p99:8.2f}")
    _print_diagnostics(report.diagnostics)
    return EXIT_FINDINGS if report.diagnostics else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from .. import ledger

    records = ledger.history(_root(args), args.name)
    if args.format == "json":
        print(json.dumps(records, indent=2, sort_keys=True))
        return EXIT_OK
    if not records:
        print(f"no deploys of {args.name} recorded")
    for entry in records:
        where = entry.get("endpoint") or entry.get("error", "")
        print(
            f"{entry.get('time', '?'):<26} {entry.get('result', '?'):<9} "
            f"{entry.get('target', '?'):<8} {str(entry.get('commit', ''))[:10]:<10} "
            f"{entry.get('user', '?'):<12} {where}"
        )
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    from ..report.catalog import build

    root = _root(args)
    out = args.out if args.out.is_absolute() else root / args.out
    if out.exists() and not out.is_dir():
        print(f"modelgate: --out {args.out} is a file; name a directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        written = build(root, out)
    except OSError as exc:
        print(f"modelgate: cannot write the catalog to {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _print_outcome(outcome: Outcome) -> None:
    for result in outcome.smoke:
        mark = "pass" if result.passed else "FAIL"
        status = result.status if result.status is not None else "-"
        print(f"  smoke {mark}  {result.name:<24} HTTP {status}  {result.latency_ms:7.1f} ms")
    if outcome.ok and outcome.endpoint:
        print(f"deployed {outcome.name} in {outcome.seconds:.1f} s")
        print(f"endpoint: {outcome.endpoint.inference_url}")
        if outcome.kept:
            print(f"kept running; stop it with `modelgate stop {outcome.name}`")
        else:
            print("torn down (use --keep to leave it running)")
        return
    _print_diagnostics(outcome.diagnostics)
    print(
        f"modelgate: {outcome.name} failed after {outcome.seconds:.1f} s; nothing left running",
        file=sys.stderr,
    )
    if outcome.previous:
        print(
            f"modelgate: the previous deployment still serves at {outcome.previous}",
            file=sys.stderr,
        )


def _policy(args: argparse.Namespace):  # -> policy.Policy | None
    from ..check import policy

    rules, problems = policy.load_policy(_root(args))
    if problems:
        _print_diagnostics(problems)
        return None
    return rules


def cmd_policies_list(args: argparse.Namespace) -> int:
    rules = _policy(args)
    if rules is None:
        return EXIT_FINDINGS
    for rule in rules.rules:
        scope = ",".join(rule.environments) if rule.environments else "all"
        overrides = "".join(
            f" {env}={level}" for env, level in sorted(rule.severity_by_environment.items())
        )
        print(f"{rule.id:<12} {rule.severity:<8} env:{scope:<12} {rule.title}{overrides}")
    print(f"{len(rules.rules)} rules")
    return EXIT_OK


def cmd_policies_explain(args: argparse.Namespace) -> int:
    from ..check.policy import explain

    rules = _policy(args)
    if rules is None:
        return EXIT_FINDINGS
    rule = rules.rule(args.rule_id)
    if rule is None:
        print(
            f"modelgate: no rule {args.rule_id}; `modelgate policies list` shows them",
            file=sys.stderr,
        )
        return EXIT_USAGE
    sys.stdout.write(explain.explain(rule))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from .. import deploy

    problems = deploy.backend(args.target).stop(_root(args), args.name)
    if problems:
        _print_diagnostics(problems)
        return EXIT_FINDINGS
    print(f"stopped {args.name}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Kept deployments on every target that can be asked (a Docker engine that does not
    answer simply has none)."""
    from .. import deploy

    root = _root(args)
    rows = []
    for target in ("local", "docker"):
        try:
            kept = deploy.backend(target).running(root)
        except Exception:
            continue
        rows += [(target, item) for item in kept]
    if not rows:
        print("nothing running")
    for target, item in rows:
        where = getattr(item, "pid", None) or getattr(item, "container", "")
        print(f"{item.name:<24} {target:<7} {where!s:<14} {item.base_url}")
    return EXIT_OK

