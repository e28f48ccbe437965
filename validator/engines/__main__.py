"""`python -m validator.engines`: the engine table of docs/spec.md, made from the records."""

from ..report.output import Output
from . import markdown_table

Output().block(markdown_table())
