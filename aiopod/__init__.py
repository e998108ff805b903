"""aiopod: Podman's image runtime as a Python asyncio library.

A daemonless store of OCI images that programs drive with ``await``::

    async with aiopod.Runtime(root="/tmp/store") as rt:
        [image] = await rt.load("app.tar")
        await rt.tag(image.id, "app:1")
        print(await rt.images())

Layers (each depends only on those below it): the command line (:mod:`aiopod.cli`), the
runtime (:class:`Runtime`), the exchange formats (:mod:`aiopod.transports`) and the store
(:mod:`aiopod.storage`).  Everything public is re-exported here, imported on first use
(``aiopod.Runtime`` imports the runtime; ``import aiopod`` alone imports only the errors), so
that the command line starts without loading what its command does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from aiopod.errors import (
    AiopodError as AiopodError,
    BuildError as BuildError,
    ContainerNotKnown as ContainerNotKnown,
    DigestMismatch as DigestMismatch,
    DockerfileError as DockerfileError,
    ImageConflict as ImageConflict,
    ImageInUse as ImageInUse,
    ImageNotKnown as ImageNotKnown,
    InvalidArchive as InvalidArchive,
    InvalidReference as InvalidReference,
    LimitExceeded as LimitExceeded,
    NameInUse as NameInUse,
    RuntimeStopped as RuntimeStopped,
    StoreCorrupted as StoreCorrupted,
    StoreLockTimeout as StoreLockTimeout,
    TagNotKnown as TagNotKnown,
    UnsafeLayer as UnsafeLayer,
    UsageError as UsageError,
)

if TYPE_CHECKING:
    from aiopod._containers import Container as Container
    from aiopod._images import Image as Image
    from aiopod._reference import Reference as Reference
    from aiopod._runtime import Policy as Policy, Runtime as Runtime, SaveFormat as SaveFormat
    from aiopod.builder.progress import (
        BuildFinished as BuildFinished,
        ImageCommitted as ImageCommitted,
        OutputDropped as OutputDropped,
        ProgressRecord as ProgressRecord,
        StepCached as StepCached,
        StepCommitted as StepCommitted,
        StepOutput as StepOutput,
        StepStarted as StepStarted,
    )
    from aiopod.events import (
        Event as Event,
        EventBus as EventBus,
        EventFilter as EventFilter,
        EventKind as EventKind,
        EventLog as EventLog,
        Lagged as Lagged,
        Subscription as Subscription,
    )
    from aiopod.removal.plan import RemovalReport as RemovalReport
    from aiopod.storage.check import CheckReport as CheckReport

#: The lazily imported names and their modules.
_LAZY = {
    "CheckReport": "aiopod.storage.check",
    "Container": "aiopod._containers",
    "Image": "aiopod._images",
    "Policy": "aiopod._runtime",
    "Reference": "aiopod._reference",
    "RemovalReport": "aiopod.removal.plan",
    "Runtime": "aiopod._runtime",
    "SaveFormat": "aiopod._runtime",
    "Event": "aiopod.events",
    "EventBus": "aiopod.events",
    "EventFilter": "aiopod.events",
    "EventKind": "aiopod.events",
    "EventLog": "aiopod.events",
    "Lagged": "aiopod.events",
    "Subscription": "aiopod.events",
    "BuildFinished": "aiopod.builder.progress",
    "ImageCommitted": "aiopod.builder.progress",
    "OutputDropped": "aiopod.builder.progress",
    "ProgressRecord": "aiopod.builder.progress",
    "StepCached": "aiopod.builder.progress",
    "StepCommitted": "aiopod.builder.progress",
    "StepOutput": "aiopod.builder.progress",
    "StepStarted": "aiopod.builder.progress",
}


if not TYPE_CHECKING:  # type checkers see the imports above, and no other name

    def __getattr__(name: str) -> object:
        """Import a lazily re-exported name on first use (then it is a module global)."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


__all__ = (
    # runtime
    "CheckReport",
    "Container",
    "Image",
    "Policy",
    "Reference",
    "RemovalReport",
    "Runtime",
    "SaveFormat",
    # events
    "Event",
    "EventBus",
    "EventFilter",
    "EventKind",
    "EventLog",
    "Lagged",
    "Subscription",
    # build progress
    "BuildFinished",
    "ImageCommitted",
    "OutputDropped",
    "ProgressRecord",
    "StepCached",
    "StepCommitted",
    "StepOutput",
    "StepStarted",
    # errors
    "AiopodError",
    "BuildError",
    "ContainerNotKnown",
    "DigestMismatch",
    "DockerfileError",
    "ImageConflict",
    "ImageInUse",
    "ImageNotKnown",
    "InvalidArchive",
    "InvalidReference",
    "LimitExceeded",
    "NameInUse",
    "RuntimeStopped",
    "StoreCorrupted",
    "StoreLockTimeout",
    "TagNotKnown",
    "UnsafeLayer",
    "UsageError",
)
