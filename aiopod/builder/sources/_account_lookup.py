"""The helper process behind :func:`aiopod.builder.sources.account_names.lookup_account_names`.

Run as ``python -I -S <this file> --root-fd N`` by the parent, never by hand and never
imported.  It reads ``{"uids": [...], "gids": [...], "userns": bool}`` as JSON on stdin and
writes ``{"users": {uid: name}, "groups": {gid: name}}`` on stdout (ids without a name are
left out); a failure is one line on stderr and exit status 1.

It does what buildah's copier process does before it writes a file's tar header, so that
the names come out as buildah's do on this machine, whatever its name service setup:

1. (not root) enter a new user namespace that maps the caller to root, as a rootless
   buildah runs;
2. on the host, look up the name of its own uid (Go's ``user.Current()``, which
   ``user.LookupId`` answers first for that uid) and make one lookup of an id nobody has
   in each of the user and group databases: this makes the C library read the host's
   ``/etc/nsswitch.conf`` and load every name service module it lists;
3. ``chroot`` into the root (the directory open as descriptor N);
4. look up every id through the C library: ``files`` now reads the root's own
   ``etc/passwd`` and ``etc/group``, other modules answer as they do in a chroot (the C
   library does not re-read ``nsswitch.conf`` once the root has changed).

Only the standard library is imported, all of it before the ``chroot``: nothing in the
root can make this process load code (the name service modules are loaded in step 2).
"""

from __future__ import annotations

import ctypes
import grp
import json
import os
import pwd
import sys

CLONE_NEWUSER = 0x10000000
#: An id no account has, looked up once per database to load every module.
UNUSED_ID = 4294967294


def _enter_user_namespace() -> None:
    uid, gid = os.geteuid(), os.getegid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"creating a user namespace: {os.strerror(code)}")
    maps = (("uid_map", f"0 {uid} 1\n"), ("setgroups", "deny\n"), ("gid_map", f"0 {gid} 1\n"))
    for name, text in maps:
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _group(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def main() -> int:
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--root-fd":
        sys.stderr.write("usage: _account_lookup.py --root-fd N\n")
        return 2
    root_fd = int(args[1])
    try:
        request = json.loads(sys.stdin.read())
        if request.get("userns"):
            _enter_user_namespace()
        uid = os.getuid()
        current = _user(uid)
        _user(UNUSED_ID)
        _group(UNUSED_ID)
        sys.path.clear()  # nothing is imported from the root
        os.fchdir(root_fd)
        os.chroot(".")
        os.chdir("/")
        os.close(root_fd)
        users: dict[str, str] = {}
        for wanted in request["uids"]:
            name = current if wanted == uid and current is not None else _user(wanted)
            if name is not None:
                users[str(wanted)] = name
        groups: dict[str, str] = {}
        for wanted in request["gids"]:
            name = _group(wanted)
            if name is not None:
                groups[str(wanted)] = name
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    json.dump({"users": users, "groups": groups}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
