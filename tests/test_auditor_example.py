"""``examples/auditor.py``: a follower of every process's events that survives kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from imagefactory import make_image, write_docker_archive
from peers import aiopod, aiopod_env

from aiopod import EventLog

EXAMPLE = Path(__file__).parent.parent / "examples" / "auditor.py"


def audited(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def start_auditor(store: Path, audit: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), str(store), str(audit)],
        env=aiopod_env(),
        text=True,
    )


def wait_for(predicate: object, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def last_audited_seq(path: Path) -> int:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0
    lines = text[: text.rfind("\n") + 1].splitlines()  # complete lines only
    return int(json.loads(lines[-1])["seq"]) if lines else 0


def test_the_demo_audits_this_process_and_another(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--demo", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=aiopod_env(),
    )
    lines = audited(tmp_path / "audit.jsonl")
    assert [d["seq"] for d in lines] == list(range(1, 8))
    assert [d["action"] for d in lines] == [
        "import", "tag", "tag", "untag", "untag", "untag", "remove",
    ]  # fmt: skip
    pids = {d["actor"]["pid"] for d in lines}  # type: ignore[index]
    assert len(pids) == 2  # the demo and the command line it ran
    assert "--- the store's chain: intact" in result.stdout


def test_kill_9_and_restart_neither_loses_nor_repeats_an_event(tmp_path: Path) -> None:
    store, audit = tmp_path / "store", tmp_path / "audit.jsonl"
    images = [make_image(f"localhost/img{i}:latest", seed=f"img{i}") for i in range(6)]
    archive = write_docker_archive(tmp_path / "images.tar", images)
    aiopod("load", "-i", archive, root=store, check=True)
    auditor = start_auditor(store, audit)
    try:
        wait_for(lambda: last_audited_seq(audit) > 0 or auditor.poll() is not None, "a start")
        for i in range(3):
            aiopod("tag", f"img{i}", f"copy{i}:a", f"copy{i}:b", root=store, check=True)
            aiopod("rmi", f"copy{i}:a", root=store, check=True)
        os.kill(auditor.pid, signal.SIGKILL)
        auditor.wait()
        # What the crash may leave: a line cut short.
        with audit.open("a") as f:
            f.write('{"seq":99,"action":"ta')
        for i in range(3, 6):
            aiopod("tag", f"img{i}", f"copy{i}:a", root=store, check=True)
        aiopod("rmi", "-a", "-f", root=store, check=True)
        auditor = start_auditor(store, audit)
        last = EventLog.for_store(store).last_seq()
        wait_for(lambda: last_audited_seq(audit) >= last, "the auditor to catch up")
    finally:
        auditor.send_signal(signal.SIGTERM)
        auditor.wait(timeout=30)
    logged = [
        json.loads(line) for line in (store / "aiopod" / "events.jsonl").read_text().splitlines()
    ]
    assert audited(audit) == logged  # every record, once, in order, byte for byte the same
    checkpoint = json.loads(audit.with_name("audit.jsonl.checkpoint").read_text())
    assert checkpoint == {"seq": logged[-1]["seq"]}


def test_the_syslog_forwarder_sends_rfc5424_messages(tmp_path: Path) -> None:
    store, address = tmp_path / "store", str(tmp_path / "log.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(30)
    command = [sys.executable, str(EXAMPLE.with_name("syslog_forwarder.py")), str(store)]
    checkpoint = tmp_path / "forwarded"
    forwarder = subprocess.Popen(
        [*command, "--address", address, "--checkpoint", str(checkpoint)], env=aiopod_env()
    )
    try:
        archive = write_docker_archive(tmp_path / "s.tar", [make_image("localhost/s:1", seed="s")])
        aiopod("load", "-i", archive, root=store, check=True)
        aiopod("rmi", "s:1", root=store, check=True)
        messages = [receiver.recv(65536).decode() for _ in range(3)]
    finally:
        forwarder.send_signal(signal.SIGTERM)
        forwarder.wait(timeout=30)
        receiver.close()
    logged = EventLog.for_store(store).read()
    for message, event in zip(messages, logged, strict=True):
        match = RFC5424.fullmatch(message)
        assert match is not None, message
        assert match["pri"] == "85"  # authpriv.notice
        assert match["host"] == event.actor.host  # type: ignore[union-attr]
        assert match["procid"] == str(event.actor.pid)  # type: ignore[union-attr]
        assert match["msgid"] == event.action
        assert match["seq"] == str(event.seq)
        assert json.loads(match["msg"])["prev"] == event.prev
    assert [m.split(" ")[5] for m in messages] == ["load", "untag", "remove"]
    assert checkpoint.read_text() == "3\n"


RFC5424 = re.compile(
    r"<(?P<pri>\d+)>1 (?P<time>\S+Z) (?P<host>\S+) aiopod (?P<procid>\d+) (?P<msgid>\S+) "
    r'\[aiopod@32473 seq="(?P<seq>\d+)" type="\w+" id="[0-9a-f]{64}"\] (?P<msg>\{.*\})'
)
