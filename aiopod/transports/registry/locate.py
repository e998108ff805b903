"""Where a pull reads an image from and where a push writes it, from what the user typed.

``oci:PATH[:REFERENCE]`` is an OCI layout directory
(:class:`~aiopod.transports.registry.oci_dir.OCILayoutRepository`).  Anything else names
a registry repository: a fully qualified name or ``docker://`` reference is one place,
a short name is tried with each of ``registries.conf``'s unqualified-search registries
(or its short-name alias), and each place is asked through its mirrors first
(:mod:`aiopod.transports.registry.config`).  A pull tries its :class:`PullAttempt` in
order, and inside one its targets in order, until one gives the image; errors of the
attempts that all failed are put together as podman does
(:func:`pull_failure`).

Opening a registry repository reads the auth files (a worker thread) and sends nothing;
cancelling it is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from aiopod._reference import Reference, docker_familiar, split_transport
from aiopod.errors import AiopodError, PullFailed
from aiopod.transports.registry.client import with_context
from aiopod.transports.registry.config import (
    PullCandidate,
    push_target,
    read_registries_conf,
    resolve_pull,
)
from aiopod.transports.registry.oci_dir import OCILayoutRepository, parse_oci_reference
from aiopod.transports.registry.repository import open_repository
from aiopod.transports.registry.target import RegistryOptions, RepositoryTarget

__all__ = ("PullAttempt", "PullLocations", "locate_pull", "locate_push", "pull_failure")


@dataclass(frozen=True, slots=True)
class PullAttempt:
    """One name a pull tries (podman's ``Trying to pull NAME...`` when ``announce`` is
    set): its targets in order (mirrors first), or ``blocked``, the error to report for a
    registry ``registries.conf`` blocks."""

    announce: str | None
    targets: tuple[RepositoryTarget, ...]
    blocked: AiopodError | None = None
    source: str = ""
    """How podman names the source in its errors: ``docker://NAME`` (familiar form)."""


@dataclass(frozen=True, slots=True)
class PullLocations:
    """The attempts of one pull, and podman's ``Resolving "NAME" ...`` line for a short
    name (``resolution``, ``None`` for a qualified name)."""

    attempts: tuple[PullAttempt, ...]
    resolution: str | None = None


def _inner(ref: Reference) -> str:
    return ref.digest or ref.tag or "latest"


def _store_name(ref: Reference) -> str:
    """The name a pulled image gets: ``NAME:TAG``, or ``NAME@DIGEST`` for a digest."""
    return f"{ref.name}@{ref.digest}" if ref.digest else str(ref.with_tag(_inner(ref)))


def _oci_target(text: str) -> RepositoryTarget | None:
    split = split_transport(text)
    if split is None or split[0] != "oci":
        return None
    path, inner = parse_oci_reference(split[1])
    repository = OCILayoutRepository(path)
    return RepositoryTarget(repository, inner, f"{repository.name}:latest", text, announce=False)


async def _attempt(
    http: httpx.AsyncClient, candidate: PullCandidate, options: RegistryOptions
) -> PullAttempt:
    ref = candidate.reference
    announce = str(ref)
    source = f"docker://{docker_familiar(str(ref))}"
    if candidate.blocked is not None:
        return PullAttempt(announce, (), candidate.blocked, source)
    targets = []
    for place in candidate.sources:
        repository = await open_repository(
            http, place.reference, options, insecure=place.insecure, primary_registry=ref.domain
        )
        targets.append(
            RepositoryTarget(repository, _inner(place.reference), _store_name(ref), str(ref))
        )
    return PullAttempt(announce, tuple(targets), None, source)


async def locate_pull(
    http: Callable[[], httpx.AsyncClient], text: str, options: RegistryOptions
) -> PullLocations:
    """The places a pull of *text* tries, in order.  *http* gives the runtime's registry
    client (called only when a registry is named).

    :raises ~aiopod.errors.InvalidReference: *text* is malformed or another transport.
    :raises ~aiopod.errors.ShortNameNotResolved: a short name, and no search registries.
    :raises ~aiopod.errors.ConfigurationError: ``registries.conf`` or an auth file is bad.
    """
    oci = _oci_target(text)
    if oci is not None:
        return PullLocations((PullAttempt(None, (oci,), None, text),))
    plan = resolve_pull(text, await read_registries_conf())
    client = http()
    attempts = tuple([await _attempt(client, c, options) for c in plan.candidates])
    resolution = None
    if plan.alias_origin:
        resolution = f'Resolved "{plan.short_name}" as an alias ({plan.alias_origin})'
    elif plan.search_origin and len(plan.candidates) > 1:
        resolution = (
            f'Resolving "{plan.short_name}" using unqualified-search registries '
            f"({plan.search_origin})"
        )
    return PullLocations(attempts, resolution)


async def locate_push(
    http: Callable[[], httpx.AsyncClient], text: str, options: RegistryOptions
) -> RepositoryTarget:
    """Where a push to *text* writes (a push goes to the name itself: no mirrors, no
    search registries).

    :raises ~aiopod.errors.InvalidReference: *text* is malformed or another transport.
    :raises ~aiopod.errors.RegistryBlocked: ``registries.conf`` blocks the registry.
    """
    oci = _oci_target(text)
    if oci is not None:
        return oci
    place = push_target(text, await read_registries_conf())
    if place.blocked is not None:
        raise place.blocked
    repository = await open_repository(
        http(), place.reference, options, insecure=place.insecure, push=True
    )
    ref = place.reference
    return RepositoryTarget(repository, _inner(ref), None, str(ref))


def pull_failure(failures: Sequence[tuple[PullAttempt, AiopodError]]) -> AiopodError:
    """The error of a pull none of whose attempts worked, as podman words it: each
    attempt's error after ``initializing source docker://NAME: `` and, for several,
    ``N errors occurred while pulling:`` with one `` * `` line each."""
    errors = [
        with_context(error, f"initializing source {attempt.source}: ")
        if attempt.announce is not None and attempt.blocked is None
        else error
        for attempt, error in failures
    ]
    if len(errors) == 1:
        return errors[0]
    lines = "".join(f"\n * {error}" for error in errors)
    return PullFailed(f"{len(errors)} errors occurred while pulling:{lines}", errors=errors)
