"""The layer of a ``COPY``/``ADD``, written straight from the build context.

:func:`write_planned_layer` writes the entries :func:`plan_copy_layer
<aiopod.builder.sources.copy_plan.plan_copy_layer>` planned through a
:class:`~aiopod.builder.layers.writer.LayerWriter`, reading each regular file's bytes
inside its context with a :class:`~aiopod.builder.sources.context.SourceReader` (each
checked to be the file the walk saw), without copying anything into a root file system
first.  :func:`write_copy_layer` does the three steps of one instruction: resolve the
destination in the stage's root file system, plan, write.

With ``timestamp`` set, the layer is byte for byte the one buildah 1.28 commits (same
``diff_id``), in both layer orders (checked in ``tests/builder/test_copy_layer.py``).

Everything here is blocking; async callers run a whole layer in one worker thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, assert_never

from aiopod.builder.layers.writer import LayerInfo, LayerWriter
from aiopod.builder.sources.context import SourceEntry, SourceReader
from aiopod.builder.sources.copy_plan import (
    CopyPlan,
    Device,
    Directory,
    Fifo,
    HardLink,
    LayerEntry,
    RegularFile,
    Symlink,
    plan_copy_layer,
)
from aiopod.builder.sources.destination import resolve_destination

__all__ = (
    "write_copy_layer",
    "write_planned_layer",
)


def write_planned_layer(
    entries: Iterable[LayerEntry], *, out: BinaryIO, timestamp: int | None = None
) -> LayerInfo:
    """Write ``entries``, in their order, as one layer tar to ``out``.

    ``timestamp`` replaces every mtime (``--timestamp``).  A regular file's data is read
    from its :class:`~aiopod.builder.sources.copy_plan.FileData`; one that is no longer the
    file that was planned (replaced, grown, shrunk) raises
    :class:`~aiopod.errors.BuildError` and the layer is unusable (``out`` is the caller's
    staging file: discard it).  Blocking; reads every file once.
    """
    writer = LayerWriter(out, timestamp=timestamp)
    reader = SourceReader()
    try:
        for entry in entries:
            _write_entry(writer, reader, entry)
    finally:
        reader.close()
    return writer.close()


def _write_entry(writer: LayerWriter, reader: SourceReader, entry: LayerEntry) -> None:
    owner = {"uid": entry.uid, "gid": entry.gid, "mtime": entry.mtime}
    match entry:
        case Directory():
            writer.add_dir(entry.name, mode=entry.perm, xattrs=entry.xattrs, **owner)
        case RegularFile():
            data = entry.data
            fd = reader.open(data.context, data.realpath, data.stat)
            try:
                writer.add_file(
                    entry.name, fd, size=entry.size, mode=entry.perm, xattrs=entry.xattrs, **owner
                )
            finally:
                os.close(fd)
        case HardLink():
            writer.add_hardlink(entry.name, entry.target, mode=entry.perm, **owner)
        case Symlink():
            writer.add_symlink(
                entry.name, entry.target, mode=entry.perm, xattrs=entry.xattrs, **owner
            )
        case Fifo():
            writer.add_fifo(entry.name, mode=entry.perm, **owner)
        case Device():
            writer.add_device(
                entry.name,
                block=entry.block,
                major=entry.major,
                minor=entry.minor,
                mode=entry.perm,
                **owner,
            )
        case _:
            assert_never(entry)


def write_copy_layer(
    entries: Sequence[SourceEntry],
    plan: CopyPlan,
    *,
    chown: tuple[int, int] | None,
    chmod: int | None,
    timestamp: int | None,
    out: BinaryIO,
    rootfs: Path | None = None,
    preserve_ownership: bool = False,
    strip_setid: bool = True,
    walk_order: bool = False,
    now: int | None = None,
) -> LayerInfo:
    """Write the layer a ``COPY``/``ADD`` of ``entries`` (from
    :func:`~aiopod.builder.sources.context.resolve_sources`) makes, as planned by
    :func:`~aiopod.builder.sources.copy_plan.copy_plan`, reading straight from the build
    context.

    Pass ``rootfs`` (the stage's root file system) to resolve the destination inside it
    (:func:`~aiopod.builder.sources.destination.resolve_destination`: through the image's
    own symlinks, existing parents repeated as they are); without it every parent is
    written as a new directory.  What goes into the layer, and how ``chown``, ``chmod``,
    ``preserve_ownership``, ``strip_setid`` and ``walk_order`` change it, is
    :func:`~aiopod.builder.sources.copy_plan.plan_copy_layer`'s; ``now`` (default: the
    current time) is the mtime of new directories and of the one that receives the
    items, ``timestamp`` replaces every mtime.

    Blocking; reads every source file once, each checked to be the file the walk saw.
    """
    if now is None:
        now = int(time.time())
    destination = resolve_destination(rootfs, plan.dest_dir) if rootfs is not None else None
    layer = plan_copy_layer(
        entries,
        plan,
        destination=destination,
        chown=chown,
        chmod=chmod,
        now=now,
        preserve_ownership=preserve_ownership,
        strip_setid=strip_setid,
        walk_order=walk_order,
    )
    return write_planned_layer(layer, out=out, timestamp=timestamp)
