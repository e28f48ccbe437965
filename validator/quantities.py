"""Kubernetes resource quantities of bytes ("512Mi", "20Gi", "1G"), as numbers and back."""

from __future__ import annotations

import re

_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def to_bytes(quantity: object) -> int | None:
    """The bytes a quantity stands for, or None where it is not one of bytes."""
    if isinstance(quantity, bool) or not isinstance(quantity, str | int | float):
        return None
    found = _QUANTITY.match(str(quantity))
    if found is None:
        return None
    return int(float(found.group(1)) * _SUFFIXES[found.group(2) or ""])


def mebibytes(count: int) -> str:
    """`count` bytes as a quantity in Mi, rounded up."""
    return f"{-(-count // 2**20)}Mi"
