"""Strict JSON for untrusted documents: size limits first, UTF-8 only, no duplicate keys,
nested at most :data:`MAX_DEPTH` levels (the standard parser would otherwise recurse
until ``RecursionError`` on ``[[[[...``, and so would anything walking what it returned).

Digests are computed over the exact bytes, so a document is parsed from the same bytes
that were hashed and never re-serialised (CVE-2014-8179 class).
"""

from __future__ import annotations

import json
from typing import Any

from aiopod.errors import InvalidArchive, LimitExceeded

__all__ = ("MAX_DEPTH", "MiB", "parse_json_list", "parse_json_object")

MiB = 1 << 20
#: Arrays and objects nested in one another; image documents need 6 (an index's
#: descriptors' platform's features), configs about as many.
MAX_DEPTH = 64


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
    except RecursionError:
        raise InvalidArchive(f"{what} nests arrays or objects too deep") from None
    if _too_deep(doc):
        raise InvalidArchive(f"{what} nests arrays or objects more than {MAX_DEPTH} deep")
    if not isinstance(doc, kind):
        raise InvalidArchive(f"{what} is not a JSON {'object' if kind is dict else 'array'}")
    return doc


def _too_deep(doc: Any) -> bool:
    """Whether *doc* nests containers more than :data:`MAX_DEPTH` levels (no recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)
    return False
