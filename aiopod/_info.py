"""What ``info`` reports: the host, the store and the versions (:class:`Info`), with the
field names of ``podman info`` where podman has the same field."""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aiopod._display import Displayable, html_table
from aiopod._platforms import local_architecture
from aiopod._text import human_size
from aiopod._trees import stored_size
from aiopod.storage.records import StoreState

__all__ = ("HostInfo", "Info", "StoreInfo", "VersionInfo", "gather_info", "render_yaml")


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The machine: OCI architecture and OS, CPUs, host name, kernel release."""

    arch: str
    os: str
    cpus: int
    hostname: str
    kernel: str


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """The store: its root and event log, its driver (aiopod's is ``vfs``-like: plain
    directories), how many images and containers it holds (runtime containers; storage
    containers counted apart), the bytes its images take (shared layers once) and the
    root's file system's size and use."""

    root: Path
    event_log: Path
    graph_driver: str
    images: int
    containers: int
    external_containers: int
    size: int
    root_allocated: int
    root_used: int


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """aiopod's version, and those of Python and anyio under it."""

    version: str
    python: str
    anyio: str
    os_arch: str


@dataclass(frozen=True, slots=True)
class Info(Displayable):
    """``aiopod info``: the host, the store, the versions and the removal policy.

    :meth:`to_podman_dict` gives podman's JSON shape (``host``, ``store``, ``version``)
    where podman has the same fields, and aiopod's own beside them.
    """

    host: HostInfo
    store: StoreInfo
    version: VersionInfo
    policy: str

    def to_podman_dict(self) -> dict[str, Any]:
        """podman's ``info --format json`` field names (and aiopod's own fields)."""
        store = self.store
        return {
            "host": {
                "arch": self.host.arch,
                "cpus": self.host.cpus,
                "hostname": self.host.hostname,
                "kernel": self.host.kernel,
                "os": self.host.os,
            },
            "policy": self.policy,
            "store": {
                "containerStore": {
                    "external": store.external_containers,
                    "number": store.containers,
                    "paused": 0,
                    "running": 0,
                    "stopped": store.containers,  # aiopod runs none
                },
                "eventLog": str(store.event_log),
                "graphDriverName": store.graph_driver,
                "graphRoot": str(store.root),
                "graphRootAllocated": store.root_allocated,
                "graphRootUsed": store.root_used,
                "imageStore": {"number": store.images, "size": store.size},
            },
            "version": {
                "AnyioVersion": self.version.anyio,
                "Os": self.host.os,
                "OsArch": self.version.os_arch,
                "PythonVersion": self.version.python,
                "Version": self.version.version,
            },
        }

    def display_text(self) -> str:
        return render_yaml(self.to_podman_dict()).rstrip("\n")

    def display_html(self) -> str:
        rows = [
            ("Root", self.store.root),
            ("Images", self.store.images),
            ("Containers", self.store.containers),
            ("Storage containers", self.store.external_containers),
            ("Size", human_size(self.store.size)),
            ("Policy", self.policy),
            ("aiopod", self.version.version),
            ("Host", f"{self.host.hostname} ({self.version.os_arch}, {self.host.cpus} CPUs)"),
        ]
        return html_table(["", ""], rows, caption="aiopod info")


def gather_info(state: StoreState, root: Path, event_log: Path, policy: str) -> Info:
    """The info of the store at *root* whose metadata is *state*.  Blocking (it asks the
    file system for its size): call it in a worker thread."""
    stat = os.statvfs(root)
    external = sum(1 for c in state.containers.values() if c.runtime is None)
    store = StoreInfo(
        root=root,
        event_log=event_log,
        graph_driver="vfs",
        images=len(state.images),
        containers=len(state.containers) - external,
        external_containers=external,
        size=stored_size(state.images.values()),
        root_allocated=stat.f_blocks * stat.f_frsize,
        root_used=(stat.f_blocks - stat.f_bfree) * stat.f_frsize,
    )
    host = HostInfo(
        arch=local_architecture(),
        os=sys.platform,
        cpus=os.cpu_count() or 1,
        hostname=socket.gethostname(),
        kernel=platform.release(),
    )
    version = VersionInfo(
        version=metadata.version("aiopod"),
        python=platform.python_version(),
        anyio=metadata.version("anyio"),
        os_arch=f"{host.os}/{host.arch}",
    )
    return Info(host, store, version, policy)


def _yaml_scalar(value: object) -> str:
    """A scalar as a YAML encoder writes it: a string quoted only where it would read
    back as something else (a number, a boolean, null) or not parse as plain text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    try:
        float(text)
    except ValueError:
        number = False
    else:
        number = True
    special = not text or text[0] in "-?:,[]{}#&*!|>'\"%@` " or text[-1] == " "
    if (
        number
        or special
        or text.lower() in ("true", "false", "yes", "no", "on", "off", "null", "~")
        or ": " in text
        or " #" in text
    ):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def render_yaml(value: dict[str, Any], indent: str = "") -> str:
    """*value* (nested mappings of scalars) as YAML in podman's ``info`` layout: sorted
    keys, two spaces per level, ``{}`` for an empty mapping."""
    lines = []
    for key in sorted(value):
        item = value[key]
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:\n{render_yaml(item, indent + '  ')}")
        elif isinstance(item, dict):
            lines.append(f"{indent}{key}: {{}}\n")
        else:
            lines.append(f"{indent}{key}: {_yaml_scalar(item)}\n")
    return "".join(lines)
