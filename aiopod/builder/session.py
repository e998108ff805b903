"""The build as its step handlers see it: :class:`BuildSession` and :class:`StageRun`.

The executor (:mod:`aiopod.builder.executor`) owns a build's state: its working
containers, staging area, events and layer cache.  Step handlers that live in modules of
their own (``COPY``/``ADD`` in :mod:`aiopod.builder.copying`, ``RUN`` in
:mod:`aiopod.builder.run.step` and its mounts in :mod:`aiopod.builder.run.mounts`) reach
it only through the :class:`BuildSession` protocol below, never through the executor's
own classes, so that they neither import the executor nor change its bookkeeping behind
its back.

:class:`StageRun` is the state of the stage being built (its working container, config
and layers so far); handlers read it and leave its changes to the session's methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from aiopod.builder.dockerfile.parser import Stage
from aiopod.builder.image_config import ImageConfig
from aiopod.builder.layers.snapshot import Snapshot, write_diff_layer
from aiopod.builder.layers.writer import LayerInfo
from aiopod.builder.options import BuildOptions
from aiopod.builder.progress import Reporter
from aiopod.storage.ingest import StagedBlob
from aiopod.storage.layer_check import LayerLimits
from aiopod.storage.records import ImageRecord, LayerRecord

__all__ = ("BuildSession", "LayerWrite", "StageRun")

#: Writes a layer tar into the binary file it is given and says what it wrote (blocking:
#: called in a worker thread).
LayerWrite = Callable[[Any], LayerInfo]


@dataclass
class StageRun:
    """The stage being built, in its working container."""

    stage: Stage
    container_id: str
    rootfs: Path
    config: ImageConfig
    base_layers: list[LayerRecord]
    new_layers: list[StagedBlob] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False
    snapshot: Snapshot | None = None
    """The root file system as of the last layer, when it may have changed since."""
    pending: bool = False
    """WORKDIR made directories that no layer holds yet (``snapshot`` is from before)."""
    unapplied: list[tuple[str, Path | None]] = field(default_factory=list)
    """Layers recorded but not yet applied to the root file system (digest, staged file):
    applied only before a step reads it, so a last COPY or cached step costs no unpack."""
    image: ImageRecord | None = None

    def diff_writer(self, before: Snapshot, *, timestamp: int | None) -> LayerWrite:
        """Writes the changes of the root file system since *before* as a layer (the
        config's volumes left out; every mtime *timestamp* when given)."""
        volumes = list((self.config.get("Volumes") or {}).keys())
        rootfs = self.rootfs
        return lambda out: write_diff_layer(
            before, rootfs, out, timestamp=timestamp, exclude=volumes
        )


class BuildSession(Protocol):
    """What a step handler may use of the build it runs in.

    Every method is called from the build's task; none may be called concurrently with
    another step of the same build.  Cancellation: each method leaves the build's state
    as it found it or fully changed (a working container made is registered for removal
    before the method returns or raises).
    """

    @property
    def options(self) -> BuildOptions:
        """What the build was asked to do."""
        ...

    @property
    def reporter(self) -> Reporter:
        """Where the build's progress goes (a step's command output included)."""
        ...

    @property
    def cache_mounts_dir(self) -> Path:
        """Where the store keeps ``RUN --mount=type=cache`` directories."""
        ...

    @property
    def layer_limits(self) -> LayerLimits:
        """The store's bounds on a layer (size, compression ratio, entries...), which an
        archive ``ADD`` extracts is held to as well."""
        ...

    def apply_layer(self, root: str | os.PathLike[str], stream: BinaryIO, what: str) -> None:
        """Apply the layer read from *stream* (*what* in errors) onto *root* with the
        store's layer limits and special-file rule.  Blocking: call it in a worker thread.

        :raises ~aiopod.errors.UnsafeLayer: the layer is hostile or malformed.
        :raises ~aiopod.errors.LimitExceeded: the layer passes a limit.
        """
        ...

    def created(self) -> str:
        """The creation time of the next history entry (RFC 3339)."""
        ...

    def new_staging_path(self, suffix: str) -> Path:
        """A fresh, not yet existing path in the build's staging area (removed with it).
        Blocking only in that it names a file."""
        ...

    async def working_container(self, reference: str, what: str) -> Path:
        """The root file system of an earlier stage (named or numbered *reference*) or of
        an image of the store, unpacked once per build into a working container that
        every ``COPY --from`` and ``RUN --mount from=`` of it shares (they only read it);
        removed when the build ends.  *what* starts the message of the
        :class:`~aiopod.errors.BuildError` raised when *reference* names neither."""
        ...

    async def ready(self, run: StageRun) -> None:
        """Apply the layers recorded but not yet applied, before a step reads *run*'s
        root file system."""
        ...

    async def snapshot(self, run: StageRun) -> Snapshot:
        """*run*'s root file system as of its last layer (taken now if unchanged)."""
        ...

    async def use_cache(self, run: StageRun, created_by: str, *, adds_layer: bool) -> bool:
        """With ``layers``, adopt the image an earlier build made for the same step (the
        step is then done); ``False`` when there is none."""
        ...

    async def add_layer(
        self,
        run: StageRun,
        created: str,
        created_by: str,
        write: LayerWrite,
        *,
        apply: bool = False,
    ) -> StagedBlob:
        """Write a layer with *write* into the staging area and record it as the step's;
        with *apply*, it is applied to the root file system before it is next read."""
        ...
