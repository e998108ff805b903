"""Forward every event of a store to syslog, as RFC 5424 messages (standard library only).

    python examples/syslog_forwarder.py STORE [--address /dev/log | HOST:PORT]
                                              [--checkpoint FILE]

Audit teams collect logs with syslog.  Each event of every process using the store
becomes one message on the ``authpriv`` facility with severity ``notice``::

    <85>1 2026-12-06T05:10:40.817572Z host aiopod 4685 remove [aiopod@32473 seq="7"
    type="image" id="5075…"] {"seq":7,"action":"remove",…}

(one line): the event's time, the host and process that made the change, the canonical
action as MSGID, the ``seq`` as structured data and the native JSON record (with its
``actor`` and ``prev`` hash) as the message.  ``logging.handlers.SysLogHandler`` sends it
(a unix datagram socket such as ``/dev/log``, or UDP to HOST:PORT); it writes ``<PRI>``
and this example's formatter the rest of the RFC 5424 header.

The last ``seq`` sent is kept in the checkpoint file (default ``STORE.syslog-checkpoint``),
so a restart continues after it.  Sending blocks, so it runs in a worker thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
from datetime import UTC
from pathlib import Path

import anyio

import aiopod
from aiopod import Lagged, to_native_json

#: The private enterprise number RFC 5424's examples use for structured data IDs.
ENTERPRISE = 32473


class Rfc5424Formatter(logging.Formatter):
    """Everything after ``<PRI>``: ``1 TIMESTAMP HOST APP PROCID MSGID SD MSG``."""

    def format(self, record: logging.LogRecord) -> str:
        event: aiopod.Event = record.event  # type: ignore[attr-defined]
        actor = event.actor
        host = actor.host if actor is not None else "-"
        procid = str(actor.pid) if actor is not None else "-"
        stamp = event.time.astimezone(UTC).isoformat(timespec="microseconds")
        data = f'[aiopod@{ENTERPRISE} seq="{event.seq}" type="{event.type}" id="{event.id}"]'
        body = json.dumps(to_native_json(event), separators=(",", ":"))
        return (
            f"1 {stamp.replace('+00:00', 'Z')} {host} aiopod {procid} {event.action} {data} {body}"
        )


class _NoticeHandler(logging.handlers.SysLogHandler):
    """Sends every record with severity ``notice`` (logging has no such level)."""

    def mapPriority(self, levelName: str) -> str:
        return "notice"


def make_logger(address: str) -> logging.Logger:
    """A logger whose one handler sends RFC 5424 messages to *address*."""
    target: str | tuple[str, int]
    if ":" in address and not address.startswith("/"):
        host, _, port = address.rpartition(":")
        target = (host, int(port))
    else:
        target = address
    handler = _NoticeHandler(address=target, facility=_NoticeHandler.LOG_AUTHPRIV)
    handler.append_nul = False
    handler.setFormatter(Rfc5424Formatter())
    logger = logging.getLogger(f"aiopod.syslog.{address}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def send(logger: logging.Logger, checkpoint: Path, events: list[aiopod.Event]) -> None:
    """Send *events* (blocking), then record the last one's seq."""
    for event in events:
        logger.info("", extra={"event": event})
    tmp = checkpoint.with_name(checkpoint.name + ".tmp")
    tmp.write_text(f"{events[-1].seq}\n")
    os.replace(tmp, checkpoint)


def resume_after(checkpoint: Path) -> int:
    try:
        return int(checkpoint.read_text().strip() or 0)
    except FileNotFoundError:
        return 0


async def forward(store: Path, address: str, checkpoint: Path) -> None:
    logger = make_logger(address)
    after = await anyio.to_thread.run_sync(resume_after, checkpoint)
    async with (
        aiopod.Runtime(store, caller="examples/syslog_forwarder.py") as rt,
        anyio.create_task_group() as tg,
    ):

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        async with rt.events.subscribe(since=after) as events:
            async for first in events:
                batch = [first]
                while True:
                    try:
                        batch.append(events.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                sent = [e for e in batch if not isinstance(e, Lagged)]
                if sent:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(send, logger, checkpoint, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--address", default="/dev/log", help="/dev/log or HOST:PORT (UDP)")
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    checkpoint = args.checkpoint or args.store.with_name(args.store.name + ".syslog-checkpoint")
    anyio.run(forward, args.store, args.address, checkpoint)


if __name__ == "__main__":
    main()
