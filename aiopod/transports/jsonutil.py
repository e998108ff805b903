"""Strict JSON for untrusted documents: size limits first, UTF-8 only, no duplicate keys.

Digests are computed over the exact bytes, so a document is parsed from the same bytes
that were hashed and never re-serialised (CVE-2014-8179 class).
"""

from __future__ import annotations

import json
from typing import Any

from aiopod.errors import InvalidArchive, LimitExceeded

__all__ = ("MiB", "parse_json_list", "parse_json_object")

MiB = 1 << 20


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidArchive(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json_object(data: bytes, *, what: str, max_size: int) -> dict[str, Any]:
    """Parse *data* as one JSON object describing *what*.

    :raises ~aiopod.errors.LimitExceeded: *data* is larger than *max_size*.
    :raises ~aiopod.errors.InvalidArchive: not UTF-8, not JSON, duplicate keys, not an object.
    """
    return _parse(data, what=what, max_size=max_size, kind=dict)  # type: ignore[no-any-return]


def parse_json_list(data: bytes, *, what: str, max_size: int) -> list[Any]:
    """Parse *data* as one JSON array describing *what* (same checks as objects)."""
    return _parse(data, what=what, max_size=max_size, kind=list)  # type: ignore[no-any-return]


def _parse(data: bytes, *, what: str, max_size: int, kind: type) -> Any:
    if len(data) > max_size:
        raise LimitExceeded(f"{what} is {len(data)} bytes, more than the limit of {max_size}")
    try:
        text = data.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except InvalidArchive as exc:
        raise InvalidArchive(f"{what}: {exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArchive(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, kind):
        raise InvalidArchive(f"{what} is not a JSON {'object' if kind is dict else 'array'}")
    return doc
