"""Running a test script as an unprivileged user, for the builder's rootless paths.

:func:`run_as_nobody` runs ``python -c SCRIPT ARGS...`` as uid/gid 65534 (nobody) with no
capability but ``CAP_DAC_READ_SEARCH``, which only lets it read this machine's interpreter
and source tree (under /root); aiopod then takes its user-namespace path.
:func:`give_to_nobody` hands a directory tree of the test to that user.  Both need root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ("NOBODY", "give_to_nobody", "run_as_nobody")

NOBODY = 65534


def give_to_nobody(root: Path) -> None:
    """``chown -R nobody:nobody root`` (symlinks themselves, never their targets)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            os.lchown(os.path.join(dirpath, name), NOBODY, NOBODY)


def run_as_nobody(
    script: str, *args: str, pass_fds: Sequence[int] = ()
) -> subprocess.CompletedProcess[str]:
    """Run *script* with *args* as nobody (see the module docstring); the result, unchecked."""
    caps = "-all,+dac_read_search"
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            f"--inh-caps={caps}",
            f"--ambient-caps={caps}",
            f"--bounding-set={caps}",
            sys.executable,
            "-c",
            script,
            *args,
        ],
        pass_fds=tuple(pass_fds),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
