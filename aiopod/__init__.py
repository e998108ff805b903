"""aiopod: Podman's image runtime as a Python asyncio library.

A daemonless store of OCI images that programs drive with ``await``::

    async with aiopod.Runtime(root="/tmp/store") as rt:
        [image] = await rt.load("app.tar")
        await rt.tag(image.id, "app:1")
        print(await rt.images())

The public API is what this module exports (``__all__``): the :class:`Runtime`, the types
its calls take and return (images, containers, removal reports and their plans, the store
check's report, events and their subscriptions, the progress records of a build, a pull
and a push) and the errors (:mod:`aiopod.errors`).  Three other modules are public:
:mod:`aiopod.errors`, :mod:`aiopod.sync` (the same runtime for code that cannot
``await``: ``with aiopod.sync.Runtime(root=...) as rt: rt.images()``) and
:mod:`aiopod.notebook` (a live progress display and a picture of the store).  Everything else
is internal and may change: the modules with a leading underscore, and the sub-packages
that hold the runtime's parts (:mod:`aiopod.cli`, the command line; ``builder``,
``removal``, ``events``, ``transports`` and ``storage``, the layers below the runtime).

Names are imported on first use (``aiopod.Runtime`` imports the runtime; ``import
aiopod`` alone imports only the errors), so that the command line starts without loading
what its command does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from aiopod.errors import (
    AccountFileError as AccountFileError,
    AiopodError as AiopodError,
    AuthenticationFailed as AuthenticationFailed,
    BlockingCallInEventLoop as BlockingCallInEventLoop,
    BuildError as BuildError,
    CommitUnfinished as CommitUnfinished,
    ConfigurationError as ConfigurationError,
    ConflictError as ConflictError,
    ContainerNotKnown as ContainerNotKnown,
    ContentRemoved as ContentRemoved,
    DigestMismatch as DigestMismatch,
    DockerConflict as DockerConflict,
    DockerfileError as DockerfileError,
    DockerInvalidReference as DockerInvalidReference,
    DockerNotFound as DockerNotFound,
    ExpansionError as ExpansionError,
    ImageConflict as ImageConflict,
    ImageInUse as ImageInUse,
    ImageNotKnown as ImageNotKnown,
    InvalidArchive as InvalidArchive,
    InvalidInputError as InvalidInputError,
    InvalidReference as InvalidReference,
    LimitExceeded as LimitExceeded,
    ManifestUnknown as ManifestUnknown,
    MissingExtra as MissingExtra,
    NameInUse as NameInUse,
    NoMatchingPlatform as NoMatchingPlatform,
    NotAStore as NotAStore,
    NotKnownError as NotKnownError,
    NotLoggedIn as NotLoggedIn,
    PathTooDeep as PathTooDeep,
    PullFailed as PullFailed,
    ReadOnlyStore as ReadOnlyStore,
    RegistryBlocked as RegistryBlocked,
    RegistryError as RegistryError,
    RegistryRequestFailed as RegistryRequestFailed,
    RegistryUnreachable as RegistryUnreachable,
    RuntimeStopped as RuntimeStopped,
    ShortNameNotResolved as ShortNameNotResolved,
    StorageFull as StorageFull,
    StoreCorrupted as StoreCorrupted,
    StoreError as StoreError,
    StoreLockTimeout as StoreLockTimeout,
    TagNotKnown as TagNotKnown,
    TemplateError as TemplateError,
    TLSVerificationFailed as TLSVerificationFailed,
    TooManySymlinks as TooManySymlinks,
    UnsafeLayer as UnsafeLayer,
    UnsupportedManifest as UnsupportedManifest,
    UsageError as UsageError,
    UserLookupError as UserLookupError,
)

if TYPE_CHECKING:
    from aiopod._containers import Container as Container
    from aiopod._history import ImageHistory as ImageHistory
    from aiopod._images import Image as Image, ImageList as ImageList
    from aiopod._info import (
        HostInfo as HostInfo,
        Info as Info,
        StoreInfo as StoreInfo,
        VersionInfo as VersionInfo,
    )
    from aiopod._prune import SystemPruneReport as SystemPruneReport
    from aiopod._reference import Reference as Reference
    from aiopod._runtime import (
        Policy as Policy,
        PullPolicy as PullPolicy,
        Runtime as Runtime,
        SaveCompression as SaveCompression,
        SaveFormat as SaveFormat,
    )
    from aiopod._trees import ImageTree as ImageTree, TreeLayer as TreeLayer
    from aiopod._usage import (
        DiskUsage as DiskUsage,
        ImageUsage as ImageUsage,
        UsageSummary as UsageSummary,
    )
    from aiopod.builder.options import BuildPullPolicy as BuildPullPolicy
    from aiopod.builder.progress import (
        BuildFinished as BuildFinished,
        ImageCommitted as ImageCommitted,
        OutputDropped as OutputDropped,
        ProgressCallback as ProgressCallback,
        ProgressRecord as ProgressRecord,
        ProgressTarget as ProgressTarget,
        StepCached as StepCached,
        StepCommitted as StepCommitted,
        StepOutput as StepOutput,
        StepStarted as StepStarted,
    )
    from aiopod.events.bus import (
        EventBus as EventBus,
        Lagged as Lagged,
        Subscription as Subscription,
    )
    from aiopod.events.filters import EventFilter as EventFilter
    from aiopod.events.formats import (
        event_from_native_json as event_from_native_json,
        to_native_json as to_native_json,
    )
    from aiopod.events.log import EventLog as EventLog, Retention as Retention
    from aiopod.events.model import (
        Actor as Actor,
        Event as Event,
        EventKind as EventKind,
        ObjectType as ObjectType,
    )
    from aiopod.events.stream import (
        EventStream as EventStream,
        StreamSubscription as StreamSubscription,
    )
    from aiopod.events.verify import VerifyProblem as VerifyProblem, VerifyReport as VerifyReport
    from aiopod.removal.plan import (
        DeleteImage as DeleteImage,
        ImageProcessed as ImageProcessed,
        Plan as Plan,
        RemovalReport as RemovalReport,
        RemoveContainer as RemoveContainer,
        Step as Step,
        Untag as Untag,
    )
    from aiopod.removal.progress import (
        ContainersRemoving as ContainersRemoving,
        ImagesRemoving as ImagesRemoving,
        RemovalPlanned as RemovalPlanned,
        RemovalProgressTarget as RemovalProgressTarget,
        RemovalRecord as RemovalRecord,
    )
    from aiopod.storage.check import (
        CheckProgress as CheckProgress,
        CheckProgressTarget as CheckProgressTarget,
        CheckReport as CheckReport,
    )
    from aiopod.transports.archive_progress import (
        ArchiveProgressTarget as ArchiveProgressTarget,
        ArchiveRead as ArchiveRead,
        ArchiveRecord as ArchiveRecord,
    )
    from aiopod.transports.registry.credentials import Credentials as Credentials
    from aiopod.transports.registry.login import (
        LoginOutcome as LoginOutcome,
        LogoutOutcome as LogoutOutcome,
    )
    from aiopod.transports.registry.progress import (
        BlobDone as BlobDone,
        BlobProgress as BlobProgress,
        BlobStarted as BlobStarted,
        CopyStarted as CopyStarted,
        ManifestWriting as ManifestWriting,
        NameResolved as NameResolved,
        PullStarted as PullStarted,
        SignaturesStoring as SignaturesStoring,
        TransferCallback as TransferCallback,
        TransferRecord as TransferRecord,
    )

#: The lazily imported names and their modules.
_LAZY = {
    # the runtime and what its calls return
    "Runtime": "aiopod._runtime",
    "Policy": "aiopod._runtime",
    "SaveFormat": "aiopod._runtime",
    "SaveCompression": "aiopod._runtime",
    "PullPolicy": "aiopod._runtime",
    "BuildPullPolicy": "aiopod.builder.options",
    "Image": "aiopod._images",
    "ImageList": "aiopod._images",
    "ImageHistory": "aiopod._history",
    "ImageTree": "aiopod._trees",
    "TreeLayer": "aiopod._trees",
    "DiskUsage": "aiopod._usage",
    "HostInfo": "aiopod._info",
    "Info": "aiopod._info",
    "StoreInfo": "aiopod._info",
    "VersionInfo": "aiopod._info",
    "SystemPruneReport": "aiopod._prune",
    "ImageUsage": "aiopod._usage",
    "UsageSummary": "aiopod._usage",
    "Container": "aiopod._containers",
    "Reference": "aiopod._reference",
    "CheckReport": "aiopod.storage.check",
    "CheckProgress": "aiopod.storage.check",
    "CheckProgressTarget": "aiopod.storage.check",
    # registries
    "Credentials": "aiopod.transports.registry.credentials",
    "LoginOutcome": "aiopod.transports.registry.login",
    "LogoutOutcome": "aiopod.transports.registry.login",
    # removal reports and their plans
    "RemovalReport": "aiopod.removal.plan",
    "Plan": "aiopod.removal.plan",
    "Step": "aiopod.removal.plan",
    "Untag": "aiopod.removal.plan",
    "RemoveContainer": "aiopod.removal.plan",
    "DeleteImage": "aiopod.removal.plan",
    "ImageProcessed": "aiopod.removal.plan",
    "RemovalPlanned": "aiopod.removal.progress",
    "ContainersRemoving": "aiopod.removal.progress",
    "ImagesRemoving": "aiopod.removal.progress",
    "RemovalRecord": "aiopod.removal.progress",
    "RemovalProgressTarget": "aiopod.removal.progress",
    # events
    "Event": "aiopod.events.model",
    "EventKind": "aiopod.events.model",
    "ObjectType": "aiopod.events.model",
    "EventBus": "aiopod.events.bus",
    "Subscription": "aiopod.events.bus",
    "Lagged": "aiopod.events.bus",
    "EventFilter": "aiopod.events.filters",
    "EventLog": "aiopod.events.log",
    "Retention": "aiopod.events.log",
    "Actor": "aiopod.events.model",
    "EventStream": "aiopod.events.stream",
    "StreamSubscription": "aiopod.events.stream",
    "VerifyProblem": "aiopod.events.verify",
    "VerifyReport": "aiopod.events.verify",
    "to_native_json": "aiopod.events.formats",
    "event_from_native_json": "aiopod.events.formats",
    # build progress
    "ProgressRecord": "aiopod.builder.progress",
    "ProgressTarget": "aiopod.builder.progress",
    "ProgressCallback": "aiopod.builder.progress",
    "StepStarted": "aiopod.builder.progress",
    "StepOutput": "aiopod.builder.progress",
    "StepCached": "aiopod.builder.progress",
    "StepCommitted": "aiopod.builder.progress",
    "ImageCommitted": "aiopod.builder.progress",
    "BuildFinished": "aiopod.builder.progress",
    "OutputDropped": "aiopod.builder.progress",
    # load, import and save progress
    "ArchiveProgressTarget": "aiopod.transports.archive_progress",
    "ArchiveRead": "aiopod.transports.archive_progress",
    "ArchiveRecord": "aiopod.transports.archive_progress",
    # pull and push progress
    "BlobDone": "aiopod.transports.registry.progress",
    "BlobProgress": "aiopod.transports.registry.progress",
    "BlobStarted": "aiopod.transports.registry.progress",
    "CopyStarted": "aiopod.transports.registry.progress",
    "ManifestWriting": "aiopod.transports.registry.progress",
    "NameResolved": "aiopod.transports.registry.progress",
    "PullStarted": "aiopod.transports.registry.progress",
    "SignaturesStoring": "aiopod.transports.registry.progress",
    "TransferCallback": "aiopod.transports.registry.progress",
    "TransferRecord": "aiopod.transports.registry.progress",
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
    # the runtime and what its calls return
    "CheckProgress",
    "CheckProgressTarget",
    "CheckReport",
    "Container",
    "Image",
    "DiskUsage",
    "HostInfo",
    "ImageHistory",
    "ImageList",
    "ImageTree",
    "ImageUsage",
    "Info",
    "StoreInfo",
    "SystemPruneReport",
    "TreeLayer",
    "UsageSummary",
    "VersionInfo",
    "BuildPullPolicy",
    "Policy",
    "PullPolicy",
    "Reference",
    "Runtime",
    "SaveCompression",
    "SaveFormat",
    # registries
    "Credentials",
    "LoginOutcome",
    "LogoutOutcome",
    # removal reports and their plans
    "DeleteImage",
    "ImageProcessed",
    "Plan",
    "RemovalReport",
    "RemoveContainer",
    "Step",
    "Untag",
    "RemovalPlanned",
    "ContainersRemoving",
    "ImagesRemoving",
    "RemovalRecord",
    "RemovalProgressTarget",
    # events
    "Actor",
    "Event",
    "EventStream",
    "Retention",
    "StreamSubscription",
    "VerifyProblem",
    "VerifyReport",
    "EventBus",
    "EventFilter",
    "EventKind",
    "EventLog",
    "Lagged",
    "ObjectType",
    "Subscription",
    "event_from_native_json",
    "to_native_json",
    # build progress
    "BuildFinished",
    "ImageCommitted",
    "OutputDropped",
    "ProgressCallback",
    "ProgressRecord",
    "ProgressTarget",
    "StepCached",
    "StepCommitted",
    "StepOutput",
    "StepStarted",
    # load, import and save progress
    "ArchiveProgressTarget",
    "ArchiveRead",
    "ArchiveRecord",
    # pull and push progress
    "BlobDone",
    "BlobProgress",
    "BlobStarted",
    "CopyStarted",
    "ManifestWriting",
    "NameResolved",
    "PullStarted",
    "SignaturesStoring",
    "TransferCallback",
    "TransferRecord",
    # errors (the tree is drawn in aiopod.errors)
    "AccountFileError",
    "AiopodError",
    "AuthenticationFailed",
    "BlockingCallInEventLoop",
    "MissingExtra",
    "BuildError",
    "ConfigurationError",
    "ConflictError",
    "ContainerNotKnown",
    "ContentRemoved",
    "DigestMismatch",
    "DockerConflict",
    "DockerInvalidReference",
    "DockerNotFound",
    "DockerfileError",
    "ExpansionError",
    "ImageConflict",
    "ImageInUse",
    "ImageNotKnown",
    "InvalidArchive",
    "InvalidInputError",
    "InvalidReference",
    "LimitExceeded",
    "ManifestUnknown",
    "NameInUse",
    "NoMatchingPlatform",
    "NotKnownError",
    "NotLoggedIn",
    "PathTooDeep",
    "RegistryBlocked",
    "RegistryError",
    "PullFailed",
    "RegistryRequestFailed",
    "RegistryUnreachable",
    "RuntimeStopped",
    "ShortNameNotResolved",
    "StoreCorrupted",
    "StoreError",
    "StoreLockTimeout",
    "StorageFull",
    "CommitUnfinished",
    "NotAStore",
    "ReadOnlyStore",
    "TLSVerificationFailed",
    "TagNotKnown",
    "TooManySymlinks",
    "UnsafeLayer",
    "UnsupportedManifest",
    "TemplateError",
    "UsageError",
    "UserLookupError",
)
