"""Named crash points for crash-consistency tests.

``crashpoint("commit:metadata")`` does nothing unless the environment variable
``AIOPOD_CRASH`` names that point, in which case the process kills itself with SIGKILL
right there, as a power cut or an OOM kill would.  Tests run an operation in a
subprocess once per point and check that the store reopens clean.
"""

from __future__ import annotations

import os
import signal

__all__ = ("AFTER_COMMIT_POINT", "CRASH_POINTS", "crashpoint")

#: Every crash point in the store, in the order a commit passes them.
CRASH_POINTS = (
    "commit:journal",
    "commit:blobs",
    "commit:committed",
    "commit:state",
    "commit:metadata",
    "commit:index",
    "commit:gc",
    "purge:intent",
    "purge:done",
)

#: The points a commit passes after its commit point: a crash there leaves its change.
AFTER_COMMIT_POINT = frozenset(
    {"commit:committed", "commit:state", "commit:metadata", "commit:index", "commit:gc"}
)

_TARGET = os.environ.get("AIOPOD_CRASH", "")


def crashpoint(name: str) -> None:
    """Kill this process if ``AIOPOD_CRASH`` names *name* (a no-op otherwise)."""
    if _TARGET and name == _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
