"""Registry credentials: the :class:`Credentials` type and the auth files podman keeps.

Which files, as podman 4.3 reads them (measured):

* an auth file chosen by the caller (``--authfile``), else ``$REGISTRY_AUTH_FILE``, else
  ``$DOCKER_CONFIG/config.json``: then that file alone is read and written;
* otherwise credentials are written to ``$XDG_RUNTIME_DIR/containers/auth.json`` (or
  ``/run/containers/UID/auth.json`` when ``XDG_RUNTIME_DIR`` is not set), and read from
  it, then from ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``, then
  ``~/.docker/config.json``, then the legacy ``~/.dockercfg``; the first file that has
  credentials for the key wins.

The format is Docker's: ``{"auths": {KEY: {"auth": base64("USER:PASSWORD")}}}``, where a
key is a registry (``HOST[:PORT]``) or a repository or namespace on one
(``HOST/team/app``): the most specific key that a repository falls under is used, then
keys written as URLs (``https://HOST/v1/``), as in Docker's older files.  Written with
tabs and sorted keys as podman writes it, mode ``0600``, atomically (a temporary file
renamed over the old one), in a directory created ``0700``; other top-level entries of
the file are kept.  Credential helpers (``credHelpers``, ``credsStore``) are not run.

Every function here does blocking file I/O: call them in a worker thread (the login
module and the registry client do).  No password is ever part of a message, a ``repr``
or a log: :class:`Credentials` hides it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiopod.errors import ConfigurationError, NotLoggedIn, UsageError
from aiopod.transports.registry.conffiles import read_config_file

__all__ = (
    "AuthFiles",
    "Credentials",
    "auth_files",
    "find_credentials",
    "remove_all_credentials",
    "remove_credentials",
    "store_credentials",
)

#: The largest auth file read.
MAX_AUTH_FILE_SIZE = 1 << 20

_DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password (or an identity token) for a registry.

    ``repr()`` and ``str()`` show the user name only; the password and token are never
    shown, so that a credential logged by accident gives nothing away.
    """

    username: str
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """``--creds USER[:PASSWORD]`` as podman reads it (the password may be empty).

        :raises ~aiopod.errors.UsageError: empty, or no user name.
        """
        if not text:
            raise UsageError("credentials can't be empty")
        username, _, password = text.partition(":")
        if not username:
            raise UsageError("username can't be empty")
        return cls(username, password)

    def basic_authorization(self) -> str:
        """The ``Authorization`` header value of HTTP Basic authentication."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class AuthFiles:
    """The auth files in reading order, and the one logins write to.  ``chosen`` is true
    when the caller or the environment named the file (then it is the only one);
    ``write_error`` is why there is no file to write (``XDG_RUNTIME_DIR`` names a
    directory that does not exist), raised when a login writes."""

    read: tuple[Path, ...]
    write: Path
    chosen: bool
    legacy: Path | None = None
    write_error: str | None = None


def auth_files(
    authfile: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> AuthFiles:
    """Where credentials are read from and written to (see the module)."""
    env = os.environ if environ is None else environ
    chosen = authfile or env.get("REGISTRY_AUTH_FILE") or None
    if chosen is None and env.get("DOCKER_CONFIG"):
        chosen = Path(env["DOCKER_CONFIG"]) / "config.json"
    if chosen is not None:
        path = Path(chosen)
        return AuthFiles((path,), path, True)
    home = Path(env.get("HOME") or Path.home())
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    write_error = None
    if runtime_dir:
        write = Path(runtime_dir) / "containers" / "auth.json"
        if not os.path.exists(runtime_dir):
            # podman's words, in the shape of its multi-error report.
            write_error = (
                f'1 error occurred:\n\t* "{runtime_dir}" directory set by $XDG_RUNTIME_DIR '
                "does not exist. Either create the directory or unset $XDG_RUNTIME_DIR.: "
                f"stat {runtime_dir}: no such file or directory\n\n"
            )
    else:
        write = Path(f"/run/containers/{os.getuid()}/auth.json")
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    read = [write] if write_error is None else []
    read += [config_home / "containers" / "auth.json", home / ".docker" / "config.json"]
    return AuthFiles(tuple(read), write, False, home / ".dockercfg", write_error)


def _load(path: Path) -> dict[str, Any] | None:
    data = read_config_file(path, MAX_AUTH_FILE_SIZE, f"reading auth file {path}")
    if data is None:
        return None
    if not data.strip():
        return {}
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(
            f'reading JSON file "{path}": unmarshaling JSON at "{path}": {exc}'
        ) from None
    if not isinstance(document, dict):
        raise ConfigurationError(
            f'reading JSON file "{path}": unmarshaling JSON at "{path}": not a JSON object'
        )
    return document


def _auths(document: Mapping[str, Any], path: Path, *, legacy: bool = False) -> dict[str, Any]:
    auths = document if legacy else document.get("auths", {})
    if not isinstance(auths, dict):
        raise ConfigurationError(f'unmarshaling JSON at "{path}": "auths" is not an object')
    return auths


def _normalize_key(key: str) -> str:
    """A key written as a URL (``https://index.docker.io/v1/``) as the registry it names."""
    if key.startswith(("http://", "https://")):
        key = key.split("://", 1)[1]
    key = key.split("/", 1)[0]
    return "docker.io" if key in _DOCKER_HUB_ALIASES else key


def _decode(entry: object, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        raise ConfigurationError(
            f'unmarshaling JSON at "{path}": the entry for {key} is not an object'
        )
    token = entry.get("identitytoken") or ""
    encoded = entry.get("auth") or ""
    if not isinstance(encoded, str) or not isinstance(token, str):
        raise ConfigurationError(f'unmarshaling JSON at "{path}": the entry for {key} is malformed')
    if not encoded:
        return Credentials("", "", token) if token else None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigurationError(
            f"decoding the credentials of {key} in {path}: not base64 of USER:PASSWORD"
        ) from None
    username, colon, password = decoded.partition(":")
    if not colon:
        return None  # as Docker: an entry without a colon is skipped
    return Credentials(username, password.strip("\x00"), token)


def _keys_for(key: str) -> list[str]:
    """``host/a/b`` → ``host/a/b``, ``host/a``, ``host``."""
    parts = key.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _find_in(auths: Mapping[str, Any], key: str, path: Path) -> Credentials | None:
    for candidate in _keys_for(key):
        if candidate in auths:
            return _decode(auths[candidate], path, candidate)
    registry = key.split("/", 1)[0]
    for written, entry in auths.items():
        if _normalize_key(written) == registry:
            return _decode(entry, path, written)
    return None


def find_credentials(key: str, files: AuthFiles) -> Credentials | None:
    """The credentials for *key* (``HOST[:PORT][/repository]``): the most specific entry
    of the first file that has one, or ``None``.

    :raises ~aiopod.errors.ConfigurationError: a file is not valid JSON, or an entry is
        malformed (the password is never part of the message).
    """
    for path in files.read:
        document = _load(path)
        if document is not None:
            found = _find_in(_auths(document, path), key, path)
            if found is not None:
                return found
    if files.legacy is not None:
        document = _load(files.legacy)
        if document is not None:
            return _find_in(_auths(document, files.legacy, legacy=True), key, files.legacy)
    return None


def _write(path: Path, document: Mapping[str, Any]) -> None:
    text = json.dumps(document, indent="\t", sort_keys=True, ensure_ascii=False)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _writable(files: AuthFiles) -> dict[str, Any]:
    if files.write_error is not None:
        raise ConfigurationError(files.write_error)
    return _load(files.write) or {}


def store_credentials(key: str, credentials: Credentials, files: AuthFiles) -> Path:
    """Write *credentials* under *key* in the file logins write to; returns its path.

    The file is replaced atomically (mode ``0600``): a reader sees the old or the new
    file, never a part; a failure leaves the old one.
    """
    document = _writable(files)
    auths = dict(_auths(document, files.write))
    encoded = base64.b64encode(f"{credentials.username}:{credentials.password}".encode())
    auths[key] = {"auth": encoded.decode("ascii")}
    _write(files.write, {**document, "auths": auths})
    return files.write


def remove_credentials(key: str, files: AuthFiles) -> None:
    """Remove the entry *key* (exactly that key) from the file logins write to.

    :raises ~aiopod.errors.NotLoggedIn: the file has no such entry.
    """
    document = _writable(files)
    auths = dict(_auths(document, files.write))
    if key not in auths:
        raise NotLoggedIn(key)
    del auths[key]
    _write(files.write, {**document, "auths": auths})


def remove_all_credentials(files: AuthFiles) -> None:
    """Remove every entry of the file logins write to (``logout --all``)."""
    document = _writable(files)
    if document or files.write.exists():
        _write(files.write, {**document, "auths": {}})
