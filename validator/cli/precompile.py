"""Compile what modelgate would compile on first use, at install time (`make venv`), like
Python's bytecode: the JSON Schema checks of the spec, the policy and waiver files, and of
the Kubernetes kinds the templates render. They depend on modelgate and its pinned packages
only, never on a repository, and go to the cache (validator/cache.py) where every run looks
for them; a run on a fresh CI runner then compiles only what the repository itself brings
(its policy rules, its templates).

    python -m validator.cli.precompile
"""

from __future__ import annotations

import sys


def main() -> int:
    from ..check import compiled, schema
    from ..check.policy.rules import POLICY_SCHEMA
    from ..check.policy.waivers import WAIVERS_SCHEMA
    from ..render import kube_schemas

    for name in (schema.SPEC_SCHEMA, POLICY_SCHEMA, WAIVERS_SCHEMA):
        compiled.compiled(schema.schema(name))
    kube_schemas.precompile()
    return 0


if __name__ == "__main__":
    sys.exit(main())
