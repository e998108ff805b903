"""The ``podman`` removal policy: Podman 4.3's ``rmi`` (libimage ``RemoveImages`` with
``removeRecursive``), rules A1–D22 of ``docs/design/removal-rules.md``.  Pure.

Differences kept on purpose: podman's quirk with an image named twice after it was
deleted with children (A3) is left out, and events are recorded even when the call
fails (G30 is a podman defect).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiopod._reference import normalize_local
from aiopod.errors import AiopodError, ImageConflict, ImageInUse, TagNotKnown
from aiopod.removal.inputs import targets_for
from aiopod.removal.plan import (
    DeleteImage,
    ImageProcessed,
    Plan,
    RemovalOptions,
    RemoveContainer,
    Simulation,
    Untag,
    now,
)
from aiopod.storage.records import StoreState

__all__ = ("plan_podman", "remove_recursive")


def _delete(sim: Simulation, image_id: str, force: bool, no_prune: bool, external: bool) -> bool:
    """C20: containers (with force), the record, the names, then a dangling parent.

    *external* (``image prune --external``): without force, external containers go with
    the image, and a runtime container is an error instead of blocking it."""
    state = sim.state
    users = state.containers_of(image_id)
    runtime_users = [c for c in users if c.runtime is not None]
    if users and not force and external and runtime_users:
        sim.fail(
            ImageConflict(
                f"cannot remove container {runtime_users[0].id}: not an external container"
            )
        )
        return False
    if users and not force and not external:
        sim.fail(
            ImageInUse(
                f"image used by {users[-1].id}: image is in use by a container: "
                "consider listing external containers and force-removing image"
            )
        )
        return False
    ordered = [c for c in users if c.runtime is not None] + [c for c in users if c.runtime is None]
    for container in ordered:
        cause = sim.container_failures.get(container.id)
        if cause is not None:
            sim.fail(ImageConflict(f"removing container {container.id}: {cause}"))
            return False
    for container in ordered:
        runtime = container.runtime is not None
        sim.do(RemoveContainer(container.id, image_id, runtime, event=runtime))
    had_children = sim.tree.has_children(image_id)
    parent = sim.tree.parent_of(image_id)
    for name in state.images[image_id].names:
        sim.do(Untag(image_id, name))
    sim.do(DeleteImage(image_id, reported=not had_children))
    if not no_prune and parent is not None and parent in state.images:
        parent_record = state.images[parent]
        if not parent_record.names and not sim.tree.has_children(parent):
            remove_recursive(sim, parent, "", force=False, no_prune=no_prune, external=external)
    return True


def remove_recursive(
    sim: Simulation,
    image_id: str,
    resolved: str,
    *,
    force: bool,
    no_prune: bool,
    external: bool = False,
) -> None:
    """C15-C20 for one image and the name R it was found by ("" removes it whole);
    *external* removes the external containers that use it (``image prune --external``)."""
    if image_id in sim.deleted:
        # C16: nothing happens, but libimage's removeRecursive has already deferred
        # its ``remove`` event (it is written for every reference: ``rmi other other``).
        sim.do(ImageProcessed(image_id, resolved, now()))
        return
    record = sim.state.images[image_id]
    if record.read_only:
        sim.fail(ImageConflict(f'cannot remove read-only image "{image_id}"'))
        return
    started = now()
    names = record.names
    if resolved == "" or len(names) == 1:
        if _delete(sim, image_id, force, no_prune, external):
            sim.do(ImageProcessed(image_id, resolved, started))
        return
    by_id = image_id.startswith(resolved)
    by_digest = resolved.startswith("sha256:")
    if not force and len(names) >= 2 and (by_id or by_digest):
        how = "ID" if by_id else "digest"
        sim.fail(
            ImageConflict(
                f'unable to delete image "{image_id}" by {how} with more than one tag '
                f"([{' '.join(names)}]): please force removal"
            )
        )
        return
    if not by_id and not by_digest:
        try:
            name = str(normalize_local(resolved))
        except AiopodError:
            name = resolved
        if name not in names:
            sim.fail(TagNotKnown(resolved))
            return
        sim.do(Untag(image_id, name))
        if sim.state.images[image_id].names:
            sim.do(ImageProcessed(image_id, resolved, started))
            return
    if _delete(sim, image_id, force, no_prune, external):
        sim.do(ImageProcessed(image_id, resolved, started))


def plan_podman(
    state: StoreState,
    references: Sequence[str],
    options: RemovalOptions,
    container_failures: Mapping[str, str] | None = None,
) -> Plan:
    """Plan ``rmi`` as Podman 4.3 does it (pure; *state* is not changed)."""
    sim = Simulation(state, container_failures or {})
    every = [i for i, record in state.images.items() if not record.read_only]
    targets, errors = targets_for(state, references, options, every)
    for target in targets:
        for _typed, resolved in target.inputs:
            remove_recursive(
                sim, target.image_id, resolved, force=options.force, no_prune=options.no_prune
            )
    return sim.plan("podman", errors)
