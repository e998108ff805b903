"""``aiopod events``: text and JSON per policy, filters, times, streaming across processes."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from imagefactory import make_image, write_docker_archive
from peers import aiopod_env

from aiopod import Runtime
from aiopod.cli.event_commands import event_renderer
from aiopod.events import Event, EventKind, EventLog

IMAGE = "a" * 64
CONTAINER = "c" * 64

#: Runs the command line with the events command registered (whether or not ``main``
#: imports it yet).
CLI = "import aiopod.cli.event_commands; from aiopod.cli.app import main; main()"


def at(second: int) -> datetime:
    return datetime(2026, 1, 1, 0, 0, second, 500000, tzinfo=UTC)


SEEDED = [
    Event(EventKind.TAGGED, "image", IMAGE, "localhost/app:1", time=at(1)),
    Event(EventKind.UNTAGGED, "image", IMAGE, "localhost/app:1", time=at(2)),
    # podman's rmi: the removal, and the marker podman's output shows as its remove.
    Event(EventKind.DELETED, "image", IMAGE, time=at(3), policy="podman"),
    Event(EventKind.REMOVED, "image", IMAGE, "app:1", time=at(4), policy="podman"),
    Event(
        EventKind.CREATED,
        "container",
        CONTAINER,
        "web",
        time=at(5),
        attributes={"image": "localhost/app:1", "external": "false", "tier": "front"},
    ),
]


def env() -> dict[str, str]:
    result: dict[str, str] = aiopod_env()
    result["TZ"] = "UTC"
    return result


def aiopod_events(
    root: Path, *args: str, policy: str = "libpod", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, "--root", str(root), "--policy", policy, "events", *args],
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def seeded(store: Path) -> Path:
    EventLog.for_store(store).append(SEEDED)
    return store


def test_default_text_under_libpod_lists_every_event_after_its_seq(seeded: Path) -> None:
    result = aiopod_events(seeded, "--stream=false")
    assert result.returncode == 0, result.stderr
    # The canonical vocabulary: a deletion is a remove; podman's marker is rmi.
    assert result.stdout.splitlines() == [
        f"1 2026-01-01 00:00:01.5 +0000 UTC image tag {IMAGE} localhost/app:1",
        f"2 2026-01-01 00:00:02.5 +0000 UTC image untag {IMAGE} localhost/app:1",
        f"3 2026-01-01 00:00:03.5 +0000 UTC image remove {IMAGE} ",
        f"4 2026-01-01 00:00:04.5 +0000 UTC image rmi {IMAGE} app:1",
        f"5 2026-01-01 00:00:05.5 +0000 UTC container create {CONTAINER} "
        "(image=localhost/app:1, name=web, tier=front)",
    ]


def test_default_text_under_podman_skips_what_podman_does_not_log(seeded: Path) -> None:
    result = aiopod_events(seeded, "--stream=false", policy="podman")
    assert result.returncode == 0, result.stderr
    assert [line.split()[5] for line in result.stdout.splitlines()] == [
        "tag",
        "untag",
        "remove",  # podman's marker (the Deleted written under podman is not podman's)
        "create",
    ]


def test_no_trunc_false_shortens_ids(seeded: Path) -> None:
    result = aiopod_events(seeded, "--stream=false", "--no-trunc=false", "--filter", "event=tag")
    assert (
        result.stdout
        == f"1 2026-01-01 00:00:01.5 +0000 UTC image tag {IMAGE[:12]} localhost/app:1\n"
    )


def test_json_under_libpod_is_aiopods_shape_with_seq(seeded: Path) -> None:
    result = aiopod_events(seeded, "--stream=false", "--format", "json")
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["seq"] for d in docs] == [1, 2, 3, 4, 5]
    actor = docs[0].pop("actor")
    assert set(actor) == {"uid", "gid", "pid", "started", "command", "host"}
    assert docs[0] == {
        "seq": 1,
        "action": "tag",
        "kind": "Tagged",
        "type": "image",
        "id": IMAGE,
        "name": "localhost/app:1",
        "names": [],
        "time": "2026-01-01T00:00:01.5Z",
        "attributes": {},
        "prev": "0" * 64,
    }


def test_json_under_podman_is_podmans_shape(seeded: Path) -> None:
    result = aiopod_events(seeded, "--stream=false", "--format", "json", policy="podman")
    assert result.returncode == 0, result.stderr
    expected = [
        '{"ID":"{i}","Name":"localhost/app:1","Status":"tag","Time":"2026-01-01T00:00:01.5Z",'
        '"Type":"image","Attributes":null}',
        '{"ID":"{i}","Name":"localhost/app:1","Status":"untag","Time":"2026-01-01T00:00:02.5Z",'
        '"Type":"image","Attributes":null}',
        '{"ID":"{i}","Name":"app:1","Status":"remove","Time":"2026-01-01T00:00:04.5Z",'
        '"Type":"image","Attributes":null}',
        '{"ID":"{i}","Image":"localhost/app:1","Name":"web","Status":"create",'
        '"Time":"2026-01-01T00:00:05.5Z","Type":"container","Attributes":{"tier":"front"}}',
    ]
    assert result.stdout.splitlines() == [
        line.replace("{i}", CONTAINER if "container" in line else IMAGE) for line in expected
    ]


def test_json_under_docker_is_dockers_shape() -> None:
    render = event_renderer("docker", "json")
    lines = [render(e) for e in SEEDED]
    docs = [json.loads(line) if line else None for line in lines]
    assert [d["Action"] if d else None for d in docs] == ["tag", "untag", "delete", None, "create"]
    assert docs[0] == {
        "status": "tag",
        "id": "sha256:" + IMAGE,
        "Type": "image",
        "Action": "tag",
        "Actor": {"ID": "sha256:" + IMAGE, "Attributes": {"name": "localhost/app:1"}},
        "scope": "local",
        "time": 1767225601,
        "timeNano": 1767225601500000000,
    }
    assert docs[4]["from"] == "localhost/app:1"  # type: ignore[index]
    text = event_renderer("docker", None)(SEEDED[0])
    assert text == (
        f"2026-01-01T00:00:01.500000000Z image tag sha256:{IMAGE} (name=localhost/app:1)"
    )


def test_go_templates(seeded: Path) -> None:
    result = aiopod_events(
        seeded, "--stream=false", "--format", "{{.Status}} {{.Name}} {{.Seq}}", "-f", "type=image"
    )
    assert result.stdout.splitlines() == [
        "tag localhost/app:1 1",
        "untag localhost/app:1 2",
        "remove  3",
        "rmi app:1 4",
    ]
    result = aiopod_events(
        seeded, "--stream=false", "--format", "{{json .}}", "-f", "event=tag", policy="podman"
    )
    assert json.loads(result.stdout)["Status"] == "tag"
    bad = aiopod_events(seeded, "--stream=false", "--format", "{{range .}}")
    assert bad.returncode == 125
    assert bad.stderr == "Error: template: events:1: unexpected EOF\n"


def test_filters_or_within_a_key_and_across_keys(seeded: Path) -> None:
    def statuses(*args: str) -> list[str]:
        result = aiopod_events(seeded, "--stream=false", "--format", "{{.Status}}", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert statuses("--filter", "event=untag") == ["untag"]
    assert statuses("--filter", "event=untag", "--filter", "event=Deleted") == ["untag", "remove"]
    assert statuses("--filter", "type=container") == ["create"]
    assert statuses("--filter", "type=image", "--filter", "event=create") == []
    assert statuses("--filter", "image=app:1") == ["tag", "untag", "rmi"]
    assert statuses("--filter", "container=web") == ["create"]
    assert statuses("-f", "label=tier=front") == ["create"]


def test_since_and_until(seeded: Path) -> None:
    def seqs(*args: str) -> list[str]:
        result = aiopod_events(seeded, "--stream=false", "--format", "{{.Seq}}", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert seqs("--since", "2026-01-01T00:00:03Z") == ["3", "4", "5"]
    assert seqs("--until", "2026-01-01T00:00:03Z") == ["1", "2"]
    assert seqs("--since", "1767225602", "--until", "2026-01-01T00:00:04") == ["2", "3"]
    assert seqs("--since", "10m") == []  # the seeded events are older than that
    assert seqs("--until", "10m") == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "bogus=1"], "Error: invalid filter key 'bogus'"),
        (["--filter", "novalue"], "Error: invalid filter 'novalue'"),
        (["--since", "garbage"], "Error: unable to interpret time value 'garbage'"),
        (["--until", "2026-13-01"], "Error: unable to interpret time value"),
    ],
)
def test_bad_filters_and_times_exit_125(seeded: Path, args: list[str], message: str) -> None:
    result = aiopod_events(seeded, "--stream=false", *args)
    assert result.returncode == 125
    assert result.stderr.startswith(message)
    assert result.stdout == ""


def test_an_empty_store_has_no_events(store: Path) -> None:
    result = aiopod_events(store, "--stream=false")
    assert (result.returncode, result.stdout) == (0, "")


# -- streaming -------------------------------------------------------------------------------


class Streamer:
    """``aiopod events`` (streaming) in a subprocess, with its stdout read by a thread."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "--root", str(root), "events", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 30) -> str:
        return self.lines.get(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def streamers() -> Iterator[list[Streamer]]:
    started: list[Streamer] = []
    yield started
    for streamer in started:
        streamer.stop()


def test_streaming_prints_new_events_from_other_processes_and_exits_0_on_ctrl_c(
    seeded: Path, streamers: list[Streamer]
) -> None:
    streamer = Streamer(seeded, "--format", "{{.Seq}} {{.Status}}")
    streamers.append(streamer)
    log = EventLog.for_store(seeded)
    # Until the streamer is up, what we append may count as "old": keep appending a probe.
    deadline = time.monotonic() + 60
    while True:
        log.append([Event(EventKind.TAGGED, "image", IMAGE, "localhost/probe:1")])
        try:
            first = streamer.next_line(timeout=0.3)
            break
        except queue.Empty:
            assert time.monotonic() < deadline, "the streamer printed nothing"
            assert streamer.proc.poll() is None, streamer.proc.stderr.read()  # type: ignore[union-attr]
    assert first.endswith(" tag")
    assert int(first.split()[0]) > len(SEEDED)  # the logged events are not printed
    [marker] = log.append([Event(EventKind.UNTAGGED, "image", IMAGE, "localhost/probe:1")])
    while (line := streamer.next_line()) != f"{marker.seq} untag":
        assert line.endswith(" tag")
    streamer.proc.send_signal(signal.SIGINT)
    assert streamer.proc.wait(30) == 0
    assert streamer.proc.stderr is not None
    assert streamer.proc.stderr.read() == ""


def test_streaming_with_since_and_until_prints_the_log_and_stops_by_itself(seeded: Path) -> None:
    started = time.monotonic()
    result = aiopod_events(
        seeded, "--since", "2026-01-01T00:00:04Z", "--until", "2s", "--format", "{{.Seq}}"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["4", "5"]
    assert time.monotonic() - started >= 1.5


def test_streaming_exits_0_on_sigterm(seeded: Path, streamers: list[Streamer]) -> None:
    streamer = Streamer(seeded, "--since", "2026-01-01T00:00:05Z")
    streamers.append(streamer)
    assert "container create" in streamer.next_line()
    streamer.proc.send_signal(signal.SIGTERM)
    assert streamer.proc.wait(30) == 0


def test_a_closed_pipe_ends_the_command_quietly(seeded: Path) -> None:
    code = f"{CLI}"
    proc = subprocess.run(
        f"{sys.executable} -c '{code}' --root {seeded} events --stream=false | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert len(proc.stdout.splitlines()) == 1
    assert "Error" not in proc.stderr


# -- end to end with the runtime ---------------------------------------------------------------


def test_what_the_runtime_did_is_listed_in_podmans_json(store: Path, tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "app.tar", [make_image("localhost/app:1", seed="ev")])

    async def work() -> None:
        async with Runtime(store, policy="podman") as rt:
            [image] = await rt.load(archive)
            await rt.tag(image.id, "app:2")
            await rt.untag(image.id, "localhost/app:2")

    anyio.run(work)
    result = aiopod_events(store, "--stream=false", "--format", "json", policy="podman")
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["Status"], d.get("Name")) for d in docs][-2:] == [
        ("tag", "app:2"),
        ("untag", "localhost/app:2"),
    ]
    assert all(list(d)[-4:] == ["Status", "Time", "Type", "Attributes"] for d in docs)


def test_events_verify_reports_the_first_tampered_record_and_exits_1(seeded: Path) -> None:
    ok = aiopod_events(seeded, "verify")
    assert (ok.returncode, ok.stdout) == (
        0,
        "event log verified: 5 records, seq 1 to 5, hash chain intact\n",
    )
    log = seeded / "aiopod" / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([lines[0], lines[1].replace(b"app:1", b"app:2"), *lines[2:]]))
    bad = aiopod_events(seeded, "verify")
    assert bad.returncode == 1
    assert bad.stderr == (
        "Error: edited record: events.jsonl:2: record seq 2 was changed: its line is not "
        "the one record seq 3 names as its predecessor\n"
    )
    assert aiopod_events(seeded, "verify", "--since", "3").returncode == 0
    check = subprocess.run(
        [sys.executable, "-m", "aiopod", "--root", str(seeded), "system", "check"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert check.returncode == 1
    assert "problem: event log: edited record: events.jsonl:2: record seq 2" in check.stdout
