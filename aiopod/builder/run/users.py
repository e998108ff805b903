"""Resolve a Dockerfile ``USER`` against the image's own ``/etc/passwd`` and ``/etc/group``.

``USER`` is stored as written (``app``, ``1000``, ``app:staff``, ``1000:50``) and resolved
when a ``RUN`` executes, the way buildah's ``chrootuser`` does it (observed with buildah
1.28, ``bud --isolation chroot``):

* The user part is a number if it parses as one (then the passwd entry with that uid, if
  any, gives the name, the primary gid and HOME; without an entry the gid is 0 and HOME
  is ``/``), otherwise a name that must be in ``/etc/passwd`` (``user: unknown user error
  looking up user "x"``).  An empty user part means ``0``.
* The group part, when given, is a number or a name that must be in ``/etc/group``
  (``group: unknown group error looking up group "x"``); the process then has that one
  group only.  Without a group part the supplementary groups are the primary gid plus
  every group of ``/etc/group`` that lists the user's *name* as a member.

Name services are never used: no ``pwd``, ``grp`` or ``getaddrinfo`` call, so no
``libnss_*.so`` shipped by an image can be loaded into aiopod (CVE-2019-14271).  The two
files are read through :class:`~aiopod.storage.rootfs_path.RootDir`: symlinks are followed
*inside* the root file system (an absolute target restarts at the image's root, never the
host's), a FIFO, device, socket or directory is refused without being opened for reading,
and a file over :data:`MAX_ACCOUNT_FILE` bytes is refused (CVE-2024-9676, CVE-2022-1227).

Everything here blocks; async callers run it in a worker thread.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass

from aiopod.errors import AccountFileError, TooManySymlinks, UserLookupError
from aiopod.storage.rootfs_path import MAX_SYMLINK_HOPS, RootDir, lstat_at

__all__ = (
    "MAX_ACCOUNT_FILE",
    "ResolvedUser",
    "read_account_file",
    "resolve_user",
)

MAX_ACCOUNT_FILE = 1 << 20
"""The largest ``/etc/passwd`` or ``/etc/group`` read (1 MiB); larger files are refused."""

_NUMBER = re.compile(r"[0-9]+")
_ID_LIMIT = 1 << 32


@dataclass(frozen=True)
class ResolvedUser:
    """The credentials a ``RUN`` command gets for a ``USER`` value."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    """The supplementary groups to set (``setgroups``), sorted, the primary gid included."""
    home: str
    """The user's home directory from ``/etc/passwd`` (``/`` without an entry); RUN sets
    ``HOME`` to it unless the environment has one."""
    name: str | None
    """The user's name when ``/etc/passwd`` has it, else ``None``."""


@dataclass(frozen=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def resolve_user(rootfs: str | os.PathLike[str], spec: str) -> ResolvedUser:
    """Resolve ``USER`` ``spec`` (``user``, ``uid``, ``user:group``, ``uid:gid``, or ``""``
    for root) against the root file system at ``rootfs``.

    Raises :class:`~aiopod.errors.UserLookupError` for a name the image does not define
    and :class:`~aiopod.errors.AccountFileError` for an account file aiopod refuses to
    read.  Blocking.
    """
    with RootDir(rootfs) as root:
        return _resolve(root, spec)


def _resolve(root: RootDir, spec: str) -> ResolvedUser:
    user_part, has_group, group_part = spec.partition(":")
    if not has_group:
        group_part = ""
    if user_part == "":
        user_part = "0"
    passwd = _parse_passwd(read_account_file(root, "/etc/passwd"))

    name: str | None
    uid_number = _number(user_part)
    if uid_number is not None:
        uid = uid_number
        entry = next((p for p in passwd if p.uid == uid), None)
        name = entry.name if entry else None
        gid = entry.gid if entry else 0
    else:
        entry = next((p for p in passwd if p.name == user_part), None)
        if entry is None:
            raise UserLookupError(
                f'user: unknown user error looking up user "{user_part}"', which="uid"
            )
        uid, gid, name = entry.uid, entry.gid, entry.name

    if group_part:
        gid_number = _number(group_part)
        if gid_number is not None:
            gid = gid_number
        else:
            groups_file = _parse_group(read_account_file(root, "/etc/group"))
            group = next((g for g in groups_file if g.name == group_part), None)
            if group is None:
                raise UserLookupError(
                    f'group: unknown group error looking up group "{group_part}"', which="gid"
                )
            gid = group.gid
        groups: tuple[int, ...] = (gid,)
    elif name is not None:
        member_of = {
            g.gid for g in _parse_group(read_account_file(root, "/etc/group")) if name in g.members
        }
        groups = tuple(sorted(member_of | {gid}))
    else:
        groups = (gid,)

    home_entry = next((p for p in passwd if p.uid == uid), None)
    home = home_entry.home if home_entry is not None and home_entry.home else "/"
    return ResolvedUser(uid=uid, gid=gid, groups=groups, home=home, name=name)


def _number(text: str) -> int | None:
    if _NUMBER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value < _ID_LIMIT else None


def _lines(data: bytes | None) -> list[list[str]]:
    if data is None:
        return []
    rows = []
    for raw in data.decode("utf-8", "surrogateescape").split("\n"):
        line = raw.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _parse_passwd(data: bytes | None) -> list[_Passwd]:
    """``name:password:uid:gid:gecos:home:shell`` lines; malformed lines are skipped."""
    entries = []
    for fields in _lines(data):
        if len(fields) < 4:
            continue
        uid, gid = _number(fields[2]), _number(fields[3])
        if uid is None or gid is None:
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.append(_Passwd(fields[0], uid, gid, home))
    return entries


def _parse_group(data: bytes | None) -> list[_Group]:
    """``name:password:gid:member,member`` lines; malformed lines are skipped."""
    entries = []
    for fields in _lines(data):
        if len(fields) < 3:
            continue
        gid = _number(fields[2])
        if gid is None:
            continue
        members = fields[3] if len(fields) > 3 else ""
        entries.append(
            _Group(fields[0], gid, tuple(m.strip() for m in members.split(",") if m.strip()))
        )
    return entries


def read_account_file(root: RootDir, path: str, *, limit: int = MAX_ACCOUNT_FILE) -> bytes | None:
    """The bytes of ``path`` in the root, or ``None`` when it does not exist there.

    Symlinks (the final one included) are followed inside the root only.  A file that is
    not regular is refused before it is opened for reading, and it is opened with
    ``O_NONBLOCK | O_NOFOLLOW`` and checked again by ``fstat``, so a FIFO swapped in
    meanwhile cannot make the read hang.  More than ``limit`` bytes raise
    :class:`~aiopod.errors.AccountFileError`.
    """
    parts = [p for p in path.split("/") if p]
    hops = 0
    while True:
        if not parts:
            raise AccountFileError(f"{path} in the image is not a regular file")
        try:
            parent = root.open_dir(parts[:-1])
        except TooManySymlinks:
            raise AccountFileError(
                f"{path} in the image: too many levels of symbolic links"
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            name = parts[-1]
            if name in (".", ".."):
                raise AccountFileError(f"{path} in the image is not a regular file")
            st = lstat_at(parent.fd, name)
            if st is None:
                return None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise AccountFileError(
                        f"{path} in the image: too many levels of symbolic links"
                    )
                target = os.readlink(name, dir_fd=parent.fd)
                base = [] if target.startswith("/") else list(parent.path)
                parts = base + [p for p in target.split("/") if p]
                continue
            if not stat.S_ISREG(st.st_mode):
                raise AccountFileError(f"{path} in the image is not a regular file")
            return _read_regular(parent.fd, name, path, limit)
        finally:
            os.close(parent.fd)


def _read_regular(dir_fd: int, name: str, path: str, limit: int) -> bytes:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink after the lstat
            raise AccountFileError(f"{path} in the image changed while being read") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AccountFileError(f"{path} in the image is not a regular file")
        if st.st_size > limit:
            raise AccountFileError(
                f"{path} in the image is larger than {limit} bytes ({st.st_size})"
            )
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise AccountFileError(f"{path} in the image is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
