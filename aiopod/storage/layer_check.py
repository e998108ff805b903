"""Checks of layer entries that need no file system, and a scan of a whole layer.

:class:`EntryChecker` holds the rules every entry of a layer must pass before anything is
written: the entry count, names and link targets (no NUL, bounded length and depth, no
climbing out of the root with ``..``, no whiteout name used as a directory), valid
whiteouts (``.wh.``, ``.wh..``, ``.wh...`` are refused), the root entry only ever a
directory, and known entry types.  The applier runs it on every entry it applies;
:func:`scan_layer` runs it over a whole layer without writing anything, which is how a
load refuses a hostile layer before the image enters the store.

Blocking; callers run it in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from aiopod.errors import LimitExceeded, UnsafeLayer
from aiopod.storage.compression import RATIO_AFTER
from aiopod.storage.rootfs_path import split_path
from aiopod.storage.tar_reader import TarMember, TarReader

__all__ = (
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_LAYER_RATIO",
    "DEFAULT_MAX_LAYER_SIZE",
    "EntryChecker",
    "LayerLimits",
    "scan_layer",
)

OPAQUE = ".wh..wh..opq"

#: 64 GiB: larger than any single layer of published images (the largest, of machine
#: learning images, hold a few GiB to a few tens of GiB).
DEFAULT_MAX_LAYER_SIZE = 64 << 30
#: Gzip cannot exceed 1032:1, and only on runs of one byte; a gzip layer above 1000:1 is
#: more than 99.99 % zeros.  Real layers stay under 20:1.  Judged only past
#: ``RATIO_AFTER`` (1 GiB) of output, so a small layer of zeros passes.
DEFAULT_MAX_LAYER_RATIO = 1000.0


@dataclass(frozen=True)
class LayerLimits:
    """Bounds on one layer; exceeding any of them raises :class:`LimitExceeded`.

    The defaults of the size and ratio are chosen so that no real image reaches them
    (``docs/design/hostile-input.md``, L24); ``Runtime(max_layer_size=...,
    max_layer_ratio=...)`` sets them for a store's loads, imports, pulls and root file
    systems.
    """

    max_bytes: int = DEFAULT_MAX_LAYER_SIZE
    """Uncompressed bytes of the tar stream (headers and padding included)."""
    max_entries: int = 1_000_000
    max_path_length: int = 4096
    """Bytes in an entry's name or link target."""
    max_path_depth: int = 256
    """Components in an entry's name, and directories a resolution may descend."""
    max_pax_header_bytes: int = 1 << 20
    """Size of one PAX extended header or GNU long name."""
    max_symlink_hops: int = 40
    max_compression_ratio: float | None = DEFAULT_MAX_LAYER_RATIO
    """Uncompressed/compressed bytes; ``None`` disables the check."""
    ratio_after_bytes: int = RATIO_AFTER
    """Uncompressed bytes before the ratio is judged: a small layer may compress well."""


DEFAULT_LIMITS = LayerLimits()


class EntryChecker:
    """The file-system-free rules for the entries of one layer (counts across calls)."""

    def __init__(self, limits: LayerLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.entries = 0

    def check_text(self, name: str, text: str, what: str) -> None:
        """No NUL byte, and at most ``max_path_length`` bytes."""
        if "\x00" in text:
            raise UnsafeLayer(f"layer entry {name!r}: NUL byte in its {what}")
        if len(text.encode("utf-8", "surrogateescape")) > self.limits.max_path_length:
            raise LimitExceeded(
                f"layer entry {name[:80]!r}...: {what} longer than "
                f"{self.limits.max_path_length} bytes"
            )

    def check_name(self, name: str, text: str, what: str) -> tuple[str, ...]:
        """Validate ``text`` (the entry's name or hard link target) and split it."""
        self.check_text(name, text, what)
        try:
            parts = split_path(text)
        except ValueError:
            raise UnsafeLayer(
                f"layer entry {name!r}: {what} {text!r} climbs out of the root with '..'"
            ) from None
        if len(parts) > self.limits.max_path_depth:
            raise LimitExceeded(
                f"layer entry {name[:80]!r}...: {what} deeper than "
                f"{self.limits.max_path_depth} components"
            )
        if any(p.startswith(".wh.") for p in parts[:-1]):
            raise UnsafeLayer(f"layer entry {name!r}: whiteout name used as a directory")
        return parts

    def check(self, member: TarMember) -> tuple[str, ...]:
        """Every rule for one entry; returns its name split into components."""
        self.entries += 1
        name = member.name
        if self.entries > self.limits.max_entries:
            raise LimitExceeded(
                f"layer has more than {self.limits.max_entries} entries (at {name!r})"
            )
        parts = self.check_name(name, name, "name")
        if not parts:
            if not member.isdir():
                raise UnsafeLayer(
                    f"layer entry {name!r} would replace the root directory "
                    "with something else than a directory"
                )
            return parts
        base = parts[-1]
        if base.startswith(".wh."):
            special = base == OPAQUE or base.startswith(".wh..wh.")
            if not special and base[len(".wh.") :] in ("", ".", ".."):
                raise UnsafeLayer(f"layer entry {name!r} is an invalid whiteout")
            return parts
        if member.issym():
            self.check_text(name, member.linkname, "link target")
        elif member.islnk():
            self.check_name(name, member.linkname, "link target")
        elif not (
            member.isdir() or member.isreg() or member.isfifo() or member.ischr() or member.isblk()
        ):
            raise UnsafeLayer(f"layer entry {name!r} has an unsupported type {member.type!r}")
        return parts


def scan_layer(stream: BinaryIO, limits: LayerLimits = DEFAULT_LIMITS) -> int:
    """Read a whole (uncompressed) layer tar and check every entry; return the count.

    Nothing is written.  Raises :class:`UnsafeLayer` or :class:`LimitExceeded` for a
    layer the applier would refuse on its own account.
    """
    checker = EntryChecker(limits)
    reader = TarReader(stream, max_header_bytes=limits.max_pax_header_bytes)
    for member in reader:
        checker.check(member)
    return checker.entries
