"""``image prune``: remove dangling images (``-a``: every image no container uses), as
Podman 4.3 does (``docs/design/removal-rules.md`` E23-E25), until a pass removes
nothing.  Pure.

Only direct use by a container protects an image; parents left dangling go too.  With
``external`` (``--external``) only runtime containers protect an image: the external
ones (storage-only: build containers, ``from``) are removed with it, without events,
and a dangling parent that a runtime container uses is an error
(``cannot remove container …: not an external container``).  The report's ``pruned``
list is every image deleted, parents with children included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiopod.removal.plan import DeleteImage, Plan, Simulation
from aiopod.removal.podman import remove_recursive
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.records import StoreState

__all__ = ("plan_prune", "pruned_ids")


def plan_prune(
    state: StoreState,
    *,
    all: bool = False,
    external: bool = False,
    policy: str = "podman",
    container_failures: Mapping[str, str] | None = None,
) -> Plan:
    """Plan a prune (pure; *state* is not changed)."""
    sim = Simulation(state, container_failures or {})
    while True:
        before = len(sim.deleted)
        for image_id, record in list(sim.state.images.items()):
            if image_id in sim.deleted or image_id not in sim.state.images or record.read_only:
                continue
            current = sim.state.images[image_id]
            users = sim.state.containers_of(image_id)
            if users and not (external and _only_external(users)):
                continue
            if not all and (current.names or sim.tree.has_children(image_id)):
                continue
            remove_recursive(sim, image_id, "", force=False, no_prune=False, external=external)
        if len(sim.deleted) == before or sim.errors:
            break
    return sim.plan(policy)


def _only_external(containers: Sequence[ContainerRecord]) -> bool:
    """Whether every container is an external (storage-only) one."""
    return all(c.runtime is None for c in containers)


def pruned_ids(plan: Plan) -> list[str]:
    """Every image the prune deletes, in order (what ``image prune`` prints)."""
    return [s.image_id for s in plan.steps if isinstance(s, DeleteImage)]
