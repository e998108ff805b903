"""``login`` and ``logout``: credentials checked against a registry, then kept or removed.

As podman 4.3 (measured against Debian's ``docker-registry`` with htpasswd):

* the argument is a registry (``HOST[:PORT]``), a namespace or repository on one
  (``HOST/team/app``: credentials for that part only), or a URL (``https://HOST/v2/``:
  its host); a tag or digest is refused (``reference "X" contains tag or digest``);
  without one, the first ``unqualified-search-registries`` entry is used;
* ``login`` checks the credentials as podman does (ping, then ``GET /v2/`` authenticated:
  a Bearer token with no scope, or Basic) *before* writing them; refused credentials are
  ``logging into "KEY": invalid username/password``, anything else ``authenticating creds
  for "KEY": ...``; without new credentials the stored ones are checked instead;
* ``logout`` removes exactly that key from the file logins write to (``not logged into
  KEY`` when it is not there), or every key (``all``); credentials of the key kept by
  another tool's file (``~/.docker/config.json``) are left alone, as podman does (it
  then tells the user to use ``docker logout``).

The TLS settings come from ``tls_verify``, else from ``registries.conf`` (``insecure``,
``blocked``), and ``cert_dir``/``certs.d``.  Cancellation: a cancelled login writes
nothing (the file is written only after the check, atomically, in a worker thread that
is waited for); a cancelled logout removes the key or not, never half a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import httpx

from aiopod._reference import parse_reference
from aiopod.errors import (
    AiopodError,
    AuthenticationFailed,
    ConfigurationError,
    InvalidReference,
    NotLoggedIn,
    UsageError,
)
from aiopod.transports.registry.client import RegistryClient, with_context
from aiopod.transports.registry.config import RegistriesConf, read_registries_conf
from aiopod.transports.registry.credentials import (
    AuthFiles,
    Credentials,
    auth_files,
    find_credentials,
    remove_all_credentials,
    remove_credentials,
    store_credentials,
)
from aiopod.transports.registry.retry import RetryPolicy

__all__ = (
    "LoginOutcome",
    "LogoutOutcome",
    "credentials_key",
    "logged_in_user",
    "login",
    "logout",
)


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """What a login did: ``key`` the auth-file key, ``registry`` its host; ``reused``
    when the stored credentials were valid and nothing was written; ``path`` the file
    written (``None`` when ``reused``)."""

    key: str
    registry: str
    reused: bool
    path: Path | None


@dataclass(frozen=True, slots=True)
class LogoutOutcome:
    """What a logout did: the key removed (``None`` for all of them), or, when
    ``other_tool`` is set, the key left alone because only another tool's file
    (``docker login``'s) holds valid credentials for it."""

    key: str | None
    other_tool: bool = False


def credentials_key(text: str) -> tuple[str, str]:
    """``(key, registry)`` for a login or logout argument (see the module).

    :raises ~aiopod.errors.InvalidReference: malformed, or with a tag or digest.
    """
    key = text
    if text.startswith(("http://", "https://")):
        key = httpx.URL(text).netloc.decode("ascii")
    registry = key.split("/", 1)[0]
    if registry == key:
        return key, registry
    try:
        ref = parse_reference(key)
    except InvalidReference as exc:
        raise with_context(exc, f'parse reference from "{key}": ') from None
    if ref.tag is not None or ref.digest is not None:
        raise InvalidReference(f'reference "{key}" contains tag or digest', text=text)
    return key, registry


async def _key(registry: str | None, conf: RegistriesConf | None) -> tuple[str, str]:
    if registry:
        return credentials_key(registry)
    conf = conf or await read_registries_conf()
    if not conf.search_registries:
        raise UsageError("no registries found in registries.conf, a registry must be provided")
    first = conf.search_registries[0]
    return first, first


async def _find(key: str, files: AuthFiles) -> Credentials | None:
    return await anyio.to_thread.run_sync(lambda: find_credentials(key, files))


async def logged_in_user(registry: str, *, authfile: str | Path | None = None) -> str:
    """The user name stored for *registry* (``login --get-login``).

    :raises ~aiopod.errors.NotLoggedIn: no credentials are stored for it.
    """
    key, _ = credentials_key(registry)
    try:
        found = await _find(key, auth_files(authfile))
    except ConfigurationError as exc:
        raise with_context(exc, "get credentials: ") from None
    if found is None or not found.username:
        raise NotLoggedIn(key)
    return found.username


async def _check(
    http: httpx.AsyncClient,
    registry: str,
    credentials: Credentials,
    *,
    tls_verify: bool | None,
    cert_dir: Path | None,
    conf: RegistriesConf | None,
    retry: RetryPolicy | None,
) -> None:
    insecure = False
    if tls_verify is None or conf is not None:
        conf = conf or await read_registries_conf()
        entry = conf.find(registry)
        if entry is not None:
            if entry.blocked:
                raise conf.blocked_error(entry)
            insecure = entry.insecure
    if tls_verify is not None:
        insecure = not tls_verify
    client = RegistryClient(
        http, registry, insecure=insecure, cert_dir=cert_dir, credentials=credentials, retry=retry
    )
    await client.check_auth()


async def login(
    http: httpx.AsyncClient,
    registry: str | None,
    username: str | None = None,
    password: str | None = None,
    *,
    authfile: str | Path | None = None,
    tls_verify: bool | None = None,
    cert_dir: str | Path | None = None,
    conf: RegistriesConf | None = None,
    retry: RetryPolicy | None = None,
) -> LoginOutcome:
    """Check credentials against *registry* and store them (see the module).

    Without *username* and *password*, the stored credentials are checked and kept
    (``reused``).

    :raises ~aiopod.errors.AuthenticationFailed: the registry refused them
        (``logging into "KEY": invalid username/password``).
    :raises ~aiopod.errors.NotLoggedIn: none given and none stored.
    :raises ~aiopod.errors.RegistryError: the check failed otherwise
        (``authenticating creds for "KEY": ...``).
    """
    key, host = await _key(registry, conf)
    files = auth_files(authfile)
    cert_path = Path(cert_dir) if cert_dir is not None else None
    try:
        existing = await _find(key, files)
    except ConfigurationError as exc:
        raise with_context(exc, "get credentials: ") from None
    if existing is not None and existing.identity_token:
        raise AuthenticationFailed("currently logged in, auth file contains an Identity token")
    reuse = username is None and password is None
    if reuse:
        if existing is None or not existing.username or not existing.password:
            raise NotLoggedIn(key)
        credentials = existing
    else:
        if not username:
            raise UsageError("a user name is needed to log in")
        credentials = Credentials(username.strip(), password or "")
    try:
        await _check(
            http,
            host,
            credentials,
            tls_verify=tls_verify,
            cert_dir=cert_path,
            conf=conf,
            retry=retry,
        )
    except AuthenticationFailed as exc:
        raise AuthenticationFailed(f'logging into "{key}": invalid username/password') from exc
    except AiopodError as exc:
        raise with_context(exc, f'authenticating creds for "{key}": ') from None
    if reuse:
        return LoginOutcome(key, host, True, None)
    path = await anyio.to_thread.run_sync(lambda: store_credentials(key, credentials, files))
    return LoginOutcome(key, host, False, path)


async def logout(
    http: httpx.AsyncClient,
    registry: str | None,
    *,
    all: bool = False,
    authfile: str | Path | None = None,
    tls_verify: bool | None = None,
    conf: RegistriesConf | None = None,
) -> LogoutOutcome:
    """Remove the credentials of *registry*, or all of them (see the module).

    :raises ~aiopod.errors.NotLoggedIn: the file logins write to has no such key.
    :raises ~aiopod.errors.UsageError: *all* with a registry, or a chosen auth file that
        does not exist (``checking authfile: ...``).
    """
    if authfile is not None and not await anyio.to_thread.run_sync(Path(authfile).exists):
        raise UsageError(f"checking authfile: stat {authfile}: no such file or directory")
    files = auth_files(authfile)
    if all:
        if registry:
            raise UsageError("--all takes no arguments")
        await anyio.to_thread.run_sync(lambda: remove_all_credentials(files))
        return LogoutOutcome(None)
    key, host = await _key(registry, conf)
    try:
        await anyio.to_thread.run_sync(lambda: remove_credentials(key, files))
    except NotLoggedIn:
        elsewhere = await _find(key, files)
        if elsewhere is not None and elsewhere.username and elsewhere.password:
            try:
                await _check(
                    http,
                    host,
                    elsewhere,
                    tls_verify=tls_verify,
                    cert_dir=None,
                    conf=conf,
                    retry=RetryPolicy(retries=0),
                )
            except AiopodError:
                pass
            else:
                return LogoutOutcome(key, other_tool=True)
        raise
    except ConfigurationError as exc:
        raise with_context(exc, f'logging out of "{key}": ') from None
    return LogoutOutcome(key)
