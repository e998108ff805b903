"""A busybox root file system for the isolation and USER tests (import it explicitly; a
``conftest.py`` here would clash with ``tests/conftest.py`` for mypy).

Nothing here touches a path outside the directory the tests pass in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh",
    "ls",
    "cat",
    "echo",
    "mkdir",
    "rm",
    "touch",
    "sleep",
    "id",
    "env",
    "pwd",
    "sed",
    "chmod",
    "ln",
    "true",
    "false",
    "hostname",
    "readlink",
    "grep",
    "stat",
    "wc",
    "chroot",
    "head",
)
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
)
GROUP = "root:x:0:\nwheel:x:10:root\nstaff:x:50:other,app\nnogroup:x:65534:\napp:x:1000:\n"


def make_busybox_rootfs(root: Path) -> Path:
    """A root file system at ``root``: busybox and applet symlinks in /bin, /etc/passwd
    (root, nobody, app:1000 with HOME /home/app), /etc/group (app is also in staff:50),
    /root, /home/app (owned by 1000), /tmp."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "root").mkdir(mode=0o700)
    (root / "home" / "app").mkdir(parents=True)
    if os.geteuid() == 0:
        os.chown(root / "home" / "app", 1000, 1000)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return root


def busybox_rootfs(tmp_path: Path) -> Path:
    """``<tmp_path>/rootfs`` made by :func:`make_busybox_rootfs`; skips without busybox."""
    if not BUSYBOX.exists():
        pytest.skip("busybox is not installed")
    return make_busybox_rootfs(tmp_path / "rootfs")
