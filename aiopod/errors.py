"""The errors aiopod raises.

Every error a user can hit has its own class, and every class derives from
:class:`AiopodError`.  The hierarchy is deliberately flat::

    AiopodError
    ├── RuntimeStopped          the runtime was used after it was closed
    ├── ImageNotKnown           no image matches the reference            (exit 1)
    ├── ContainerNotKnown       no container matches the name or ID       (exit 1)
    ├── NameInUse               the container name is taken
    ├── ImageInUse              a container uses the image                (exit 2)
    ├── InvalidReference        malformed image reference or name         (exit 125)
    ├── TagNotKnown             the name is not one of the image's names  (exit 125)
    ├── ImageConflict           removal needs force, or cannot be forced  (exit 125)
    ├── InvalidArchive          a docker-archive / oci-archive / OCI layout is malformed
    ├── DigestMismatch          content does not hash to what its descriptor says
    ├── UnsafeLayer             a layer tries to write outside its root, or is malformed
    ├── LimitExceeded           an input is larger than aiopod accepts
    ├── DockerfileError         a Dockerfile is malformed (names file, line, instruction)
    ├── BuildError              a build step failed (the step; RUN: command, exit code)
    ├── StoreCorrupted          the store's metadata cannot be read; run ``system check``
    ├── StoreLockTimeout        another process holds the store lock too long
    └── UsageError              a command or call was given wrong arguments

``exit_code`` is the command line's exit status for the error, as podman uses them:
1 for "image not known", 2 for "in use by a container", 125 for everything else (a
failed ``RUN``: the command's own exit status, as ``podman build``).
"""

from __future__ import annotations

__all__ = (
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


class AiopodError(Exception):
    """Base class of every error aiopod raises on purpose."""

    exit_code: int = 125

    @property
    def message(self) -> str:
        """The error text, as the command line prints it after ``Error:``."""
        return str(self)


class RuntimeStopped(AiopodError):
    """The runtime was used after it was closed; open a new ``Runtime``."""

    def __init__(self, message: str = "runtime has already been stopped") -> None:
        super().__init__(message)


class ImageNotKnown(AiopodError):
    """No image in the store matches the reference; check ``aiopod images -a``."""

    exit_code = 1

    def __init__(self, reference: str, message: str | None = None) -> None:
        self.reference = reference
        super().__init__(message or f"{reference}: image not known")


class ContainerNotKnown(AiopodError):
    """No container has that name or ID; check ``aiopod ps -a --external``."""

    exit_code = 1

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f'no container with name or ID "{reference}" found: no such container')


class NameInUse(AiopodError):
    """The container name belongs to another container; remove it or choose another."""


class ImageInUse(AiopodError):
    """A container uses the image; remove the container first, or force the removal."""

    exit_code = 2


class InvalidReference(AiopodError):
    """The image reference or name is malformed (podman's message names the problem)."""


class TagNotKnown(AiopodError):
    """The name given is not one of the image's names."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name}: tag not known")


class ImageConflict(AiopodError):
    """The image cannot be removed as asked: it needs force, or cannot be forced at all."""


class InvalidArchive(AiopodError):
    """An image archive or OCI layout is malformed; the message names the problem."""


class DigestMismatch(AiopodError):
    """Content does not match the digest or size its descriptor promises."""


class UnsafeLayer(AiopodError):
    """A layer would write outside its root, or holds an entry aiopod refuses."""


class LimitExceeded(AiopodError):
    """An input is larger than the configured limit (size, entries, depth, JSON size)."""


class StoreCorrupted(AiopodError):
    """The store's metadata cannot be read; run ``aiopod system check --repair``."""


class StoreLockTimeout(AiopodError):
    """The store lock was not acquired in time; another process is holding it."""


class UsageError(AiopodError):
    """A command or API call was given arguments it does not accept."""


class DockerfileError(AiopodError):
    """A Dockerfile is malformed; the message names the file, the line and the instruction."""

    def __init__(self, message: str, *, path: str = "Dockerfile", line: int = 0) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class BuildError(AiopodError):
    """A build step failed; the message names the step (and for RUN the command, its exit
    code and the tail of its output).

    A failed RUN sets ``exit_code`` to the command's exit status (podman's ``build`` exits
    with it) and ``output_tail`` to the end of its output: ``str()`` of the error ends with
    that tail, :attr:`message` (what the command line prints, after the output it already
    showed) does not.
    """

    def __init__(
        self, message: str, *, exit_code: int | None = None, output_tail: str = ""
    ) -> None:
        super().__init__(f"{message}\n{output_tail}" if output_tail else message)
        self._summary = message
        self.output_tail = output_tail
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        """The error without the output tail, as the command line prints it."""
        return self._summary
