"""`python -m validator.cli.environments NAME`: install the engine environment NAME if need be
(validator/deploy/environments.py) and print its directory, so that a script that makes an
example model runs with that environment's Python and its pinned packages."""

from __future__ import annotations

import sys

from ..deploy.environments import Unavailable, ensure
from ..report.output import Output

USAGE = "usage: python -m validator.cli.environments NAME"


def main(arguments: list[str]) -> int:
    output = Output()
    if len(arguments) != 1:
        output.error(USAGE)
        return 2
    try:
        output.line(str(ensure(arguments[0], output.error)))
    except Unavailable as reason:
        output.error(f"the {arguments[0]} engine environment cannot be installed: {reason}")
        return 1
    except KeyboardInterrupt:
        return 130  # the install said what it kept
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
