"""Whether a template's own text reads the same under YAML 1.1 and YAML 1.2.

Rendered files are read back by yaml-rs (YAML 1.2) when that gives the same data as the
strict loader (PyYAML, YAML 1.1, like the parser Kubernetes uses). Values always reach a file
quoted (`tojson`, `toyaml`), and quoted scalars read the same under both. What could differ
is a template's literal text: `yes` or `on` (booleans in 1.1 only), `0755` or `1_000`
(numbers that change value), `1e3` (a number in 1.2 only), anchors, aliases, tags,
directives, complex keys, and literal text glued to an inserted value. A template holding
any of these, inserting a value without `tojson` or `toyaml`, or using a template that
does, is read back by the strict loader alone.

Each template is checked once per run, before any file is rendered; `read_back` then reads
each rendered file with the parser its template earned.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import yaml

from ..check.load import SafeLoader, load_text

_VALUE = "\x00"  # stands for an inserted value in the literal text
# Indicators that start anchors, aliases, tags, directives, reserved or block scalars and
# complex keys; document markers.
_INDICATORS = re.compile(r"(?:^|[\s\[{,])[&*!%@`?|>]|^(?:---|\.\.\.)(?:\s|$)", re.M)
_RAW_SPECIAL = re.compile("[\t\r\x01-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
# Literal text touching an inserted value would merge with it into one scalar.
_GLUED = re.compile(f"[^\\s:\\[{{,{_VALUE}]{_VALUE}|{_VALUE}[^\\s,\\]}}{_VALUE}]")
_QUOTED = re.compile(f"\"(?:[^\"\\\\\\n{_VALUE}]|\\\\.)*\"|'(?:[^'\\n{_VALUE}]|'')*'")
_COMMENT = re.compile(r"(?:^|(?<=\s))#[^\n]*", re.M)
_SEPARATORS = re.compile(r":(?=\s|$)|[\s,\[\]{}]+", re.M)
_KEYS = re.compile(r"(?:^|[\s{,\[])([^\s\"'{}\[\],#:][^\s{}\[\],:]*):(?=\s|$)", re.M)


def template_is_plain_safe(environment: Any, name: str) -> bool:
    """True when `name` and every template it imports, includes or extends keep to literal
    text that YAML 1.1 and 1.2 read the same way."""
    from jinja2 import meta

    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        source = environment.loader.get_source(environment, current)[0]
        tree = environment.parse(source)
        if not _values_are_escaped(tree):
            return False
        if not literal_is_plain_safe(_literal_text(environment, source)):
            return False
        referenced = list(meta.find_referenced_templates(tree))
        if None in referenced:  # a template chosen at render time: cannot be checked here
            return False
        pending.extend(referenced)
    return True


def literal_is_plain_safe(literal: str) -> bool:
    """The check on a template's literal text, inserted values marked by _VALUE."""
    text = _COMMENT.sub("", _QUOTED.sub('""', literal))
    if _GLUED.search(text) or _RAW_SPECIAL.search(text):
        return False
    text = text.replace(_VALUE, '""')
    if _INDICATORS.search(text):
        return False
    tokens = {token for token in _SEPARATORS.split(text) if token.strip('"') not in ("", "-")}
    keys = set(_KEYS.findall(text))
    return all(map(_reads_the_same, tokens)) and all(map(_is_text_key, keys))


ESCAPING_FILTERS = ("tojson", "toyaml")


def _values_are_escaped(tree: Any) -> bool:
    """Every `{{ ... }}` ends in tojson or toyaml: what this module's argument rests on."""
    from jinja2 import nodes

    return all(
        isinstance(child, nodes.TemplateData)
        or (isinstance(child, nodes.Filter) and child.name in ESCAPING_FILTERS)
        for output in tree.find_all(nodes.Output)
        for child in output.nodes
    )


def _literal_text(environment: Any, source: str) -> str:
    """The template's text outside Jinja tags, each expression replaced by _VALUE and each
    statement by a line break (statements print nothing themselves; macro bodies and
    conditional parts become separate lines, and what they include is checked on its own)."""
    parts = []
    for _, kind, value in environment.lex(source):
        if kind == "data":
            parts.append(value)
        elif kind == "variable_begin":
            parts.append(_VALUE)
        elif kind == "block_begin":
            parts.append("\n")
    return "".join(parts)


def _is_text_key(token: str) -> bool:
    """A plain key that both parsers read as this very string (the strict loader keeps every
    key as text; yaml-rs would make `1:` an integer)."""
    fast = fast_parser()
    if fast is None:
        return False
    try:
        new = fast.loads(f"{token}: 0\n", parse_datetime=False)
    except Exception:  # refused: not the same
        return False
    return isinstance(new, dict) and list(new) == [token]


def _reads_the_same(token: str) -> bool:
    """A plain scalar that both parsers read as the same value of the same type."""
    fast = fast_parser()
    if fast is None:
        return False
    try:
        old = yaml.load(f"k: {token}\n", Loader=SafeLoader)["k"]
        new = fast.loads(f"k: {token}\n", parse_datetime=False)["k"]
    except Exception:  # either parser refusing it means "not the same"
        return False
    return type(old) is type(new) and old == new


def versions() -> list[str]:
    """The two parsers' versions: the verdicts above hold for these."""
    return [getattr(fast_parser(), "__version__", "none"), yaml.__version__]


@cache
def fast_parser() -> Any | None:
    """yaml-rs, a YAML 1.2 parser in Rust (about 6x faster than libyaml through PyYAML),
    imported on first use: validating specs never needs it. None where it is missing."""
    try:
        import yaml_rs
    except ImportError:  # pragma: no cover - the strict loader then reads everything
        return None
    return yaml_rs


# Characters the renderer never writes raw (it writes escape sequences for them): line breaks
# in YAML 1.1 but not 1.2, BOMs, tabs, carriage returns and control characters.
_NEVER_RAW = re.compile("[\t\r\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def read_back(text: str, display: str, *, plain_safe: bool) -> tuple[dict | None, str | None]:
    """A rendered YAML file's data as Kubernetes' YAML 1.1 parser reads it, or the problem.

    `plain_safe` says the template's own text holds no anchors, tags or plain scalars that
    YAML 1.1 and 1.2 read differently (values always arrive quoted by `tojson`/`toyaml`);
    then yaml-rs, a YAML 1.2 parser, reads the same data as the strict loader, much faster.
    Anything else, and everything the fast parser refuses (duplicate keys, several
    documents), goes to the strict loader, whose verdict and message count.
    """
    fast = fast_parser() if plain_safe else None
    if fast is not None and not _NEVER_RAW.search(text):
        try:
            data = fast.loads(text, parse_datetime=False)
        except fast.YAMLDecodeError:
            data = None
        if isinstance(data, dict):
            return data, None
    document, problems = load_text(text, display)
    if document is None:
        return None, f"not a single plain YAML mapping: {problems[0].message}"
    return document.data, None
