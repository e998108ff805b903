"""Checks shared by every reader of OCI and Docker image documents (manifests, indexes,
their descriptors), whether they come from an archive, a layout or a registry.

A document is an index or a manifest, as its descriptor (or the source) says, never both
(CVE-2021-41190; ``hostile-input.md`` A6); a descriptor's digest is validated before any
path or request is formed from it (A4).  Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from aiopod.errors import InvalidArchive
from aiopod.storage.digest import is_digest
from aiopod.transports import mediatypes as mt

__all__ = ("check_descriptor", "check_document", "image_descriptors")


def check_descriptor(obj: Any, what: str) -> dict[str, Any]:
    """*obj* as a descriptor: a JSON object with a valid ``digest``, a non-negative
    integer ``size`` and a ``mediaType`` string; :class:`InvalidArchive` otherwise."""
    if not isinstance(obj, dict):
        raise InvalidArchive(f"{what} is not a descriptor object")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidArchive(f"{what} has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArchive(f"{what} has an invalid size {size!r}")
    if not isinstance(media_type, str):
        raise InvalidArchive(f"{what} has no mediaType")
    return obj


def check_document(doc: dict[str, Any], media_type: str, what: str) -> None:
    """Refuse a manifest or index whose own ``mediaType`` contradicts *media_type* (the
    type it was referenced or served as), that is both an index and a manifest, or whose
    ``schemaVersion`` is not 2."""
    declared = doc.get("mediaType")
    if declared is not None and declared != media_type:
        raise InvalidArchive(
            f"{what} says mediaType {declared!r} but was referenced as {media_type}"
        )
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise InvalidArchive(f"{what} is both an index and a manifest")
    if doc.get("schemaVersion") != 2:
        raise InvalidArchive(f"{what} has schemaVersion {doc.get('schemaVersion')!r}, not 2")


def image_descriptors(
    doc: dict[str, Any], what: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The config and layer descriptors of the image manifest *doc*: refused when the
    config is not an image config (an artifact) or a layer has a media type aiopod cannot
    unpack (OCI or Docker tar, gzip or zstd only; a foreign layer's ``urls`` are never
    followed)."""
    config = check_descriptor(doc.get("config"), f"{what} config")
    if config["mediaType"] not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
        raise InvalidArchive(f"{what} is not an image (config type {config['mediaType']})")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArchive(f"{what} has no layers list")
    descriptors = []
    for i, layer in enumerate(layers):
        descriptor = check_descriptor(layer, f"{what} layers[{i}]")
        if descriptor["mediaType"] not in mt.LAYER_COMPRESSION:
            raise InvalidArchive(
                f"{what} layers[{i}] has unsupported media type {descriptor['mediaType']!r}"
            )
        descriptors.append(descriptor)
    return config, descriptors
