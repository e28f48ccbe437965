"""The `modelgate` command: the parser, one module per subcommand, exit codes.

Each command module has `register(commands)`, which adds its parser and sets `handler`, a
function `(args, output) -> exit code`. Commands are thin: they parse, call one stage, and
say what happened through the Output (validator/report/output.py), the only place that
prints. Exit codes: 0 ok, 1 findings or a failed deploy, 2 usage error, 3 internal fault (a
bug in modelgate: the message asks for a report, no traceback unless MODELGATE_DEBUG=1).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import paths
from ..check import names
from ..diagnostics import Refused
from ..paths import LinkOut
from ..report.output import Output
from . import (
    catalog,
    crds,
    deploy,
    fit,
    hash,
    images,
    new,
    plan,
    policies,
    publish,
    render,
    rollout,
    smoke,
    validate,
)
from .common import EXIT_FINDINGS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE

COMMANDS = (
    validate,
    render,
    plan,
    deploy,
    publish,
    rollout,
    smoke,
    hash,
    fit,
    new,
    catalog,
    policies,
    images,
    crds,
)
# A checkout or a disk that cannot be written: the user can act on it, it is not a bug.
CANNOT_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # as spec.environments allows


def main(argv: Sequence[str] | None = None) -> int:
    output = Output()
    try:
        return _main(argv, output)
    finally:
        output.close()


def _main(argv: Sequence[str] | None, output: Output) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ..cache import installed_version  # looked up only when asked

        output.line(f"modelgate {installed_version('modelgate')}")
        return EXIT_OK
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    problem = _usage_problem(args)
    if problem:
        output.error(problem)
        return EXIT_USAGE
    environment = getattr(args, "env", None)
    if environment is not None and (
        not ENVIRONMENT.match(environment) or environment in names.TARGET_DIRECTORIES
    ):
        output.error(f"--env {environment!r} is not an environment name")
        return EXIT_USAGE
    # Installed even where SIGINT was inherited as ignored (a background job, some CI
    # runners): an explicit interrupt must still stop a deploy and what it started.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.handler(args, output)
    except KeyboardInterrupt:
        output.error("interrupted; everything it started was stopped")
        return 130
    except Refused as exc:
        output.diagnostics(exc.diagnostics)
        output.error(f"{exc}: fix it first; nothing was rendered or deployed")
        return EXIT_FINDINGS
    except LinkOut as exc:
        output.error(
            f"{paths.LINK_OUT} {exc}; nothing was read or written through it",
            "commit the file or directory itself, not a link to a place outside the repository",
        )
        return EXIT_FINDINGS
    except OSError as exc:
        if _missing_template(exc):
            output.error(
                f"template not found: {exc}",
                "run modelgate from the repository's root (the folder holding models/ and "
                "templates/) or pass --root; restore a deleted template from version control",
            )
            return EXIT_FINDINGS
        if exc.errno not in CANNOT_WRITE:
            return _internal_error(output, exc)
        output.error(
            f"cannot write {exc.filename or 'here'}: {exc.strerror}",
            "run modelgate where it may write: .modelgate/, rendered/ and models/ of a "
            "writable checkout",
        )
        return EXIT_FINDINGS
    except Exception as exc:  # the last line of defence: never a traceback for users
        return _internal_error(output, exc)


def _internal_error(output: Output, exc: Exception) -> int:
    if os.environ.get("MODELGATE_DEBUG"):
        raise exc
    output.error(
        f"internal error: {type(exc).__name__}: {exc}",
        "this is a bug in modelgate; rerun with MODELGATE_DEBUG=1 and report the traceback",
    )
    return EXIT_INTERNAL


def _missing_template(exc: OSError) -> bool:
    """Jinja's TemplateNotFound is an OSError; it is only ever raised once jinja2 is loaded,
    so the check costs no import."""
    jinja2 = sys.modules.get("jinja2")
    return jinja2 is not None and isinstance(exc, jinja2.TemplateNotFound)


def _usage_problem(args: argparse.Namespace) -> str:
    """What makes these arguments unusable before any command runs, or ''."""
    if args.root is not None and not args.root.is_dir():
        return f"--root {args.root} is not a directory"
    for option in ("paths", "specs"):
        if "" in (getattr(args, option, None) or []):
            return "an empty path names nothing: name spec files or directories"
    if str(getattr(args, "out", None) or "x") in ("", "."):
        return "--out needs a directory of its own, not the repository root"
    return ""


def _interrupt(signum: int, frame: object) -> None:
    """The first SIGINT or SIGTERM. Before anything can unwind: the signals that follow are
    ignored and every running deploy is asked to stop. Done later, in an `except` block, a
    second signal landing before the request was made (a few bytecodes, wider on a loaded
    machine) unwound past it, and the workers waited out their readiness timeout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from ..deploy import interrupt

    interrupt.request()
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelgate", description="Validate, render, deploy and smoke-test ML model specs."
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: nearest directory upward with models/)",
    )
    parser.add_argument("--version", action="store_true", help="print modelgate's version")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser
