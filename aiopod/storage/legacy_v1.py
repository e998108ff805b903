"""Store format 1: all the metadata in one JSON document, ``aiopod/images.json``.

aiopod up to format 1 replaced that file at every commit; format 2 keeps the metadata in
a database (:mod:`aiopod.storage.metadata_db`).  This module reads a format-1 document,
for the migration of an existing store (:mod:`aiopod.storage.store`) and for
``system check`` of a store whose migration has not run, and writes one (tests make
format-1 stores with it).  No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiopod.errors import StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.gcpause import paused_gc
from aiopod.storage.records import ImageRecord

__all__ = ("FORMAT_VERSION", "parse_images_json", "render_images_json")

FORMAT_VERSION = 1


def parse_images_json(data: bytes) -> tuple[list[ImageRecord], list[ContainerRecord], str | None]:
    """The images (storage order), containers and commit ID of a format-1 document.

    :raises ~aiopod.errors.StoreCorrupted: it cannot be read, or has another version.
    """
    with paused_gc():
        split = _split_images(data)
        if split is not None:
            records, rest = split
        else:
            rest = _parse_whole(data)
            records = [ImageRecord.from_json(obj) for obj in rest["images"]]
        containers = rest.get("containers", [])
        if not isinstance(containers, list):
            raise StoreCorrupted("images.json has a malformed container list")
        commit = rest.get("commit")
        return (
            records,
            [ContainerRecord.from_json(c) for c in containers],
            commit if isinstance(commit, str) else None,
        )


def render_images_json(
    records: Iterable[ImageRecord],
    containers: Iterable[ContainerRecord] = (),
    *,
    commit: str | None = None,
) -> bytes:
    """A format-1 document, as aiopod wrote it (compact JSON)."""
    doc: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "images": [r.to_json() for r in records],
        "containers": [c.to_json() for c in containers],
    }
    if commit is not None:
        doc["commit"] = commit
    return json.dumps(doc, separators=(",", ":")).encode()


#: How this module starts ``images.json`` (``json.dumps`` of the document, compact).
_HEAD = f'{{"version":{FORMAT_VERSION},"images":['
_DECODER = json.JSONDecoder()


def _split_images(data: bytes) -> tuple[list[ImageRecord], dict[str, Any]] | None:
    """The image records of an ``images.json`` in the compact form aiopod wrote, and the
    document's other keys; None when the document has another form (then it is parsed
    whole).  Each object becomes its record as soon as it is parsed, so that the parsed
    objects of a big store are never all held."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if not text.startswith(_HEAD):
        return None
    decode, parse = _DECODER.raw_decode, ImageRecord.from_json
    images: list[ImageRecord] = []
    pos = len(_HEAD)
    try:
        if text[pos] == "]":
            pos += 1
        else:
            while True:
                obj, end = decode(text, pos)
                if not isinstance(obj, dict):
                    return None
                images.append(parse(obj))
                pos = end + 1
                if text[end] == "]":
                    break
                if text[end] != ",":
                    return None
        if text[pos] == "}":
            rest: Any = {}
            if text[pos + 1 :].strip(" \t\n\r"):
                return None  # more after the document: json.loads says what
        elif text[pos] == ",":
            rest = json.loads("{" + text[pos + 1 :])  # the containers and the commit
        else:
            return None
    except (ValueError, IndexError):
        return None
    if not isinstance(rest, dict) or "images" in rest or "version" in rest:
        return None
    return images, rest


def _parse_whole(data: bytes) -> dict[str, Any]:
    """``images.json`` parsed as one document (any JSON form), its image list checked."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise StoreCorrupted(
            f"images.json is not valid JSON ({exc}); run `aiopod system check --repair`"
        ) from exc
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise StoreCorrupted(
            "images.json has an unknown format version; this aiopod cannot read the store"
        )
    images = doc.get("images")
    if not isinstance(images, list):
        raise StoreCorrupted("images.json has no image list; run `aiopod system check`")
    return doc
