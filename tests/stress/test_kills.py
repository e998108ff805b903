"""Kill ``aiopod`` anywhere: the store reopens consistent and tells the truth.

Operations: ``load``, ``rmi -f``, ``build``, ``tag``, ``create`` and ``pull`` (from the
tests' fake registry), each run as a CLI process on one shared store.

* Random kills: ``AIOPOD_KILL_TRIALS`` trials (default 50; the long run: 500, see
  ``tests/stress/README.md``), drawn from ``random.Random(AIOPOD_KILL_SEED)`` (default 1),
  so a failing trial is reproduced by its seed.  Each trial picks an operation and a
  delay, starts the CLI and SIGKILLs it after the delay.  The delays are drawn between
  0.4 and 1.05 times the operation's own uninterrupted run time, measured at the start of
  the test, so most kills land after start-up, in the operation's work and its commit.
* Crash points: every named point of ``aiopod.storage.crashpoints`` for every operation
  (``AIOPOD_CRASH``: the process SIGKILLs itself there).

After every kill the store reopens (recovery runs), ``system check`` finds nothing, the
event log's chain verifies and replays to exactly the store's state (``store_model``);
then the operation runs again through the API and succeeds, and the store verifies again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from imagefactory import write_docker_archive
from peers import aiopod_env
from registry.fake_registry import FakeRegistry, serve_registry
from store_model import verify_store
from stress_ops import BASE, CHILD, DOCKERFILE, OTHER, POOL

from aiopod import Runtime
from aiopod.storage.crashpoints import CRASH_POINTS

PULLED = "stress/pulled:1"
TRIALS = int(os.environ.get("AIOPOD_KILL_TRIALS", "50"))


@dataclass
class Bench:
    """The shared store, its inputs and the registry."""

    root: Path
    work: Path
    registry: str

    @property
    def pulled(self) -> str:
        return f"{self.registry}/{PULLED}"


@dataclass(frozen=True)
class Operation:
    """A CLI command, the state it needs first, and the same operation through the API."""

    args: Callable[[Bench], list[str]]
    setup: Callable[[Runtime, Bench], Awaitable[object]]
    again: Callable[[Runtime, Bench], Awaitable[object]]


async def _ensure(rt: Runtime, bench: Bench, *names: str) -> None:
    for name in names:
        if not any(name in image.names for image in await rt.images(all=True)):
            await rt.load(bench.work / "all.tar")
            return


async def _absent(rt: Runtime, bench: Bench, *references: str) -> None:
    await rt.remove_images(list(references), force=True, ignore=True)


async def _setup_tag(rt: Runtime, bench: Bench) -> None:
    """``p0`` on BASE and ``p3`` on OTHER, so that the tag moves a name."""
    await _ensure(rt, bench, POOL[0])
    if OTHER.id not in {image.id for image in await rt.images(all=True)}:
        await rt.load(bench.work / "all.tar")
    await rt.tag(OTHER.id, POOL[3])


async def _setup_rmi(rt: Runtime, bench: Bench) -> None:
    await _ensure(rt, bench, POOL[1])
    await rt.create_working_container(POOL[1])


def _dockerfile(bench: Bench) -> Path:
    path = bench.work / "context" / "Dockerfile"
    path.parent.mkdir(exist_ok=True)
    (path.parent / "data").write_bytes(random.Random(3).randbytes(1 << 20))
    path.write_text(DOCKERFILE.format(base=POOL[0], label="kill") + "COPY data /data\n")
    return path


OPERATIONS: dict[str, Operation] = {
    "load": Operation(
        lambda b: ["load", "-i", str(b.work / "load.tar")],
        lambda rt, b: _absent(rt, b, CHILD.id, OTHER.id),
        lambda rt, b: rt.load(b.work / "load.tar"),
    ),
    "rmi-f": Operation(
        lambda b: ["rmi", "-f", POOL[1]],
        _setup_rmi,
        lambda rt, b: rt.remove_images([POOL[1]], force=True, ignore=True),
    ),
    "build": Operation(
        lambda b: ["build", "-t", POOL[5], "-f", str(_dockerfile(b)), str(b.work / "context")],
        lambda rt, b: _ensure(rt, b, POOL[0]),
        lambda rt, b: rt.build(
            b.work / "context", dockerfile=_dockerfile(b), tags=[POOL[5]], pull="never"
        ),
    ),
    "tag": Operation(
        lambda b: ["tag", POOL[0], POOL[3]],
        _setup_tag,
        lambda rt, b: rt.tag(POOL[0], POOL[3]),
    ),
    "create": Operation(
        lambda b: ["create", POOL[0], "true"],
        lambda rt, b: _ensure(rt, b, POOL[0]),
        lambda rt, b: rt.create_container(POOL[0], ["true"]),
    ),
    "pull": Operation(
        lambda b: ["pull", "--tls-verify=false", "-q", b.pulled],
        lambda rt, b: _absent(rt, b, b.pulled),
        lambda rt, b: rt.pull(b.pulled, tls_verify=False),
    ),
}


def publish(registry: FakeRegistry) -> None:
    """An image of two gzip layers, one of 2 MiB of noise (a transfer of many chunks)."""
    name, tag = PULLED.split(":")
    registry.add_noisy_image(name, tag, noise_size=2 << 20, seed=7)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    work = tmp_path / "work"
    work.mkdir()
    write_docker_archive(work / "all.tar", [BASE, CHILD, OTHER])
    write_docker_archive(work / "load.tar", [CHILD, OTHER])
    with serve_registry("127.0.0.1") as registry:
        publish(registry)
        yield Bench(tmp_path / "store", work, registry.address)


def with_runtime(root: Path, func: Callable[[Runtime], Awaitable[object]]) -> None:
    async def body() -> None:
        async with Runtime(root) as rt:
            await func(rt)

    anyio.run(body)


def start(bench: Bench, name: str, crash: str | None = None) -> subprocess.Popen[str]:
    env = aiopod_env()
    if crash is not None:
        env["AIOPOD_CRASH"] = crash
    args = OPERATIONS[name].args(bench)
    return subprocess.Popen(
        [sys.executable, "-m", "aiopod", "--root", str(bench.root), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def setup(bench: Bench, name: str) -> None:
    with_runtime(bench.root, lambda rt: OPERATIONS[name].setup(rt, bench))


def after_the_kill(bench: Bench, name: str, what: str) -> int:
    """Verify the store, run the operation again through the API, verify again; the
    number of leftover working containers repair removed."""
    try:
        leftovers = len(verify_store(bench.root).leftovers)
        with_runtime(bench.root, lambda rt: OPERATIONS[name].again(rt, bench))
        verify_store(bench.root)
    except BaseException as exc:
        exc.add_note(f"after {what}")
        raise
    return leftovers


def uninterrupted(bench: Bench, name: str) -> float:
    """The operation's run time without a kill (it must succeed)."""
    setup(bench, name)
    began = time.monotonic()
    process = start(bench, name)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return time.monotonic() - began


@pytest.mark.timeout(max(300, 3 * TRIALS))  # a long run takes about 1 s a trial
def test_random_kills(bench: Bench) -> None:
    trials = TRIALS
    seed = int(os.environ.get("AIOPOD_KILL_SEED", "1"))
    began = time.monotonic()
    durations = {name: uninterrupted(bench, name) for name in OPERATIONS}
    outcomes: Counter[str] = Counter()
    for trial in range(trials):
        rng = random.Random(f"{seed}-{trial}")
        name = rng.choice(sorted(OPERATIONS))
        delay = durations[name] * rng.uniform(0.4, 1.05)
        setup(bench, name)
        process = start(bench, name)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=120)
        killed = process.returncode == -signal.SIGKILL
        assert killed or process.returncode == 0, err
        outcomes[f"{name}/{'killed' if killed else 'finished'}"] += 1
        what = f"trial {trial} (seed {seed}): {name} killed at {delay:.3f} s"
        outcomes["leftover containers repaired"] += after_the_kill(bench, name, what)
    sys.stdout.write(  # the figures, for ``pytest -s``
        f"\n{trials} trials in {time.monotonic() - began:.1f} s; uninterrupted run times "
        f"{ {n: round(d, 3) for n, d in durations.items()} }\n"
        f"{json.dumps(dict(sorted(outcomes.items())))}\n"
    )
    assert sum(n for k, n in outcomes.items() if k.endswith("/killed")) >= trials // 4, outcomes


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_a_crash_at_every_named_point(bench: Bench, name: str) -> None:
    crashed = []
    for point in CRASH_POINTS:
        setup(bench, name)
        process = start(bench, name, crash=point)
        _, err = process.communicate(timeout=120)
        assert process.returncode in (0, -signal.SIGKILL), err
        if process.returncode:
            crashed.append(point)
        after_the_kill(bench, name, f"{name} crashed at {point}")
    # Every operation here changes the store, so it passes at least the commit's points;
    # rmi -f of an image a container uses deletes that container's data after the commit.
    expected = {"commit:journal", "commit:metadata"}
    if name == "rmi-f":
        expected |= {"purge:intent", "purge:done"}
    assert expected <= set(crashed), crashed
