"""Container records: storage containers and the runtime configuration some of them carry.

A *storage container* is a writable root file system in the store, made from an image
(``ROOT/aiopod/containers/<id>/rootfs``).  A *runtime container* is a storage container
with a runtime configuration (name, command, state), made by ``create``; a storage
container without one is *external* (a build's working container, ``aiopod from``).
Pure data; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiopod.errors import StoreCorrupted
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.owner import ProcessOwner

__all__ = ("ContainerRecord", "RuntimeConfig")


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """What ``create`` records besides the root file system."""

    name: str
    command: tuple[str, ...]
    image_name: str  # the reference the user gave, as podman shows it in ``ps``
    state: str = "created"


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """A storage container; ``runtime`` is set for runtime containers."""

    id: str
    name: str
    image_id: str  # "" for a working container made from scratch
    created: str
    runtime: RuntimeConfig | None = None
    owner: ProcessOwner | None = None
    """The process the container belongs to (a build's); None when it stays until removed."""

    @property
    def external(self) -> bool:
        """A storage-only container (no runtime configuration)."""
        return self.runtime is None

    def event_attributes(self, image: str) -> dict[str, str]:
        """The attributes of this container's ``Created`` and ``Removed`` events: its
        image as the event shows it (*image*: the name it was made from, or the ID), the
        image's ID (``image_id``: what the container uses, whatever names move later;
        empty for scratch) and whether it is external."""
        return {"image": image, "image_id": self.image_id, "external": str(self.external).lower()}

    def to_json(self) -> dict[str, Any]:
        """The record as stored in the metadata file."""
        doc: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "image": self.image_id,
            "created": self.created,
        }
        if self.runtime is not None:
            doc["runtime"] = {
                "name": self.runtime.name,
                "command": list(self.runtime.command),
                "image_name": self.runtime.image_name,
                "state": self.runtime.state,
            }
        if self.owner is not None:
            doc["owner"] = self.owner.to_json()
        return doc

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ContainerRecord:
        """Parse a stored record; :class:`StoreCorrupted` when malformed."""
        try:
            runtime = obj.get("runtime")
            owner = obj.get("owner")
            record = cls(
                id=str(obj["id"]),
                name=str(obj["name"]),
                image_id=str(obj["image"]),
                created=str(obj["created"]),
                runtime=None
                if runtime is None
                else RuntimeConfig(
                    name=str(runtime["name"]),
                    command=tuple(str(c) for c in runtime["command"]),
                    image_name=str(runtime["image_name"]),
                    state=str(runtime["state"]),
                ),
                owner=None if owner is None else ProcessOwner.from_json(owner),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorrupted(
                f"malformed container record ({exc!r}); run `aiopod system check --repair`"
            ) from exc
        if not is_sha256_hex(record.id) or not (
            record.image_id == "" or is_sha256_hex(record.image_id)
        ):
            raise StoreCorrupted(f"container record {record.id[:64]!r} has a malformed ID")
        return record
