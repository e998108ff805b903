"""Fixtures for the registry tests: fake registries (:mod:`fake_registry`), the HTTP client
the runtime would own, and Debian's ``docker-registry`` with htpasswd and TLS
(:mod:`real_registries`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from aiopod.transports.registry.retry import RetryPolicy
from aiopod.transports.registry.transport import new_registry_client
from registry.fake_registry import FakeRegistry, serve_registry
from registry.real_registries import SecureRegistry, secure_registry

#: Retries as podman's (three), with waits short enough for tests.
FAST_RETRY = RetryPolicy(retries=3, base=0.01, max_delay=2.0)


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    """A fake registry on 127.0.0.1, no authentication, nothing stored."""
    with serve_registry("127.0.0.1") as registry:
        yield registry


@pytest.fixture
def other_host() -> Iterator[FakeRegistry]:
    """A second fake registry on another host (127.0.0.2)."""
    with serve_registry("127.0.0.2") as registry:
        yield registry


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client a runtime keeps for registries."""
    async with new_registry_client() as client:
        yield client


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[SecureRegistry]:
    """docker-registry over plain HTTP with htpasswd Basic authentication."""
    with secure_registry(tls=False) as registry:
        yield registry


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[SecureRegistry]:
    """docker-registry over TLS (a CA of the tests' own) with htpasswd authentication."""
    with secure_registry(tls=True) as registry:
        yield registry
