"""aiopod inside an asyncio loop that someone else runs, as in Jupyter.

A notebook (IPython with top-level ``await``) runs every cell as a coroutine on one asyncio
loop that is already running; ``asyncio.timeout``, ``asyncio.wait_for`` and an
interrupted cell cancel with asyncio's own ``Task.cancel()``, which anyio's shielded cancel
scopes do not stop.  These tests run on pytest-asyncio's loop (not through anyio's pytest
plugin) and cancel the asyncio way.  One test runs the same work on trio, which the
library supports and aiofiles does not.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiofiles
import anyio
import anyio.from_thread
import pytest
from imagefactory import (
    child_image,
    make_image,
    rootfs_tarball,
    store_files,
    write_docker_archive,
)

import aiopod
from aiopod import Runtime
from aiopod.events import Event, EventKind, EventLog
from aiopod.storage.layout import StoreLayout

README = Path(__file__).parent.parent / "README.md"

BASE = make_image("localhost/base:1", seed="embedding-base")
APP = child_image(BASE, "localhost/app:1", files={"app/main": b"print('hi')\n"})
OTHER = make_image("localhost/other:1", seed="embedding-other")


def kinds(root: Path) -> list[tuple[int, EventKind, str | None]]:
    """``(seq, kind, name)`` of every event in the store's log."""
    return [(e.seq, e.kind, e.name) for e in EventLog.for_store(root).read()]


def drain(subscription: Any) -> list[Event]:
    events = []
    while subscription.pending:
        item = subscription.receive_nowait()
        assert isinstance(item, Event), item
        events.append(item)
    return events


# -------------------------------------------------------------------- a loop already running


@pytest.mark.asyncio
async def test_a_runtime_opened_in_a_running_loop_loads_tags_saves_and_removes(
    tmp_path: Path,
) -> None:
    assert asyncio.get_running_loop().is_running()
    archive = write_docker_archive(tmp_path / "app.tar", [BASE, APP])
    rt = Runtime(tmp_path / "store")
    await rt.open()  # as a notebook does it: no context manager around the cells

    loaded = await rt.load(archive)
    assert {image.id for image in loaded} == {BASE.id, APP.id}
    await rt.tag(APP.id, "app:2")
    assert (await rt.get_image("app:2")).id == APP.id
    listed = {image.id: image.names for image in await rt.images(all=True)}
    assert listed[APP.id] == ("localhost/app:1", "localhost/app:2")
    await rt.save(tmp_path / "app-oci.tar", ["app:2"], format="oci-archive")

    report = await rt.remove_images(["app:1", "app:2"])
    assert report.untagged == ["localhost/app:1", "localhost/app:2"]
    assert report.deleted == [APP.id]
    assert (await rt.check()).ok
    await rt.aclose()

    # The saved archive holds the removed image: load it back into a second runtime.
    async with Runtime(tmp_path / "store") as again:
        [reloaded] = await again.load(tmp_path / "app-oci.tar")
        assert (reloaded.id, reloaded.names) == (APP.id, ("localhost/app:2",))
    assert [k for _, k, _ in kinds(tmp_path / "store")] == [
        EventKind.LOADED,
        EventKind.LOADED,
        EventKind.TAGGED,
        EventKind.SAVED,
        EventKind.UNTAGGED,
        EventKind.UNTAGGED,
        EventKind.DELETED,
        EventKind.LOADED,
    ]


@pytest.mark.asyncio
async def test_cells_are_separate_tasks_subscribing_in_one_and_reading_in_another(
    tmp_path: Path,
) -> None:
    archive = write_docker_archive(tmp_path / "app.tar", [BASE, APP])
    state: dict[str, Any] = {}

    async def cell_1() -> None:
        state["rt"] = rt = Runtime(tmp_path / "store")
        await rt.open()

    async def cell_2() -> None:
        state["events"] = state["rt"].events.subscribe(kinds=["tag", "untag"])

    async def cell_3() -> None:
        rt = state["rt"]
        await rt.load(archive)
        await rt.tag("app:1", "app:latest")
        await rt.untag("app:1", "app:1")

    async def cell_4() -> None:
        state["seen"] = [(e.kind, e.name) for e in drain(state["events"])]
        state["events"].close()
        await state["rt"].aclose()

    for cell in (cell_1, cell_2, cell_3, cell_4):
        await asyncio.create_task(cell())
    assert state["seen"] == [
        (EventKind.TAGGED, "localhost/app:latest"),
        (EventKind.UNTAGGED, "localhost/app:1"),
    ]


# -------------------------------------------------------------------- concurrency from tasks


@pytest.mark.asyncio
async def test_two_runtimes_on_two_stores_work_concurrently_under_gather(tmp_path: Path) -> None:
    async def session(name: str, image: Any) -> list[str]:
        archive = write_docker_archive(tmp_path / f"{name}.tar", [image])
        async with Runtime(tmp_path / name) as rt:
            [loaded] = await rt.load(archive)
            await rt.tag(loaded.id, f"{name}:copy")
            await rt.save(tmp_path / f"{name}-out.tar", [loaded.id])
            await rt.untag(loaded.id, image.names[0])
            assert (await rt.check()).ok
            return [n for i in await rt.images() for n in i.names]

    first, second = await asyncio.gather(session("one", BASE), session("two", OTHER))
    assert (first, second) == (["localhost/one:copy"], ["localhost/two:copy"])


@pytest.mark.asyncio
async def test_two_runtimes_on_one_store_interleave_without_losing_a_change(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    images = [make_image(f"localhost/img{i}:1", seed=f"gather-{i}") for i in range(6)]
    archives = [write_docker_archive(tmp_path / f"{i}.tar", [im]) for i, im in enumerate(images)]
    async with Runtime(root) as a, Runtime(root) as b:

        async def work(rt: Runtime, i: int) -> None:
            await rt.load(archives[i])
            await rt.tag(images[i].id, f"img{i}:tagged")

        await asyncio.gather(*(work(a if i % 2 else b, i) for i in range(6)))
        for rt in (a, b):
            names = {n for image in await rt.images() for n in image.names}
            assert names == {f"localhost/img{i}:{t}" for i in range(6) for t in ("1", "tagged")}
        assert (await a.check()).ok
    logged = kinds(root)
    assert [seq for seq, _, _ in logged] == list(range(1, 13))  # one log, no seq twice
    assert sorted(k for _, k, _ in logged) == sorted([EventKind.LOADED, EventKind.TAGGED] * 6)


# -------------------------------------------------------------------- asyncio's cancellation


@pytest.mark.asyncio
async def test_a_task_cancelled_mid_load_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    big = make_image("localhost/big:1", seed="big", layers=[{"big.bin": os.urandom(48 << 20)}])
    archive = write_docker_archive(tmp_path / "big.tar", [big])
    root = tmp_path / "store"
    async with Runtime(root) as rt:
        await rt.load(write_docker_archive(tmp_path / "base.tar", [BASE]))
        before = store_files(root)
        loading = asyncio.create_task(rt.load(archive))
        await wait_until_staging(StoreLayout(root).tmp)
        loading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loading

        assert archive not in open_files()  # the staging thread had stopped by then
        assert store_files(root) == before  # nothing staged is left, nothing was committed
        assert [i.id for i in await rt.images()] == [BASE.id]
        report = await rt.check()
        assert report.ok, report.problems
        # The runtime is not left holding a lock: the same load now goes through.
        [loaded] = await rt.load(archive)
        assert loaded.id == big.id
    assert [k for _, k, _ in kinds(root)] == [EventKind.LOADED, EventKind.LOADED]


def open_files() -> set[Path]:
    """The files this process has open."""
    fds = Path("/proc/self/fd")
    return {Path(os.readlink(fd)) for fd in fds.iterdir() if fd.is_symlink()}


async def wait_until_staging(tmp: Path) -> None:
    """Return once a staging area under *tmp* holds a file with data in it."""

    def staged_bytes() -> int:
        return sum(
            f.stat().st_size
            for f in tmp.glob("*/*")
            if f.is_file() and not f.name.endswith(".lock")
        )

    async with asyncio.timeout(30):
        while staged_bytes() == 0:  # noqa: ASYNC110 (polls the file system, nothing to wait on)
            await asyncio.sleep(0.001)


@pytest.fixture
def slow_commits(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommitGate]:
    """Every store commit waits, in its worker thread, until the test lets it go on."""
    gate = CommitGate()
    original = EventLog.write

    def write(log: EventLog, prepared: Any, **options: Any) -> list[Event]:
        gate.entered()
        try:
            return original(log, prepared, **options)
        finally:
            gate.left()

    monkeypatch.setattr(EventLog, "write", write)
    yield gate
    gate.release.set()


class CommitGate:
    """Counts the commits in progress (the event log's write is in each one)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def entered(self) -> None:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.order.append("commit started")
        self.started.set()
        self.release.wait(30)

    def left(self) -> None:
        with self._lock:
            self.inside -= 1
            self.order.append("commit ended")


CANCELLERS = ["task.cancel()", "asyncio.timeout", "asyncio.wait_for"]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", CANCELLERS)
async def test_a_task_cancelled_during_its_commit_finishes_it_before_anyone_else_commits(
    tmp_path: Path, slow_commits: CommitGate, how: str
) -> None:
    root = tmp_path / "store"
    async with Runtime(root) as rt:
        slow_commits.release.set()
        await rt.load(write_docker_archive(tmp_path / "app.tar", [BASE]))
        slow_commits.release.clear()
        slow_commits.started.clear()
        slow_commits.order.clear()
        subscription = rt.events.subscribe(kinds=["tag"])

        async def tag_app_2() -> None:
            if how == "asyncio.timeout":
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await rt.tag("base:1", "app:2")
            elif how == "asyncio.wait_for":
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(rt.tag("base:1", "app:2"), 0.2)
            else:
                with pytest.raises(asyncio.CancelledError):
                    await rt.tag("base:1", "app:2")
            slow_commits.order.append("first caller gave up")

        first = asyncio.create_task(tag_app_2())
        await anyio.to_thread.run_sync(slow_commits.started.wait, 10)
        if how == "task.cancel()":
            first.cancel()
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(0.3)  # the deadline passes while the commit is held
        second = asyncio.create_task(rt.tag("base:1", "app:3"))
        await asyncio.sleep(0.2)  # time enough for the second tag to commit, were it let in
        assert slow_commits.order == ["commit started"]
        slow_commits.release.set()
        await first
        await second

        # One commit at a time, and the cancelled caller heard of it only once its
        # commit had ended.
        order = slow_commits.order
        assert slow_commits.most_inside == 1
        assert [step for step in order if step.startswith("commit")] == [
            "commit started",
            "commit ended",
        ] * 2
        assert order.index("first caller gave up") > order.index("commit ended")
        # The cancelled change is there, and so is the one after it: no update was lost.
        names = (await rt.get_image("base:1")).names
        assert names == ("localhost/base:1", "localhost/app:2", "localhost/app:3")
        # Subscribers got the cancelled caller's event too: the store published it.
        assert [e.name for e in drain(subscription)] == ["localhost/app:2", "localhost/app:3"]
        assert (await rt.check()).ok
    assert [(k, n) for _, k, n in kinds(root)][1:] == [
        (EventKind.TAGGED, "localhost/app:2"),
        (EventKind.TAGGED, "localhost/app:3"),
    ]


# -------------------------------------------------------------------- no loop of its own


@pytest.mark.asyncio
async def test_the_library_never_starts_an_event_loop_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def starter(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} called inside a running loop")

        return starter

    for module, name in [
        (asyncio, "run"),
        (asyncio, "new_event_loop"),
        (asyncio, "Runner"),
        (anyio, "run"),
        (anyio.from_thread, "start_blocking_portal"),
    ]:
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))

    await everyday_work(tmp_path)
    assert calls == []
    # And were one called unpatched, the running loop would refuse it.
    nested = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="running event loop"):
        asyncio.runners.run(nested)
    nested.close()


async def everyday_work(tmp_path: Path) -> None:
    """Most of the API, once each, on a fresh store in *tmp_path*."""
    rootfs, _ = rootfs_tarball(tmp_path / "rootfs.tar", {"etc/hostname": b"x\n"})
    async with Runtime(tmp_path / "store") as rt:
        await rt.load(write_docker_archive(tmp_path / "app.tar", [BASE, APP]))
        await rt.import_image(rootfs, "rootfs:1")
        await rt.tag("app:1", "app:2")
        await rt.untag("app:2", "app:2")
        await rt.inspect_image("app:1")
        await rt.save(tmp_path / "out", ["app:1"], format="oci-dir")
        container = await rt.create_container("app:1", ["true"])
        await rt.create_working_container("base:1")
        report = await rt.remove_images(["app:1"], force=True)
        assert report.removed_containers == [container.id]
        await rt.remove_containers(all=True)
        await rt.prune_images(all=True)
        assert (await rt.check(repair=True)).ok
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                async for _ in rt.event_log.follow(after_seq=0):
                    tg.cancel_scope.cancel()

            tg.start_soon(follow)
        assert await rt.images(all=True) == []
        assert await rt.containers(external=True) == []


def test_the_same_work_runs_on_trio_where_aiofiles_cannot_go(tmp_path: Path) -> None:
    """Why the library does its file work in anyio worker threads, not with aiofiles
    (README, "Files and threads"): aiopod runs on trio as well, aiofiles only on asyncio."""
    anyio.run(everyday_work, tmp_path, backend="trio")

    async def append_with_aiofiles() -> None:
        async with aiofiles.open(tmp_path / "audit.jsonl", "a") as f:
            await f.write("{}\n")

    with pytest.raises(RuntimeError, match="no running event loop"):
        anyio.run(append_with_aiofiles, backend="trio")


# -------------------------------------------------------------------- the README, as written


def readme_snippet(heading: str, index: int = 0) -> str:
    """The *index*-th ``python`` block of the README section called *heading*."""
    text = README.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) > index, f"no python block {index} under {heading!r}"
    return str(blocks[index])


async def run_as_a_cell(source: str, namespace: dict[str, Any]) -> None:
    """Run *source* as IPython runs a cell: top-level ``await`` on the running loop."""
    code = compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result


@pytest.mark.asyncio
async def test_the_readme_notebook_tour_runs_as_written_in_a_running_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = readme_snippet("The Python API in a notebook")
    assert 'root="/tmp/aiopod-store"' in source
    source = source.replace('root="/tmp/aiopod-store"', f"root={str(tmp_path / 'store')!r}")
    monkeypatch.chdir(tmp_path)
    write_docker_archive(tmp_path / "app.tar", [APP])
    rootfs_tarball(tmp_path / "rootfs.tar", {"etc/hostname": b"x\n"})

    namespace: dict[str, Any] = {}
    await run_as_a_cell(source, namespace)

    assert namespace["report"].ok
    assert namespace["image"].id == APP.id
    assert (tmp_path / "app-oci.tar").is_file()
    assert APP.id[:12] in capsys.readouterr().out
    with pytest.raises(aiopod.RuntimeStopped):
        await namespace["rt"].images()


@pytest.mark.asyncio
@pytest.mark.skipif(os.geteuid() != 0, reason="builds apply layers as root")
async def test_the_readme_progress_stream_snippet_runs_as_written_in_a_running_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = readme_snippet("Building images", 1)
    assert "progress=send" in source
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "greeting").write_text("hello\n")
    (tmp_path / "ctx" / "Containerfile").write_text("FROM scratch\nCOPY greeting /greeting\n")

    async with Runtime(tmp_path / "store") as rt:
        # What the README's earlier cells defined.
        namespace: dict[str, Any] = {"anyio": anyio, "aiopod": aiopod, "rt": rt}
        await run_as_a_cell(source, namespace)
        assert [i.id for i in await rt.images()] == [namespace["image"].id]
    out = capsys.readouterr().out
    assert "STEP 1/2: FROM scratch\n" in out
    assert "STEP 2/2: COPY greeting /greeting\n" in out
    assert out.rstrip().endswith(namespace["image"].id)
