"""Digest strings: validation and hashing helpers.

A digest is ``algorithm ":" encoded``.  aiopod accepts ``sha256`` (64 lower-case hex
characters) and ``sha512`` (128); anything else is refused *before* it is used to form
a path or a request (CVE-2024-3727).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = (
    "SHA256_HEX_RE",
    "is_digest",
    "is_sha256_hex",
    "sha256_digest",
    "split_digest",
)

SHA256_HEX_RE: Final = re.compile(r"[a-f0-9]{64}")
_DIGEST_RE: Final = re.compile(r"(sha256):([a-f0-9]{64})|(sha512):([a-f0-9]{128})")


def is_sha256_hex(value: str) -> bool:
    """Whether *value* is exactly 64 lower-case hex characters (an image or layer ID)."""
    # Not the regular expression: this runs for every image a command reads.
    return len(value) == 64 and not value.strip(_LOWER_HEX) and value.isascii()


_LOWER_HEX = "0123456789abcdef"


def is_digest(value: str) -> bool:
    """Whether *value* is a well-formed ``sha256:`` or ``sha512:`` digest."""
    return _DIGEST_RE.fullmatch(value) is not None


def split_digest(value: str) -> tuple[str, str]:
    """Split a digest into ``(algorithm, hex)``; raise :class:`ValueError` if malformed."""
    match = _DIGEST_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid digest {value!r}")
    algorithm = match.group(1) or match.group(3)
    encoded = match.group(2) or match.group(4)
    return algorithm, encoded


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of *data*."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
