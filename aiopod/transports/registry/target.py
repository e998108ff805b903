"""What a pull or a push is aimed at: the repository object, the reference inside it and
the names podman gives the result, and the registry options of the call.

:class:`RegistryOptions` carries the caller's transport settings (TLS, credentials, auth
file, certificates) to whatever opens the repository; :class:`RepositoryTarget` is what
comes back, for the store side to use without knowing which kind of repository it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiopod.transports.registry.credentials import Credentials
from aiopod.transports.registry.endpoints import ImageDestination, ImageSource
from aiopod.transports.registry.retry import RetryPolicy

__all__ = ("RegistryOptions", "Repository", "RepositoryTarget")


class Repository(ImageSource, ImageDestination, Protocol):
    """A repository that images can be pulled from and pushed to."""


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """A pull's or push's registry options, as podman's flags give them.

    ``tls_verify``: ``True``/``False`` as ``--tls-verify`` (``False`` also allows plain
    HTTP); ``None`` lets ``registries.conf`` decide (``insecure``).  ``cert_dir``:
    ``--cert-dir``.  ``credentials``: ``--creds`` (sent only to the registry the user
    named, never to a mirror on another host); otherwise the auth files are read
    (``authfile``: ``--authfile``).  ``retry``: ``--retry``/``--retry-delay``.
    """

    tls_verify: bool | None = None
    cert_dir: Path | None = None
    credentials: Credentials | None = None
    authfile: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def insecure(self, configured: bool) -> bool:
        """Whether a registry whose configuration says *configured* is used insecurely."""
        return configured if self.tls_verify is None else not self.tls_verify


@dataclass(frozen=True, slots=True)
class RepositoryTarget:
    """A repository and a reference inside it, as a pull or push sees them.

    ``reference`` is a tag or a ``sha256:`` digest in ``repository`` (``""``: the only
    image of an OCI layout); ``name`` is the name a pulled image gets in the store (None
    for none) and ``event_name`` the name its ``Pulled``/``Pushed`` event carries (both
    podman's); ``announce`` says whether podman prints ``Trying to pull …`` for it (it does
    for registries, not for ``oci:`` directories).
    """

    repository: Repository
    reference: str
    name: str | None
    event_name: str
    announce: bool = True
