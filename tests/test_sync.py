"""aiopod.sync: the runtime without ``await``, from a plain script, from several threads,
and refused (with its own error) where it would block an event loop."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from imagefactory import child_image, make_image, write_docker_archive
from test_asyncio_embedding import readme_snippet

import aiopod
import aiopod.sync
from aiopod import Event, EventKind, Lagged

BASE = make_image("localhost/base:1", seed="sync-base")
APP = child_image(BASE, "localhost/app:1", files={"app/main": b"print('hi')\n"})

WORKTREE = Path(__file__).parents[1]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_docker_archive(tmp_path / "images.tar", [BASE, APP])


def test_the_facade_has_every_call_of_the_async_runtime_with_its_signature() -> None:
    async_calls = {
        name: method
        for name, method in inspect.getmembers(aiopod.Runtime, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert {"images", "load", "remove_images", "build", "check"} <= set(async_calls)
    lifecycle = {"open": "open", "aclose": "close"}
    for name, method in async_calls.items():
        blocking = getattr(aiopod.sync.Runtime, lifecycle.get(name, name), None)
        assert blocking is not None, f"aiopod.sync.Runtime has no {name}"
        if name in lifecycle:
            continue
        expected = inspect.signature(method)
        expected = expected.replace(parameters=list(expected.parameters.values())[1:])
        rt = aiopod.sync.Runtime("/nonexistent")
        assert inspect.signature(getattr(rt, name)) == expected, name
        assert getattr(rt, name).__doc__ == method.__doc__, name
    sync_init = inspect.signature(aiopod.sync.Runtime, eval_str=True).parameters
    for name, parameter in inspect.signature(aiopod.Runtime, eval_str=True).parameters.items():
        assert sync_init[name] == parameter, name


def test_a_plain_script_loads_tags_lists_and_removes(tmp_path: Path, archive: Path) -> None:
    """No ``await`` and no event loop of the script's own: the calls return values."""
    script = textwrap.dedent(
        f"""
        import aiopod, aiopod.sync

        with aiopod.sync.Runtime({str(tmp_path / "store")!r}) as rt:
            loaded = rt.load({str(archive)!r})
            print("loaded", *sorted(i.names[0] for i in loaded))
            image = rt.tag("app:1", "app:latest")
            print("tagged", type(image).__name__, *image.names)
            print("images", *sorted(n for i in rt.images() for n in i.names))
            report = rt.remove_images([image.id], force=True)
            print("untagged", *report.untagged)
            print("deleted", *report.deleted)
            try:
                rt.get_image("nope")
            except aiopod.ImageNotKnown as exc:
                print("error", exc)
        try:
            rt.images()
        except aiopod.RuntimeStopped as exc:
            print("closed", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "loaded localhost/app:1 localhost/base:1",
        "tagged Image localhost/app:1 localhost/app:latest",
        "images localhost/app:1 localhost/app:latest localhost/base:1",
        "untagged localhost/app:1 localhost/app:latest",
        f"deleted {APP.id}",
        "error nope: image not known",
        "closed runtime has already been stopped",
    ]


def test_calls_before_open_and_after_close_raise_runtime_stopped(tmp_path: Path) -> None:
    rt = aiopod.sync.Runtime(tmp_path / "store")
    with pytest.raises(aiopod.RuntimeStopped, match="runtime is not open"):
        rt.images()
    rt.open()
    rt.open()  # idempotent
    assert rt.images() == []
    rt.close()
    rt.close()  # idempotent
    with pytest.raises(aiopod.RuntimeStopped, match="already been stopped"):
        rt.images()
    with pytest.raises(aiopod.RuntimeStopped):
        rt.open()


def test_threads_share_one_runtime(tmp_path: Path, archive: Path) -> None:
    """Eight threads tag at once; a ninth follows their events through a subscription
    until the runtime is closed, which ends its iteration."""
    received: list[Event | Lagged] = []
    with aiopod.sync.Runtime(tmp_path / "store") as rt:
        rt.load(archive)
        subscription = rt.events.subscribe(kinds=[EventKind.TAGGED])
        listener = threading.Thread(target=lambda: received.extend(subscription))
        listener.start()
        failures: list[BaseException] = []

        def tag(n: int) -> None:
            try:
                rt.tag("app:1", f"app:t{n}")
            except BaseException as exc:
                failures.append(exc)

        taggers = [threading.Thread(target=tag, args=(n,)) for n in range(8)]
        for thread in taggers:
            thread.start()
        for thread in taggers:
            thread.join(60)
        assert failures == []
        [image] = [i for i in rt.images() if "localhost/app:1" in i.names]
        assert sorted(image.names) == sorted(
            ["localhost/app:1", *(f"localhost/app:t{n}" for n in range(8))]
        )
        assert listener.is_alive()  # still waiting for more
    listener.join(30)
    assert not listener.is_alive()
    assert sorted(e.name or "" for e in received if isinstance(e, Event)) == sorted(
        f"localhost/app:t{n}" for n in range(8)
    )


def test_a_subscription_is_a_context_manager_and_the_log_an_iterator(
    tmp_path: Path, archive: Path
) -> None:
    with aiopod.sync.Runtime(tmp_path / "store") as rt:
        with rt.events.subscribe(types=["image"]) as subscription:
            rt.load(archive)
            first = subscription.receive()
            assert isinstance(first, Event) and first.kind is EventKind.LOADED
            assert subscription.pending == 1
            assert isinstance(subscription.receive_nowait(), Event)
        assert subscription.closed and rt.events.subscriber_count == 0
        logged = [(e.kind, e.name) for e in rt.event_log.read()]
        assert sorted(logged, key=str) == sorted(
            [(EventKind.LOADED, "localhost/base:1"), (EventKind.LOADED, "localhost/app:1")],
            key=str,
        )
        followed = rt.event_log.follow(until=datetime.now(UTC), poll_interval=0.01)
        assert [(e.kind, e.name) for e in followed] == logged
        assert rt.event_log.last_seq() == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_inside_an_event_loop_the_facade_refuses_with_its_own_error(
    tmp_path: Path, backend: str
) -> None:
    """A call that would block the loop of its thread raises instead; the same call from
    a worker thread of that loop works."""
    with aiopod.sync.Runtime(tmp_path / "store") as rt:

        async def main() -> list[aiopod.Image]:
            with pytest.raises(aiopod.BlockingCallInEventLoop) as made:
                aiopod.sync.Runtime(tmp_path / "other")
            assert (made.value.call, made.value.library) == ("Runtime", backend)
            with pytest.raises(aiopod.BlockingCallInEventLoop) as called:
                rt.images()
            assert isinstance(called.value, RuntimeError)
            assert str(called.value) == (
                "aiopod.sync.Runtime.images() cannot be called in a thread that runs an "
                f"event loop ({backend}): it would block the loop; await aiopod.Runtime's "
                "images() there instead, or call it from a worker thread"
            )
            return await anyio.to_thread.run_sync(rt.images)

        assert anyio.run(main, backend=backend) == []
        assert rt.images() == []  # the refused call did no harm


def test_the_runtime_can_run_on_trio(tmp_path: Path, archive: Path) -> None:
    with aiopod.sync.Runtime(tmp_path / "store", backend="trio") as rt:
        assert sorted(n for i in rt.load(archive) for n in i.names) == [
            "localhost/app:1",
            "localhost/base:1",
        ]
        assert rt.remove_images(["app:1"]).deleted == [APP.id]


def test_an_interrupt_while_waiting_cancels_the_call_it_waits_for(
    tmp_path: Path, archive: Path
) -> None:
    """Ctrl-C in a script stops the call: the cancelled ``receive`` took no event."""
    with aiopod.sync.Runtime(tmp_path / "store") as rt, rt.events.subscribe() as subscription:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            subscription.receive()
        timer.join()
        rt.load(archive)
        assert subscription.pending == 2  # both Loaded events: no receive is still waiting


def test_the_facade_shows_itself_as_the_runtime_does(tmp_path: Path, archive: Path) -> None:
    with aiopod.sync.Runtime(tmp_path / "store") as rt:
        rt.load(archive)
        assert repr(rt).startswith(f"<aiopod.sync.Runtime root={str(tmp_path / 'store')!r} open: ")
        assert "2 images" in repr(rt)
        assert "localhost/app" in rt._repr_html_()


def test_the_readme_snippet_runs_as_written(
    tmp_path: Path,
    archive: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = readme_snippet("Without await: `aiopod.sync`")
    assert 'root="/tmp/aiopod-sync"' in source
    source = source.replace('root="/tmp/aiopod-sync"', f"root={str(tmp_path / 'store')!r}")
    monkeypatch.chdir(tmp_path)
    write_docker_archive(tmp_path / "app.tar", [APP])
    exec(compile(source, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert out[-4].startswith("Event(kind=<EventKind.UNTAGGED: 'Untagged'>")
    assert out[-3:] == [
        "Loaded localhost/app:1",
        "Tagged localhost/app:2",
        "Untagged localhost/app:2",
    ]


def test_a_callback_in_the_runtimes_own_thread_cannot_call_it_back(
    tmp_path: Path, archive: Path
) -> None:
    """A progress callback runs in the runtime's event loop: calling the facade from it
    would wait for that loop forever; it raises instead, which fails the load."""
    with aiopod.sync.Runtime(tmp_path / "store") as rt:

        def call_back(record: aiopod.ArchiveRecord) -> None:
            rt.images()

        with pytest.raises(aiopod.BlockingCallInEventLoop) as caught:
            rt.load(archive, progress=call_back)
        assert caught.value.call == "images"
        assert rt.images() == []  # the load stored nothing
