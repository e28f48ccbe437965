"""Answers about the repository's files that one run asks once per spec, kept for that run.

A thousand specs that serve one artifact, or name one model card, would otherwise resolve,
hash or parse the same file a thousand times. Inside `with memo.run():` the first answer
(a value or the exception it raised) is reused; outside it nothing is kept, so a process
that checks twice (a test, an editor's language server) sees the edits made in between.
Forked workers inherit what the parent knew and keep their own answers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

Value = TypeVar("Value")
_ANSWERS: dict[tuple[str, Hashable], tuple[bool, Any]] | None = None


@contextmanager
def run() -> Iterator[None]:
    """Keep answers until the outermost run ends."""
    global _ANSWERS
    outer = _ANSWERS
    if outer is None:
        _ANSWERS = {}
    try:
        yield
    finally:
        _ANSWERS = outer


def remembered_for(kind: str, subject: object, compute: Callable[[], Value]) -> Value:
    """remembered() for an answer about an object that cannot be a key (the values mapping):
    by its identity, the object kept alive with the answer, so that its id is not reused."""
    answer: tuple[object, Value] = remembered(kind, id(subject), lambda: (subject, compute()))
    if answer[0] is subject:
        return answer[1]
    return compute()


def remembered(kind: str, key: Hashable, compute: Callable[[], Value]) -> Value:
    """compute(), or within a run the answer it gave for (kind, key) before."""
    if _ANSWERS is None:
        return compute()
    known = _ANSWERS.get((kind, key))
    if known is None:
        try:
            known = (True, compute())
        except Exception as exc:  # the same refusal for every spec that asks
            known = (False, exc)
        _ANSWERS[(kind, key)] = known
    returned, answer = known
    if not returned:
        raise answer
    return answer
