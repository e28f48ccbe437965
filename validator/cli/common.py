"""What several commands share: exit codes, the repository root, validating named specs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..check import workspace

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def root_of(args: argparse.Namespace) -> Path:
    return (args.root or workspace.find_root()).resolve()


def validated(args: argparse.Namespace, paths: Sequence[str]) -> workspace.Validation:
    root = root_of(args)
    return workspace.validate(workspace.discover(root, paths), root)
