"""The errors aiopod raises.

Every error a user can meet has its own class here, with a docstring that says what to do
about it.  They form a tree under :class:`AiopodError`; its groups are classes a caller can
catch, and each group also derives from the standard exception a Python programmer would
reach for, so ``except LookupError`` around ``await rt.get_image(name)`` works without
knowing aiopod's names::

    Exception
    ├── AiopodError                 every error aiopod raises on purpose
    │   ├── NotKnownError           (also LookupError) what was named is not there
    │   │   ├── ImageNotKnown           no image matches the reference
    │   │   │   ├── DockerNotFound          docker policy: "No such image: X"
    │   │   │   └── ManifestUnknown         the registry has no such manifest
    │   │   ├── ContainerNotKnown       no container has that name or ID
    │   │   ├── TagNotKnown             the name is not one of the image's names
    │   │   ├── NoMatchingPlatform      a multi-platform image has none for this platform
    │   │   └── NotLoggedIn             the auth file has no login for the registry
    │   ├── ConflictError           the store's state does not allow the change
    │   │   ├── ImageInUse              a container uses the image
    │   │   ├── ImageConflict           removal needs force, or cannot be forced
    │   │   │   └── DockerConflict          docker policy: "conflict: unable to ..."
    │   │   ├── NameInUse               the container name is taken
    │   │   └── ContentRemoved          another process removed content the change needs
    │   ├── InvalidInputError       (also ValueError) an argument, file or archive is wrong
    │   │   ├── InvalidReference        malformed image reference or name
    │   │   │   └── DockerInvalidReference  docker policy: "invalid reference format"
    │   │   ├── InvalidArchive          malformed docker-archive, oci-archive or OCI layout
    │   │   ├── DigestMismatch          content does not hash to what its descriptor says
    │   │   ├── UnsafeLayer             a layer writes outside its root, or is malformed
    │   │   ├── LimitExceeded           an input is larger than aiopod accepts
    │   │   ├── DockerfileError         malformed Dockerfile (names file and line)
    │   │   ├── ExpansionError          a Dockerfile word cannot be expanded
    │   │   ├── UserLookupError         USER names a user or group the image lacks
    │   │   ├── AccountFileError        the image's /etc/passwd or /etc/group is unusable
    │   │   ├── UsageError              a command or call was given wrong arguments
    │   │   │   └── TemplateError       a --format Go template is malformed or wrong
    │   │   ├── ConfigurationError      registries.conf, an auth file or certs.d is wrong
    │   │   └── ShortNameNotResolved    a short name and no unqualified-search registries
    │   ├── StoreError              the store cannot be used as it is
    │   │   ├── StoreCorrupted          its metadata cannot be read
    │   │   ├── StoreLockTimeout        (also TimeoutError) another process holds its lock
    │   │   ├── StorageFull             (also OSError) no space left (ENOSPC, EDQUOT)
    │   │   ├── NotAStore               the directory holds something else (podman's store)
    │   │   └── ReadOnlyStore           (also PermissionError) a change to a read-only store
    │   ├── RegistryError           a registry could not be used
    │   │   ├── RegistryUnreachable     (also ConnectionError) no connection to it
    │   │   │   └── TLSVerificationFailed   its certificate was not trusted
    │   │   ├── AuthenticationFailed    (also PermissionError) credentials refused
    │   │   ├── RegistryBlocked         registries.conf blocks it
    │   │   ├── RegistryRequestFailed   it answered with an error
    │   │   ├── PullFailed              no place a pull tried had the image
    │   │   └── UnsupportedManifest     a manifest aiopod does not pull (schema 1)
    │   ├── BuildError              a build step failed
    │   ├── RuntimeStopped          the runtime was used after it was closed
    │   ├── BlockingCallInEventLoop (also RuntimeError) aiopod.sync called in an event loop
    │   └── MissingExtra            (also ImportError) an optional extra is not installed
    ├── OSError
    │   ├── TooManySymlinks         (ELOOP) a path inside a root loops through symlinks
    │   └── PathTooDeep             (ENAMETOOLONG) a path inside a root is too deep
    └── UserWarning
        └── CommitUnfinished        a change was made; a later step of it is pending

Where a class sits, and why:

* **Not known** is a lookup that found nothing: the caller named something (an image, a
  container, one of an image's names) that the store does not hold.  Asking again with
  another name is the remedy, so the group is a :class:`LookupError`.
* **Conflicts** are requests that are well formed and name things that exist, but that
  the store's current state refuses: an image a container uses, an image that needs
  force, a container name that is taken.  Changing the state (remove the container,
  force, pick another name) makes them pass; retrying the same call does not.  No
  standard exception means that, so the group has no second base.
* **Invalid input** is something the caller handed over that is wrong in itself, whatever
  the store holds: a reference, an archive and its content (digests, layers, sizes), a
  Dockerfile and its words, the accounts a Dockerfile's ``USER`` needs from its image,
  or arguments.  It is a :class:`ValueError`.  The build's own input errors are here
  too: :class:`DockerfileError` before a step runs; ``rt.build`` reports an
  :class:`ExpansionError` as the :class:`DockerfileError` that names its line, and a
  :class:`UserLookupError` or :class:`AccountFileError` as the :class:`BuildError` of
  the step that needed the account (the original is its ``__cause__``).
* **Registry problems** are about talking to a registry: it cannot be reached or its
  certificate is not trusted (a :class:`ConnectionError`), it refuses the credentials
  (a :class:`PermissionError`), ``registries.conf`` blocks it, it answers with an error
  (after the retries that a server error or ``429`` earns), or it serves a manifest
  aiopod does not pull.  A manifest the registry does not have is a lookup that found
  nothing (:class:`ManifestUnknown`, an :class:`ImageNotKnown`), and a registry's content
  that fails verification (a digest, a size, a limit) is invalid input
  (:class:`DigestMismatch`, :class:`LimitExceeded`), whoever served it.
* **Store problems** are about the store itself, not the call: its metadata is damaged,
  or another process holds its lock.  The lock's timeout is also a
  :class:`TimeoutError`, so generic timeout handling sees it.
* :class:`BuildError` is a build step that failed while running (RUN's command, a COPY
  source that vanished, a download); :class:`RuntimeStopped` and
  :class:`BlockingCallInEventLoop` are programming errors of the caller (a call that
  would block an event loop is the :class:`RuntimeError` asyncio and anyio raise for
  such misuse).  Each stands alone, as does :class:`MissingExtra` (a helper needs an
  optional extra that is not installed: an :class:`ImportError`, as Python raises).
* :class:`TooManySymlinks` and :class:`PathTooDeep` are not :class:`AiopodError`: aiopod
  resolves paths inside a root file system itself (never following a symlink out of
  it), and where the kernel would fail with ``ELOOP`` or ``ENAMETOOLONG`` it raises
  these, :class:`OSError` subclasses with the same ``errno``, so that code handling
  ``OSError`` (aiopod's and the caller's) treats them as the kernel's own.

The exit status of each error on the command line is the command line's business
(:mod:`aiopod.cli`); a failed RUN keeps its command's status as data
(:attr:`BuildError.command_status`).  ``str()`` of every error is the message the
command line prints after ``Error:``, worded as podman's (tests compare them), and
:attr:`AiopodError.message` is that text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = (
    "AccountFileError",
    "AiopodError",
    "AuthenticationFailed",
    "BlockingCallInEventLoop",
    "BuildError",
    "CommitUnfinished",
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
    "MissingExtra",
    "NameInUse",
    "NoMatchingPlatform",
    "NotAStore",
    "NotKnownError",
    "NotLoggedIn",
    "PathTooDeep",
    "PullFailed",
    "ReadOnlyStore",
    "RegistryBlocked",
    "RegistryError",
    "RegistryRequestFailed",
    "RegistryUnreachable",
    "RuntimeStopped",
    "ShortNameNotResolved",
    "StorageFull",
    "StoreCorrupted",
    "StoreError",
    "StoreLockTimeout",
    "TLSVerificationFailed",
    "TagNotKnown",
    "TemplateError",
    "TooManySymlinks",
    "UnsafeLayer",
    "UnsupportedManifest",
    "UsageError",
    "UserLookupError",
)


class AiopodError(Exception):
    """Base class of every error aiopod raises on purpose; catch a group below it, or
    this to handle them all."""

    @property
    def message(self) -> str:
        """The error text, as the command line prints it after ``Error:``."""
        return str(self)


# -- not known ------------------------------------------------------------------------------


class NotKnownError(AiopodError, LookupError):
    """Something the call named is not in the store; check the name (``aiopod images
    -a``, ``aiopod ps -a --external``) and call again with one that is."""


class NoMatchingPlatform(NotKnownError):
    """A multi-platform image (an index or manifest list) has no image for the platform
    asked for (the host's by default); the message names it.  Pull with ``platform=``
    (``--platform OS/ARCH[/VARIANT]``) naming one the image has."""


class ImageNotKnown(NotKnownError):
    """No image in the store matches the reference; check ``aiopod images -a``, or load,
    import or build the image first."""

    def __init__(self, reference: str, message: str | None = None) -> None:
        self.reference = reference
        super().__init__(message or f"{reference}: image not known")


class DockerNotFound(ImageNotKnown):
    """Under the docker policy: docker's ``No such image: X`` for a removal.

    ``forced`` is whether ``-f`` was given: docker then reports the error but does not
    fail the removal because of it (the report's ``exit_code`` stays 0).
    """

    def __init__(self, reference: str, message: str, *, forced: bool) -> None:
        super().__init__(reference, message)
        self.forced = forced


class ContainerNotKnown(NotKnownError):
    """No container has that name or ID; check ``aiopod ps -a --external``."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f'no container with name or ID "{reference}" found: no such container')


class TagNotKnown(NotKnownError):
    """The name given is not one of the image's names; ``aiopod images`` lists them."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name}: tag not known")


class ManifestUnknown(ImageNotKnown):
    """The registry has no manifest for the tag or digest (or no such repository):
    check the name and tag (``skopeo list-tags docker://REPOSITORY`` lists the tags),
    or push the image there first.

    ``reference`` is the repository and tag or digest as podman prints it; the message
    is podman's (``reading manifest latest in HOST/NAME: manifest unknown: ...``).
    """

    def __init__(self, reference: str, message: str) -> None:
        super().__init__(reference, message)


class NotLoggedIn(NotKnownError):
    """The auth files hold no credentials for the registry (``not logged into X``): log
    in with ``aiopod login``, or name the auth file that has them (``--authfile``)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"not logged into {key}")


# -- conflicts ------------------------------------------------------------------------------


class ConflictError(AiopodError):
    """The store's state refuses the change (a container uses the image, a name is
    taken); change that state, or force the change where that is allowed."""


class ImageInUse(ConflictError):
    """A container uses the image; remove the container first (``aiopod rm``), or force
    the removal, which removes the container with it."""


class ImageConflict(ConflictError):
    """The image cannot be removed as asked: it needs force (``-f``), or cannot be forced
    at all (the message says which, and why)."""


class DockerConflict(ImageConflict):
    """Under the docker policy: docker's ``conflict: unable to ...`` (its daemon's 409);
    force the removal where the message says ``must be forced``."""


class NameInUse(ConflictError):
    """The container name belongs to another container; remove that one or choose
    another name."""


class ContentRemoved(ConflictError):
    """Another process removed content this change needs while it ran: typically
    ``rmi -f`` of a build's base image (which removes the build's working container) or
    of an image a container was being made from.  Nothing was changed; load, pull or
    build the image again, then run the operation again.

    ``digests`` are the blobs that are gone.
    """

    def __init__(self, digests: Sequence[str], operation: str) -> None:
        self.digests = tuple(digests)
        self.operation = operation
        shown = ", ".join(d[:19] for d in self.digests[:3])
        more = f" and {len(self.digests) - 3} more" if len(self.digests) > 3 else ""
        super().__init__(
            f"{operation}: the image content it needs ({shown}{more}) was removed by another "
            "process meanwhile (an image removed with -f?); nothing was changed: bring the "
            "image back (load, pull or build it) and run it again"
        )


# -- invalid input --------------------------------------------------------------------------


class InvalidInputError(AiopodError, ValueError):
    """Something the caller handed over is wrong in itself (a reference, an archive, a
    Dockerfile, arguments); the message names the problem: correct the input."""


class InvalidReference(InvalidInputError):
    """The image reference or name is malformed; the message is podman's and names the
    problem (``invalid reference format``, ``repository name must be lowercase``, ...).

    ``text`` is the input as given; ``reason`` the innermost message (such as ``invalid
    reference format``), without what the caller put in front of it.
    """

    def __init__(self, message: str, *, text: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.reason = message if reason is None else reason


class DockerInvalidReference(InvalidReference):
    """Under the docker policy: docker's ``invalid reference format...`` (its daemon's
    400); correct the reference."""


class InvalidArchive(InvalidInputError):
    """An image archive, OCI layout or registry image is malformed (the message names the
    problem); re-create it with ``podman save``, ``skopeo copy`` or ``aiopod save``, or push
    it again."""


class DigestMismatch(InvalidInputError):
    """Content does not match the digest or size its descriptor promises: the archive
    was damaged or altered; get an intact copy."""


class UnsafeLayer(InvalidInputError):
    """A layer would write outside its root, or holds an entry aiopod refuses (the
    message names it); the image cannot be used as it is."""


class LimitExceeded(InvalidInputError):
    """An input is larger than the configured limit (size, entries, depth, JSON size, a
    layer's uncompressed size or compression ratio); the message names the input and the
    limit, and for a layer the option that raises it (``Runtime(max_layer_size=...,
    max_layer_ratio=...)``, ``--max-layer-size``, ``--max-layer-ratio``)."""


class DockerfileError(InvalidInputError):
    """A Dockerfile is malformed; the message names the file, the line and the
    instruction: correct it there."""

    def __init__(self, message: str, *, path: str = "Dockerfile", line: int = 0) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class ExpansionError(InvalidInputError):
    """A Dockerfile word cannot be expanded: a bad substitution, an unmatched quote,
    ``${X?}`` on an unset ``X``; correct the word.

    ``str()`` is BuildKit's text, ``failed to process "<word>": <reason>``; a build
    reports it as the :class:`DockerfileError` that puts the path and line in front.
    """


class UserLookupError(InvalidInputError):
    """``USER`` (or ``--chown``) names a user or group that the image's ``/etc/passwd``
    or ``/etc/group`` does not have; use a numeric ID, or add the account in an earlier
    step.

    ``which`` is ``"uid"`` when the user part failed and ``"gid"`` when the group part
    did (buildah says "determining run uid" or "determining run gid" before the message).
    """

    def __init__(self, message: str, *, which: Literal["uid", "gid"]) -> None:
        self.which = which
        super().__init__(message)


class AccountFileError(InvalidInputError):
    """The image's ``/etc/passwd`` or ``/etc/group`` cannot be used (not a regular file,
    too large, or a symlink chain that does not end); use numeric IDs, or replace the
    file in an earlier step."""


class UsageError(InvalidInputError):
    """A command or API call was given arguments it does not accept; the message says
    which and what it takes instead."""


class TemplateError(UsageError):
    """A ``--format`` Go template cannot be parsed, or names a field the printed object
    does not have; the message is Go's (``template: images:1:13: executing "images" at
    <.Foo>: can't evaluate field Foo in type images.imageReporter``): fix the template.
    """


class ConfigurationError(InvalidInputError):
    """A configuration file cannot be used: ``registries.conf`` (or a file of
    ``registries.conf.d``), an auth file, or a certificate directory; the message names
    the file and the problem: correct or remove it."""


class ShortNameNotResolved(InvalidInputError):
    """A short name (no registry in it) cannot be pulled: no
    ``unqualified-search-registries`` are configured; use a fully qualified name
    (``docker.io/library/alpine``) or add search registries to ``registries.conf``."""


# -- registry problems ----------------------------------------------------------------------


class RegistryError(AiopodError):
    """A registry could not be used as asked; see the subclass.  The message is podman's
    for the same failure and never contains credentials."""


class RegistryUnreachable(RegistryError, ConnectionError):
    """No connection to the registry (refused, reset, timed out, name not resolved, or a
    plain-HTTP registry asked for HTTPS): check the address and that the registry runs;
    a registry without TLS needs ``--tls-verify=false`` or ``insecure = true`` in
    ``registries.conf``."""


class TLSVerificationFailed(RegistryUnreachable):
    """The registry's TLS certificate was not trusted (or a TLS handshake failed): put
    its CA certificate in ``/etc/containers/certs.d/HOST:PORT/`` (a ``*.crt`` file) or
    give ``--cert-dir``; ``--tls-verify=false`` turns the check off."""


class AuthenticationFailed(RegistryError, PermissionError):
    """The registry refused the credentials, or asked for credentials that were not
    given: log in with ``aiopod login REGISTRY``, or pass ``--creds USER:PASSWORD`` or the
    ``--authfile`` that has them."""


class RegistryBlocked(RegistryError):
    """``registries.conf`` marks the registry ``blocked = true``: use another registry,
    or remove the block from the file the message names."""


class RegistryRequestFailed(RegistryError):
    """The registry answered with an error (the message gives its code and text, or the
    HTTP status), after the retries a server error or ``429 Too Many Requests`` earns:
    retry later, or ask the registry's operator.

    ``status`` is the HTTP status of the last answer (0 when there was none).
    """

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class PullFailed(RegistryError):
    """None of the places a pull tried had the image (a short name tried with each search
    registry, say); the message lists each place's error, as podman does, and ``errors``
    holds them: check the name, or pull it fully qualified."""

    def __init__(self, message: str, *, errors: Sequence[AiopodError] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


class UnsupportedManifest(RegistryError):
    """The registry served a manifest aiopod does not pull: Docker's schema 1 (an image
    pushed by Docker before 1.10) or an unknown media type; re-push the image with a
    current tool (``skopeo copy`` converts it)."""


# -- store problems -------------------------------------------------------------------------


class StoreError(AiopodError):
    """The store cannot be used as it is: its metadata is damaged, or another process
    holds it; see the subclass."""


class StoreCorrupted(StoreError):
    """The store's metadata cannot be read; run ``aiopod system check --repair``."""


class StoreLockTimeout(StoreError, TimeoutError):
    """The store lock was not acquired in time: another process is holding it.  Wait for
    that process (the message names the lock file), or give ``Runtime`` a longer
    ``lock_timeout``."""


class StorageFull(StoreError, OSError):
    """The file system of the store (or of a file aiopod writes for it) is full, or the
    user's disk quota is used up (``ENOSPC``, ``EDQUOT``): the operation did not happen and
    the store is as it was.  Free space (``aiopod rmi``, ``aiopod rm`` and ``aiopod image
    prune`` work on a full disk) or raise the quota, then run the operation again.

    ``path`` is the file that could not be written, ``operation`` what was being done
    (``tag``, ``remove``, ``load``, ...); ``errno`` is the kernel's, as for the
    :class:`OSError` it also is.
    """

    def __init__(self, path: str, operation: str, *, errno: int | None = None) -> None:
        self.path = path
        self.operation = operation
        errno = 28 if errno is None else errno  # ENOSPC unless EDQUOT (122) was met
        reason = "disk quota exceeded" if errno == 122 else "no space left on device"
        super().__init__(
            errno,
            f"{operation}: {reason} writing {path}; the store is unchanged: free space "
            "(aiopod rmi, aiopod rm and aiopod image prune work on a full disk) and try again",
        )
        self.filename = path

    def __str__(self) -> str:
        return str(self.strerror)


class NotAStore(StoreError):
    """The store directory is not empty and is not an aiopod store (the message says what
    it found, podman's own store for instance): give ``--root`` a new or empty directory,
    or pass ``create=True`` (``--create``) to make a store in that directory anyway (never
    allowed in podman's store or over an OCI image layout).  A read-only runtime also
    raises it for a directory that is no store at all."""


class ReadOnlyStore(StoreError, PermissionError):
    """A change was asked of a store opened read-only (``read_only=True``, ``--read-only``,
    or a store the caller cannot write), or of an image that an additional store holds
    (``additional_stores``): reading works, changing does not.  Open the store writable,
    as a user who may write it, or change the image in the store that holds it."""


# -- builds and the runtime -----------------------------------------------------------------


class BuildError(AiopodError):
    """A build step failed; the message names the step (and for RUN the command, its
    exit status and the tail of its output): fix the step or what it uses.

    A failed RUN sets ``command_status`` to the command's exit status (``None`` for any
    other failure; ``podman build`` and ``aiopod build`` exit with it) and
    ``output_tail`` to the end of its output: ``str()`` of the error ends with that tail,
    :attr:`message` (what the command line prints, after the output it already showed)
    does not.
    """

    def __init__(
        self, message: str, *, command_status: int | None = None, output_tail: str = ""
    ) -> None:
        super().__init__(f"{message}\n{output_tail}" if output_tail else message)
        self._summary = message
        self.output_tail = output_tail
        self.command_status = command_status

    @property
    def message(self) -> str:
        """The error without the output tail, as the command line prints it."""
        return self._summary


class RuntimeStopped(AiopodError):
    """The runtime was used after it was closed; open a new ``Runtime``."""

    def __init__(self, message: str = "runtime has already been stopped") -> None:
        super().__init__(message)


class BlockingCallInEventLoop(AiopodError, RuntimeError):
    """A blocking call of :mod:`aiopod.sync` was made in a thread that runs an event loop
    (a coroutine, a Jupyter cell, a progress callback), which it would stall: there,
    ``await`` the same call of the async :class:`aiopod.Runtime`, or make the blocking call
    from a worker thread (``await anyio.to_thread.run_sync(...)``).

    ``call`` is the method called; ``library`` the event loop found (``"asyncio"``,
    ``"trio"``).
    """

    def __init__(self, call: str, library: str) -> None:
        self.call = call
        self.library = library
        super().__init__(
            f"aiopod.sync.Runtime.{call}() cannot be called in a thread that runs an "
            f"event loop ({library}): it would block the loop; await aiopod.Runtime's "
            f"{call}() there instead, or call it from a worker thread"
        )


class MissingExtra(AiopodError, ImportError):
    """A helper needs an optional part of aiopod that is not installed (matplotlib for
    :func:`aiopod.notebook.plot_store`): install the extra the message names
    (``pip install 'aiopod[plot]'``).

    ``extra`` is the extra's name; ``module`` the module that could not be imported.
    """

    def __init__(self, extra: str, module: str, needed_by: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{needed_by} needs {module}, which is not installed: pip install 'aiopod[{extra}]'"
        )


# -- paths inside a root file system --------------------------------------------------------


class TooManySymlinks(OSError):
    """More symlinks than allowed were met while resolving a path inside a root file
    system (``errno`` is ``ELOOP``, ``filename`` the component): the image or build
    context holds a symlink loop there; remove it, or use another path."""


class PathTooDeep(OSError):
    """A path inside a root file system has more components than allowed (``errno`` is
    ``ENAMETOOLONG``, ``filename`` the component); use a shallower path."""


# -- warnings -------------------------------------------------------------------------------


class CommitUnfinished(UserWarning):
    """A change was made (its commit point, the replacement of the store's metadata, was
    passed) but a step after it failed, most often for want of space: rendering
    ``index.json``, appending its events to the log, deleting blobs or cleaning up its
    journal.  The operation's result stands; the next command that opens or changes the
    store finishes the step (free space if the message says the disk is full).  The
    command line prints it as ``WARNING: ...`` and exits 0.
    """
