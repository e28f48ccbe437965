"""Model cards kept in the repository: read, checked for their sections, and summarised.

spec.compliance.modelCard names a card by URL (checked by nobody here) or by a path in this
repository, which must be a Markdown file that exists. The sections a card needs are the
policy parameter `modelCardSections` (by default the core of the Hugging Face model card
layout: intended use, limitations, training data, evaluation): a heading whose words include
the section's name (`## Bias, Risks, and Limitations` has Limitations), with real text under it
before the next heading of its level or above: not only headings, comments, the Hugging Face
template's filler or a placeholder (validator/check/placeholders.py: `TODO: ...`). The catalog
shows the card's summary (its first paragraph) and the card itself (report/catalog.py).

Only what Markdown needs for that is read here: ATX headings (`#` to `######`), paragraphs,
lists, block quotes and fenced code. Front matter (`---` YAML `---`, as on the Hugging Face
Hub) and HTML comments are skipped.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

from .. import memo, paths
from . import placeholders

MAX_BYTES = 1024 * 1024
PLACEHOLDER = "[More Information Needed]"  # what the Hugging Face template leaves in a section
_HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_WORD = re.compile(r"[a-z0-9]+")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+(?P<text>.*)$")


@dataclass(frozen=True)
class Block:
    """One block of the card: a heading (level 1-6), a paragraph, a list item, a quote or
    code, with its text."""

    kind: str  # heading, paragraph, item, quote, code
    text: str
    level: int = 0


@dataclass(frozen=True)
class Card:
    path: str  # as the spec names it
    blocks: tuple[Block, ...] = field(default_factory=tuple)

    @property
    def title(self) -> str:
        return next((b.text for b in self.blocks if b.kind == "heading" and b.level == 1), "")

    @property
    def summary(self) -> str:
        """The first paragraph: before the first section, or the first one anywhere."""
        return next((b.text for b in self.blocks if b.kind == "paragraph"), "")

    def missing(self, sections: list[str]) -> list[str]:
        """The sections (names as the policy gives them) the card has no text for."""
        return list(_missing(self.blocks, tuple(sections)))


# Many specs name one card (a team's, or every copy of an example): the same text is parsed
# and judged once a process
@lru_cache(maxsize=256)
def _missing(blocks: tuple[Block, ...], sections: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in sections if not _has(blocks, name))


def _has(blocks: tuple[Block, ...], name: str) -> bool:
    wanted = _words(name)
    return any(
        block.kind == "heading" and _contains(_words(block.text), wanted) and _text_under(blocks, i)
        for i, block in enumerate(blocks)
    )


def _text_under(blocks: tuple[Block, ...], index: int) -> bool:
    level = blocks[index].level
    for block in blocks[index + 1 :]:
        if block.kind == "heading" and block.level <= level:
            return False
        if block.kind != "heading" and _real_text(block.text):
            return True
    return False


def _real_text(text: str) -> bool:
    """Text a reader learns from: not the Hugging Face template's filler, and not only a
    placeholder (`TODO: limitations of iris.`). Comments never reach a block."""
    return text.strip() != PLACEHOLDER and not placeholders.only_placeholder(text)


class Unreadable(Exception):
    """The card named cannot be read as one: `reason` says why, `hint` what to do."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


def in_repository(reference: str) -> bool:
    """A repository path, not a URL."""
    return "://" not in reference and not reference.startswith("mailto:")


def read(root: Path, reference: str) -> Card:
    """The card at repository path `reference`; Unreadable when there is none to read."""
    return memo.remembered("model_card", (str(root), reference), lambda: _read(root, reference))


def _read(root: Path, reference: str) -> Card:
    relative = PurePosixPath(reference)
    if relative.is_absolute() or ".." in relative.parts or "\\" in reference:
        raise Unreadable(
            f"{reference} is not a path inside the repository",
            "name the card by its path from the repository root, e.g. docs/models/NAME.md",
        )
    if relative.suffix.lower() not in (".md", ".markdown"):
        raise Unreadable(
            f"{reference} is not a Markdown file", "write the card in Markdown: NAME.md"
        )
    path = root / reference
    if paths.leads_out(path, root):
        raise Unreadable(
            f"{reference} leads out of the repository through a symbolic link",
            "commit the card itself",
        )
    return Card(reference, _parsed(_text(path, reference)))


@lru_cache(maxsize=256)
def _parsed(text: str) -> tuple[Block, ...]:
    return tuple(blocks(text))


def _text(path: Path, reference: str) -> str:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise Unreadable(
            f"{reference} does not exist",
            f"write the model card at {reference} (docs/models/ holds the examples' cards)",
        ) from None
    except OSError as exc:
        reason = f"{reference} cannot be read ({exc.strerror})"
        raise Unreadable(reason, "make it readable") from exc
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise Unreadable(f"{reference} is not a file", "name the card's Markdown file")
        data = paths.read_at_most(stream, MAX_BYTES)
    if len(data) > MAX_BYTES:
        raise Unreadable(f"{reference} is larger than 1 MiB", "a model card is a few pages")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable(f"{reference} is not UTF-8", "save the card as UTF-8") from None


def blocks(text: str) -> list[Block]:
    """The card's blocks, in order."""
    lines = _without_front_matter(_COMMENT.sub("", text).splitlines())
    found: list[Block] = []
    paragraph: list[str] = []
    fence: str | None = None
    code: list[str] = []

    def flush() -> None:
        if paragraph:
            found.append(Block("paragraph", " ".join(part.strip() for part in paragraph)))
            paragraph.clear()

    for line in lines:
        if fence is not None:
            if line.strip().startswith(fence):
                found.append(Block("code", "\n".join(code)))
                fence, code = None, []
            else:
                code.append(line)
            continue
        opening = _FENCE.match(line)
        heading = _HEADING.match(line)
        item = _LIST_ITEM.match(line)
        if opening:
            flush()
            fence = opening["fence"]
        elif heading:
            flush()
            found.append(Block("heading", (heading["text"] or "").strip(), len(heading["level"])))
        elif not line.strip():
            flush()
        elif item:
            flush()
            found.append(Block("item", item["text"].strip()))
        elif line.lstrip().startswith(">"):
            flush()
            found.append(Block("quote", line.lstrip()[1:].strip()))
        elif found and found[-1].kind == "item" and line.startswith((" ", "\t")) and not paragraph:
            last = found.pop()
            found.append(Block("item", f"{last.text} {line.strip()}"))
        else:
            paragraph.append(line)
    flush()
    if fence is not None:
        found.append(Block("code", "\n".join(code)))
    return found


def _without_front_matter(lines: list[str]) -> list[str]:
    if not lines or lines[0].strip() != "---":
        return lines
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() in ("---", "..."):
            return lines[index + 1 :]
    return lines


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _contains(words: list[str], wanted: list[str]) -> bool:
    size = len(wanted)
    return bool(wanted) and any(words[i : i + size] == wanted for i in range(len(words)))
