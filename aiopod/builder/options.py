"""What a build is asked to do (:class:`BuildOptions`) and what it made (:class:`BuildResult`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiopod.events.model import Event
from aiopod.storage.records import ImageRecord

__all__ = ("BuildOptions", "BuildResult")


@dataclass(frozen=True)
class BuildOptions:
    """What to build: the context, the Dockerfile and the flags of ``podman build``."""

    context: Path
    dockerfile: Path | None = None
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    layers: bool = False
    timestamp: int | None = None
    target: str | None = None
    no_cache: bool = False
    secrets: Mapping[str, Path] = field(default_factory=dict)
    """``RUN --mount=type=secret,id=ID`` sources: the file of each secret ID (read when a
    step mounts it; never stored in the image or its history)."""


@dataclass
class BuildResult:
    """The built image, the intermediate images the build committed and its events."""

    image: ImageRecord
    intermediates: list[str]
    events: list[Event]
