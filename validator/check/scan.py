"""Read a spec's cross-file facts (its name, environments, engine, artifact, image, endpoint host
and port) from its text without building the whole document: the other specs of a large
repository are only needed for these.

The scan understands block-style YAML line by line, and only the part of it that cannot be
misread: keys written as plain words, one-line values (plain, quoted without escapes, flow
collections closed on their line), block scalars whose lines it skips. It gives up (None) on
anything else: tabs, other line breaks, document markers, tags, quoted or complex keys, a
value that continues on the next line, a duplicate key where it reads. The caller then loads
the file with the strict loader. Where both read a file the loader accepts, they agree (the
tests compare them on generated and hand-written specs); a file the loader refuses may still
have facts here, and its own validation reports it.

It stops as soon as every fact is settled: a key found, or the mapping that would hold it
closed. What follows (smoke requests, compliance) is not read.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import yaml

from .load import _ALWAYS_TEXT, _Loader, _Refusal, _scalar

# The facts, in the order of a Facts tuple: where each is in a spec.
FIELDS: tuple[tuple[str, ...], ...] = (
    ("metadata", "name"),
    ("spec", "environments"),
    ("spec", "engine", "name"),
    ("spec", "model", "artifact"),
    ("spec", "model", "image"),
    ("spec", "endpoint", "host"),
    ("spec", "endpoint", "port"),
    ("spec", "smoke", "standIn", "artifact"),
    ("spec", "smoke", "standIn", "script"),
)
Facts = tuple[Any, ...]  # one value per FIELDS entry; None where the spec has none

_INDEX = {path: index for index, path in enumerate(FIELDS)}
_COUNT = len(FIELDS)
# mappings the scan walks into, and the keys it reads in each
_MAPPINGS: dict[tuple[str, ...], frozenset[str]] = {
    (): frozenset({"metadata", "spec"}),
    ("metadata",): frozenset({"name"}),
    ("spec",): frozenset({"environments", "engine", "model", "endpoint", "smoke"}),
    ("spec", "engine"): frozenset({"name"}),
    ("spec", "model"): frozenset({"artifact", "image"}),
    ("spec", "endpoint"): frozenset({"host", "port"}),
    ("spec", "smoke"): frozenset({"standIn"}),
    ("spec", "smoke", "standIn"): frozenset({"artifact", "script"}),
}
# A spec whose text holds neither the key standIn nor a backslash (the only way a quoted key
# could spell it otherwise) names no stand-in: its smoke mapping, which holds the requests'
# long flow sequences, is jumped over like any other value.
_STAND_IN = ("spec", "smoke")
_WITHOUT_STAND_IN = {
    path: keys - {"smoke"} if path == ("spec",) else keys
    for path, keys in _MAPPINGS.items()
    if path[: len(_STAND_IN)] != _STAND_IN
}
_SEQUENCE = ("spec", "environments")
# the facts each of those mappings holds, settled when it closes
_UNDER = {
    path: frozenset(index for index, field in enumerate(FIELDS) if field[: len(path)] == path)
    for path in _MAPPINGS
}

# One line: indentation, an optional "- ", an optional plain-word key and its colon, the rest.
_LINE = re.compile(r"( *)(-(?: +|$))?(?:([A-Za-z0-9_][A-Za-z0-9_./-]*) *:(?: +|$))?(.*)")
# Every line of the text the scan reads starts after a "\n" (one is put first): patterns that
# start with one are searched for at the speed of a character search.
_CONTENT = re.compile(r"\n *(?=[^ #\n])")  # the next line that is not blank or a comment
_FIRST_KEY = re.compile(r"\n[A-Za-z0-9_][A-Za-z0-9_./-]* *:(?: |\n|$)")
# A value that opens with a quote or a bracket must close on its own line; one that opens
# with a tag, an anchor or an alias is left to the loader. Where one of these characters
# stands, what is before it on its line tells whether a value opens there.
_OPENERS = re.compile(r"[!&*'\"\[{]")
_UNREADABLE = re.compile("[\t\r\x85\u2028\u2029\ufeff]")  # tabs, other line breaks, a BOM
# a plain scalar cannot start with these (a '-', '?' or ':' only when followed by a space)
_INDICATORS = frozenset("&*!|>%@`,[]{}#'\"")
_RESOLVER = _Loader("")


@dataclass(frozen=True)
class _Searches:
    next_key: re.Pattern[str]  # the next fact's key in the mapping (group 1), or its end
    unreadable: re.Pattern[str]  # a line at the mapping's indent that is no plain key or item


@functools.cache
def _searches(path: tuple[str, ...], indent: int, keys_of: frozenset[str]) -> _Searches:
    keys = "|".join(sorted(keys_of))
    less = f" {{0,{indent - 1}}}(?=[^ #\n])|" if indent else ""
    plain_key = r"[A-Za-z0-9_][A-Za-z0-9_./-]* *:(?: |$)"
    return _Searches(
        re.compile(f"\\n(?:{less} {{{indent}}}({keys}) *:(?: +|$)([^\\n]*))", re.M),
        re.compile(f"\\n {{{indent}}}(?!{plain_key}|-(?: |$)|#)[^ \\n]", re.M),
    )


class _GiveUp(Exception):
    """The text leaves what the scan can read exactly: load it instead."""


def scan(text: str) -> Facts | None:
    """The facts of a spec's text, or None when only the strict loader can read it."""
    if _UNREADABLE.search(text):
        return None
    try:
        return _Scan(text).run()
    except _GiveUp:
        return None


def facts_of(data: Any) -> Facts:
    """The same facts from a loaded document's data."""
    values = []
    for path in FIELDS:
        node = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        values.append(tuple(node) if isinstance(node, list) else node)
    return tuple(values)


class _Scan:
    """Reads the mappings that hold facts, and jumps over every other value."""

    def __init__(self, text: str) -> None:
        self.text = "\n" + text  # every line then starts after a "\n"
        self.at = 0  # the "\n" before the next line to read
        self.values: list[Any] = [None] * _COUNT
        self.done: set[int] = set()  # facts settled: read, or their mapping closed
        self.mappings = _MAPPINGS
        if "standIn" not in text and "\\" not in text:
            self.mappings = _WITHOUT_STAND_IN
            self.done.update(_UNDER[_STAND_IN])

    def run(self) -> Facts:
        first = _CONTENT.search(self.text)
        if first is None or first.end() - first.start() != 1:
            raise _GiveUp  # nothing, or an indented first line
        if _FIRST_KEY.match(self.text, first.start()) is None:
            raise _GiveUp  # not a mapping at the top, a document marker or directive
        self._mapping((), 0)
        return tuple(self.values)

    def _next_indent(self) -> int:
        """The indentation of the next line that holds content; -1 at the end."""
        found = _CONTENT.search(self.text, self.at)
        return -1 if found is None else found.end() - found.start() - 1

    # --- the mappings that hold facts ----------------------------------------------------

    def _mapping(self, path: tuple[str, ...], indent: int) -> None:
        """Read the mapping at `path`, whose keys stand at `indent`, up to its end (or until
        every fact is settled). Its other keys' values are jumped over: only a quote or
        bracket that does not close on its line could carry one past its own lines, and
        only a key the scan cannot read could hide a fact's key; neither may be there."""
        searches, text = _searches(path, indent, self.mappings[path]), self.text
        seen: set[str] = set()
        while len(self.done) < _COUNT:
            found = searches.next_key.search(text, self.at)
            end = len(text) if found is None else found.start()
            if searches.unreadable.search(text, self.at, end):
                raise _GiveUp
            _check_openings(text, self.at, end)
            if found is None or found[1] is None:
                self.at = end
                break  # the end of the text, or of the mapping
            key, rest = found[1], found[2]
            if key in seen:
                raise _GiveUp  # a duplicate key, which the loader refuses
            seen.add(key)
            self.at = found.end()
            child = (*path, key)
            if child in self.mappings:
                self._nested_mapping(child, indent, rest)
            elif child == _SEQUENCE:
                self._environments(indent, rest)
            else:
                self.values[_INDEX[child]] = self._scalar(indent, rest)
                self.done.add(_INDEX[child])
        self.done.update(_UNDER[path])

    def _nested_mapping(self, path: tuple[str, ...], column: int, rest: str) -> None:
        if _value_text(rest):
            raise _GiveUp  # a flow mapping or a scalar where the facts' mapping belongs
        indent = self._next_indent()
        if indent <= column:
            self.done.update(_UNDER[path])  # an empty value: null
            return
        self._mapping(path, indent)

    def _environments(self, column: int, rest: str) -> None:
        text = _value_text(rest)
        if text:
            self.values[_INDEX[_SEQUENCE]] = _flow_sequence(text)
            self._no_continuation(column)
        else:
            items = self._block_sequence(column)
            self.values[_INDEX[_SEQUENCE]] = tuple(items) if items else None
        self.done.add(_INDEX[_SEQUENCE])

    def _block_sequence(self, column: int) -> list[Any]:
        """The items of a sequence of one-line scalars after a key at `column` (at its
        indent or deeper); none when the value is empty."""
        items: list[Any] = []
        indent = None
        while True:
            found = _CONTENT.search(self.text, self.at)
            if found is None:
                return items
            end = self.text.find("\n", found.start() + 1)
            end = len(self.text) if end < 0 else end
            match = _LINE.fullmatch(self.text, found.start() + 1, end)
            assert match is not None  # every part is optional
            spaces, dash, key, rest = match.groups()
            here = len(spaces)
            if indent is None:
                if dash is None or here < column:
                    if here > column:
                        raise _GiveUp
                    return items  # an empty value: null
                indent = here
            if here < indent or (here == indent and dash is None):
                return items  # the next key of the mapping that holds the sequence
            if here > indent or key is not None or not _value_text(rest):
                raise _GiveUp  # a continuation, or an item that is a mapping, list or null
            self.at = end
            items.append(self._scalar(here, rest))

    # --- values --------------------------------------------------------------------------

    def _scalar(self, column: int, rest: str) -> Any:
        """A one-line scalar value; the next line must not continue it."""
        text = _value_text(rest)
        value = _one_line_scalar(text) if text else None
        self._no_continuation(column)
        return value

    def _no_continuation(self, column: int) -> None:
        if self._next_indent() > column:
            raise _GiveUp  # a value on the following lines, or an error the loader names


def _check_openings(text: str, start: int, end: int) -> None:
    """Every value between `start` and `end` that opens with a quote or a bracket closes on
    its own line (one that opens with a tag, an anchor or an alias is left to the loader).
    A value opens at the start of a line, or after ": ", "- " or "? "."""
    checked = start  # the rest of a line whose value was checked is part of that value
    for found in _OPENERS.finditer(text, start, end):
        at = found.start()
        if at < checked:
            continue
        before = at - 1
        while text[before] == " ":
            before -= 1
        if text[before] == "\n" or (text[before] in ":-?" and before < at - 1):
            checked = text.find("\n", at)
            checked = len(text) if checked < 0 else checked
            _closes_on_its_line(text[at:checked])


def _value_text(rest: str) -> str:
    """The value on a line without a trailing comment ('' for none)."""
    rest = rest.rstrip(" ")
    if rest.startswith("#"):
        return ""
    if rest[:1] in ("'", '"', "[", "{"):
        return rest  # the comment is found where the value ends
    cut = rest.find(" #")
    return rest if cut < 0 else rest[:cut].rstrip(" ")


def _closes_on_its_line(text: str) -> None:
    """A value opening with a quote or bracket ends on its line, a comment at most after it."""
    if text[0] in "!&*":
        raise _GiveUp
    if text[0] in "[{":
        _closed_flow(text)
    else:
        _quoted(text)


def _one_line_scalar(text: str) -> Any:
    if text[0] in "\"'":
        return _quoted(text)
    _check_plain(text)
    return _plain(text)


def _check_plain(text: str) -> None:
    """A plain scalar that cannot be anything else: no indicator first, no ': ' inside."""
    first = text[0]
    if first in _INDICATORS or (first in "-?:" and (len(text) == 1 or text[1] == " ")):
        raise _GiveUp
    if ": " in text or text.endswith(":"):
        raise _GiveUp


def _only_comment(after: str) -> bool:
    """Nothing, spaces, or spaces then a comment: what may follow a closed value."""
    stripped = after.lstrip(" ")
    return not stripped or (stripped[0] == "#" and stripped != after)


def _plain(text: str) -> Any:
    """A plain scalar as the strict loader reads it (YAML 1.1 types, dates kept as text)."""
    if text[0] in _ALWAYS_TEXT:
        return text  # what the loader's resolver says of it at once
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    try:
        return _scalar(yaml.ScalarNode(tag, text))
    except _Refusal:
        raise _GiveUp from None


def _quoted(text: str) -> str:
    """A quoted scalar that closes on its line, with nothing but a comment after it."""
    quote = text[0]
    if quote == '"':
        end = text.find('"', 1)
        if end < 0 or "\\" in text[:end]:
            raise _GiveUp  # runs on, or holds escapes
        value = text[1:end]
    else:
        end, parts = 1, []
        while True:
            close = text.find("'", end)
            if close < 0:
                raise _GiveUp
            parts.append(text[end:close])
            if text.startswith("''", close):
                parts.append("'")
                end = close + 2
                continue
            end = close
            break
        value = "".join(parts)
    if not _only_comment(text[end + 1 :]):
        raise _GiveUp
    return value


def _closed_flow(text: str) -> int:
    """Where a flow collection that starts `text` closes; it must close on this line."""
    depth, index = 0, 0
    while index < len(text):
        char = text[index]
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                if not _only_comment(text[index + 1 :]):
                    raise _GiveUp
                return index
        elif char in "\"'":
            if index and text[index - 1] not in " [{,:":
                raise _GiveUp  # a quote inside a plain word: let the loader read it
            end = text.find(char, index + 1)
            if end < 0 or (char == '"' and "\\" in text[index:end]):
                raise _GiveUp
            if char == "'" and text.startswith("''", end):
                raise _GiveUp
            index = end
        elif char == "#" and text[index - 1] == " ":
            raise _GiveUp  # a comment before the collection closes
        index += 1
    raise _GiveUp


def _flow_sequence(text: str) -> tuple[Any, ...]:
    """`[a, b]` of one-word items (what environments are), as the loader reads them."""
    if not text.startswith("["):
        raise _GiveUp
    end = _closed_flow(text)
    inner = text[1:end].strip(" ")
    if not inner:
        return ()
    items = []
    for item in inner.split(","):
        word = item.strip(" ")
        if not word or not re.fullmatch(r"[A-Za-z0-9_.-]+", word):
            raise _GiveUp  # quoted, nested, empty or spaced items: the loader reads them
        items.append(_plain(word))
    return tuple(items)
