"""Stopping deploys on SIGINT or SIGTERM.

Deploys run in worker threads, and Python delivers a signal to the main thread only. The CLI
turns the signal into `request()`; every wait inside a target (readiness polls, the deploy
lock, smoke requests) goes through `pause` or `check`, which raise `Interrupted` once a stop is
requested, so each worker unwinds through its own `finally` and stops what it started within
one poll interval instead of finishing the deploy.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


class Interrupted(Exception):
    """The run was asked to stop; the target stops what it started."""


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def reset() -> None:
    _requested.clear()


def check() -> None:
    if _requested.is_set():
        raise Interrupted


def pause(seconds: float) -> None:
    """Sleep, but wake up and raise at once when a stop is requested."""
    if _requested.wait(seconds):
        raise Interrupted
