"""Scalars and blocks for rendered files, encoded so that no value can change the structure.

Every scalar is written as a JSON string, number, boolean or null, which YAML reads back as
exactly that value. JSON alone is not quite enough for YAML: a raw U+2028, U+2029 or U+0085
is a YAML line break even inside quotes, and characters YAML does not allow unescaped are
refused by its parsers, so those are written as \\u escapes. Non-BMP characters stay raw
(a surrogate-pair escape would read back as two broken characters in YAML).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import re
from collections.abc import Iterator
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

# Keys that read back as the same string when written plain (no quotes).
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# Not printable in YAML, or a line break inside a quoted scalar: escape.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def scalar(value: Any, **kwargs: Any) -> str:
    """JSON text for a value that reads back identically as YAML and as JSON."""
    kind = type(value)
    if kind is str and not kwargs:  # the common case, without json.dumps' per-call set-up
        text = encode_basestring(value)
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int:
        return int.__repr__(value)
    elif value is None:
        return "null"
    elif kind is float and math.isfinite(value):
        return _float(value)
    else:
        if kind.__name__.endswith("Undefined"):  # jinja2's StrictUndefined: raise its error
            str(value)
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, **kwargs)
    return _UNSAFE.sub(_escape, text)


def _float(value: float) -> str:
    """Python's shortest repr, with a '.' in the mantissa: YAML 1.1 reads `1e+20` as text."""
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}.0e{exponent}"
    return text


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def block(value: Any, indent: int) -> str:
    """A value as it follows `key:` in block YAML: inline for scalars and empty collections,
    else a newline and the collection indented by `indent` spaces."""
    if isinstance(value, dict) and value:
        return _remembered(value, indent, _mapping_lines)
    if isinstance(value, list) and value:
        return _remembered(value, indent, _sequence_lines)
    return " " + scalar(value)


# Blocks already written while one spec renders, by (id, indent): its labels, resources and
# security contexts appear in every manifest. Entries hold the value itself, so an id cannot
# be reused while it is remembered; outside `one_spec()` nothing is remembered.
_BLOCKS: contextvars.ContextVar[dict[tuple[int, int], tuple[Any, str]] | None] = (
    contextvars.ContextVar("blocks", default=None)
)


@contextlib.contextmanager
def one_spec() -> Iterator[None]:
    """Remember the blocks written while the files of one spec render."""
    token = _BLOCKS.set({})
    try:
        yield
    finally:
        _BLOCKS.reset(token)


def _remembered(value: Any, indent: int, lines: Any) -> str:
    blocks = _BLOCKS.get()
    key = (id(value), indent)
    known = blocks.get(key) if blocks is not None else None
    if known is not None and known[0] is value:
        return known[1]
    text = "\n" + "\n".join(lines(value, indent))
    if blocks is not None:
        blocks[key] = (value, text)
    return text


def _mapping_lines(value: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}{key_text(str(key))}:{block(item, indent + 2)}" for key, item in value.items()]


def key_text(key: str) -> str:
    plain = _PLAIN_KEY.match(key) and key.lower() not in _YAML11_WORDS
    return key if plain else scalar(key)


def _sequence_lines(value: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for item in value:
        if isinstance(item, dict) and item:
            inner = _mapping_lines(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
        else:
            lines.append(f"{pad}-{block(item, indent + 2)}")
    return lines
