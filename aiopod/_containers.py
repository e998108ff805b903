"""Containers: runtime containers (``create``) and storage-only working containers
(``from``), each with a real root file system unpacked from its image through the
root-confined layer applier.

Creating a container unpacks the image outside the store lock (the layer blobs are
opened under the shared lock first, so a concurrent removal cannot take them away) and
commits under the exclusive lock: the directory moves into place, then the record is
written.  Removing containers deletes their data concurrently under an intent that the
next open rolls forward after a crash.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

from aiopod._images import parse_created
from aiopod._names import random_container_name, working_container_name
from aiopod.errors import (
    AiopodError,
    ContainerNotKnown,
    ImageConflict,
    ImageNotKnown,
    NameInUse,
    UsageError,
)
from aiopod.events.model import Event, EventKind
from aiopod.removal.plan import Plan, RemoveContainer, Step
from aiopod.storage.container_records import ContainerRecord, RuntimeConfig
from aiopod.storage.lookup import lookup_image
from aiopod.storage.owner import ProcessOwner
from aiopod.storage.records import StoreState
from aiopod.storage.store import Store, Transaction
from aiopod.storage.threads import run_to_completion
from aiopod.storage.unpack import open_layers, unpack_layers
from aiopod.transports.jsonutil import parse_json_object

__all__ = (
    "Container",
    "container_from_record",
    "create_container",
    "find_container",
    "plan_container_removal",
    "removal_events",
)


@dataclass(frozen=True, slots=True)
class Container:
    """A container as ``ps`` shows it.  ``external`` containers have no runtime record."""

    id: str
    name: str
    image_id: str
    image_name: str
    command: tuple[str, ...]
    created: datetime | None
    state: str  # "created" for runtime containers, "storage" for external ones
    external: bool

    @property
    def short_id(self) -> str:
        """The first 12 characters of the ID."""
        return self.id[:12]


def container_from_record(record: ContainerRecord, state: StoreState) -> Container:
    """The public view of a container record."""
    image = state.images.get(record.image_id)
    if record.runtime is not None:
        image_name, command, status = record.runtime.image_name, record.runtime.command, "created"
    else:
        image_name = image.names[0] if image is not None and image.names else record.image_id
        image_name = image_name or "scratch"
        command, status = ("buildah",), "storage"
    return Container(
        id=record.id,
        name=record.name,
        image_id=record.image_id,
        image_name=image_name,
        command=command,
        created=parse_created(record.created),
        state=status,
        external=record.runtime is None,
    )


def find_container(state: StoreState, reference: str) -> ContainerRecord:
    """The container named *reference*, or with that ID or unique ID prefix."""
    by_name = state.container_by_name(reference)
    if by_name is not None:
        return by_name
    if reference in state.containers:
        return state.containers[reference]
    matches = [c for cid, c in state.containers.items() if reference and cid.startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    raise ContainerNotKnown(reference)


def removal_events(record: ContainerRecord, state: StoreState) -> list[Event]:
    """The ``Removed`` event of a container (with its image and name)."""
    view = container_from_record(record, state)
    attributes = record.event_attributes(view.image_name)
    return [Event(EventKind.REMOVED, "container", record.id, record.name, attributes=attributes)]


def _default_command(config_bytes: bytes) -> tuple[str, ...]:
    config = parse_json_object(config_bytes, what="image config", max_size=len(config_bytes))
    inner = config.get("config") or {}
    entrypoint = inner.get("Entrypoint") or []
    cmd = inner.get("Cmd") or []
    return tuple(str(part) for part in [*entrypoint, *cmd])


async def create_container(
    store: Store,
    reference: str,
    *,
    name: str | None = None,
    command: Sequence[str] = (),
    external: bool = False,
    owned: bool = False,
) -> tuple[ContainerRecord, list[Event]]:
    """Make a container of the image *reference* with its own root file system.

    ``external=True`` makes a storage-only working container (as ``buildah from``),
    named ``<image>-working-container`` unless *name* is given.  ``owned=True`` records
    this process as its owner (a build's working container): once the process is gone
    the container is a leftover that ``system check`` reports.

    :raises ~aiopod.errors.ImageNotKnown: no such image.
    :raises ~aiopod.errors.NameInUse: the name belongs to another container.
    :raises ~aiopod.errors.UsageError: no command given and the image has none.
    """
    owner = ProcessOwner.current() if owned else None
    if external and reference == "scratch":
        return await _create_scratch(store, name, owner)
    async with store.reading() as state:
        image, resolved = lookup_image(state, reference)
        config_path = store.blob_path(image.config_digest)
        layer_paths = [store.blob_path(layer.digest) for layer in image.layers]
        config_bytes, fds = await anyio.to_thread.run_sync(
            lambda: (config_path.read_bytes(), open_layers(layer_paths))
        )
    argv = tuple(command) or _default_command(config_bytes)
    if not argv and not external:
        _close_all(fds)
        raise UsageError("no command or entrypoint provided, and no CMD or ENTRYPOINT from image")

    def image_still_there(state: StoreState) -> None:
        # An additional store's image (never removed from under us) is copied here at commit.
        if image.id not in state.images and image.id not in store.additional_ids:
            raise ImageNotKnown(reference)

    return await _make_container(
        store,
        lambda rootfs: unpack_layers(
            rootfs,
            fds,
            names=[layer.digest for layer in image.layers],
            limits=store.layer_limits,
            allow_special_files=store.allow_special_files,
        ),
        image_id=image.id,
        image_name=resolved or image.id,
        name=name,
        name_hint=resolved or None,
        command=argv,
        external=external,
        owner=owner,
        check=image_still_there,
        on_abandon=lambda: _close_all(fds),
    )


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


async def _create_scratch(
    store: Store, name: str | None, owner: ProcessOwner | None
) -> tuple[ContainerRecord, list[Event]]:
    """A working container with an empty root file system (``FROM scratch``)."""
    return await _make_container(
        store,
        lambda rootfs: rootfs.mkdir(mode=0o755, parents=True),
        image_id="",
        image_name="scratch",
        name=name,
        name_hint=None,
        command=(),
        external=True,
        owner=owner,
    )


async def _make_container(
    store: Store,
    populate: Callable[[Path], object],
    *,
    image_id: str,
    image_name: str,
    name: str | None,
    name_hint: str | None,
    command: tuple[str, ...],
    external: bool,
    owner: ProcessOwner | None = None,
    check: Callable[[StoreState], None] | None = None,
    on_abandon: Callable[[], object] | None = None,
) -> tuple[ContainerRecord, list[Event]]:
    """Prepare a container's root file system in a staging area with *populate* (outside
    the store lock), then commit its directory and record in one transaction."""
    container_id = secrets.token_hex(32)
    try:
        area = await anyio.to_thread.run_sync(store.new_staging_area)
    except BaseException:
        if on_abandon is not None:
            on_abandon()
        raise
    try:
        staged = area.path / container_id
        # Waited for whatever cancels the caller: the area is removed only after it.
        await run_to_completion(populate, staged / "rootfs")
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        async with store.transaction() as txn:
            if check is not None:
                check(txn.state)
            taken = {c.name for c in txn.state.containers.values()}
            final_name = _choose_name(txn, name, taken, name_hint, external)
            runtime = None if external else RuntimeConfig(final_name, command, image_name)
            record = ContainerRecord(container_id, final_name, image_id, created, runtime, owner)
            event = Event(
                EventKind.CREATED,
                "container",
                container_id,
                final_name,
                attributes=record.event_attributes(image_name),
            )
            txn.add_container(record, staged)
            txn.emit([event])
        return record, txn.recorded or [event]
    finally:
        await run_to_completion(area.close)


def _choose_name(
    txn: Transaction, name: str | None, taken: set[str], image_name: str | None, external: bool
) -> str:
    if name:
        owner = txn.state.container_by_name(name)
        if owner is not None:
            raise NameInUse(
                f'the container name "{name}" is already in use by {owner.id}. '
                "You have to remove that container to be able to reuse that name: "
                "that name is already in use"
            )
        return name
    if external:
        return working_container_name(image_name, taken)
    return random_container_name(taken)


def plan_container_removal(
    state: StoreState,
    references: Sequence[str],
    *,
    all: bool = False,
    ignore: bool = False,
    container_failures: Mapping[str, str] | None = None,
) -> Plan:
    """Plan ``rm``: the containers named (or every one with *all*), runtime and external.

    Pure.  Unknown names are errors (``ignore`` skips them); a container whose data
    could not be deleted is an error and stays.
    """
    if all and references:
        raise UsageError("no arguments are needed with --all")  # podman rm's words
    if not all and not references:
        raise UsageError("you must provide at least one name or id")
    failures = container_failures or {}
    steps: list[Step] = []
    errors: list[AiopodError] = []
    chosen: list[ContainerRecord] = []
    if all:
        chosen = list(state.containers.values())
    else:
        for reference in references:
            try:
                record = find_container(state, reference)
            except ContainerNotKnown as exc:
                if not ignore:
                    errors.append(exc)
                continue
            if record not in chosen:
                chosen.append(record)
    for record in chosen:
        if record.id in failures:
            errors.append(
                ImageConflict(
                    f"removing storage for container {record.name!r}: {failures[record.id]}"
                )
            )
        else:
            steps.append(RemoveContainer(record.id, record.image_id, record.runtime is not None))
    return Plan("containers", steps, errors)
