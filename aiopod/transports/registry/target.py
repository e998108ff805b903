"""What a pull or a push is aimed at: the repository object, the reference inside it and
the names podman gives the result, and the registry options of the call.

:class:`RegistryOptions` carries the caller's transport settings (TLS, credentials, auth
file, certificates) to whatever opens the repository; :class:`RepositoryTarget` is what
comes back, for the store side to use without knowing which kind of repository it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from aiopod.transports.registry.endpoints import ImageDestination, ImageSource

__all__ = ("RegistryOptions", "Repository", "RepositoryTarget")


class Repository(ImageSource, ImageDestination, Protocol):
    """A repository that images can be pulled from and pushed to."""


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach a registry: ``tls_verify`` (False also allows plain HTTP),
    ``credentials`` (``USER:PASSWORD``, or a ``(user, password)`` pair), ``authfile``,
    ``cert_dir``, and ``retry`` (how many times a failed transfer is tried again).

    The ``repr`` never shows the credentials."""

    tls_verify: bool = True
    credentials: str | tuple[str, str] | None = field(default=None, repr=False)
    authfile: str | os.PathLike[str] | None = None
    cert_dir: str | os.PathLike[str] | None = None
    retry: int = 3


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
