"""An audit logger: every event a runtime publishes, appended to a JSON-lines file.

Run it with ``python examples/auditor.py [DIR]``.  It opens a runtime on a fresh store in
a temporary directory (or in DIR), starts two auditors in a task group — one with the
default buffer, one with a buffer of two events to show what falling behind looks like —
imports, tags and untags images, closes the runtime (which ends the auditors once they
have written everything) and prints both audit files.

Each line is aiopod's native event shape (``seq``, ``kind``, ``type``, ``id``, ``name``,
``time``, ``attributes``).  When the auditor falls behind by more than its buffer, the
bus drops the oldest events and says how many; the auditor writes that as
``{"lagged": N}`` in place of the missing events, so a gap is never silent (the ``seq``
numbers around it tell which events are missing; they are still in the store's event
log, ``aiopod events``).

The file is written with aiofiles, one write per burst of events (each aiofiles call is a
trip to a worker thread, so writing event by event would be slow).  A write that has
started is shielded from cancellation: the events it holds have already left the
subscription and would otherwise be lost.  aiofiles runs its calls in asyncio's executor,
so this auditor needs the asyncio backend; aiopod itself also runs on trio, where
``anyio.open_file`` would do the same job (README, "Files and threads").
"""

from __future__ import annotations

import json
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import aiofiles
import anyio
import anyio.abc

import aiopod
from aiopod import EventBus, Lagged, to_native_json

sys.path.insert(0, str(Path(__file__).parent))
from quickstart import make_rootfs_tarball  # the same example image as the quickstart

#: Most events written in one go (a burst larger than this is written in several).
BATCH = 512


def audit_line(item: aiopod.Event | Lagged) -> str:
    """The JSON line recorded for one item of the subscription."""
    doc: dict[str, Any] = (
        {"lagged": item.missed} if isinstance(item, Lagged) else to_native_json(item)
    )
    return json.dumps(doc, separators=(",", ":")) + "\n"


async def audit(
    events: EventBus,
    path: Path,
    *,
    buffer: int = 4096,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Append every event published on *events* to *path* until cancelled or until the
    bus closes (the runtime was closed).

    Signals *task_status* once subscribed, so ``await tg.start(audit, rt.events, path)``
    returns when no later event can be missed.
    """
    async with events.subscribe(buffer=buffer) as subscription:
        out = await aiofiles.open(path, "a")
        try:
            task_status.started()
            async for first in subscription:
                lines = [audit_line(first)]
                while len(lines) < BATCH:  # take the rest of the burst without waiting
                    try:
                        lines.append(audit_line(subscription.receive_nowait()))
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                with anyio.CancelScope(shield=True):
                    await out.write("".join(lines))
                    await out.flush()
        finally:
            with anyio.CancelScope(shield=True):  # close the file even when cancelled
                await out.close()


async def main(workdir: Path) -> None:
    tarball = make_rootfs_tarball(workdir / "rootfs.tar")
    audit_file, slow_file = workdir / "audit.jsonl", workdir / "audit-small-buffer.jsonl"
    # The runtime is closed first when the block ends; closing it closes its bus, so the
    # auditors write what they still hold and return: the task group then ends by itself.
    async with anyio.create_task_group() as tg, aiopod.Runtime(root=workdir / "store") as rt:
        await tg.start(audit, rt.events, audit_file)
        await tg.start(partial(audit, rt.events, slow_file, buffer=2))

        image = await rt.import_image(tarball, "auditor-demo:1")
        await rt.tag(image.id, "auditor-demo:2", "auditor-demo:3", "example.com/demo:4")
        await rt.untag(image.id, "auditor-demo:3")
        # Untagging every name publishes one burst of three events: more than the
        # small buffer holds, so that auditor records a gap.
        await rt.untag(image.id)
        await rt.import_image(tarball, "auditor-demo:again")

    for path in (audit_file, slow_file):
        print(f"--- {path.name}")
        async with aiofiles.open(path) as f:
            print((await f.read()).rstrip())


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="aiopod-auditor-") as tmp:
            anyio.run(main, Path(tmp))
