"""Carrying out a removal plan: one executor for every policy.

Under the store's exclusive lock (and the runtime's lock, taken by the caller) the plan
is made from the current metadata; the data of the containers it removes is deleted
concurrently (:meth:`Store.purge_containers`: a task group with a capacity limit, one
failure does not stop the others, an intent makes a crash roll forward); if some could
not be deleted the plan is made again knowing it, so the images they block stay and the
failures become errors of the report; then every step is applied and the whole change
is committed at once, with its events.

Progress (*report*): the plan (:class:`~aiopod.removal.progress.RemovalPlanned`), then
the containers whose data is deleted and the images deleted, counted before and after
each of those steps (:mod:`aiopod.removal.progress`).

Cancellation: waiting for the locks is cancellable; once container data is being
deleted the rest runs shielded, so a cancelled removal never leaves a half-applied change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import anyio
import anyio.to_thread

from aiopod.events.model import Event
from aiopod.removal.plan import (
    DeleteImage,
    Plan,
    RemovalReport,
    RemoveContainer,
    Step,
    Untag,
    events_for,
)
from aiopod.removal.progress import (
    ContainersRemoving,
    ImagesRemoving,
    RemovalCallback,
    RemovalPlanned,
    RemovalRecord,
)
from aiopod.storage.records import StoreState
from aiopod.storage.store import Store, Transaction

__all__ = ("Planner", "execute_plan")

#: A planner: (state, container failures) -> plan.
Planner = Callable[[StoreState, Mapping[str, str]], Plan]


def _apply(txn: Transaction, step: Step) -> None:
    if isinstance(step, Untag):
        record = txn.state.images[step.image_id]
        txn.put(replace(record, names=tuple(n for n in record.names if n != step.name)))
    elif isinstance(step, RemoveContainer):
        if step.container_id in txn.state.containers:
            txn.remove_container(step.container_id)
    elif isinstance(step, DeleteImage):
        txn.remove(step.image_id)


async def execute_plan(
    store: Store,
    planner: Planner,
    *,
    dry_run: bool = False,
    concurrency: int = 8,
    operation: str = "rmi",
    policy: str | None = None,
    options: Mapping[str, str] | None = None,
    report: RemovalCallback | None = None,
    checkpoint: Callable[[], Awaitable[None]] | None = None,
) -> RemovalReport:
    """Plan and (unless *dry_run*) carry out a removal; return its report.

    The events record *policy* (default: the store's), *options* and the *operation*
    (``rmi``, ``prune``, ``rm``, ``build``, ``check``) as the removal's ``reason``; an
    image's ``remove`` event names every name it had and its digest.  *report*
    receives the progress records (see the module); *checkpoint* is awaited once the
    plan is made, before anything changes (a relay delivers the records there, so that
    a failing consumer fails the removal while nothing is done yet).
    """

    def tell(record: RemovalRecord) -> None:
        if report is not None:
            report(record)

    async with store.transaction() as txn:
        txn.policy = policy
        txn.options = {**(options or {}), "reason": operation}
        # In a worker thread: planning reads the metadata (every image, for rmi -a).
        plan = await anyio.to_thread.run_sync(planner, txn.state, {})
        tell(_planned(plan))
        if dry_run:
            return RemovalReport.from_plan(plan, dry_run=True)
        if checkpoint is not None:
            await checkpoint()
        purged = plan.container_ids
        with anyio.CancelScope(shield=bool(purged)):
            if purged:
                tell(ContainersRemoving(0, len(purged)))
            failures = await store.purge_containers(
                txn,
                purged,
                limit=concurrency,
                on_purged=lambda done: tell(ContainersRemoving(done, len(purged))),
            )
            if failures:
                plan = planner(txn.state, failures)
                # Containers whose data is gone although the new plan keeps their image:
                # their records go too.
                kept = set(plan.container_ids) | set(failures)
                extra = [
                    RemoveContainer(c, txn.state.containers[c].image_id, True)
                    for c in purged
                    if c not in kept and c in txn.state.containers
                ]
                plan.steps[:0] = extra
            had = {
                s.image_id: txn.state.images[s.image_id]
                for s in plan.steps
                if isinstance(s, DeleteImage) and s.image_id in txn.state.images
            }
            events: list[Event] = []
            for step in plan.steps:
                produced = events_for(step, txn.state)
                if isinstance(step, DeleteImage) and step.image_id in had:
                    record = had[step.image_id]
                    produced = [
                        replace(
                            e,
                            name=record.names[0] if record.names else None,
                            names=record.names,
                            digest=record.manifest_digest,
                        )
                        for e in produced
                    ]
                events.extend(produced)
                _apply(txn, step)
            txn.emit(events)
            deleted = sum(isinstance(step, DeleteImage) for step in plan.steps)
            if deleted:
                tell(ImagesRemoving(0, deleted))
    if deleted:
        tell(ImagesRemoving(deleted, deleted))
    return RemovalReport.from_plan(plan, dry_run=False, events=txn.recorded or events)


def _planned(plan: Plan) -> RemovalPlanned:
    return RemovalPlanned(
        untagged=sum(isinstance(step, Untag) for step in plan.steps),
        deleted=sum(isinstance(step, DeleteImage) for step in plan.steps),
        containers=len(plan.container_ids),
    )
