"""``ProcessOwner``: a process told apart from later ones given its PID, and whether it ended.

The processes are real: this one, and a child Python that reports its own owner record and
then waits for its standard input to close.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from peers import aiopod_env

from aiopod.errors import StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.owner import ProcessOwner

CHILD = (
    "import json, sys; from aiopod.storage.owner import ProcessOwner; "
    "print(json.dumps(ProcessOwner.current().to_json()), flush=True); sys.stdin.read()"
)


@pytest.fixture
def child() -> Iterator[tuple[subprocess.Popen[str], ProcessOwner]]:
    """A child process, running until its standard input closes, and its owner record."""
    cmd = [sys.executable, "-c", CHILD]
    with subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=aiopod_env()
    ) as proc:
        assert proc.stdout is not None
        owner = ProcessOwner.from_json(json.loads(proc.stdout.readline()))
        try:
            yield proc, owner
        finally:
            proc.kill()


def state_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()[0].decode()


def test_this_process_is_its_own_running_owner() -> None:
    owner = ProcessOwner.current()
    assert owner is not None
    assert owner.pid == os.getpid()
    assert owner.boot_id and owner.pid_namespace.startswith("pid:[")
    assert not owner.is_gone()


def test_a_child_is_running_then_a_zombie_then_gone(
    child: tuple[subprocess.Popen[str], ProcessOwner],
) -> None:
    proc, owner = child
    assert owner.pid == proc.pid
    assert owner.start_time > 0
    assert not owner.is_gone()
    assert proc.stdin is not None
    proc.stdin.close()  # the child ends; not waited for, it stays a zombie
    for _ in range(500):
        if state_of(proc.pid) == "Z":
            break
        time.sleep(0.01)
    else:
        pytest.fail("the child never ended")
    assert owner.is_gone()
    proc.wait()
    assert owner.is_gone()


def test_another_process_given_the_same_pid_is_not_the_owner() -> None:
    owner = ProcessOwner.current()
    assert owner is not None
    earlier = dataclasses.replace(owner, start_time=owner.start_time - 1)
    assert earlier.is_gone()


def test_a_process_from_before_a_restart_is_gone() -> None:
    owner = ProcessOwner.current()
    assert owner is not None
    assert dataclasses.replace(owner, boot_id="0" * 36).is_gone()


def test_a_pid_of_another_pid_namespace_is_not_judged() -> None:
    owner = ProcessOwner.current()
    assert owner is not None
    unseen = dataclasses.replace(owner, pid=2**22 + 1, pid_namespace="pid:[1]")
    assert not unseen.is_gone()  # this process cannot see that PID: not a leftover


def test_the_owner_is_kept_in_the_container_record() -> None:
    owner = ProcessOwner(1234, 5678, "boot", "pid:[4026531836]")
    record = ContainerRecord("a" * 64, "w", "b" * 64, "2026-01-01T00:00:00Z", owner=owner)
    assert ContainerRecord.from_json(record.to_json()) == record
    assert "owner" not in dataclasses.replace(record, owner=None).to_json()
    malformed = {**record.to_json(), "owner": {"pid": "1234"}}
    with pytest.raises(StoreCorrupted, match="malformed container record"):
        ContainerRecord.from_json(malformed)
