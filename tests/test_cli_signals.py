"""Stopping a command: SIGINT, SIGTERM and SIGHUP alike; what SIGKILL leaves, and finding it.

Real processes throughout.  ``python -m aiopod build`` of a Dockerfile whose RUN sleeps,
signalled while the RUN runs: a stop signal cancels the build (its RUN dies, its working
container and staging area go) and the command exits ``128 + N``.  SIGKILL cannot be
handled: the working container stays, ``system check`` reports it as a leftover of a
build that is no longer running (while the build ran, a check from another process
did not), ``rmi`` of its base image says which container holds it and how to remove it,
and ``system check --repair`` removes it with its event.

``load`` and ``save`` of a 256 MB image are stopped while they copy (the process is
frozen with SIGSTOP the moment its staging area or temporary output appears, signalled,
then let go, so the test's own delay cannot let the copy finish first): nothing is
stored and no staging area or output is left.  ``rmi -a`` waiting for the store lock
another process holds is stopped before it changed anything.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from peers import BUSYBOX_IMAGE, aiopod, aiopod_env, aiopod_ok, processes_mentioning

from aiopod.storage.layout import StoreLayout
from aiopod.storage.store import read_metadata

pytestmark = pytest.mark.anyio

#: The tests that build also need busybox (the ``bb_store`` fixture).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs root (namespaces, chroot)")


@pytest.fixture
def bb_store(store: Path, busybox_rootfs_tar: Path) -> Path:
    """A store holding busybox as ``localhost/bb:latest``, made by ``aiopod import``."""
    aiopod_ok("import", busybox_rootfs_tar, BUSYBOX_IMAGE, root=store)
    return store


class RunningBuild:
    """An ``aiopod build`` process whose RUN is sleeping."""

    def __init__(self, process: anyio.abc.Process, markers: tuple[str, str]) -> None:
        self.process = process
        self.markers = markers

    def run_processes(self) -> list[int]:
        """The RUN's shell and sleep, while they live."""
        return processes_mentioning(*self.markers)

    async def wait_for_the_run_to_die(self) -> None:
        for _ in range(500):
            if not self.run_processes():
                return
            await anyio.sleep(0.02)
        pytest.fail("the RUN's processes outlived the build")


@asynccontextmanager
async def running_build(store: Path, tmp_path: Path) -> AsyncIterator[RunningBuild]:
    """Start ``aiopod build`` and yield once its RUN's shell and sleep both run."""
    seconds = 700_000 + os.getpid() % 100_000  # a sleep of its own, to find it by
    marker = f"aiopod-signalled-{os.getpid()}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {BUSYBOX_IMAGE}\nRUN echo running; sleep {seconds}; echo {marker}\n"
    )
    cmd = [sys.executable, "-m", "aiopod", "--root", str(store), "build", "-t", "never", str(ctx)]
    async with await anyio.open_process(cmd, env=aiopod_env()) as process:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(60):
            while b"running\n" not in output:  # the pipe stays open while the build runs
                output += await process.stdout.receive()
        build = RunningBuild(process, (marker, f"sleep\0{seconds}"))
        for _ in range(500):
            if len(build.run_processes()) == 2:
                break
            await anyio.sleep(0.02)
        else:
            pytest.fail("the RUN's shell and sleep never both ran")
        yield build


async def read_to_end(stream: anyio.abc.ByteReceiveStream | None) -> str:
    assert stream is not None
    data = b""
    with anyio.fail_after(30):
        async for chunk in stream:
            data += chunk
    return data.decode()


def working_containers(store: Path) -> list[str]:
    return aiopod_ok("ps", "-a", "--external", "-q", "--no-trunc", root=store).stdout.split()


def staging_left(store: Path) -> list[str]:
    return sorted(p.name for p in StoreLayout(store).tmp.iterdir())


def owner_pid(store: Path, container_id: str) -> int | None:
    state = read_metadata(StoreLayout(store))
    owner = state.containers[container_id].owner
    return None if owner is None else owner.pid


STOP_SIGNALS = [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]


@pytest.mark.parametrize(("signum", "code"), STOP_SIGNALS)
@pytest.mark.peer("busybox")
@needs_root
async def test_a_stop_signal_cancels_the_build_and_leaves_nothing_behind(
    bb_store: Path, tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    store = bb_store
    async with running_build(store, tmp_path) as build:
        [working] = working_containers(store)
        assert owner_pid(store, working) == build.process.pid
        # Another process's check: the container belongs to a build that is running.
        assert aiopod_ok("system", "check", root=store).stdout == "store is consistent\n"
        build.process.send_signal(signum)
        with anyio.fail_after(60):
            assert await build.process.wait() == code
        stderr = await read_to_end(build.process.stderr)
    assert stderr.endswith(f"Error: interrupted by {signum.name}\n"), stderr
    await build.wait_for_the_run_to_die()
    assert working_containers(store) == []
    assert staging_left(store) == []
    assert aiopod_ok("system", "check", root=store).stdout == "store is consistent\n"
    assert aiopod_ok("images", "-a", "-q", root=store).stdout.count("\n") == 1


@pytest.mark.peer("busybox")
@needs_root
async def test_a_killed_build_leaves_a_container_that_check_reports_and_repair_removes(
    bb_store: Path, tmp_path: Path
) -> None:
    store = bb_store
    async with running_build(store, tmp_path) as build:
        [working] = working_containers(store)
        build.process.kill()
        await build.process.wait()
    await build.wait_for_the_run_to_die()
    short = working[:12]
    listed = aiopod_ok("ps", "-a", "--external", "--format", "json", root=store).stdout
    [name] = [row["Names"][0] for row in json.loads(listed)]

    check = aiopod("system", "check", root=store)
    assert check.returncode == 1
    assert check.stdout == (
        f"problem: leftover container {working} ({name}): the build that made it "
        f"(process {build.process.pid}) is no longer running\n"
    )

    # rmi of its base image names the container and how to remove it ...
    rmi = aiopod("rmi", BUSYBOX_IMAGE, root=store)
    assert (rmi.returncode, rmi.stdout) == (2, "")
    assert rmi.stderr == (
        f"Error: image is in use by external container {short} ({name}) of a build that is "
        f'no longer running: remove it with "aiopod rm {short}" or '
        '"aiopod system check --repair"\n'
    )
    # ... and under --policy podman says what podman 4.3 says of a buildah container.
    rmi = aiopod("--policy", "podman", "rmi", BUSYBOX_IMAGE, root=store)
    assert (rmi.returncode, rmi.stderr) == (
        2,
        f"Error: image used by {working}: image is in use by a container: "
        "consider listing external containers and force-removing image\n",
    )

    repair = aiopod_ok("system", "check", "--repair", root=store)
    assert repair.stdout == (
        f"problem: leftover container {working} ({name}): the build that made it "
        f"(process {build.process.pid}) is no longer running\n"
        f"repaired: removed leftover container {working}\n"
    )
    events = aiopod_ok(
        "events", "--stream=false", "--format", "{{.Type}} {{.Status}} {{.ID}}", root=store
    ).stdout.splitlines()
    assert events[-1] == f"container remove {working}"
    assert working_containers(store) == []
    assert aiopod_ok("system", "check", root=store).stdout == "store is consistent\n"
    assert aiopod_ok("rmi", BUSYBOX_IMAGE, root=store).stdout.startswith("Untagged: ")


# -- load, save, rmi -a --------------------------------------------------------------------------

BIG = "localhost/big:1"


@dataclasses.dataclass
class BigImage:
    store: Path  # holding BIG
    archive: Path  # BIG as a docker-archive


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> BigImage:
    """A store holding a 256 MB one-layer image, and the image saved as a docker-archive."""
    base = tmp_path_factory.mktemp("big")
    rootfs = base / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        data = b"".join(os.urandom(1 << 20) for _ in range(256))  # incompressible
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    aiopod_ok("import", rootfs, BIG, root=base / "store")
    aiopod_ok("save", "-o", base / "big.tar", BIG, root=base / "store")
    return BigImage(base / "store", base / "big.tar")


def stop_when(
    args: list[str | Path], root: Path, started: Callable[[int], bool], signum: signal.Signals
) -> tuple[int, str]:
    """Run aiopod; the moment ``started(pid)`` holds, freeze it, send *signum*, let it go.

    Returns its exit code and standard error."""
    cmd = [sys.executable, "-m", "aiopod", "--root", str(root), *map(str, args)]
    with subprocess.Popen(cmd, env=aiopod_env(), stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60
        while not started(proc.pid):
            assert proc.poll() is None, f"aiopod ended first: {proc.stderr.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "aiopod never started copying"
            time.sleep(0.001)
        proc.send_signal(signal.SIGSTOP)
        proc.send_signal(signum)
        proc.send_signal(signal.SIGCONT)
        _, stderr = proc.communicate(timeout=60)
        return proc.returncode, stderr


@pytest.mark.parametrize(("signum", "code"), STOP_SIGNALS)
def test_a_stopped_load_stores_nothing_and_leaves_no_staging(
    big: BigImage, store: Path, signum: signal.Signals, code: int
) -> None:
    aiopod_ok("images", root=store)  # create the store
    tmp = StoreLayout(store).tmp

    def staging(pid: int) -> bool:
        return any(p.is_dir() for p in tmp.iterdir())

    rc, stderr = stop_when(["load", "-i", big.archive], store, staging, signum)
    assert (rc, stderr) == (code, f"Error: interrupted by {signum.name}\n")
    assert staging_left(store) == []
    assert aiopod_ok("images", "-a", "-q", root=store).stdout == ""
    assert aiopod_ok("system", "check", root=store).stdout == "store is consistent\n"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_a_stopped_save_leaves_no_output(big: BigImage, tmp_path: Path, fmt: str) -> None:
    output = tmp_path / "out.tar"

    def writing(pid: int) -> bool:
        return any(p.name.startswith(".out.tar.") for p in tmp_path.iterdir())

    args: list[str | Path] = ["save", "--format", fmt, "-o", output, BIG]
    rc, stderr = stop_when(args, big.store, writing, signal.SIGTERM)
    *progress, last = stderr.splitlines(keepends=True)
    assert (rc, last) == (143, "Error: interrupted by SIGTERM\n")
    assert all(line.startswith("Copying ") for line in progress), progress  # podman's lines
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert staging_left(big.store) == []


def test_rmi_all_stopped_while_waiting_for_the_lock_removes_nothing(
    big: BigImage, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(big.store, store)
    lock_file = StoreLayout(store).lock_file

    def catches_sigterm(pid: int) -> bool:
        """Whether aiopod handles SIGTERM now (it does once its command runs: from then
        on it waits for the lock this test holds)."""
        status = Path(f"/proc/{pid}/status").read_text()
        [caught] = [line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")]
        return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)

    lock = os.open(lock_file, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process is changing the store
        rc, stderr = stop_when(["rmi", "-a"], store, catches_sigterm, signal.SIGTERM)
    finally:
        os.close(lock)
    assert (rc, stderr) == (143, "Error: interrupted by SIGTERM\n")
    assert aiopod_ok("images", root=store).stdout.splitlines()[1].startswith("localhost/big ")
