"""Requests to one registry: its ping, its authentication, retries and redirects.

A :class:`RegistryClient` talks to one registry (``HOST[:PORT]``; ``docker.io`` is
reached at ``registry-1.docker.io``) with one set of credentials, over the runtime's
shared :class:`httpx.AsyncClient` (:mod:`~aiopod.transports.registry.transport`):

* **ping**: ``GET /v2/`` over HTTPS, then, for an *insecure* registry, over plain HTTP
  (HTTPS is then not verified either), as podman; the answer (``200``, or ``401`` with a
  ``WWW-Authenticate`` challenge) chooses the scheme and the authentication;
* **authentication**: for a ``Bearer`` challenge a token per scope set
  (``repository:NAME:pull`` ...), fetched from the realm with the credentials (HTTP
  Basic) or anonymously and cached until it expires; a ``401`` answer with a new
  challenge (an expired token, a scope the token lacks) fetches one new token and
  retries once.  For ``Basic`` the credentials go with every request.  Credentials and
  tokens are sent to the registry's host (and the realm) only: a redirect to another
  host is followed *without* the ``Authorization`` header;
* **retries**: :mod:`~aiopod.transports.registry.retry` (connection errors and ``408``,
  ``429``, ``5xx`` answers; never a request whose body cannot be sent again);
* **errors**: connection failures are :class:`~aiopod.errors.RegistryUnreachable` (or
  :class:`~aiopod.errors.TLSVerificationFailed`) with podman's words (``pinging container
  registry HOST: Get "https://HOST/v2/": ...``); the caller turns other answers into
  errors with :func:`~aiopod.transports.registry.responses.error_body`.

Cancellation: any call may be cancelled; the response being read is closed, a token
being fetched is not cached, and the client stays usable.  Concurrent calls are fine:
one ping runs at a time (the others wait for its result).
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin

import anyio
import httpx

from aiopod.errors import (
    AiopodError,
    AuthenticationFailed,
    RegistryRequestFailed,
    RegistryUnreachable,
    TLSVerificationFailed,
)
from aiopod.transports.registry.auth import Challenge, TokenCache, parse_challenges, parse_token
from aiopod.transports.registry.credentials import Credentials
from aiopod.transports.registry.responses import MAX_SMALL_BODY, error_body, read_limited
from aiopod.transports.registry.retry import RETRYABLE_STATUS, RetryPolicy
from aiopod.transports.registry.tls import TLSConfig
from aiopod.transports.registry.transport import TLS_EXTENSION

__all__ = ("DOCKER_HUB", "RegistryClient", "with_context")

E = TypeVar("E", bound=AiopodError)

#: The registry ``docker.io`` names, and the host it is reached at.
DOCKER_HUB = ("docker.io", "registry-1.docker.io")
_MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Content = bytes | AsyncIterable[bytes] | None


def with_context(error: E, prefix: str) -> E:
    """A copy of *error* whose message starts with *prefix* (what was being done, as
    podman words it: ``initializing source docker://HOST/NAME:TAG: ``).  Attributes are
    kept; the original is the copy's ``__cause__``."""
    copy = error.__class__.__new__(error.__class__)
    copy.__dict__.update(error.__dict__)
    copy.args = (prefix + str(error),)
    copy.__cause__ = error
    return copy


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why a request got no answer: podman's words for it, and whether it is worth
    trying again."""

    text: str
    transient: bool
    tls: bool = False


def _errnos(exc: BaseException) -> tuple[set[int], list[BaseException]]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return {e.errno for e in seen if isinstance(e, OSError) and e.errno}, seen


def _describe_failure(exc: httpx.TransportError, url: httpx.URL) -> _Failure:
    """A transport error in Go's words (``dial tcp HOST:PORT: connect: connection
    refused``), as podman prints them."""
    numbers, chain = _errnos(exc)
    address = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    ssl_errors = [e for e in chain if isinstance(e, ssl.SSLError)]
    text = str(exc) or type(exc).__name__
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        cert_error = next(e for e in chain if isinstance(e, ssl.SSLCertVerificationError))
        message = cert_error.verify_message or str(cert_error)
        if "issuer" in message or "self-signed" in message or "self signed" in message:
            return _Failure("x509: certificate signed by unknown authority", False, True)
        return _Failure(f"x509: {message}", False, True)
    if ssl_errors or "SSL" in text:
        reason = " ".join(str(getattr(e, "reason", "") or "") for e in ssl_errors) + text
        if any(
            marker in reason.upper()
            for marker in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH")
        ):
            return _Failure("http: server gave HTTP response to HTTPS client", False)
        return _Failure(f"tls: {text}", False, True)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return _Failure(f"dial tcp: lookup {url.host}: no such host", True)
    if errno.ECONNREFUSED in numbers:
        return _Failure(f"dial tcp {address}: connect: connection refused", True)
    if errno.ECONNRESET in numbers:
        return _Failure(f"read tcp {address}: read: connection reset by peer", True)
    if isinstance(exc, httpx.TimeoutException):
        return _Failure(f"dial tcp {address}: i/o timeout", True)
    return _Failure(text, True)


def _failure_error(method: str, url: httpx.URL, failure: _Failure) -> RegistryUnreachable:
    text = f'{method.capitalize()} "{url}": {failure.text}'
    return TLSVerificationFailed(text) if failure.tls else RegistryUnreachable(text)


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


class RegistryClient:
    """Requests to one registry with one set of credentials (see the module).

    :param http: the runtime's shared client (see ``Runtime._registry_client``).
    :param registry: ``HOST[:PORT]`` as references name it.
    :param insecure: allow plain HTTP and unverified HTTPS (``--tls-verify=false``, or
        ``insecure = true`` in ``registries.conf``).
    :param cert_dir: ``--cert-dir`` (else the host's ``certs.d`` directory is used).
    :param credentials: sent to the registry (and its token realm) only.
    :param retry: when requests are retried.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        registry: str,
        *,
        insecure: bool = False,
        cert_dir: Path | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.registry = registry
        self.host = DOCKER_HUB[1] if registry == DOCKER_HUB[0] else registry
        self.insecure = insecure
        self.retry = retry or RetryPolicy()
        self._http = http
        self._tls = TLSConfig(registry, not insecure, cert_dir)
        self._credentials = credentials
        self._sleep = sleep
        self._scheme: str | None = None
        self._challenges: list[Challenge] = []
        self._ping_lock = anyio.Lock()
        self._tokens = TokenCache()

    def __repr__(self) -> str:
        user = self._credentials.username if self._credentials else None
        return f"RegistryClient({self.registry!r}, insecure={self.insecure}, user={user!r})"

    @property
    def base_url(self) -> str:
        """``SCHEME://HOST`` after :meth:`ping` (``https`` before)."""
        return f"{self._scheme or 'https'}://{self.host}"

    # -- sending, with retries ---------------------------------------------------------------

    async def _send_once(
        self, method: str, url: httpx.URL, headers: Mapping[str, str], content: Content
    ) -> httpx.Response | _Failure:
        request = self._http.build_request(
            method,
            url,
            headers=headers,
            content=content,
            extensions={TLS_EXTENSION: self._tls},
        )
        try:
            return await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            return _describe_failure(exc, url)

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        content: Content = None,
        *,
        retry: bool = True,
    ) -> httpx.Response:
        """One request, retried as the policy says (only when *retry* and the body can
        be sent again).  Returns the streamed answer (the caller closes it)."""
        replayable = retry and not isinstance(content, AsyncIterable)
        attempt = 0
        while True:
            outcome = await self._send_once(method, url, headers, content)
            if isinstance(outcome, httpx.Response):
                status = outcome.status_code
                if not (replayable and status in RETRYABLE_STATUS and attempt < self.retry.retries):
                    return outcome
                retry_after = outcome.headers.get("retry-after")
                await outcome.aclose()
            else:
                if not (replayable and outcome.transient and attempt < self.retry.retries):
                    raise _failure_error(method, url, outcome)
                retry_after = None
            attempt += 1
            await self._sleep(self.retry.wait(attempt, retry_after))

    # -- ping and authentication -------------------------------------------------------------

    async def ping(self) -> None:
        """Find the scheme and the authentication the registry wants (once; concurrent
        callers wait for the first).

        :raises ~aiopod.errors.RegistryUnreachable: neither scheme answered (podman's
            ``pinging container registry HOST: ...``).
        :raises ~aiopod.errors.RegistryRequestFailed: the answer was neither 200 nor 401.
        """
        if self._scheme is not None:
            return
        async with self._ping_lock:
            if self._scheme is not None:
                return
            schemes = ("https", "http") if self.insecure else ("https",)
            attempt = 0
            while True:
                last: AiopodError | None = None
                transient = False
                for scheme in schemes:
                    url = httpx.URL(f"{scheme}://{self.host}/v2/")
                    outcome = await self._send_once("GET", url, {}, None)
                    if isinstance(outcome, _Failure):
                        last, transient = _failure_error("GET", url, outcome), outcome.transient
                        continue
                    if outcome.status_code in (200, 401):
                        self._challenges = parse_challenges(
                            outcome.headers.get_list("www-authenticate")
                        )
                        await outcome.aclose()
                        self._scheme = scheme
                        return
                    transient = outcome.status_code in RETRYABLE_STATUS
                    body = await error_body(outcome)
                    last = RegistryRequestFailed(body.text, status=body.status)
                assert last is not None
                if not transient or attempt >= self.retry.retries:
                    raise with_context(last, f"pinging container registry {self.registry}: ")
                attempt += 1
                await self._sleep(self.retry.wait(attempt))

    def _challenge(self, scheme: str) -> Challenge | None:
        return next((c for c in self._challenges if c.scheme == scheme), None)

    async def _authorization(self, scopes: Sequence[str]) -> str | None:
        bearer = self._challenge("bearer")
        if bearer is not None:
            token = self._tokens.get(scopes)
            if token is None:
                token = await self._fetch_token(bearer, scopes)
            return f"Bearer {token}"
        if self._credentials is not None and self._credentials.username:
            return self._credentials.basic_authorization()
        return None

    async def _fetch_token(self, challenge: Challenge, scopes: Sequence[str]) -> str:
        realm = httpx.URL(challenge.realm)
        if realm.scheme not in ("http", "https") or not realm.host:
            raise RegistryRequestFailed(
                f"the registry's authentication realm {challenge.realm!r} is not a URL"
            )
        credentials = self._credentials
        headers: dict[str, str] = {}
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params += [("scope", scope) for scope in sorted(set(scopes))]
        if credentials is not None and credentials.identity_token:
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", credentials.identity_token),
                ("client_id", "aiopod"),
                *params,
            ]
            headers["content-type"] = "application/x-www-form-urlencoded"
            body = str(httpx.QueryParams(tuple(form))).encode("ascii")
            response = await self._send("POST", realm, headers, body)
        else:
            if credentials is not None and credentials.username:
                headers["authorization"] = credentials.basic_authorization()
                params.append(("account", credentials.username))
            response = await self._send("GET", realm.copy_merge_params(tuple(params)), headers)
        if response.status_code in (401, 403):
            problem = await error_body(response)
            raise AuthenticationFailed(
                f"unable to retrieve auth token: invalid username/password: {problem.text}"
            )
        if response.status_code != 200:
            problem = await error_body(response)
            raise RegistryRequestFailed(
                f"unable to retrieve auth token: {problem.text}", status=problem.status
            )
        data = await read_limited(response, MAX_SMALL_BODY, "the token server's answer")
        token = parse_token(data)
        self._tokens.put(scopes, token)
        return token.value

    # -- requests ----------------------------------------------------------------------------

    def url(self, target: str, base: httpx.URL | None = None) -> httpx.URL:
        """The URL of *target*, a path (``/v2/...``) or a ``Location`` header (relative or
        absolute), resolved against *base* (the URL the header came with; default the
        registry's)."""
        return httpx.URL(urljoin(str(base) if base is not None else self.base_url + "/", target))

    async def request(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        scopes: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        content: Content = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """Send a request to the registry (*target*: a path on it, resolved once the
        ping chose the scheme, or a URL; *params* added to its query), authenticated
        for *scopes*, and return the
        streamed answer (the caller reads or closes it): a redirect of ``GET`` or
        ``HEAD`` is followed (without ``Authorization`` to another host), a ``401`` is
        answered once with a new token.  Other error answers are returned as they are.

        :raises ~aiopod.errors.RegistryUnreachable: no answer (after the retries).
        :raises ~aiopod.errors.AuthenticationFailed: the token server refused.
        """
        await self.ping()
        url = target if isinstance(target, httpx.URL) else self.url(target)
        if params:
            url = url.copy_merge_params(dict(params))
        registry_url = httpx.URL(self.base_url)
        base_headers = {"accept-encoding": "identity", **(headers or {})}
        renewed = False
        while True:
            send_headers = await self._headers(url, registry_url, base_headers, scopes)
            response = await self._send(method, url, send_headers, content, retry=retry)
            if (
                response.status_code == 401
                and not renewed
                and not isinstance(content, AsyncIterable)
                and self._renew(response, scopes, sent="authorization" in send_headers)
            ):
                renewed = True
                await response.aclose()
                continue
            break
        hops = 0
        while (
            method in ("GET", "HEAD")
            and response.status_code in _REDIRECTS
            and "location" in response.headers
        ):
            hops += 1
            location = response.headers["location"]
            await response.aclose()
            if hops > _MAX_REDIRECTS:
                raise RegistryRequestFailed(f"stopped after {_MAX_REDIRECTS} redirects")
            url = httpx.URL(urljoin(str(url), location))
            if url.scheme not in ("http", "https"):
                raise RegistryRequestFailed(f"the registry redirected to {url.scheme}: URL")
            send_headers = await self._headers(url, registry_url, base_headers, scopes)
            response = await self._send(method, url, send_headers)
        return response

    async def _headers(
        self,
        url: httpx.URL,
        registry_url: httpx.URL,
        base: Mapping[str, str],
        scopes: Sequence[str],
    ) -> dict[str, str]:
        """*base*, with ``Authorization`` when *url* is on the registry itself."""
        headers = dict(base)
        if _same_origin(url, registry_url):
            authorization = await self._authorization(scopes)
            if authorization is not None:
                headers["authorization"] = authorization
        return headers

    def _renew(self, response: httpx.Response, scopes: Sequence[str], *, sent: bool) -> bool:
        """After a 401: take the answer's challenge and forget the cached token; whether
        a second try can succeed (a Bearer challenge to answer, or a Basic one that the
        credentials were not yet sent for)."""
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        if not challenges:
            return False
        self._challenges = challenges
        self._tokens.forget(scopes)
        if self._challenge("bearer") is not None:
            return True
        has_credentials = self._credentials is not None and bool(self._credentials.username)
        return self._challenge("basic") is not None and has_credentials and not sent

    async def check_auth(self) -> None:
        """Whether the credentials are accepted: ``GET /v2/`` authenticated (a token with
        no scope for a Bearer registry), as ``podman login`` checks them.

        :raises ~aiopod.errors.AuthenticationFailed: they are refused.
        :raises ~aiopod.errors.RegistryUnreachable: the registry cannot be reached.
        """
        response = await self.request("GET", "/v2/")
        if response.status_code == 200:
            await response.aclose()
            return
        problem = await error_body(response)
        if problem.status == 401:
            raise AuthenticationFailed(problem.text)
        raise RegistryRequestFailed(problem.text, status=problem.status)
