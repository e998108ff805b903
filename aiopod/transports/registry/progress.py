"""What a pull or a push reports while it runs: typed records, each with podman's line.

:meth:`aiopod.Runtime.pull` and :meth:`aiopod.Runtime.push` (``progress=``) report a
transfer as a sequence of records.  Each record's :attr:`text` is what podman 4.3 prints
for it on its standard error when that is not a terminal (measured against a local
``docker-registry``)::

    PullStarted        Trying to pull 127.0.0.1:5000/app:1...       (pull only)
    CopyStarted        Getting image source signatures
    BlobStarted        Copying blob sha256:9dcb8fc3c411...          (every layer, present or not)
                       Copying config sha256:9cea481cf335...        (then the config)
    BlobProgress       (nothing) bytes done of a blob being transferred
    BlobDone           (nothing) a blob is verified and staged, or was skipped
    ManifestWriting    Writing manifest to image destination
    SignaturesStoring  Storing signatures

podman prints the same ``Copying blob`` line for a blob that is not transferred because
the destination has it; ``BlobStarted.skipped`` tells the two apart.

The records go to a callable, called in the event loop's thread; it must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = (
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
)


@dataclass(frozen=True, slots=True)
class NameResolved:
    """A short name was resolved (podman's ``Resolving "NAME" using unqualified-search
    registries (FILE)`` or ``Resolved "NAME" as an alias (FILE)``), as ``line``."""

    line: str

    @property
    def text(self) -> str:
        """The line and a newline."""
        return f"{self.line}\n"


@dataclass(frozen=True, slots=True)
class PullStarted:
    """A pull of *reference* (as podman names it) begins."""

    reference: str

    @property
    def text(self) -> str:
        """``Trying to pull <reference>...``"""
        return f"Trying to pull {self.reference}...\n"


@dataclass(frozen=True, slots=True)
class CopyStarted:
    """The source is open; blobs come next."""

    @property
    def text(self) -> str:
        """``Getting image source signatures``"""
        return "Getting image source signatures\n"


@dataclass(frozen=True, slots=True)
class BlobStarted:
    """A layer (``kind="blob"``) or the config begins; ``skipped`` when it is not
    transferred because the other side has it already."""

    digest: str
    size: int
    kind: Literal["blob", "config"] = "blob"
    skipped: bool = False

    @property
    def text(self) -> str:
        """``Copying blob <digest>`` or ``Copying config <digest>``"""
        return f"Copying {self.kind} {self.digest}\n"


@dataclass(frozen=True, slots=True)
class BlobProgress:
    """``done`` of ``total`` bytes of a blob have been transferred."""

    digest: str
    done: int
    total: int

    @property
    def text(self) -> str:
        """Nothing: podman shows this only as a progress bar on a terminal."""
        return ""


@dataclass(frozen=True, slots=True)
class BlobDone:
    """A blob is transferred and verified (or was skipped)."""

    digest: str
    size: int

    @property
    def text(self) -> str:
        """Nothing."""
        return ""


@dataclass(frozen=True, slots=True)
class ManifestWriting:
    """Every blob is in place; the manifest is written."""

    @property
    def text(self) -> str:
        """``Writing manifest to image destination``"""
        return "Writing manifest to image destination\n"


@dataclass(frozen=True, slots=True)
class SignaturesStoring:
    """The last step podman reports (aiopod stores no signatures; the line is podman's)."""

    @property
    def text(self) -> str:
        """``Storing signatures``"""
        return "Storing signatures\n"


TransferRecord: TypeAlias = (
    NameResolved
    | PullStarted
    | CopyStarted
    | BlobStarted
    | BlobProgress
    | BlobDone
    | ManifestWriting
    | SignaturesStoring
)

#: Where transfer records go: called in the event loop's thread, it must not block.
TransferCallback: TypeAlias = Callable[[TransferRecord], None]
