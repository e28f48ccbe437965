"""The validate stage: find the spec files, load them (YAML with positions and refusals),
check them against the schema, across files (names) and against the policies.

Entry point: `run(root, paths, ...) -> Validation`. Nothing here imports jinja2, docker or
MLServer: this stage runs in pre-commit hooks.
"""

from .workspace import Validation
from .workspace import validate as run

__all__ = ["Validation", "run"]
