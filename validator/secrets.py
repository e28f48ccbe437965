"""Recognise values that look like secrets, and mask them in everything modelgate prints."""

from __future__ import annotations

import math
import re
from collections import Counter

TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "an AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "a Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "an OpenAI API key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "a GCP service account key": re.compile(
        r'"?private_key_id"?\s*:|"type"\s*:\s*"service_account"'
    ),
    "a private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "a Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
}
ANY_TOKEN = re.compile("|".join(f"(?:{p.pattern})" for p in TOKEN_PATTERNS.values()))
# Every token pattern above starts with one of these literals; searching for literals is
# about 30x faster than searching for the patterns, so it gates the full search.
TOKEN_START = re.compile(
    r"AKIA|ASIA|gh[pousr]_|github_pat_|hf_|sk-|AIza|private_key_id"
    r"|service_account|PRIVATE KEY|xox[abposr]-"
)
SECRET_NAME = re.compile(r"(?i)(secret|token|passw(or)?d|api[_-]?key|private[_-]?key|credential)")
CANDIDATE = re.compile(r"[A-Za-z0-9+/=_\-]{24,}")
MIN_ENTROPY_BITS = 4.0


def find_secret(value: str, suspicious_name: str = "", entropy: bool = True) -> str | None:
    """What kind of secret `value` holds, or None. `entropy` adds the high-entropy heuristic,
    meant for places (env values, arguments) where long random strings are unusual."""
    if TOKEN_START.search(value) and ANY_TOKEN.search(value):  # name the kind only on a hit
        return next(kind for kind, pattern in TOKEN_PATTERNS.items() if pattern.search(value))
    if suspicious_name and SECRET_NAME.search(suspicious_name) and value.strip():
        return "a secret-looking value"
    if entropy and any(_entropy(token) >= MIN_ENTROPY_BITS for token in CANDIDATE.findall(value)):
        return "a high-entropy string"
    return None


def mask(text: str) -> str:
    """`text` with every recognised token replaced by its first four characters and '****'."""
    return ANY_TOKEN.sub(lambda match: match.group(0)[:4] + "****", text)


def _entropy(token: str) -> float:
    counts = Counter(token)
    total = len(token)
    return -sum(n / total * math.log2(n / total) for n in counts.values())
