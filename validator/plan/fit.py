"""The plan's GPU fit section: where the fit stage (validator/check/fit/'s
`endpoint_fit(document, root, values) -> Fit | None`) plugs in. Without that package, no fit
is shown; nothing else in the plan depends on it."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from ..check.load import Document

FIT_MODULE = "validator.check.fit"


def endpoint_fit(document: Document, root: Path, values: dict[str, Any]) -> dict[str, Any] | None:
    """The fit of the change's spec as plain data, or None where no fit is computed (no fit
    module, an engine that loads no weights onto GPUs)."""
    try:
        module = importlib.import_module(FIT_MODULE)
    except ModuleNotFoundError:
        return None
    fit = module.endpoint_fit(document, root, values)
    return None if fit is None else dataclasses.asdict(fit)
