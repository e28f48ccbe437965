"""Safe YAML loading that remembers where every value came from.

The spec files are untrusted input (they arrive in pull requests), so the loader refuses what
PyYAML would silently accept or what could hurt the machine: duplicate keys, several documents,
anchors and aliases (the "billion laughs" bomb), language-specific tags, oversized files,
non-UTF-8 bytes, runaway nesting and numbers that are not finite (.inf, .nan). It builds plain
JSON-like data from the node tree that libyaml composes and keeps the tree, so any JSON path
can be mapped back to a line and column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..diagnostics import Diagnostic, error

try:  # libyaml's C parser: about 10x faster than the pure-Python one.
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - only where PyYAML was built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32

INVALID_YAML = "MG101"
DUPLICATE_KEY = "MG102"
MULTIPLE_DOCUMENTS = "MG103"
ALIAS = "MG104"
TOO_LARGE = "MG105"
NOT_UTF8 = "MG106"
EMPTY = "MG107"
FORBIDDEN_TAG = "MG108"
NOT_A_MAPPING = "MG110"
UNREADABLE = "MG111"
TOO_DEEP = "MG112"
KEY_NOT_SCALAR = "MG113"
NOT_FINITE = "MG116"

_CORE = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = _CORE + "str", _CORE + "map", _CORE + "seq"
# A plain scalar starting with one of these can only resolve to a string under YAML 1.1's
# implicit rules (ints, floats, bools, nulls and dates start with a digit, a sign, '.', '~'
# or one of the letters of yes/no/true/false/on/off/null/NaN/Inf).
_ALWAYS_TEXT = frozenset("abcdeghijklmpqrsuvwxzABCDEGHIJKLMPQRSUVWXZ_/\"'#$%&()*,:;>?@[\\]^`{|}")


class _Loader(SafeLoader):  # type: ignore[misc,valid-type]
    """libyaml's parser with a short cut past the implicit-type regexes for plain text."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0] or (value and value[0] in _ALWAYS_TEXT):
                return _STR
            return super().resolve(kind, value, implicit)
        return _MAP if kind is yaml.MappingNode else _SEQ


_SCALAR_TAGS = {_CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp")}
_COLLECTION_TAGS = {_CORE + "map", _CORE + "seq"}

JsonPath = Sequence[str | int]


class Key(str):
    """The last part of a path that names a mapping key itself rather than its value: a
    finding about a key (a token used as a label name) is shown where the key is written."""

    __slots__ = ()


@dataclass
class Document:
    """One loaded spec: its plain data, and its text for mapping paths back to positions.

    The YAML node tree is rebuilt only when a position is asked for (a finding): keeping
    thousands of node trees alive would cost more in garbage collection than parsing them.
    """

    path: str
    data: dict[str, Any]
    text: str

    @cached_property
    def root(self) -> yaml.Node:
        return _Loader(self.text).get_single_node()

    def finding(
        self, path: JsonPath, rule: str, message: str, hint: str = "", *, key: bool = False
    ) -> Diagnostic:
        """An error Diagnostic at the value (or key) `path` names."""
        line, col = self.locate(path, key=key)
        return error(self.path, line, col, rule, message, hint)

    def locate(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value at `path`.

        A mapping member whose value is a collection is reported at its key (that is where a
        reader looks); `key=True`, or a path ending in a `Key`, always reports the key. Where
        the path leaves the tree (a missing member) the deepest existing node is reported.
        """
        key = key or (bool(path) and isinstance(path[-1], Key))
        node, key_node = self.root, None
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
        else:
            if key_node is not None and (key or not isinstance(node, yaml.ScalarNode)):
                return _position(key_node)
            return _position(node)
        return _position(key_node) if key_node is not None else _position(node)

    def plain_text(self, path: JsonPath) -> str | None:
        """The text as written of the value at `path` when it is a plain (unquoted) scalar,
        which YAML may have read as a number, a boolean or null; None otherwise."""
        node = self.root
        for part in path:
            child = _child(node, part)
            if child is None:
                return None
            node = child[1]
        # a quoted scalar is always text: only a plain one resolves to another type
        if isinstance(node, yaml.ScalarNode) and node.tag != _STR:
            mark = node.start_mark
            line = self.text.splitlines()[mark.line] if self.text.count("\n") >= mark.line else ""
            if line.startswith(node.value, mark.column):  # as written, not behind a tag
                return str(node.value)
        return None


class _Refusal(Exception):
    """Raised inside the tree walk; becomes exactly one Diagnostic."""

    def __init__(self, node: yaml.Node, rule: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.node, self.rule, self.message, self.hint = node, rule, message, hint


def load_file(path: Path, display: str | None = None) -> tuple[Document | None, list[Diagnostic]]:
    """Load one spec file. Returns the Document, or None with the reasons it was refused."""
    shown = display or str(path)
    try:
        with path.open("rb") as stream:
            raw = paths.read_at_most(stream, MAX_BYTES)
    except OSError as exc:
        return None, [
            error(
                shown,
                0,
                0,
                UNREADABLE,
                f"cannot read file: {exc.strerror}",
                "check the path and its permissions",
            )
        ]
    if len(raw) > MAX_BYTES:
        return None, [
            error(
                shown,
                1,
                1,
                TOO_LARGE,
                "file is larger than 1 MiB",
                "a model deployment spec is a few kilobytes; move data out of it",
            )
        ]
    return load_bytes(raw, shown)


def load_bytes(raw: bytes, display: str) -> tuple[Document | None, list[Diagnostic]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        return None, [
            error(
                display,
                line,
                col,
                NOT_UTF8,
                f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                "save the file as UTF-8",
            )
        ]
    return load_text(text.removeprefix("\ufeff"), display)


def load_text(text: str, display: str) -> tuple[Document | None, list[Diagnostic]]:
    if not text.strip():
        return None, [
            error(
                display,
                1,
                1,
                EMPTY,
                "file is empty",
                "write a ModelDeployment spec, or delete the file",
            )
        ]
    try:
        root = _Loader(text).get_single_node()
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_error(exc, display)]
    except yaml.reader.ReaderError as exc:  # a character YAML forbids, e.g. NUL
        line, col = _text_position(text, exc.position)
        return None, [
            error(
                display,
                line,
                col,
                INVALID_YAML,
                f"invalid YAML: character U+{exc.character:04X} is not allowed",
                "remove the control character; specs are plain text",
            )
        ]
    if root is None:
        return None, [
            error(
                display,
                1,
                1,
                EMPTY,
                "file holds no YAML document",
                "write a ModelDeployment spec, or delete the file",
            )
        ]
    if "&" in text or "*" in text:
        refusal = _find_anchor(text, display)
        if refusal:
            return None, [refusal]
    if not isinstance(root, yaml.MappingNode):
        line, col = _position(root)
        return None, [
            error(
                display,
                line,
                col,
                NOT_A_MAPPING,
                "the document must be a mapping (apiVersion, kind, metadata, spec)",
                "start from an example in models/ or `modelgate new`",
            )
        ]
    try:
        data = _build(root, 0)
    except _Refusal as refusal:
        line, col = _position(refusal.node)
        return None, [error(display, line, col, refusal.rule, refusal.message, refusal.hint)]
    return Document(display, data, text), []


def _syntax_error(exc: yaml.MarkedYAMLError, display: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    if isinstance(exc, yaml.composer.ComposerError) and "single document" in (exc.context or ""):
        return error(
            display,
            line,
            col,
            MULTIPLE_DOCUMENTS,
            "file holds more than one YAML document",
            "put one model deployment per file; remove the '---' separator",
        )
    context = f" ({exc.context})" if exc.context else ""
    return error(
        display,
        line,
        col,
        INVALID_YAML,
        f"invalid YAML: {problem}{context}",
        "fix the YAML syntax at this position (indentation, quoting, ':' after keys)",
    )


def _find_anchor(text: str, display: str) -> Diagnostic | None:
    for event in yaml.parse(text, Loader=SafeLoader):
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            line, col = event.start_mark.line + 1, event.start_mark.column + 1
            return error(
                display,
                line,
                col,
                ALIAS,
                f"YAML {kind} '{anchor}' is not allowed",
                "write the value out in full; anchors and aliases can hide "
                "exponential expansion and make reviews misleading",
            )
    return None


def _build(node: yaml.Node, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Refusal(
            node,
            TOO_DEEP,
            f"nesting deeper than {MAX_DEPTH} levels",
            "a spec is a few levels deep; flatten this value",
        )
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if node.tag not in _COLLECTION_TAGS:
        raise _forbidden_tag(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, depth + 1) for item in node.value]
    return _mapping(node, depth)


def _mapping(node: yaml.MappingNode, depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    first_seen: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refusal(
                key_node,
                KEY_NOT_SCALAR,
                "mapping keys must be plain strings",
                "use a simple word as the key",
            )
        if key_node.tag not in _SCALAR_TAGS:
            raise _forbidden_tag(key_node)
        key = key_node.value
        if key in first_seen:
            first_line, _ = _position(first_seen[key])
            raise _Refusal(
                key_node,
                DUPLICATE_KEY,
                f"duplicate key '{key}'",
                f"'{key}' is already set on line {first_line}; keep one of them",
            )
        first_seen[key] = key_node
        result[key] = _build(value_node, depth + 1)
    return result


def _scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag not in _SCALAR_TAGS:
        raise _forbidden_tag(node)
    if tag.endswith(":str") or tag.endswith(":timestamp"):
        return node.value  # dates stay strings: the data must be plain JSON
    constructor = SafeLoader.yaml_constructors[tag]
    try:
        value = constructor(_CONSTRUCTOR, node)
    except (ValueError, yaml.constructor.ConstructorError) as exc:
        raise _Refusal(
            node,
            INVALID_YAML,
            f"invalid {tag.rsplit(':', 1)[-1]} value: {exc}",
            "quote the value if it is meant as text",
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        # .inf, .nan and overflowing exponents: JSON has no such numbers, every comparison
        # with NaN is false (so schema bounds pass it) and templates fail on them.
        raise _Refusal(
            node,
            NOT_FINITE,
            f"number is not finite: {value}",
            "write a finite number, or quote the value if it is meant as text",
        )
    return value


def _forbidden_tag(node: yaml.Node) -> _Refusal:
    tag = node.tag.replace(_CORE, "!!")
    return _Refusal(
        node,
        FORBIDDEN_TAG,
        f"YAML tag '{tag}' is not allowed",
        "specs hold plain data only: remove the tag",
    )


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in reversed(node.value):
            if key_node.value == part:
                return key_node, value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return None, node.value[part]
    return None


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _text_position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - line_start + 1


_CONSTRUCTOR = yaml.SafeLoader("")  # only its scalar constructors are used
