"""What a removal will do: the steps of a plan, the simulation the planners run, and the
report a removal returns.

Planners are pure: they take the store's metadata (a :class:`StoreState`), the user's
input and the options, and return a :class:`Plan`.  They work on a :class:`Simulation`,
a private copy of the state that every step is applied to as it is planned, so later
decisions see the effect of earlier ones (a name untagged, a parent left dangling).
The executor then applies the same steps, with :func:`apply_step`, to the real state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from aiopod._display import Displayable, html_table, plural
from aiopod.errors import (
    AiopodError,
    ContainerNotKnown,
    DockerNotFound,
    ImageInUse,
    ImageNotKnown,
)
from aiopod.events.model import Event, EventKind, utc_now
from aiopod.storage.layertree import LayerTree
from aiopod.storage.records import StoreState

__all__ = (
    "DeleteImage",
    "ImageProcessed",
    "Plan",
    "RemovalOptions",
    "RemovalReport",
    "RemoveContainer",
    "Simulation",
    "Step",
    "Untag",
    "apply_step",
    "exit_code_for",
)


@dataclass(frozen=True, slots=True)
class RemovalOptions:
    """The flags of ``rmi``: ``-f``, ``-a``, ``-i`` and ``--no-prune``."""

    force: bool = False
    all: bool = False
    ignore: bool = False
    no_prune: bool = False


@dataclass(frozen=True, slots=True)
class Untag:
    """Remove *name* from an image (reported as ``Untagged: <name>``)."""

    image_id: str
    name: str
    time: datetime = field(default_factory=utc_now)  # when it was planned: its event's time


@dataclass(frozen=True, slots=True)
class RemoveContainer:
    """Remove a container (runtime: state and storage; external: storage only)."""

    container_id: str
    image_id: str
    runtime: bool
    event: bool = True  # podman emits no event for external containers
    time: datetime = field(default_factory=utc_now)


@dataclass(frozen=True, slots=True)
class DeleteImage:
    """Delete an image record; ``reported`` decides whether ``Deleted: <id>`` is printed."""

    image_id: str
    reported: bool = True
    time: datetime = field(default_factory=utc_now)
    #: The ``docker`` policy: chain IDs of the layers docker would release with the image
    #: (its extra ``Deleted: <chain ID>`` lines), top layer first.
    released_layers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageProcessed:
    """podman's ``remove`` event for an image an ``rmi`` handled (no state change)."""

    image_id: str
    name: str
    time: datetime


Step = Untag | RemoveContainer | DeleteImage | ImageProcessed


def apply_step(state: StoreState, step: Step) -> None:
    """Apply one step to *state* (the simulation, or the transaction's state)."""
    if isinstance(step, Untag):
        record = state.images[step.image_id]
        state.images[step.image_id] = replace(
            record, names=tuple(n for n in record.names if n != step.name)
        )
        if state.by_name.get(step.name) == step.image_id:
            del state.by_name[step.name]
    elif isinstance(step, RemoveContainer):
        state.containers.pop(step.container_id, None)
    elif isinstance(step, DeleteImage):
        state.remove(step.image_id)


def events_for(step: Step, state: StoreState) -> list[Event]:
    """The events one step produces (computed before the step is applied to *state*)."""
    if isinstance(step, Untag):
        return [Event(EventKind.UNTAGGED, "image", step.image_id, step.name, time=step.time)]
    if isinstance(step, RemoveContainer):
        container = state.containers.get(step.container_id)
        if container is None or not step.event:
            return []
        image = container.runtime.image_name if container.runtime else container.image_id
        attributes = container.event_attributes(image)
        return [
            Event(
                EventKind.REMOVED, "container", container.id, container.name, attributes=attributes
            )
        ]
    if isinstance(step, DeleteImage):
        return [Event(EventKind.DELETED, "image", step.image_id, time=step.time)]
    return [Event(EventKind.REMOVED, "image", step.image_id, step.name or None, time=step.time)]


class Simulation:
    """A private copy of the store's state that a planner changes as it plans."""

    def __init__(self, state: StoreState, container_failures: Mapping[str, str]) -> None:
        self.state = state.copy()
        self.tree = LayerTree(self.state)
        self.container_failures = container_failures
        self.steps: list[Step] = []
        self.errors: list[AiopodError] = []
        self.deleted: set[str] = set()

    def do(self, step: Step) -> None:
        """Plan *step* and apply it to the simulated state."""
        self.steps.append(step)
        apply_step(self.state, step)
        if isinstance(step, DeleteImage):
            self.tree.remove(step.image_id)
            self.deleted.add(step.image_id)

    def fail(self, error: AiopodError) -> None:
        """Record an error; planning goes on with the next image."""
        self.errors.append(error)

    def plan(self, policy: str, lookup_errors: Sequence[AiopodError] = ()) -> Plan:
        """The finished plan."""
        return Plan(policy, list(self.steps), [*lookup_errors, *self.errors])


@dataclass
class Plan:
    """The steps a removal takes, in order, and the errors it will report."""

    policy: str
    steps: list[Step]
    errors: list[AiopodError]

    @property
    def untagged(self) -> list[str]:
        """Every name reported as ``Untagged:``, in order."""
        return [s.name for s in self.steps if isinstance(s, Untag)]

    @property
    def deleted(self) -> list[str]:
        """Every image ID reported as ``Deleted:``, in order."""
        return [s.image_id for s in self.steps if isinstance(s, DeleteImage) and s.reported]

    @property
    def removed_containers(self) -> list[str]:
        """Every container the removal takes away."""
        return [s.container_id for s in self.steps if isinstance(s, RemoveContainer)]

    @property
    def container_ids(self) -> list[str]:
        """The containers whose data must be deleted (same as removed_containers)."""
        return self.removed_containers


def exit_code_for(plan: Plan) -> int:
    """The exit status of a removal that ends with *plan*'s errors (podman's ``ExitCode`` in
    its removal report, what ``rmi`` exits with).

    Under the docker policy it is docker's: 1 when any error fails the call, which every
    error does but a :class:`~aiopod.errors.DockerNotFound` under ``-f`` (docker prints it
    and exits 0).  Under the others it is podman's (``docs/design/removal-rules.md`` A6):
    2 if any error is "in use by a container", 1 if every error is "not known" (an image
    or a container), 125 otherwise, 0 without errors.
    """
    errors = plan.errors
    if plan.policy == "docker":
        return int(any(not (isinstance(e, DockerNotFound) and e.forced) for e in errors))
    if not errors:
        return 0
    if any(isinstance(e, ImageInUse) for e in errors):
        return 2
    if all(isinstance(e, ImageNotKnown | ContainerNotKnown) for e in errors):
        return 1
    return 125


@dataclass
class RemovalReport(Displayable):
    """What a removal did (or, for a dry run, would do).

    ``untagged`` and ``deleted`` are what ``rmi`` prints as ``Untagged:`` and
    ``Deleted:`` lines; ``errors`` are every error, in the order podman reports them;
    ``plan`` holds the steps.  ``exit_code`` is the removal's exit status as the policy
    computes it from the errors (:func:`exit_code_for`): part of the report, as
    ``ExitCode`` is of podman's, because it is a verdict over all the errors together
    (one "in use" makes 2, only "not known" make 1; docker's ``-f`` ignores not found),
    which a single error's class does not give.
    """

    untagged: list[str]
    deleted: list[str]
    removed_containers: list[str]
    errors: list[AiopodError]
    exit_code: int
    dry_run: bool = False
    plan: Plan | None = None
    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: Plan, *, dry_run: bool, events: Sequence[Event] = ()) -> RemovalReport:
        """The report of *plan* (executed unless *dry_run*)."""
        return cls(
            untagged=plan.untagged,
            deleted=plan.deleted,
            removed_containers=plan.removed_containers,
            errors=list(plan.errors),
            exit_code=exit_code_for(plan),
            dry_run=dry_run,
            plan=plan,
            events=list(events),
        )

    def to_podman_dict(self) -> dict[str, object]:
        """podman's REST shape: ``{"Untagged": [...], "Deleted": [...], "Errors": [...],
        "ExitCode": n}``."""
        return {
            "Untagged": list(self.untagged),
            "Deleted": list(self.deleted),
            "Errors": [e.message for e in self.errors],
            "ExitCode": self.exit_code,
        }

    def _summary(self) -> str:
        counts = ", ".join(
            [
                f"{len(self.untagged)} untagged",
                f"{len(self.deleted)} deleted",
                plural(len(self.removed_containers), "container") + " removed",
                plural(len(self.errors), "error"),
            ]
        )
        dry = " (dry run)" if self.dry_run else ""
        return f"RemovalReport{dry}: {counts}; exit code {self.exit_code}"

    def _lines(self) -> list[tuple[str, str]]:
        return [
            *(("Untagged", name) for name in self.untagged),
            *(("Deleted", image_id) for image_id in self.deleted),
            *(("Removed container", cid) for cid in self.removed_containers),
            *(("Error", error.message) for error in self.errors),
        ]

    def display_text(self) -> str:
        """A summary line, then ``rmi``'s lines (``Untagged: X``, ``Deleted: Y``, and
        ``Removed container: Z`` and ``Error: ...``)."""
        return "\n".join([self._summary(), *(f"{what}: {value}" for what, value in self._lines())])

    def display_html(self) -> str:
        return html_table(["", "Name, ID or message"], self._lines(), caption=self._summary())


def now() -> datetime:
    """The time a removal of one image starts (podman stamps its ``remove`` event so)."""
    return utc_now()
