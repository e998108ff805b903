"""Certificates for a registry: ``certs.d`` directories to an :class:`ssl.SSLContext`.

As containers/image does for podman:

* the directory is ``--cert-dir`` when given; else the first of
  ``~/.config/containers/certs.d/HOST:PORT``, ``/etc/containers/certs.d/HOST:PORT`` and
  ``/etc/docker/certs.d/HOST:PORT`` that exists (``HOST`` alone for the default port);
* in it, ``*.crt`` files are CA certificates trusted besides the system's, and each
  ``NAME.cert`` with its ``NAME.key`` is a client certificate (one without the other is
  an error); other files are ignored;
* without verification (``--tls-verify=false``, or an ``insecure`` registry), the
  server's certificate is not checked, but client certificates are still offered.

A context presents the first client certificate pair in name order (Python's
:class:`ssl.SSLContext` holds one chain; Go's client picks among several).

:func:`ssl_context` reads files and the system's CA store: it blocks, so callers run it in
a worker thread (:class:`~aiopod.transports.registry.transport.RegistryTransport` does).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiopod.errors import ConfigurationError

__all__ = ("CERTS_DIRS", "TLSConfig", "host_cert_dir", "ssl_context")

#: The per-host certificate directories, in the order they are tried (after the user's).
CERTS_DIRS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
_USER_CERTS_DIR = Path(".config/containers/certs.d")


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """How to reach ``host`` (``HOST[:PORT]`` as the user names the registry) over TLS:
    ``verify`` the server's certificate or not, and ``cert_dir`` given by the caller
    (``--cert-dir``; ``None`` looks in the ``certs.d`` directories).  Hashable: the
    transport keeps one connection pool per distinct value."""

    host: str
    verify: bool = True
    cert_dir: Path | None = None


def host_cert_dir(
    host: str, cert_dir: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The certificate directory for *host*, or ``None`` when none exists."""
    if cert_dir is not None:
        return cert_dir
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    for base in (home / _USER_CERTS_DIR, *CERTS_DIRS):
        candidate = base / host
        if candidate.is_dir():
            return candidate
    return None


def _certificate_files(directory: Path) -> tuple[list[Path], list[tuple[Path, Path]]]:
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    except OSError as exc:
        raise ConfigurationError(
            f"reading certificates in {directory}: {exc.strerror or exc}"
        ) from None
    present = set(names)
    cas: list[Path] = []
    pairs: list[tuple[Path, Path]] = []
    for name in names:
        if name.endswith(".crt"):
            cas.append(directory / name)
        elif name.endswith(".cert"):
            key = name[: -len(".cert")] + ".key"
            if key not in present:
                raise ConfigurationError(
                    f"missing key {key} for client certificate {name}. Note that CA "
                    "certificates should use the extension .crt"
                )
            pairs.append((directory / name, directory / key))
        elif name.endswith(".key"):
            cert = name[: -len(".key")] + ".cert"
            if cert not in present:
                raise ConfigurationError(f"missing client certificate {cert} for key {name}")
    return cas, pairs


def ssl_context(config: TLSConfig, *, environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The SSL context for *config* (blocking: reads the certificate files).

    :raises ~aiopod.errors.ConfigurationError: a certificate or key cannot be used, or
        a client certificate lacks its key (or the reverse).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # create_default_context's
    if config.verify:
        context.load_default_certs()  # the system's CAs (tens of ms: only when verifying)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = host_cert_dir(config.host, config.cert_dir, environ=environ)
    if directory is None:
        return context
    cas, pairs = _certificate_files(directory)
    try:
        for ca in cas:
            context.load_verify_locations(cafile=ca)
        if pairs:
            cert, key = pairs[0]
            context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"loading certificates from {directory}: {exc}") from None
    return context
