"""Image removal with a live event subscriber, in a few awaits.

An image with two names and two working containers: ``remove_images`` first only untags
(two names, a name given), then, forced, removes the containers concurrently and deletes
the image, while a subscriber prints every event as it happens.
Run it with ``python examples/remove_with_subscriber.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

import aiopod
from aiopod import Lagged

sys.path.insert(0, str(Path(__file__).parent))
from quickstart import make_rootfs_tarball


async def print_events(rt: aiopod.Runtime, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    async with rt.events.subscribe() as stream:
        task_status.started()
        async for event in stream:
            if isinstance(event, Lagged):
                print(f"  (missed {event.missed} events)")
            else:
                print(f"  event: {event.kind} {event.type} {event.id[:12]} {event.name or ''}")


async def main(workdir: Path) -> None:
    async with aiopod.Runtime(root=workdir / "store") as rt, anyio.create_task_group() as tg:
        await tg.start(print_events, rt)
        await rt.import_image(make_rootfs_tarball(workdir / "rootfs.tar"), "app:1")
        await rt.tag("app:1", "app:2")
        for _ in range(2):
            await rt.create_working_container("app:1")

        report = await rt.remove_images(["app:2"])
        print(f"rmi app:2 -> untagged {report.untagged}, exit {report.exit_code}")

        report = await rt.remove_images(["app:1"])
        print(f"rmi app:1 -> {[e.message for e in report.errors]}, exit {report.exit_code}")

        report = await rt.remove_images(["app:1"], force=True)
        print(
            f"rmi -f app:1 -> removed {len(report.removed_containers)} containers, "
            f"deleted {[i[:12] for i in report.deleted]}, exit {report.exit_code}"
        )
        await anyio.sleep(0.1)  # let the subscriber print the last events
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="aiopod-remove-") as tmp:
        anyio.run(main, Path(tmp))
