"""Placeholders: what `modelgate new` writes where only a person knows the answer, and the one
rule that recognises them (and their kind written by hand) wherever they are left.

The scaffold writes its placeholders from the constants here, and each is of a class the rule
knows: a marker word (TODO, FIXME, CHANGEME, in capitals, standing alone or joined to other
words by punctuation: `TODO-org`, `LicenseRef-TODO`, `TODO: what it does`), or a digest or
commit of zeros only (an all-zero sha256 or Git revision pins nothing). Lower-case words are
left alone: `llm-todo` is a name.
"""

from __future__ import annotations

import re

MARKERS = ("TODO", "FIXME", "CHANGEME")
MARKER = MARKERS[0]  # what the scaffold writes
ZERO_SHA256 = "0" * 64
ZERO_DIGEST = "sha256:" + ZERO_SHA256
ZERO_REVISION = "0" * 40
LICENSE = f"LicenseRef-{MARKER}"
ORGANISATION = f"{MARKER}-org"  # the Hugging Face organisation of a hub artifact
TEAM = f"{MARKER}-team"
OWNER = f"{MARKER}@example.com"  # when git knows no email
RUNTIME = f"{MARKER}.module.ModelClass"  # the class a custom MLServer model is served by
MARKED_TEXT = MARKER + ": {}"  # a sentence to write in place of the text that says it

_MARKER = re.compile(rf"(?<![A-Za-z0-9])({'|'.join(MARKERS)})(?![A-Za-z0-9])")
_ZEROS = re.compile(r"(?<![0-9A-Za-z])0{32,}(?![0-9A-Za-z])")


def maybe_in(text: str) -> bool:
    """Whether `text` (a whole file) could hold a placeholder: a quick gate before `find` is
    asked of each of its values."""
    return any(marker in text for marker in MARKERS) or "0" * 32 in text


def find(text: str) -> str:
    """What in `text` marks it as a placeholder ("" when nothing does): the marker word, or
    "a digest of zeros"."""
    marker = _MARKER.search(text)
    if marker:
        return marker[1]
    return "a digest of zeros" if _ZEROS.search(text) else ""


def only_placeholder(text: str) -> bool:
    """Text that says nothing but that something is to be written: it starts with a marker
    (`TODO: intended use of iris.`), or is a marker or zero digest with punctuation only."""
    stripped = text.strip()
    if _MARKER.match(stripped):
        return True
    return not re.sub(r"[^A-Za-z0-9]", "", _ZEROS.sub("", _MARKER.sub("", stripped)))
