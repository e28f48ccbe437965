"""A grammar check for protobuf text format (Triton's config.pbtxt), without protobuf.

It proves a rendered file is well-formed text format: fields, nested messages, lists and
scalars. Whether the fields are the right ones is Triton's model_config.proto's job (the
tests parse rendered files with it).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r'\s*(?:(#[^\n]*)|("(?:[^"\\\n]|\\.)*")|([A-Za-z_][A-Za-z0-9_]*)|'
    r"(-?[0-9][0-9.eE+-]*)|([{}\[\]:,]))"
)


class _Invalid(Exception):
    pass


def parse_error(text: str) -> str | None:
    tokens = _tokens(text)
    if tokens is None:
        return "unexpected character"
    try:
        position = _message(tokens, 0, closing=None)
    except _Invalid as exc:
        return str(exc)
    return None if position == len(tokens) else f"unexpected {tokens[position]!r}"


def _tokens(text: str) -> list[str] | None:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            return None
        position = match.end()
        if match.group(1) is None:
            tokens.append(match.group(0).strip())
    return tokens


def _message(tokens: list[str], position: int, closing: str | None) -> int:
    while position < len(tokens) and tokens[position] != closing:
        if not re.fullmatch(r"[A-Za-z_]\w*", tokens[position]):
            raise _Invalid(f"expected a field name, found {tokens[position]!r}")
        position += 1
        if position < len(tokens) and tokens[position] == ":":
            position += 1
        position = _value(tokens, position)
    if closing is not None:
        if position >= len(tokens):
            raise _Invalid(f"missing {closing!r}")
        position += 1
    return position


def _value(tokens: list[str], position: int) -> int:
    if position >= len(tokens):
        raise _Invalid("missing a value")
    token = tokens[position]
    if token == "{":
        return _message(tokens, position + 1, closing="}")
    if token == "[":
        position += 1
        while tokens[position : position + 1] != ["]"]:
            position = _value(tokens, position)
            if tokens[position : position + 1] == [","]:
                position += 1
        return position + 1
    if token in "}]:,":
        raise _Invalid(f"expected a value, found {token!r}")
    return position + 1
