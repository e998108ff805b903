"""The process that owns a container, and whether it is still running.

A build records its own process in every working container it makes: the PID, the
process's start time (field 22 of ``/proc/PID/stat``, clock ticks since boot) so that a
PID the kernel has given to another process since is not taken for the owner, the boot
ID (``/proc/sys/kernel/random/boot_id``) so that a PID and start time from before a
reboot are not either, and the PID namespace in which the PID means that process.  A
container whose owner is gone is a leftover of a build that was killed (``aiopod system
check`` reports it, ``--repair`` removes it); one whose owner runs is a build's at work.

Reads ``/proc`` (procfs is served from memory: the reads do not wait on a disk).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ("ProcessOwner",)

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _stat(pid: int | str) -> tuple[str, int] | None:
    """The state letter and start time of process *pid*; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and ")".
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


@dataclass(frozen=True, slots=True)
class ProcessOwner:
    """A process, told apart from any later one given the same PID."""

    pid: int
    start_time: int
    boot_id: str
    pid_namespace: str

    @classmethod
    def current(cls) -> ProcessOwner | None:
        """This process; None where ``/proc`` cannot tell its start time."""
        stat = _stat("self")
        if stat is None:
            return None
        return cls(os.getpid(), stat[1], _boot_id(), _pid_namespace())

    def is_gone(self) -> bool:
        """Whether the process has certainly ended (a zombie has ended).

        False when it runs, and also when this process cannot see it: a PID of another
        PID namespace, or an unreadable ``/proc``.
        """
        boot_id = _boot_id()
        if self.boot_id and boot_id and boot_id != self.boot_id:
            return True  # the machine has restarted since
        if self.pid_namespace != _pid_namespace() or not Path("/proc/self/stat").exists():
            return False
        stat = _stat(self.pid)
        if stat is None:
            return True
        state, start_time = stat
        return start_time != self.start_time or state in ("Z", "X")

    def to_json(self) -> dict[str, Any]:
        """The owner as stored in a container record."""
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "boot_id": self.boot_id,
            "pid_namespace": self.pid_namespace,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ProcessOwner:
        """Parse a stored owner (``KeyError``, ``TypeError`` or ``ValueError`` if malformed)."""
        pid, start_time = obj["pid"], obj["start_time"]
        if not isinstance(pid, int) or not isinstance(start_time, int) or pid <= 0:
            raise ValueError(f"malformed owner {dict(obj)!r}")
        return cls(pid, start_time, str(obj["boot_id"]), str(obj["pid_namespace"]))
