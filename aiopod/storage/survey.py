"""What a directory holds before a store is opened in it: nothing, an aiopod store,
podman's store (containers/storage), an OCI image layout, or something else.

``Store.open`` creates a store only where there is nothing yet (a missing or empty
directory), or where the caller asked for it (``create=True``); it never makes one
inside podman's store or over an OCI layout (whose ``index.json`` it would rewrite).
Blocking: call from a worker thread.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

__all__ = ("RootKind", "describe", "survey_root")

#: Entries of a containers/storage root (podman, buildah, CRI-O): ``storage.lock``, the
#: driver's ``<driver>-images``/``-layers``/``-containers`` directories, libpod's database.
_PODMAN_FILES = frozenset({"storage.lock", "userns.lock", "libpod", "defaultNetworkBackend"})
_PODMAN_SUFFIXES = ("-images", "-layers", "-containers")


class RootKind(enum.Enum):
    """What :func:`survey_root` found."""

    MISSING = "missing"
    EMPTY = "empty"
    AIOPOD = "aiopod"
    PODMAN = "podman"
    OCI_LAYOUT = "oci-layout"
    OTHER = "other"


def survey_root(root: str | os.PathLike[str]) -> RootKind:
    """What *root* is (a file, or a directory that cannot be listed, raises OSError)."""
    path = Path(root)
    try:
        names = set(os.listdir(path))
    except FileNotFoundError:
        return RootKind.MISSING
    if not names - {"lost+found"}:  # a new file system mounted there is empty too
        return RootKind.EMPTY
    if (path / "aiopod").is_dir():
        return RootKind.AIOPOD
    if names & _PODMAN_FILES or any(n.endswith(_PODMAN_SUFFIXES) for n in names):
        return RootKind.PODMAN
    if "oci-layout" in names or "index.json" in names:
        return RootKind.OCI_LAYOUT
    return RootKind.OTHER


def describe(kind: RootKind) -> str:
    """How a message names what was found: ``"podman's store (containers/storage)"``."""
    return {
        RootKind.MISSING: "no directory",
        RootKind.EMPTY: "an empty directory",
        RootKind.AIOPOD: "an aiopod store",
        RootKind.PODMAN: "podman's store (containers/storage)",
        RootKind.OCI_LAYOUT: "an OCI image layout that is not an aiopod store",
        RootKind.OTHER: "a directory that is not empty and is not an aiopod store",
    }[kind]
