"""The platform of this machine in OCI's terms (``linux/amd64``), and which entries of a
multi-platform index suit a wanted platform.

The choice follows containers/image (podman 4.3): the wanted platform is the host's unless
the caller names an OS, an architecture or a variant; the variant of an ARM host is read
from ``/proc/cpuinfo``.  The candidates are tried in order, most capable first, and the
first index entry that equals one (OS, architecture and variant all equal) wins:

* a wanted variant is followed by the older variants its architecture runs
  (``arm`` ``v7`` → ``v7``, ``v6``, ``v5``), then by "no variant";
* with no variant wanted, "no variant" comes first, then the variant every machine of
  the architecture has (``arm64`` → ``v8``).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache

from aiopod.errors import UsageError

__all__ = ("Platform", "local_architecture", "parse_platform", "wanted_platforms")

#: ``uname -m`` names that OCI spells differently (Go's ``GOARCH``).
_MACHINE_TO_OCI = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}

#: Known variants of an architecture, most capable first.
_COMPATIBLE_VARIANTS = {"arm": ("v7", "v6", "v5"), "arm64": ("v8",)}

#: The variant every machine of an architecture supports.
_BASE_VARIANT = {"arm64": "v8"}

#: ``Cpu architecture`` values of /proc/cpuinfo and the variant they mean.
_CPUINFO_VARIANTS = {
    "8": "v8",
    "aarch64": "v8",
    "7": "v7",
    "7m": "v7",
    "6": "v6",
    "6tej": "v6",
    "5": "v5",
    "5t": "v5",
    "5te": "v5",
    "5tej": "v5",
}


def local_architecture() -> str:
    """The OCI architecture name of this machine (``amd64``, ``arm64`` …)."""
    machine = platform.machine()
    return _MACHINE_TO_OCI.get(machine, machine)


@cache
def _local_variant() -> str:
    if local_architecture() not in ("arm", "arm64"):
        return ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, colon, value = line.partition(":")
                if colon and key.strip().lower() == "cpu architecture":
                    return _CPUINFO_VARIANTS.get(value.strip().lower(), "")
    except OSError:
        pass
    return ""


@dataclass(frozen=True, slots=True)
class Platform:
    """An OS, an architecture and a variant (empty when there is none)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def parse_platform(text: str) -> Platform:
    """``OS/ARCH[/VARIANT]`` as ``--platform`` takes it.

    :raises ~aiopod.errors.UsageError: not two or three non-empty parts.
    """
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}: use OS/ARCH[/VARIANT], e.g. linux/arm64")
    return Platform(*parts)


def wanted_platforms(
    os: str | None = None, architecture: str | None = None, variant: str | None = None
) -> list[Platform]:
    """The platforms an image may have to run here (or as asked), best first."""
    if architecture:
        wanted_variant = variant or ""  # a chosen architecture never takes the host's variant
    else:
        architecture = local_architecture()
        wanted_variant = variant or _local_variant()
    os = os or "linux"
    if wanted_variant:
        order = _COMPATIBLE_VARIANTS.get(architecture, ())
        variants = [*order[order.index(wanted_variant) :]] if wanted_variant in order else []
        variants = [*(variants or [wanted_variant]), ""]
    else:
        base = _BASE_VARIANT.get(architecture)
        variants = ["", base] if base else [""]
    return [Platform(os, architecture, v) for v in variants]
