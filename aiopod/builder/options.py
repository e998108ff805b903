"""What a build is asked to do (:class:`BuildOptions`) and what it made (:class:`BuildResult`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from aiopod.events.model import Event
from aiopod.storage.records import ImageRecord

__all__ = ("BUILD_PULL_POLICIES", "BuildOptions", "BuildPullPolicy", "BuildResult", "PullImage")

#: When a build pulls the images its ``FROM``, ``COPY --from`` and ``RUN --mount from=``
#: name (podman's ``build --pull``): ``missing`` (the default) only those the store lacks,
#: ``always`` every one, ``newer`` those whose source has another manifest, ``never`` none.
BuildPullPolicy: TypeAlias = Literal["missing", "always", "never", "newer"]
BUILD_PULL_POLICIES: tuple[BuildPullPolicy, ...] = ("missing", "always", "never", "newer")

#: Pulls ``reference`` under a policy (``"always"``, ``"missing"`` or ``"newer"``) and
#: returns the image's ID; the caller of a build supplies it, with its registry options
#: and progress, so that the builder never depends on the runtime.
PullImage: TypeAlias = Callable[[str, str], Awaitable[str]]


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
    pull_policy: BuildPullPolicy = "missing"
    pull: PullImage | None = None
    """How to pull an image the build names (None: the build never pulls)."""


@dataclass
class BuildResult:
    """The built image, the intermediate images the build committed and its events."""

    image: ImageRecord
    intermediates: list[str]
    events: list[Event]
