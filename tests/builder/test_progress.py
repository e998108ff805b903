"""The build's progress records and their delivery (:mod:`aiopod.builder.progress`).

The records' text is podman's (``test_build_output.py`` compares whole builds with podman);
here: the text of each record, and the rules of delivery to a callable and to a memory
object stream (a slow consumer waits the build at records, never at RUN output; output
beyond the backlog is dropped and counted; a closed consumer stops the reporting only).
"""

from __future__ import annotations

import anyio
import pytest

from aiopod.builder.progress import (
    BuildFinished,
    ImageCommitted,
    OutputDropped,
    ProgressRecord,
    Reporter,
    StepCached,
    StepCommitted,
    StepOutput,
    StepStarted,
    short_id,
)

pytestmark = pytest.mark.anyio

ID = "0fc259a6738150bedee6233908b5a619a0f98ed96dcd559d796514548fd61fe6"


def test_each_record_has_podmans_text() -> None:
    assert (
        StepStarted(1, 1, None, 2, 4, "COPY a.txt /a.txt").text == "STEP 2/4: COPY a.txt /a.txt\n"
    )
    assert StepStarted(2, 3, "b", 1, 2, "FROM x AS b").text == "[2/3] STEP 1/2: FROM x AS b\n"
    assert StepOutput(b"caf\xc3\xa9\n\xff").text == "café\n\ufffd"
    assert StepCached(ID).text == f"--> Using cache {ID}\n"
    assert StepCommitted(ID).text == "--> 0fc259a6738\n"
    assert short_id(ID) == "0fc259a6738"
    assert ImageCommitted(ID, "t1", 1, 1).text == "COMMIT t1\n--> 0fc259a6738\n"
    assert ImageCommitted(ID, None, 2, 2).text == "[2/2] COMMIT\n--> 0fc259a6738\n"
    assert BuildFinished(ID, ("localhost/t2:latest", "localhost/t1:latest")).text == (
        f"Successfully tagged localhost/t2:latest\nSuccessfully tagged localhost/t1:latest\n{ID}\n"
    )
    assert BuildFinished(ID, ()).text == f"{ID}\n"
    assert OutputDropped(10).text == ""


async def test_a_callable_gets_every_record_at_once_and_utf8_is_never_cut() -> None:
    got: list[ProgressRecord] = []
    reporter = Reporter(got.append)
    await reporter.send(StepCached(ID))
    reporter.output("stdout", b"caf\xc3")  # the rest of the sequence comes next
    reporter.output("stderr", b"\xe2\x82")
    reporter.output("stdout", b"\xa9!")
    reporter.output("stderr", b"\xac")
    reporter.output("stdout", b"\xf0\x9f")  # never completed: delivered at the end
    reporter.end_output()
    await reporter.aclose()
    assert got == [
        StepCached(ID),
        StepOutput(b"caf", "stdout"),
        StepOutput(b"\xc3\xa9!", "stdout"),
        StepOutput(b"\xe2\x82\xac", "stderr"),
        StepOutput(b"\xf0\x9f", "stdout"),
    ]


async def test_stream_output_never_waits_and_what_is_dropped_is_counted() -> None:
    send, receive = anyio.create_memory_object_stream[ProgressRecord](2)
    reporter = Reporter(send, backlog=10)
    reporter.output("stdout", b"a" * 4)  # fits in the buffer
    reporter.output("stderr", b"b" * 4)  # fits in the buffer
    for _ in range(5):
        reporter.output("stdout", b"0123456789")  # held, merged, the oldest dropped
    received: list[ProgressRecord] = []

    async def consume() -> None:
        with receive:
            received.extend([record async for record in receive])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await reporter.send(StepCommitted(ID))  # after the output held
            await reporter.aclose()
    assert received == [
        StepOutput(b"aaaa", "stdout"),
        StepOutput(b"bbbb", "stderr"),
        OutputDropped(40),
        StepOutput(b"0123456789", "stdout"),
        StepCommitted(ID),
    ]


async def test_stream_send_waits_for_the_consumer() -> None:
    send, receive = anyio.create_memory_object_stream[ProgressRecord](1)
    with receive:
        reporter = Reporter(send)
        await reporter.send(StepCached(ID))
        with anyio.move_on_after(0.2) as waited:
            await reporter.send(StepCommitted(ID))
        assert waited.cancelled_caught  # the buffer was full: the build would wait
        assert receive.receive_nowait() == StepCached(ID)
        reporter.close_nowait()


async def test_a_consumer_that_closes_its_end_stops_the_reporting_only() -> None:
    send, receive = anyio.create_memory_object_stream[ProgressRecord](1)
    reporter = Reporter(send)
    receive.close()
    await reporter.send(StepCached(ID))
    reporter.output("stdout", b"x" * 100)
    await reporter.send(BuildFinished(ID, ()))
    await reporter.aclose()


async def test_close_nowait_delivers_what_fits_and_closes() -> None:
    send, receive = anyio.create_memory_object_stream[ProgressRecord](1)
    reporter = Reporter(send)
    reporter.output("stdout", b"first")
    reporter.output("stdout", b"\xc3")
    reporter.close_nowait()
    with receive:
        assert [record async for record in receive] == [StepOutput(b"first", "stdout")]
