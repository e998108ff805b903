"""The image configuration a build changes step by step (OCI/Docker config JSON).

:class:`ImageConfig` starts from the base image's config (or an empty one for
``scratch``) and records what each instruction changes: the runtime config (Env, Cmd,
Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes, StopSignal, Healthcheck,
OnBuild, Shell), the layer diff_ids and one history entry per instruction (with
``empty_layer`` for metadata-only steps).  :meth:`document` serialises it
deterministically, so that ``--timestamp`` builds give identical image IDs.  Pure.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from aiopod._platforms import local_architecture

__all__ = ("DEFAULT_PATH", "ImageConfig")

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ImageConfig:
    """A config being built.  ``config`` is the runtime part (``config`` in the JSON)."""

    config: dict[str, Any] = field(default_factory=dict)
    diff_ids: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    architecture: str = field(default_factory=local_architecture)
    os: str = "linux"
    author: str = ""

    @classmethod
    def from_base(cls, doc: dict[str, Any] | None) -> ImageConfig:
        """Start from a base image's config document (None: ``scratch``)."""
        if doc is None:
            return cls()
        return cls(
            config=copy.deepcopy(doc.get("config") or {}),
            diff_ids=list((doc.get("rootfs") or {}).get("diff_ids") or []),
            history=copy.deepcopy(doc.get("history") or []),
            architecture=str(doc.get("architecture") or local_architecture()),
            os=str(doc.get("os") or "linux"),
            author=str(doc.get("author") or ""),
        )

    def copy(self) -> ImageConfig:
        """An independent copy (stages built on a stage start from its config)."""
        return copy.deepcopy(self)

    # -- the runtime config -------------------------------------------------------------

    @property
    def env(self) -> list[str]:
        """``KEY=value`` entries, in order."""
        return list(self.config.get("Env") or [])

    def env_map(self) -> dict[str, str]:
        """The environment as a mapping (later entries win)."""
        result: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            result[key] = value
        return result

    def set_env(self, key: str, value: str) -> None:
        """Set one variable, keeping its place if it exists."""
        entries = self.env
        for index, item in enumerate(entries):
            if item.partition("=")[0] == key:
                entries[index] = f"{key}={value}"
                break
        else:
            entries.append(f"{key}={value}")
        self.config["Env"] = entries

    def set(self, key: str, value: Any) -> None:
        """Set a field of the runtime config (None removes it)."""
        if value is None:
            self.config.pop(key, None)
        else:
            self.config[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the runtime config."""
        return self.config.get(key, default)

    # -- history and layers ---------------------------------------------------------------

    def add_history(
        self, created: str, created_by: str, *, empty_layer: bool, comment: str = ""
    ) -> None:
        """Record one instruction."""
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.history.append(entry)

    def add_layer(self, diff_id: str) -> None:
        """Record a new layer."""
        self.diff_ids.append(diff_id)

    def document(self, created: str) -> dict[str, Any]:
        """The config JSON object."""
        doc: dict[str, Any] = {
            "created": created,
            "architecture": self.architecture,
            "os": self.os,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": self.history,
        }
        if self.author:
            doc["author"] = self.author
        return doc

    def serialise(self, created: str) -> bytes:
        """The config blob's bytes (deterministic)."""
        return json.dumps(self.document(created), separators=(",", ":")).encode()
