"""The ``libpod`` removal policy (the default): libpod's ``RemoveImage``, step by step, as
LP1-LP6 of ``docs/design/removal-rules.md`` state it, with its known defect fixed.  Pure,
but for LP5's error, which reads ``/proc`` to tell whether a build holding the image runs.

Per image, with N its names, R the input, C its runtime containers, S its external
(storage-only) containers, and F force (LP1, the lock, is the runtime's):

* LP2: C not empty and |N| <= 1: without F an error; with F the runtime containers go
  first.
* LP3: (|N| > 1 and R is not an ID) or the image has children: untag the name R matches;
  no match is an error (``cannot be forced`` when it has children).
* LP4: |N| > 1, R an ID, no F: ``must force``.
* LP5: delete: containers still using it block without F (the error names them, and says
  whether a build's working container is a killed build's leftover); with F they go
  (runtime ones as containers: the defect fix), then the image.
* LP6: report every name it still had as untagged, then the deletion.

``-a`` removes every image (R empty: LP3-LP4 never apply), children before parents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiopod._reference import normalize_local
from aiopod.errors import AiopodError, ImageConflict, ImageInUse
from aiopod.removal.inputs import targets_for
from aiopod.removal.plan import (
    DeleteImage,
    Plan,
    RemovalOptions,
    RemoveContainer,
    Simulation,
    Untag,
)
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.records import ImageRecord, StoreState

__all__ = ("plan_libpod",)


def _is_id_input(typed: str, image_id: str) -> bool:
    text = typed.removeprefix("sha256:")
    return bool(text) and image_id.startswith(text) and all(c in "0123456789abcdef" for c in text)


def _match_name(record: ImageRecord, typed: str, resolved: str) -> str | None:
    if resolved in record.names:
        return resolved
    try:
        normalised = str(normalize_local(typed))
    except AiopodError:
        return None
    if normalised in record.names:
        return normalised
    suffix = "/" + typed if ":" in typed.rsplit("/", 1)[-1] else "/" + typed + ":latest"
    return next((n for n in record.names if n.endswith(suffix)), None)


def _remove_containers(sim: Simulation, image_id: str, ids: Sequence[tuple[str, bool]]) -> bool:
    """Plan the removal of containers; False (and an error) if one could not be removed."""
    for container_id, _runtime in ids:
        cause = sim.container_failures.get(container_id)
        if cause is not None:
            sim.fail(
                ImageConflict(
                    f"error removing image {image_id}: container {container_id} "
                    f"using image could not be removed: {cause}"
                )
            )
            return False
    for container_id, runtime in ids:
        sim.do(RemoveContainer(container_id, image_id, runtime))
    return True


def _describe(container: ContainerRecord) -> str:
    text = f"{'container' if container.runtime else 'external container'} {container.id[:12]}"
    text += f" ({container.name})"
    if container.owner is not None:
        if container.owner.is_gone():
            return text + " of a build that is no longer running"
        return text + f" of a build still running (process {container.owner.pid})"
    return text


def _in_use(users: Sequence[ContainerRecord]) -> ImageInUse:
    """Step 5's error: which containers hold the image, and how to free it.

    Tells a killed build's working containers (their owner is gone: reads ``/proc``)
    from a running build's and from containers made to stay.
    """
    them = "it" if len(users) == 1 else "them"
    ids = " ".join(c.id[:12] for c in users)
    owners = [c.owner for c in users]
    if all(o is not None and o.is_gone() for o in owners):
        advice = f'remove {them} with "aiopod rm {ids}" or "aiopod system check --repair"'
    elif any(o is not None and not o.is_gone() for o in owners):
        advice = "wait for the build to finish"
    else:
        advice = f'remove {them} with "aiopod rm {ids}", or force the removal'
    described = ", ".join(_describe(c) for c in users)
    return ImageInUse(f"image is in use by {described}: {advice}")


def _remove_one(sim: Simulation, image_id: str, typed: str, resolved: str, force: bool) -> None:
    state = sim.state
    record = state.images[image_id]
    names = record.names
    every = not typed  # -a
    by_id = every or _is_id_input(typed, image_id)
    users = state.containers_of(image_id)
    runtime = [c.id for c in users if c.runtime is not None]
    # LP2: runtime containers block an image with at most one name.
    if runtime and len(names) <= 1:
        if not force:
            sim.fail(
                ImageInUse(
                    f"could not remove image {image_id} as it is being used by "
                    f"{len(runtime)} containers"
                )
            )
            return
        if not _remove_containers(sim, image_id, [(c, True) for c in runtime]):
            return
    # LP3: an untag, never a deletion.
    has_children = sim.tree.has_children(image_id)
    if not every and ((len(names) > 1 and not by_id) or has_children):
        match = _match_name(record, typed, resolved)
        if match is None:
            if has_children:
                sim.fail(
                    ImageConflict(
                        f'unable to delete "{image_id}" (cannot be forced) - '
                        "image has dependent child images"
                    )
                )
            else:
                sim.fail(ImageConflict("unable to match user input to any specific repotag"))
            return
        sim.do(Untag(image_id, match))
        return
    if every and has_children:
        sim.fail(
            ImageConflict(
                f'unable to delete "{image_id}" (cannot be forced) - '
                "image has dependent child images"
            )
        )
        return
    # LP4: several names, removed by ID.
    if not every and len(names) > 1 and not force:
        sim.fail(
            ImageConflict(
                f"unable to delete {image_id} (must force) - image is referred to in multiple tags"
            )
        )
        return
    # LP5: containers still using the image (all of them, runtime ones included).
    users = sim.state.containers_of(image_id)
    remaining = [(c.id, c.runtime is not None) for c in users]
    if remaining:
        if not force:
            sim.fail(_in_use(users))
            return
        if not _remove_containers(sim, image_id, remaining):
            return
    # LP6: report the names, then the deletion.
    for name in sim.state.images[image_id].names:
        sim.do(Untag(image_id, name))
    sim.do(DeleteImage(image_id))


def _children_first(state: StoreState, sim: Simulation) -> list[str]:
    depth: dict[str, int] = {}

    def level(image_id: str) -> int:
        if image_id not in depth:
            parent = sim.tree.parent_of(image_id)
            depth[image_id] = 0 if parent is None else level(parent) + 1
        return depth[image_id]

    ids = list(state.images)
    return sorted(ids, key=lambda i: -level(i))


def plan_libpod(
    state: StoreState,
    references: Sequence[str],
    options: RemovalOptions,
    container_failures: Mapping[str, str] | None = None,
) -> Plan:
    """Plan ``rmi`` under the libpod policy (pure; *state* is not changed)."""
    sim = Simulation(state, container_failures or {})
    every = _children_first(state, sim) if options.all else []
    targets, errors = targets_for(state, references, options, every)
    for target in targets:
        for typed, resolved in target.inputs:
            if target.image_id in sim.deleted:
                break
            _remove_one(sim, target.image_id, typed, resolved, options.force)
    return sim.plan("libpod", errors)
