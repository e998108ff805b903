"""User and group names as buildah's copier sees them, for the ``COPY``/``ADD`` digest.

buildah's content summary of a ``COPY`` source (``file:<hex>``, ``dir:<hex>``) hashes the
tar headers its copier writes, and those carry a user and a group *name* for each file.
The copier is a process that has ``chroot``-ed into the directory it reads (the build
context, or a stage's root file system) and names the ids through Go's ``os/user``, that
is through the C library's name service:

* the uid the copier runs as (0) is named as on the *host*: ``os/user`` answers it from
  ``user.Current()``, looked up before the ``chroot``;
* every other uid, and every gid, is looked up *inside* the ``chroot`` with the modules the
  host's ``/etc/nsswitch.conf`` lists: ``files`` reads the root's own ``etc/passwd`` and
  ``etc/group``; a module such as ``systemd`` still answers (it makes up ``root`` for id 0
  and ``nobody``/``nogroup`` for 65534 when the files do not have them); ids no module
  knows have no name.

So the names depend on the host's name service setup as much as on the root's files:
with Debian's default ``group: files systemd`` a root without ``etc/group`` names gid 0
``root``; on a machine whose ``nsswitch.conf`` lists only ``files`` it has no name.  A
model of this would only be right on the machines it was written on, so
:func:`lookup_account_names` does what the copier does, in a small helper process
(:mod:`aiopod.builder.sources._account_lookup`): same C library, same ``nsswitch.conf``, same
``chroot``.  Without privileges it first enters a user namespace mapping the caller to
root, as a rootless buildah runs.

Answers are remembered in this process (at most :data:`MEMO_SIZE` of them) under a key
that holds the root, the ids asked for and :func:`name_sources` (the ``lstat`` of every
file the answer depends on), so a build asks once per root and set of ids; the digest
cache keys its entries with :func:`name_sources` too, so a rebuild whose sources are
cached asks nothing.

Blocking (a process is started and waited for, up to :data:`TIMEOUT` seconds); call from
a worker thread.  Thread-safe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiopod.errors import BuildError
from aiopod.storage.rootfs_path import RootDir, resolve_in_root

__all__ = ("MEMO_SIZE", "TIMEOUT", "AccountNames", "lookup_account_names", "name_sources")

#: How many answers this process remembers.
MEMO_SIZE = 64
#: Seconds the helper process may take.
TIMEOUT = 30.0
_HELPER = Path(__file__).with_name("_account_lookup.py")
_ROOT_FILES = ("etc/passwd", "etc/group")
_HOST_FILES = ("/etc/nsswitch.conf", "/etc/passwd", "/etc/group")


@dataclass(frozen=True)
class AccountNames:
    """The names of some uids and gids (``""`` for an id without one)."""

    users: Mapping[int, str] = field(default_factory=dict)
    groups: Mapping[int, str] = field(default_factory=dict)

    def user(self, uid: int) -> str:
        return self.users.get(uid, "")

    def group(self, gid: int) -> str:
        return self.groups.get(gid, "")


_memo: OrderedDict[tuple[object, ...], AccountNames] = OrderedDict()
_memo_lock = threading.Lock()


def _stat_key(st: os.stat_result | None) -> tuple[int, ...] | None:
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _root_file_stats(root: Path) -> tuple[object, ...]:
    out: list[object] = []
    with RootDir(root) as handle:
        for relpath in _ROOT_FILES:
            try:
                _, st = resolve_in_root(handle, relpath, max_final_hops=handle.max_symlink_hops)
            except OSError:
                out.append(None)
            else:
                out.append(_stat_key(st))
    return tuple(out)


def _host_file_stats() -> tuple[object, ...]:
    out: list[object] = []
    for path in _HOST_FILES:
        try:
            out.append(_stat_key(os.stat(path)))
        except OSError:
            out.append(None)
    return tuple(out)


def name_sources(root: Path) -> tuple[object, ...]:
    """What the names of ids read in *root* depend on, short of the ids themselves: the
    caller's uid and the ``lstat`` of the root's ``etc/passwd`` and ``etc/group`` and of
    the host's ``/etc/nsswitch.conf``, ``/etc/passwd`` and ``/etc/group`` (``None`` for a
    missing one).  Equal sources give equal names (the name services that are not files
    cannot be reached from inside the ``chroot``).  Blocking: six ``stat`` calls."""
    return (os.geteuid(), _root_file_stats(root), _host_file_stats())


def lookup_account_names(root: Path, uids: Iterable[int], gids: Iterable[int]) -> AccountNames:
    """The names buildah's copier gives *uids* and *gids* when it reads *root* (see the
    module documentation).  Raises :class:`~aiopod.errors.BuildError` when the helper
    process cannot run (for instance no user namespace for an unprivileged caller).
    Blocking."""
    wanted_uids = sorted(set(uids))
    wanted_gids = sorted(set(gids))
    if not wanted_uids and not wanted_gids:
        return AccountNames()
    key = (os.path.realpath(root), tuple(wanted_uids), tuple(wanted_gids), name_sources(root))
    with _memo_lock:
        known = _memo.get(key)
        if known is not None:
            _memo.move_to_end(key)
            return known
    names = _ask_helper(root, wanted_uids, wanted_gids)
    with _memo_lock:
        _memo[key] = names
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return names


def _ask_helper(root: Path, uids: list[int], gids: list[int]) -> AccountNames:
    request = json.dumps({"uids": uids, "gids": gids, "userns": os.geteuid() != 0})
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", str(_HELPER), "--root-fd", str(fd)],
            input=request,
            capture_output=True,
            text=True,
            pass_fds=(fd,),
            timeout=TIMEOUT,
            check=False,
            env={"LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"looking up user and group names in {root}: {exc}") from exc
    finally:
        os.close(fd)
    if proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise BuildError(f"looking up user and group names in {root}: {detail}")
    try:
        answer = json.loads(proc.stdout)
        users = {int(k): str(v) for k, v in answer["users"].items()}
        groups = {int(k): str(v) for k, v in answer["groups"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildError(f"looking up user and group names in {root}: bad answer {exc}") from exc
    return AccountNames(users, groups)
