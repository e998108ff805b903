"""The runtime's one HTTP client for registries, with a TLS configuration per request.

httpx fixes a client's TLS settings when the client is made, but a registry's depend on
the call (``--tls-verify``, ``--cert-dir``) and on the host (its ``certs.d`` directory).
Rather than a client per configuration, the runtime keeps one
:class:`httpx.AsyncClient` whose transport, :class:`RegistryTransport`, dispatches each
request to a connection pool for the request's :class:`~.tls.TLSConfig` (carried in the
request's extensions under :data:`TLS_EXTENSION`).  So there is one client to create and
to close (``Runtime.aclose``), one set of timeouts and limits, and connections are
reused across pulls and pushes to the same registry with the same settings; a pool's
SSL context is built once, in a worker thread, when its first request is sent.  Plain
HTTP requests share one pool, which loads no CA bundle (it never makes a TLS connection, and
loading one costs a pull to an HTTP registry tens of milliseconds).  HTTP/2 is offered where
the ``h2`` package is installed.

The client never follows redirects itself (the registry client does, so that it can drop
credentials on the way to another host) and ignores proxy settings from the environment
(every request must go through this transport).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

import anyio
import anyio.to_thread
import httpx

from aiopod.transports.registry.tls import TLSConfig, ssl_context

__all__ = ("TIMEOUT", "TLS_EXTENSION", "RegistryTransport", "new_registry_client")

#: The request extension that carries a request's :class:`~.tls.TLSConfig`.
TLS_EXTENSION = "aiopod.tls"

#: Connect within 30 s; no more than 5 minutes without a byte read or written.
TIMEOUT = httpx.Timeout(300.0, connect=30.0, pool=None)

#: The key of the pool for ``http://`` requests.
_PLAIN = "http"

_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=30.0)


def _http2_available() -> bool:
    return importlib.util.find_spec("h2") is not None


class RegistryTransport(httpx.AsyncBaseTransport):
    """Sends each request through the pool of its TLS configuration.

    Pools are created on first use and closed by :meth:`aclose`.  Creating a pool's SSL
    context may wait for a worker thread; a cancelled first request leaves no pool
    behind (the next request builds it).
    """

    def __init__(
        self, *, http2: bool | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self._http2 = _http2_available() if http2 is None else http2
        self._environ = environ
        self._pools: dict[TLSConfig | str | None, httpx.AsyncHTTPTransport] = {}
        self._lock = anyio.Lock()
        self._closed = False

    def _new_pool(self, verify: object) -> httpx.AsyncHTTPTransport:
        return httpx.AsyncHTTPTransport(
            verify=verify,  # type: ignore[arg-type]
            http2=self._http2,
            limits=_LIMITS,
            trust_env=False,
        )

    async def _pool_for(self, config: TLSConfig | str | None) -> httpx.AsyncHTTPTransport:
        pool = self._pools.get(config)
        if pool is not None:
            return pool
        async with self._lock:
            pool = self._pools.get(config)
            if pool is None:
                if self._closed:
                    raise RuntimeError("the registry transport is closed")
                if isinstance(config, TLSConfig):
                    tls, environ = config, self._environ
                    context = await anyio.to_thread.run_sync(
                        lambda: ssl_context(tls, environ=environ)
                    )
                    pool = self._new_pool(context)
                else:  # the default verification, or none for http:// (never TLS)
                    pool = self._new_pool(config is None)
                self._pools[config] = pool
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        config = request.extensions.get(TLS_EXTENSION)
        if request.url.scheme != "https":
            config = _PLAIN
        elif not isinstance(config, TLSConfig):
            config = None
        pool = await self._pool_for(config)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def new_registry_client(
    *, http2: bool | None = None, environ: Mapping[str, str] | None = None
) -> httpx.AsyncClient:
    """A client over a :class:`RegistryTransport` (no redirects followed, no proxies from
    the environment).  *environ* is where ``HOME`` is read for the user's ``certs.d``."""
    return httpx.AsyncClient(
        transport=RegistryTransport(http2=http2, environ=environ),
        follow_redirects=False,
        trust_env=False,
        timeout=TIMEOUT,
    )
