"""One vocabulary and one truth: the same change reads the same whatever policy made it,
and a big removal by another process reaches a follower whole.

The stores here are changed on the command line (other processes) while the test follows
them through the API, as an auditor would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from imagefactory import make_image, write_docker_archive
from peers import aiopod, aiopod_env

from aiopod import Event, EventLog, Lagged, Runtime
from aiopod.events.verify import verify_log

IMAGES = [
    make_image(f"localhost/app{i}:1", f"localhost/app{i}:2", seed=f"voc{i}") for i in range(3)
]


def events(store: Path, policy: str, *args: str) -> str:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "aiopod", "--root", str(store), "--policy", policy),
            *("events", "--stream=false", *args),
        ],
        capture_output=True,
        text=True,
        env=aiopod_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same removals made under each policy, one store each."""
    base = tmp_path_factory.mktemp("vocabulary")
    archive = write_docker_archive(base / "images.tar", IMAGES)
    out = {}
    for policy in ("libpod", "podman"):
        store = base / policy
        aiopod("load", "-i", archive, root=store, check=True)
        for args in (("rmi", "app0:1"), ("rmi", "app0:2"), ("rmi", "-f", IMAGES[1].id)):
            result = subprocess.run(
                [sys.executable, "-m", "aiopod", "--root", str(store), "--policy", policy, *args],
                capture_output=True,
                text=True,
                env=aiopod_env(),
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
        out[policy] = store
    return out


@pytest.mark.parametrize("reader", ["libpod", "podman"])
@pytest.mark.parametrize("event", ["remove", "untag"])
def test_filters_find_the_same_events_whatever_policy_wrote_them(
    stores: dict[str, Path], reader: str, event: str
) -> None:
    template = "{{.Status}} {{.ID}}"
    found = {
        writer: events(store, reader, "--filter", f"event={event}", "--format", template)
        for writer, store in stores.items()
    }
    if reader == "podman" and event == "remove":
        # podman's own remove for a reference rmi only untagged is written only when the
        # podman policy did the work; every removal of an image is there for both.
        assert set(found["libpod"].splitlines()) <= set(found["podman"].splitlines())
    else:
        assert found["libpod"] == found["podman"]
    assert found["libpod"].count(f"{event} ") >= 2


def test_every_removal_records_its_policy_options_and_names(stores: dict[str, Path]) -> None:
    for policy, store in stores.items():
        removed = [e for e in EventLog.for_store(store).read() if e.action == "remove"]
        assert [e.id for e in removed] == [IMAGES[0].id, IMAGES[1].id]
        assert {e.policy for e in removed} == {policy}
        assert removed[1].options["force"] == "true"
        assert removed[1].options["reason"] == "rmi"
        assert removed[1].names == ("localhost/app1:1", "localhost/app1:2")
        assert removed[1].name == "localhost/app1:1"
        assert removed[1].digest is not None and removed[1].digest.startswith("sha256:")


def test_rmi_all_of_many_images_by_another_process_reaches_a_follower_exactly_once(
    tmp_path: Path,
) -> None:
    count = 10_000
    images = [make_image(f"localhost/many{i}:1", seed=f"many{i}") for i in range(count)]
    store = tmp_path / "store"
    for first in range(0, count, 2000):  # an archive's manifest.json is capped at 1 MiB
        archive = write_docker_archive(tmp_path / f"many{first}.tar", images[first : first + 2000])
        aiopod("load", "-i", archive, root=store, check=True)

    async def follow() -> list[Event]:
        received: list[Event] = []
        async with Runtime(store) as rt, rt.events.subscribe(buffer=256) as stream:
            remover = await anyio.open_process(
                [sys.executable, "-m", "aiopod", "--root", str(store), "rmi", "-a", "-f"],
                env=aiopod_env(),
                stdout=subprocess.DEVNULL,  # 20,000 lines: a pipe nobody reads would fill
            )
            with anyio.fail_after(300):
                while len(received) < 2 * count:  # untag and remove for each image
                    item = await stream.receive()
                    if not isinstance(item, Lagged):
                        received.append(item)
                assert await remover.wait() == 0
        return received

    received = anyio.run(follow)
    logged = list(EventLog.for_store(store).read())
    assert received == logged[-2 * count :]
    seqs = [e.seq for e in received]
    assert seqs == list(range(seqs[0], seqs[0] + 2 * count))
    times = [e.time for e in received]
    assert times == sorted(times)  # never backwards in seq order
    assert verify_log(EventLog.for_store(store)).ok
