"""Unpacking an image's layers into a container's root file system.

The layers are applied in order through the root-confined applier
(:mod:`aiopod.storage.applier`), into a directory in a staging area; the store moves the
directory into place when the container is committed.  Blocking; callers run it in a
worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from aiopod.storage.applier import DEFAULT_LIMITS, LayerLimits, apply_layer
from aiopod.storage.fsutil import disk_errors

__all__ = ("open_layers", "unpack_layers")


def open_layers(paths: Sequence[Path]) -> list[int]:
    """Open layer blobs now (under the store lock), so a concurrent removal cannot take
    them away before they are read: an open file stays readable after it is unlinked."""
    fds: list[int] = []
    try:
        for path in paths:
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def unpack_layers(
    rootfs: Path,
    layer_fds: Sequence[int],
    *,
    names: Sequence[str] = (),
    limits: LayerLimits = DEFAULT_LIMITS,
    allow_special_files: bool = False,
) -> list[str]:
    """Apply the layers (open descriptors, base first, called *names* in errors) onto
    *rootfs* within *limits*; return warnings.  Special files are made only with
    *allow_special_files* (:func:`~aiopod.storage.applier.apply_layer`).

    Closes the descriptors.  Raises :class:`~aiopod.errors.UnsafeLayer` or
    :class:`~aiopod.errors.LimitExceeded` for a rejected layer, and
    :class:`~aiopod.errors.StorageFull` when the disk is full.
    """
    with disk_errors("unpacking a root file system", rootfs):
        return _unpack(rootfs, layer_fds, names, limits, allow_special_files)


def _unpack(
    rootfs: Path,
    layer_fds: Sequence[int],
    names: Sequence[str],
    limits: LayerLimits,
    allow_special_files: bool,
) -> list[str]:
    warnings: list[str] = []
    try:
        rootfs.mkdir(mode=0o755, parents=True, exist_ok=True)
        for index, fd in enumerate(layer_fds):
            name = names[index] if index < len(names) else str(index)
            with os.fdopen(fd, "rb", closefd=False, buffering=1 << 20) as stream:
                result = apply_layer(
                    rootfs,
                    stream,
                    limits=limits,
                    allow_special_files=allow_special_files,
                    what=f"layer {name}",
                )
            warnings.extend(f"layer {index}: {w}" for w in result.warnings)
    finally:
        for fd in layer_fds:
            os.close(fd)
    return warnings
