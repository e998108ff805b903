"""An auditor: every event of every process using a store, in a JSON-lines audit file.

Run it next to whatever uses the store (the command line, services, notebooks)::

    python examples/auditor.py STORE AUDIT_FILE      # follows until Ctrl-C or SIGTERM
    python examples/auditor.py --demo [DIR]          # a short demonstration

It follows the store's event stream (``rt.events.subscribe(since=...)``: the commits of
every process, in ``seq`` order, each once) and appends each event to AUDIT_FILE in
aiopod's native shape, which keeps the record's ``actor`` and ``prev`` hash, so the audit
file can be checked against the store's chain later.  Each burst is written with one
aiofiles write, flushed and fsync-ed; then ``AUDIT_FILE.checkpoint`` is replaced with
the last ``seq`` written.

After a crash (``kill -9`` included) it starts again where the file ends: a line cut
short by the crash is cut off, and the subscription resumes after the last complete
line's ``seq`` (the checkpoint can only be behind it, never ahead: the file is synced
first).  Nothing is lost, nothing is written twice.  A subscriber that falls behind gets
``Lagged`` and then the same events from the store's log, so the auditor only counts it.

aiofiles runs its calls in asyncio's executor, so this auditor needs the asyncio backend;
aiopod itself also runs on trio, where ``anyio.open_file`` would do the same job (README,
"Files and threads").
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import anyio
import anyio.abc

import aiopod
from aiopod import Lagged, to_native_json

sys.path.insert(0, str(Path(__file__).parent))
from quickstart import make_rootfs_tarball  # the same example image as the quickstart

#: Most events written in one go (a burst larger than this is written in several).
BATCH = 512

_fsync = aiofiles.os.wrap(os.fsync)


def audit_line(event: aiopod.Event) -> str:
    """The JSON line recorded for one event."""
    return json.dumps(to_native_json(event), separators=(",", ":")) + "\n"


def resume_point(path: Path) -> int:
    """The ``seq`` of the audit file's last complete line (0 for a new file); a line a
    crash cut short is cut off first.  Blocking (run it before the event loop is busy)."""
    try:
        with open(path, "r+b") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                f.truncate(end)  # the torn line of a crash
            lines = data[:end].splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


async def _write_checkpoint(path: Path, seq: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    async with aiofiles.open(tmp, "w") as f:
        await f.write(json.dumps({"seq": seq}) + "\n")
        await f.flush()
        await _fsync(f.fileno())
    await aiofiles.os.replace(tmp, path)


async def audit(
    rt: aiopod.Runtime,
    path: Path,
    *,
    buffer: int = 4096,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Append every event of the store to *path*, resuming after its last line, until
    cancelled or until the runtime closes.

    Signals *task_status* with the ``seq`` it resumes after once it is subscribed.
    """
    checkpoint = path.with_name(path.name + ".checkpoint")
    after = await anyio.to_thread.run_sync(resume_point, path)
    lagged = 0
    async with rt.events.subscribe(since=after, buffer=buffer) as events:
        out = await aiofiles.open(path, "a")
        try:
            task_status.started(after)
            async for first in events:
                batch = [first]
                while len(batch) < BATCH:  # take the rest of the burst without waiting
                    try:
                        batch.append(events.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                written = [e for e in batch if not isinstance(e, Lagged)]
                lagged += sum(e.missed for e in batch if isinstance(e, Lagged))
                if not written:
                    continue
                # The events have left the subscription: finish writing them even when
                # cancelled (or a restart would have to find them again in the log).
                with anyio.CancelScope(shield=True):
                    await out.write("".join(audit_line(e) for e in written))
                    await out.flush()
                    await _fsync(out.fileno())
                    await _write_checkpoint(checkpoint, written[-1].seq)
        finally:
            with anyio.CancelScope(shield=True):  # close the file even when cancelled
                await out.close()
            if lagged:
                print(f"auditor: {lagged} events came late from the log", file=sys.stderr)


async def follow(store: Path, path: Path) -> None:
    """Audit *store* into *path* until SIGINT or SIGTERM."""
    async with (
        aiopod.Runtime(store, caller="examples/auditor.py") as rt,
        anyio.create_task_group() as tg,
    ):
        after = await tg.start(audit, rt, path)
        print(f"auditing {store} into {path} after seq {after}", file=sys.stderr)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


async def demo(workdir: Path) -> None:
    """Audit a store while this process and a command-line process change it."""
    tarball = make_rootfs_tarball(workdir / "rootfs.tar")
    store, audit_file = workdir / "store", workdir / "audit.jsonl"
    async with aiopod.Runtime(store) as rt, anyio.create_task_group() as tg:
        await tg.start(audit, rt, audit_file)
        image = await rt.import_image(tarball, "auditor-demo:1")
        await rt.tag(image.id, "auditor-demo:2", "example.com/demo:3")
        # Another process: the auditor sees its events too, in order.
        cli = [
            sys.executable,
            "-m",
            "aiopod",
            "--root",
            str(store),
            "untag",
            *["auditor-demo:2"] * 2,
        ]
        await anyio.run_process(cli)
        await rt.remove_images([image.id], force=True)
        last = await anyio.to_thread.run_sync(rt.event_log.last_seq)
        # The audit file is the auditor's output: look at it until it has every event.
        while await anyio.to_thread.run_sync(resume_point, audit_file) < last:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        verified = await rt.events.verify()
        tg.cancel_scope.cancel()
    print(f"--- {audit_file.name}")
    async with aiofiles.open(audit_file) as f:
        for line in (await f.read()).splitlines():
            doc: dict[str, Any] = json.loads(line)
            print(doc["seq"], doc["action"], doc["type"], doc["name"], doc["actor"]["pid"])
    print(f"--- the store's chain: {'intact' if verified.ok else verified.problem}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--demo"]:
        if len(argv) > 1:
            anyio.run(demo, Path(argv[1]), backend="asyncio")
        else:
            with tempfile.TemporaryDirectory(prefix="aiopod-auditor-") as tmp:
                anyio.run(demo, Path(tmp), backend="asyncio")
    elif len(argv) == 2:
        anyio.run(follow, Path(argv[0]), Path(argv[1]), backend="asyncio")
    else:
        sys.exit(f"usage: {sys.argv[0]} STORE AUDIT_FILE | --demo [DIR]")


if __name__ == "__main__":
    main(sys.argv[1:])
