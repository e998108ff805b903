"""The platform of this machine in OCI's terms (``linux/amd64``)."""

from __future__ import annotations

import platform

__all__ = ("local_architecture",)

#: ``uname -m`` names that OCI spells differently (Go's ``GOARCH``).
_MACHINE_TO_OCI = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def local_architecture() -> str:
    """The OCI architecture name of this machine (``amd64``, ``arm64`` …)."""
    machine = platform.machine()
    return _MACHINE_TO_OCI.get(machine, machine)
