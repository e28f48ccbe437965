"""What the tools modelgate runs say when they fail, as one message for a person: kubectl
(and other Go programs logging with klog) repeats its retries as log lines before the one
line that says what went wrong."""

from __future__ import annotations

import re

# klog's prefix: `E1207 15:04:05.123456   42 memcache.go:265] ...`
KLOG = re.compile(r"\b[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")


def said(text: str) -> str:
    """`text` without log lines (a line that only begins with a message keeps it), joined as
    one message; the last log line, its prefix removed, when there is nothing else."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    pieces = []
    for line in lines:
        found = KLOG.search(line)
        kept = line[: found.start()].strip() if found else line
        if kept:
            pieces.append(kept)
    if not pieces and lines:
        pieces = [KLOG.sub("", lines[-1])]
    message = ""
    for piece in pieces:
        glue = "" if not message else " " if message.endswith(":") else "; "
        message += glue + piece
    return message
