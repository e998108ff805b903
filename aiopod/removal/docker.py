"""The ``docker`` removal policy: Docker engine 20.10's ``docker rmi`` (the daemon's image
delete with its hard and soft conflicts, and the CLI's per-argument loop).  Pure.

Rules, per argument in order (each one looked up in the state the previous ones left; a
name is not de-duplicated, ``rmi x x`` fails the second time):

1. Not found: ``No such image: <name>:latest`` (the name with ``:latest`` added when it
   has no tag; ``sha256:<hex>`` for a full ID).  With ``-f`` it is still printed, but
   does not fail the call.  ``sha256:<ID prefix>`` is an ID prefix; a malformed name is
   ``invalid reference format: ...`` (exit 1, as every docker error).
2. By name (the input is not a prefix of the image's ID): with one reference left and
   without ``-f``, any container using the image is a conflict ("unable to remove
   repository reference ... (must force)").  Otherwise the name is untagged; if other
   names remain that is all, else the image is deleted *quietly*: a conflict (children, a
   container) keeps it, untagged, without an error.
3. By ID: with exactly one reference, the conflicts are checked first (children always,
   containers without ``-f``) and the reference is untagged; with several references
   ``-f`` is needed ("image is referenced in multiple repositories"), and then every
   reference is untagged with the deletion.
4. Deleting checks, in order: dependent child images (hard: "cannot be forced"), then
   without ``-f`` remaining references and containers (soft: "must be forced").  Then
   every name is untagged and the image deleted: ``Deleted: sha256:<id>`` and one
   ``Deleted: <chain ID>`` per layer no other image (nor container) still holds, top
   layer first.  Unless ``--no-prune`` its parent follows if it is dangling, quietly: any
   conflict ends the pruning without an error.

Mapping to aiopod's model:

* Docker's parent links are aiopod's layer tree (podman's parent rule, C21 of
  ``docs/design/removal-rules.md``: the child's layers and history extend the parent's).
  They agree for images docker built, and for images ``docker load`` read with
  ``Parent`` links; docker sees no child where it has no link.
* aiopod has no running containers: every container, runtime (``create``) or storage
  (``from``, a build's working container), is a docker *stopped* container: a soft
  conflict.  docker's ``-f`` leaves the containers of a deleted image in place; aiopod
  cannot keep a container without its image, so ``-f`` removes them, silently (docker
  prints nothing for them).  The layers such a container holds in docker are not
  reported as released in that call, so the output stays docker's; a later call does
  not know of them any more and reports them when their last image goes.
* Names: aiopod gives a name without a registry ``localhost/`` where docker gives it
  ``docker.io/library/``; ``Untagged:`` lines show both as docker's short form
  (``x:1``).  A name really in ``localhost/`` is shown short too (docker would keep it).
* Lookup is docker's: a name without a registry is ``localhost/`` or
  ``docker.io/[library/]`` exactly; podman's short-name search (``mid:1`` finding
  ``example.com/mid:1``) does not apply, nor do transports (``containers-storage:``).
* Digest references (``name@sha256:...``) are not docker's repository digests: they are
  names like the others here (docker's clean-up of digest references is not modelled).
* docker's ``rmi`` has neither ``-a`` nor ``-i``: both are usage errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiopod._reference import docker_familiar, normalize_local
from aiopod.errors import (
    AiopodError,
    DockerConflict,
    DockerInvalidReference,
    DockerNotFound,
    ImageNotKnown,
    InvalidReference,
    UsageError,
)
from aiopod.removal.plan import (
    DeleteImage,
    Plan,
    RemovalOptions,
    RemoveContainer,
    Simulation,
    Untag,
)
from aiopod.storage.lookup import match_id_prefix
from aiopod.storage.records import ImageRecord, StoreState, chain_ids

__all__ = (
    "check_docker_usage",
    "familiar_name",
    "not_found_name",
    "plan_docker",
)

_FULL_ID = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")


def familiar_name(name: str) -> str:
    """How ``Untagged:`` shows an aiopod name: docker's short form, where aiopod's
    ``localhost/`` (what it gives a name without a registry, docker's ``docker.io/``)
    counts as docker's default registry: ``localhost/x:1`` is ``x:1``, as docker shows
    the ``x:1`` of the same archive."""
    return docker_familiar(name.removeprefix("localhost/"))


def _tagged(name: str) -> str:
    """*name* with ``:latest`` when it has neither tag nor digest (docker's TagNameOnly)."""
    if "@" in name or ":" in name.rsplit("/", 1)[-1]:
        return name
    return name + ":latest"


def not_found_name(reference: str) -> str:
    """How docker names a reference it cannot find in ``No such image: ...``."""
    if _FULL_ID.fullmatch(reference):
        return "sha256:" + reference
    if reference.startswith("sha256:"):
        return reference
    return docker_familiar(_tagged(reference))


def _short(identifier: str) -> str:
    return identifier.removeprefix("sha256:")[:12]


def _is_id_prefix(image_id: str, reference: str) -> bool:
    """docker's test: the input is a prefix of ``sha256:<id>`` or of ``<id>``."""
    return ("sha256:" + image_id).startswith(reference) or image_id.startswith(reference)


def _is_single_reference(names: Sequence[str]) -> bool:
    """One tag reference (digest references of that same repository aside)."""
    tags = [n for n in names if "@" not in n]
    digests = {n.split("@", 1)[0] for n in names if "@" in n}
    if len(names) <= 1:
        return len(names) == 1
    if len(tags) > 1:
        return False
    single = tags[0].rsplit(":", 1)[0] if tags else names[0].split("@", 1)[0]
    return len(digests) == 1 and single in digests


def _lookup(state: StoreState, reference: str) -> tuple[ImageRecord, str]:
    """docker's lookup: a full ID, ``sha256:<ID prefix>``, the name exactly (normalised
    as docker does, no short-name search), else a unique ID prefix.

    :raises ~aiopod.errors.ImageNotKnown: nothing, or more than one image, matches.
    """
    hex_part = reference.removeprefix("sha256:")
    if hex_part != reference and 0 < len(hex_part) < 64 and _HEX.fullmatch(hex_part):
        found = [record for i, record in state.images.items() if i.startswith(hex_part)]
        if len(found) != 1:
            raise ImageNotKnown(reference)
        return found[0], reference
    if _FULL_ID.fullmatch(hex_part):
        record = state.images.get(hex_part)
        if record is None:
            raise ImageNotKnown(reference)
        return record, reference
    full = str(normalize_local(reference))
    for candidate in _name_candidates(full, reference):
        image_id = state.by_name.get(candidate)
        if image_id is not None:
            return state.images[image_id], candidate
    record = match_id_prefix(state, reference)
    if record is None:
        raise ImageNotKnown(reference)
    return record, reference


def _name_candidates(full: str, typed: str) -> list[str]:
    """The stored names docker's normalised *typed* name can be: for a name without a
    registry, aiopod's ``localhost/`` form and docker's ``docker.io/`` one; for a
    ``docker.io`` name, aiopod's ``localhost/`` form too."""
    candidates = [full]
    if full.startswith("localhost/") and not typed.startswith("localhost/"):
        rest = full.removeprefix("localhost/")
        path = rest.split("@", 1)[0].rsplit(":", 1)[0]
        candidates.append(("docker.io/" if "/" in path else "docker.io/library/") + rest)
    elif full.startswith("docker.io/"):
        candidates.append("localhost/" + docker_familiar(full))
    return candidates


@dataclass(frozen=True, slots=True)
class _Conflict:
    hard: bool
    used: bool
    message: str


class _Planner:
    """One ``docker rmi`` call on a simulation."""

    def __init__(self, sim: Simulation, options: RemovalOptions) -> None:
        self.sim = sim
        self.options = options
        # Chain IDs the containers removed by force hold in docker (which keeps them).
        self.held: set[str] = set()

    def conflict(self, image_id: str, *, soft: bool, references: bool = True) -> _Conflict | None:
        """docker's checks in order: children (hard), references and containers (soft)."""
        state = self.sim.state
        if self.sim.tree.has_children(image_id):
            return _Conflict(True, False, "image has dependent child images")
        if soft and references and state.images[image_id].names:
            return _Conflict(False, False, "image is referenced in multiple repositories")
        users = state.containers_of(image_id)
        if soft and users:
            return _Conflict(
                False, True, f"image is being used by stopped container {_short(users[0].id)}"
            )
        return None

    def fail(self, image_id: str, conflict: _Conflict) -> None:
        """Record docker's conflict error for *image_id*."""
        how = "cannot be forced" if conflict.hard else "must be forced"
        self.sim.fail(
            DockerConflict(
                f"conflict: unable to delete {_short(image_id)} ({how}) - {conflict.message}"
            )
        )

    def released(self, image_id: str) -> tuple[str, ...]:
        """Chain IDs (top first) of *image_id*'s layers that nothing else holds."""
        state = self.sim.state
        held = set(self.held)
        for other in state.images.values():
            if other.id != image_id:
                held.update(chain_ids(other.diff_ids))
        mine = chain_ids(state.images[image_id].diff_ids)
        if state.containers_of(image_id):
            held.update(mine)  # docker keeps a forced image's containers, and their layers
        return tuple(dict.fromkeys(c for c in reversed(mine) if c not in held))

    def delete(self, image_id: str, *, force: bool, prune: bool, quiet: bool) -> bool:
        """docker's delete helper; False if it stopped with an error."""
        sim = self.sim
        conflict = self.conflict(image_id, soft=not force)
        if conflict is not None:
            dangling = not sim.state.images[image_id].names and not sim.tree.has_children(image_id)
            if quiet and (not dangling or conflict.used):
                return True
            self.fail(image_id, conflict)
            return False
        users = sim.state.containers_of(image_id)
        for container in users:
            cause = sim.container_failures.get(container.id)
            if cause is not None:
                sim.fail(
                    DockerConflict(
                        f"conflict: unable to delete {_short(image_id)} (cannot be forced) - "
                        f"container {_short(container.id)} could not be removed: {cause}"
                    )
                )
                return False
        parent = sim.tree.parent_of(image_id)
        for name in sim.state.images[image_id].names:
            sim.do(Untag(image_id, name))
        released = self.released(image_id)
        if users:
            self.held.update(chain_ids(sim.state.images[image_id].diff_ids))
        for container in users:
            sim.do(RemoveContainer(container.id, image_id, container.runtime is not None))
        sim.do(DeleteImage(image_id, released_layers=released))
        if prune and parent is not None and parent in sim.state.images:
            return self.delete(parent, force=False, prune=True, quiet=True)
        return True

    def remove(self, reference: str) -> None:
        """One argument of ``docker rmi``."""
        sim = self.sim
        force = self.options.force
        try:
            record, resolved = _lookup(sim.state, reference)
        except ImageNotKnown:
            sim.fail(
                DockerNotFound(
                    reference, f"No such image: {not_found_name(reference)}", forced=force
                )
            )
            return
        except AiopodError as exc:
            message = exc.reason if isinstance(exc, InvalidReference) else exc.message
            if not message.startswith("invalid reference format"):
                message = f"invalid reference format: {message}"
            sim.fail(DockerInvalidReference(message, text=reference))
            return
        image_id = record.id
        names = record.names
        quiet = False
        if not _is_id_prefix(image_id, reference):
            users = sim.state.containers_of(image_id)
            if not force and _is_single_reference(names) and users:
                sim.fail(
                    DockerConflict(
                        f'conflict: unable to remove repository reference "{reference}" '
                        f"(must force) - container {_short(users[0].id)} is using its "
                        f"referenced image {_short(image_id)}"
                    )
                )
                return
            if resolved in names:
                sim.do(Untag(image_id, resolved))
            if sim.state.images[image_id].names:
                return
            quiet = True
        elif _is_single_reference(names):
            conflict = self.conflict(image_id, soft=not force, references=False)
            if conflict is not None:
                self.fail(image_id, conflict)
                return
            for name in names:
                sim.do(Untag(image_id, name))
        self.delete(image_id, force=force, prune=not self.options.no_prune, quiet=quiet)


def check_docker_usage(references: Sequence[str], options: RemovalOptions) -> None:
    """The usage errors of ``rmi`` under the docker policy.

    :raises ~aiopod.errors.UsageError: no references, or ``all``/``ignore`` (docker's
        ``rmi`` has neither).
    """
    if options.all or options.ignore:
        raise UsageError(
            "the docker policy's rmi has no --all or --ignore (docker rmi has neither)"
        )
    if not references:
        raise UsageError('"docker rmi" requires at least 1 argument')


def plan_docker(
    state: StoreState,
    references: Sequence[str],
    options: RemovalOptions,
    container_failures: Mapping[str, str] | None = None,
) -> Plan:
    """Plan ``docker rmi`` (pure; *state* is not changed).

    :raises ~aiopod.errors.UsageError: no references, or ``all``/``ignore`` (docker's
        ``rmi`` has neither).
    """
    check_docker_usage(references, options)
    sim = Simulation(state, container_failures or {})
    planner = _Planner(sim, options)
    for reference in references:
        planner.remove(reference)
    return sim.plan("docker")
