"""The helper process behind :func:`aiopod.builder.run.isolation.run_isolated`.

Run as ``python -m aiopod.builder.run._runner --status-fd N --root-fd M`` by the parent, never
by hand.  It reads a JSON description of the command on stdin (the parent writes it and
closes the pipe), finds the image's root file system as the already open directory ``M``
and reports on the ``AF_UNIX`` ``SOCK_SEQPACKET`` socket ``N``.  Its stdout and stderr are
the single pipe the parent streams.

Three processes take part:

``runner`` (this program as started)
    Unshares mount, PID, UTS and IPC namespaces (first a user namespace mapping the caller
    to root when not run as root), makes every mount private, sets the host name, forks
    ``init`` and sends the parent a pidfd of it, then waits for ``init`` and exits with its
    status.  It dies with the parent's thread (``PR_SET_PDEATHSIG``).
``init`` (PID 1 of the new PID namespace)
    Dies with ``runner`` (``PR_SET_PDEATHSIG``, checked against a pipe for the race).
    Prepares the root (below), enters it with ``pivot_root`` and detaches the host's file
    systems (``chroot`` only on kernels without ``open_tree``, older than 5.2; the command
    then also loses ``CAP_SYS_CHROOT``, the classic way out of a chroot), forks ``command``,
    reaps
    every orphan until ``command`` exits, and exits with its status.  When PID 1 exits
    the kernel SIGKILLs everything left in the namespace and the exit completes only after
    they are gone, so nothing a command starts outlives it (B8 of
    ``docs/design/hostile-input.md``, like the other labels here).
``command``
    Closes every descriptor but 0-2 (B7), creates and enters the working directory inside
    the root and checks ``getcwd``, limits capabilities to the container default set,
    sets groups, gid and uid, resets signal dispositions, and executes ``argv`` with the
    given environment.  An executable that cannot be found or started prints buildah's
    message (``process failed to start with error: ...``) and exits 1, as buildah's chroot
    isolation does.

Preparing the root (``init``, in its private mount namespace; every path is resolved in
the image with :class:`~aiopod.storage.rootfs_path.RootDir` and every mount target is an
``O_PATH | O_NOFOLLOW`` descriptor named through ``/proc/self/fd``, so nothing is ever
written or mounted through a symlink of the image):

* ``/proc``: a directory is made if missing; a symlink or any other non-directory there
  is *replaced* by an empty directory (B11); a fresh procfs of the new PID namespace is
  mounted on it; ``bus``, ``fs``, ``irq``, ``sys`` and ``sysrq-trigger`` are read-only and
  ``acpi``, ``kcore``, ``keys``, ``latency_stats``, ``sched_debug``, ``scsi``,
  ``timer_list`` and ``timer_stats`` are masked, as runc and buildah do.
* ``/dev``: made a real directory the same way (an image's ``/dev -> /tmp`` symlink is
  replaced, never followed), with a tmpfs mounted on it; the device files ``null``,
  ``zero``, ``full``, ``random``, ``urandom`` and ``tty`` are bind mounts of the host's
  onto files created *in that tmpfs*, plus ``fd``, ``stdin``, ``stdout``, ``stderr``,
  ``ptmx`` symlinks, a tmpfs ``shm`` and a private ``devpts``.  Scripts the description
  carries (a ``RUN <<EOF`` document starting with ``#!``) are files of mode 0755 on a tmpfs
  of their own at ``/dev/pipes`` (executable, unlike the rest of ``/dev``), remounted
  read-only once written.  Nothing under ``/dev`` is written into the image.
* ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``: ``/etc`` is resolved in the root
  (created if missing); the file is created empty (mode 0755, like buildah's stubs) when
  missing, and a symlink or other non-regular file there is replaced by one (B11); a file
  holding the text the parent sent is bind-mounted over it.  Those files live on a scratch
  tmpfs of the namespace, detached once they are bound: nothing is written on the host.

* ``RUN --mount`` (the description's ``mounts``, in order, after everything above).  The
  parent opened every source; a bind's descriptor names a mount of the parent's namespace,
  which cannot be bound from here, so the runner opens the source again by the path the
  parent gave, right after ``unshare``, and refuses it unless it is the very same file
  (device, inode and type).  The target is resolved in the root like ``/etc`` above
  (symlinks of the image followed inside the root; missing directories made, mode 0755;
  a missing mount point is made empty, a directory or a file as the source is).  A bind
  is bound there (``nosuid``, ``nodev``, read-only unless asked).  A writable bind whose
  writes are discarded is an overlay (the source as its lower layer, upper and work
  directories on a scratch tmpfs) and a secret a file copied to that scratch tmpfs (its
  mode and owner set); both are made while the scratch sits on ``/dev`` (before ``/dev``'s
  own tmpfs), cloned as detached mounts (``open_tree``) and the scratch detached before
  the clones are moved onto their targets (``move_mount``): no path to the scratch ever
  exists in the root.  A tmpfs is mounted new.  The mount points the runner created are
  reported to the parent (``mount_points``) before the command starts.

The stubs (``proc/``, ``dev/``, the three ``etc`` files, missing ``WORKDIR`` directories)
stay in the root file system, as buildah's do; what goes into the layer is the builder's
decision.  Every mount vanishes with the mount namespace.  ``/sys`` is not mounted and the
network namespace is the host's (buildah's default for RUN).

After the root is entered nothing is imported any more (``sys.path`` is emptied), no name
service is ever called, and messages use only the C locale: an image cannot make this
process load its code (B9, B10).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

from aiopod.storage.rootfs_path import RootDir, lstat_at, remove_at

# Exit status of a set-up failure (the message goes to the status socket).
SETUP_FAILED = 125
# Exit status when the executable cannot be started (buildah's chroot isolation).
START_FAILED = 1
MAX_SPEC = 16 << 20

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
# statvfs flags of a mount (ST_*) and the mount flags they correspond to: a remount must
# keep these when the mount came from a more privileged user namespace (they are locked).
_LOCKED_FLAGS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

SYS_OPEN_TREE = 428  # the same number on every architecture
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 0x1
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# podman's and buildah's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
# SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, SETFCAP (0x800405fb, observed).
DEFAULT_CAPABILITIES = (0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 31)
CAP_SYS_CHROOT = 18

PROC_READONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
PROC_MASKED = (
    "acpi",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "scsi",
    "timer_list",
    "timer_stats",
)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)
MAX_TARGET_SYMLINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.sethostname.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_libc.prctl.argtypes = (
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
)
_libc.pivot_root.argtypes = (ctypes.c_char_p, ctypes.c_char_p)


class _SetupError(Exception):
    """A step of the set-up failed; the message names the step."""


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), what)
    return result


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        yield
    except _SetupError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise _SetupError(f"{what}: {reason}") from None
    except ValueError as exc:
        raise _SetupError(f"{what}: {exc}") from None


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


@contextlib.contextmanager
def _path_of(dir_fd: int, name: str) -> Iterator[str]:
    """A ``/proc/self/fd`` path naming *name* in *dir_fd* (opened ``O_PATH``, never
    followed) for the block; closed after it."""
    fd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        yield _fd_path(fd)
    finally:
        os.close(fd)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            flags,
            data.encode() if data else None,
        ),
        "mount",
    )


def _prctl(option: int, arg: int = 0) -> int:
    return _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")


def _exit_code(wait_status: int) -> int:
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return SETUP_FAILED


def _send(sock: socket.socket, message: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _report(sock: socket.socket | None, exc: BaseException) -> None:
    if isinstance(exc, _SetupError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = f"{exc.strerror or exc}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    if sock is not None:
        with contextlib.suppress(OSError):
            _send(sock, {"error": message})


# -- runner ---------------------------------------------------------------------------------


def main(args: Sequence[str] | None = None) -> NoReturn:
    """The runner: see the module documentation."""
    argv = list(sys.argv[1:] if args is None else args)
    options = dict(zip(argv[::2], argv[1::2], strict=False))
    status = socket.socket(fileno=int(options["--status-fd"]))
    root_fd = int(options["--root-fd"])
    os.set_inheritable(root_fd, False)
    try:
        spec = _read_spec()
        with _step("watching the parent process"):
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != spec["parent_pid"]:
                os._exit(SETUP_FAILED)
        with _step("opening /dev/null"):
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 0)
            os.close(null)
        # Unsharing the mount namespace moves the working directory to the new copy of its
        # mount; descriptors opened before keep naming the old one, where nothing can be
        # mounted.  So the root is entered by descriptor first and reopened as ".".
        with _step("opening the root file system"):
            os.fchdir(root_fd)
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC
        if spec["userns"]:
            uid, gid = os.geteuid(), os.getegid()
            with _step("creating a user namespace"):
                _check(_libc.unshare(CLONE_NEWUSER | flags), "unshare")
                _write_file("/proc/self/uid_map", f"0 {uid} 1\n")
                _write_file("/proc/self/setgroups", "deny\n")
                _write_file("/proc/self/gid_map", f"0 {gid} 1\n")
        else:
            with _step("creating namespaces"):
                _check(_libc.unshare(flags), "unshare")
        with _step("making mounts private"):
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
        with _step("opening the root file system"):
            before = os.fstat(root_fd)
            os.close(root_fd)
            root_fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            after = os.fstat(root_fd)
            if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
                raise _SetupError("opening the root file system: it was replaced")
        sources = _reopen_sources(spec.get("mounts") or [])
        with _step("setting the host name"):
            name = spec["hostname"].encode()
            _check(_libc.sethostname(name, len(name)), "sethostname")
        alive_r, alive_w = os.pipe()
    except BaseException as exc:
        _report(status, exc)
        os._exit(SETUP_FAILED)

    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        _init(spec, status, root_fd, alive_r, sources)
    os.close(alive_r)
    os.close(root_fd)
    for fd in sources.values():
        os.close(fd)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        _send(status, {"started": True}, [pidfd] if pidfd >= 0 else [])
    except OSError:
        os.kill(pid, signal.SIGKILL)  # the parent is gone: so is everything started for it
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    status.close()
    _, wait_status = os.waitpid(pid, 0)
    os._exit(_exit_code(wait_status))


def _read_spec() -> dict[str, Any]:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        total += len(chunk)
        if total > MAX_SPEC:
            raise _SetupError("the command description is too large")
        chunks.append(chunk)
    spec = json.loads(b"".join(chunks))
    if not isinstance(spec, dict):
        raise _SetupError("the command description is malformed")
    return spec


def _reopen_sources(mounts: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """``{index: descriptor}`` of every bind mount's source opened again in this mount
    namespace by its path (the final component never followed), refused unless it is the
    file the parent opened; the parent's descriptors are closed."""
    sources: dict[int, int] = {}
    olds: set[int] = set()
    for index, mount in enumerate(mounts):
        if mount["kind"] != "bind":
            continue
        with _step(f"opening the source of the mount on {mount['target']}"):
            old = int(mount["fd"])
            before = os.fstat(old)
            fd = os.open(str(mount["path"]), _PATH_FLAGS)
            after = os.fstat(fd)
            same = (before.st_dev, before.st_ino, stat.S_IFMT(before.st_mode)) == (
                after.st_dev,
                after.st_ino,
                stat.S_IFMT(after.st_mode),
            )
            if not same:
                os.close(fd)
                raise _SetupError(
                    f"opening the source of the mount on {mount['target']}: it was replaced"
                )
            olds.add(old)
            sources[index] = fd
    for old in olds:
        os.close(old)
    return sources


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# -- init (PID 1) ---------------------------------------------------------------------------


def _init(
    spec: Mapping[str, Any],
    status: socket.socket,
    root_fd: int,
    alive: int,
    sources: Mapping[int, int],
) -> NoReturn:
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # getppid() is 0 across the PID namespace boundary: the runner's end of the pipe
        # tells whether it died before the death signal was armed.
        poller = select.poll()
        poller.register(alive, select.POLLIN)
        if poller.poll(0):
            os._exit(SETUP_FAILED)
        os.close(alive)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)  # PID 1 ignores them from inside
        os.umask(0)
        with _step("reading the capability count"), open("/proc/sys/kernel/cap_last_cap") as f:
            cap_last = int(f.read())
        pivoted, mount_points = _enter_root(spec, root_fd, sources)
        sys.path[:] = []  # nothing is imported from the image's files, ever
        sys.path_importer_cache.clear()
        if mount_points:
            _send(status, {"mount_points": mount_points})
        child = os.fork()
        if child == 0:
            _command(spec, status, cap_last, pivoted)
        status.close()
    except BaseException as exc:
        _report(status, exc)
        os._exit(SETUP_FAILED)
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == child:
            os._exit(_exit_code(wait_status))


def _enter_root(
    spec: Mapping[str, Any], root_fd: int, sources: Mapping[int, int]
) -> tuple[bool, list[str]]:
    """Mount what the command needs in the root, then make it ``/``: with ``pivot_root``
    (true is returned), or with ``chroot`` on kernels without ``open_tree`` (or when the
    description asks for it, which only tests do).  Also returned: the mount points of
    ``RUN --mount`` made here, as root-relative paths."""
    tree = -1
    with _step("preparing the root file system"):
        try:
            if not spec.get("pivot_root", True):
                raise OSError(errno.ENOSYS, "pivot_root not wanted")
            tree = _open_tree(root_fd, OPEN_TREE_CLONE | AT_RECURSIVE)
            _move_mount(tree, root_fd)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            if tree >= 0:
                os.close(tree)
            tree = -1  # a kernel older than 5.2: chroot below
    new_root = tree if tree >= 0 else root_fd
    mounts = spec.get("mounts") or []
    with RootDir(_fd_path(new_root)) as root:
        _mount_proc(root)
        _bind_etc_files(root, spec["etc_files"])
        clones = _prepare_mounts(root, mounts, sources, userns=bool(spec["userns"]))
        try:
            _mount_dev(root, spec.get("scripts") or {})
            mount_points = _attach_mounts(root, mounts, sources, clones)
        finally:
            for fd in clones.values():
                os.close(fd)
    os.fchdir(new_root)
    if tree >= 0:
        with _step("entering the root file system"):
            _check(_libc.pivot_root(b".", b"."), "pivot_root")
            _check(_libc.umount2(b".", MNT_DETACH), "umount2")
        os.close(tree)
    else:
        with _step("entering the root file system"):
            os.chroot(".")
    os.close(root_fd)
    os.chdir("/")
    if os.getcwd() != "/":
        raise _SetupError("entering the root file system: the working directory is outside")
    return tree >= 0, mount_points


def _dir_mount_point(dir_fd: int, name: str) -> int:
    """``name`` in ``dir_fd`` made a real directory (a symlink or file there is replaced,
    never followed): an ``O_PATH`` descriptor of it."""
    st = lstat_at(dir_fd, name)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        remove_at(dir_fd, name, st)
        st = None
    if st is None:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    return os.open(name, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=dir_fd)


def _mount_on(dir_fd: int, name: str, source: str, fstype: str, flags: int, data: str = "") -> int:
    """Mount a file system on the directory ``name`` of ``dir_fd``; an ``O_PATH``
    descriptor of the new mount's root."""
    fd = _dir_mount_point(dir_fd, name)
    try:
        _mount(source, _fd_path(fd), fstype, flags, data)
    finally:
        os.close(fd)
    mounted = os.open(name, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=dir_fd)
    if os.fstat(mounted).st_dev == os.fstat(dir_fd).st_dev:
        os.close(mounted)
        raise _SetupError(f"mounting {fstype} on {name}: the directory was replaced")
    return mounted


def _mount_proc(root: RootDir) -> None:
    with _step("mounting /proc"):
        proc = _mount_on(root.fd, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    try:
        for name in PROC_READONLY:
            with _step(f"making /proc/{name} read-only"):
                if lstat_at(proc, name) is None:
                    continue
                with _path_of(proc, name) as path:
                    _mount(path, path, None, MS_BIND | MS_REC)
                with _path_of(proc, name) as path:
                    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
                    _mount(None, path, None, flags)
        for name in PROC_MASKED:
            with _step(f"masking /proc/{name}"):
                st = lstat_at(proc, name)
                if st is None:
                    continue
                with _path_of(proc, name) as path:
                    if stat.S_ISDIR(st.st_mode):
                        flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
                        _mount("tmpfs", path, "tmpfs", flags, "size=0")
                    else:
                        _mount("/dev/null", path, None, MS_BIND)
    finally:
        os.close(proc)


def _mount_dev(root: RootDir, scripts: Mapping[str, str]) -> None:
    with _step("mounting /dev"):
        dev = _mount_on(
            root.fd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k"
        )
    try:
        for name in DEVICES:
            with _step(f"making /dev/{name}"):
                host = f"/dev/{name}"
                if not os.path.exists(host):
                    continue
                os.close(os.open(name, _CREATE_FLAGS, 0o666, dir_fd=dev))
                with _path_of(dev, name) as path:
                    _mount(host, path, None, MS_BIND)
        with _step("making /dev links"):
            for name, target in DEV_LINKS:
                os.symlink(target, name, dir_fd=dev)
        with _step("mounting /dev/shm"):
            os.close(
                _mount_on(
                    dev,
                    "shm",
                    "tmpfs",
                    "tmpfs",
                    MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "mode=1777,size=65536k",
                )
            )
        if scripts:
            _mount_scripts(dev, scripts)
        # A pseudo-terminal multiplexer of our own, if the kernel lets us; optional.
        with contextlib.suppress(OSError, _SetupError):
            os.close(
                _mount_on(
                    dev,
                    "pts",
                    "devpts",
                    "devpts",
                    MS_NOSUID | MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=620",
                )
            )
    finally:
        os.close(dev)


def _mount_scripts(dev: int, scripts: Mapping[str, str]) -> None:
    """``/dev/pipes/<name>`` for every script (mode 0755), on a read-only tmpfs."""
    with _step("mounting /dev/pipes"):
        flags = MS_NOSUID | MS_NODEV
        pipes = _mount_on(dev, "pipes", "tmpfs", "tmpfs", flags, "mode=755,size=65536k")
    try:
        for name, text in scripts.items():
            with _step(f"writing /dev/pipes/{name}"):
                if not name or "/" in name or name in (".", ".."):
                    raise _SetupError(f"writing /dev/pipes: {name!r} is not a file name")
                fd = os.open(name, _CREATE_FLAGS, 0o755, dir_fd=pipes)
                with os.fdopen(fd, "wb") as out:
                    out.write(text.encode("utf-8", "surrogateescape"))
        with _step("making /dev/pipes read-only"):
            _mount(None, _fd_path(pipes), None, MS_REMOUNT | MS_RDONLY | flags)
    finally:
        os.close(pipes)


def _bind_etc_files(root: RootDir, contents: Mapping[str, str]) -> None:
    """Bind files holding ``contents`` over ``/etc/<name>``.  The files live on a scratch
    tmpfs mounted for the moment on ``/dev`` (before ``/dev``'s own) and detached once they
    are bound, so nothing is written outside the namespace or into the image."""
    with _step("preparing /etc"):
        created: list[tuple[str, ...]] = []
        etc = root.open_dir(("etc",), create=True, created=created)
        _set_modes(root, created)
    try:
        with _step("making the /etc files"):
            scratch = _mount_on(
                root.fd,
                "dev",
                "tmpfs",
                "tmpfs",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=755,size=1024k",
            )
        try:
            for name, text in contents.items():
                with _step(f"mounting /etc/{name}"):
                    fd = os.open(name, _CREATE_FLAGS, 0o644, dir_fd=scratch)
                    try:
                        data = text.encode("utf-8", "surrogateescape")
                        while data:
                            data = data[os.write(fd, data) :]
                    finally:
                        os.close(fd)
                    st = lstat_at(etc.fd, name)
                    if st is not None and not stat.S_ISREG(st.st_mode):
                        remove_at(etc.fd, name, st)  # a symlink is replaced, never followed
                        st = None
                    if st is None:
                        os.close(os.open(name, _CREATE_FLAGS, 0o755, dir_fd=etc.fd))
                    target = os.open(name, _PATH_FLAGS, dir_fd=etc.fd)
                    source = os.open(name, _PATH_FLAGS, dir_fd=scratch)
                    try:
                        if not stat.S_ISREG(os.fstat(target).st_mode):
                            raise _SetupError(f"mounting /etc/{name}: it was replaced meanwhile")
                        _mount(_fd_path(source), _fd_path(target), None, MS_BIND)
                    finally:
                        os.close(source)
                        os.close(target)
        finally:
            with _step("detaching the scratch file system"):
                try:
                    _check(_libc.umount2(_fd_path(scratch).encode(), MNT_DETACH), "umount2")
                finally:
                    os.close(scratch)
    finally:
        os.close(etc.fd)


def _set_modes(root: RootDir, created: Sequence[tuple[str, ...]], mode: int = 0o755) -> None:
    """Give the directories the resolver made (mode 0700) their final mode."""
    for path in created:
        opened = root.open_dir(path)
        try:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=opened.fd)
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        finally:
            os.close(opened.fd)


# -- RUN --mount ----------------------------------------------------------------------------


def _open_tree(fd: int, flags: int) -> int:
    """``open_tree(fd, "", flags | AT_EMPTY_PATH)``: with ``OPEN_TREE_CLONE`` a detached
    copy of the mount at ``fd`` (rooted at ``fd``'s file)."""
    result = _libc.syscall(
        ctypes.c_long(SYS_OPEN_TREE),
        ctypes.c_int(fd),
        ctypes.c_char_p(b""),
        ctypes.c_uint(flags | AT_EMPTY_PATH | os.O_CLOEXEC),
    )
    return _check(result, "open_tree")


def _move_mount(tree: int, target: int) -> None:
    """Attach the detached mount ``tree`` on the file ``target`` (both descriptors)."""
    result = _libc.syscall(
        ctypes.c_long(SYS_MOVE_MOUNT),
        ctypes.c_int(tree),
        ctypes.c_char_p(b""),
        ctypes.c_int(target),
        ctypes.c_char_p(b""),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    )
    _check(result, "move_mount")


def _mount_id(fd: int) -> int:
    """The ID of the mount ``fd`` is on (``/proc/self/fdinfo``)."""
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "mnt_id":
                return int(value)
    raise _SetupError("reading a mount ID: /proc/self/fdinfo has none")


def _prepare_mounts(
    root: RootDir,
    mounts: Sequence[Mapping[str, Any]],
    sources: Mapping[int, int],
    *,
    userns: bool,
) -> dict[int, int]:
    """The mounts that need files of their own, as detached mounts ``{index: fd}``: a
    secret's copy and the overlay of a bind whose writes are discarded.  They are made on
    a scratch tmpfs mounted for the moment on ``/dev`` (before ``/dev``'s own) and detached
    once they are cloned, so no path leads to the scratch afterwards."""
    wanted = [
        index
        for index, mount in enumerate(mounts)
        if mount["kind"] == "secret" or (mount["kind"] == "bind" and mount.get("overlay"))
    ]
    if not wanted:
        return {}
    with _step("preparing RUN --mount"):
        scratch = _mount_on(root.fd, "dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=700")
    clones: dict[int, int] = {}
    try:
        for index in wanted:
            mount = mounts[index]
            with _step(f"preparing the mount on {mount['target']}"):
                if mount["kind"] == "secret":
                    clones[index] = _secret_copy(scratch, index, mount)
                else:
                    clones[index] = _overlay(scratch, index, mount, sources[index], userns)
    except BaseException:
        for fd in clones.values():
            os.close(fd)
        raise
    finally:
        with _step("detaching the scratch file system"):
            try:
                _check(_libc.umount2(_fd_path(scratch).encode(), MNT_DETACH), "umount2")
            finally:
                os.close(scratch)
    return clones


def _secret_copy(scratch: int, index: int, mount: Mapping[str, Any]) -> int:
    """The secret read from its descriptor into a file of the scratch tmpfs (mode and
    owner set): a detached mount of that file."""
    name = f"secret-{index}"
    source = int(mount["fd"])
    fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=scratch)
    try:
        offset = 0
        while chunk := os.pread(source, 65536, offset):
            offset += len(chunk)
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
        os.fchown(fd, int(mount["uid"]), int(mount["gid"]))
        mode = mount.get("mode")
        os.fchmod(fd, 0o400 if mode is None else int(mode) & 0o7777)
    finally:
        os.close(fd)
    os.close(source)
    path = os.open(name, _PATH_FLAGS, dir_fd=scratch)
    try:
        return _open_tree(path, OPEN_TREE_CLONE)
    finally:
        os.close(path)


def _overlay(scratch: int, index: int, mount: Mapping[str, Any], lower: int, userns: bool) -> int:
    """An overlay of the directory ``lower`` whose upper and work directories are on the
    scratch tmpfs (the upper one with the lower one's mode and owner, as the overlay's root
    shows them): a detached mount of it, or of its file ``child``."""
    upper, work, point = f"upper-{index}", f"work-{index}", f"overlay-{index}"
    for name in (upper, work, point):
        os.mkdir(name, 0o755, dir_fd=scratch)
    st = os.fstat(lower)
    with contextlib.suppress(OSError):  # a user namespace maps only root
        os.chown(upper, st.st_uid, st.st_gid, dir_fd=scratch, follow_symlinks=False)
    os.chmod(upper, stat.S_IMODE(st.st_mode), dir_fd=scratch, follow_symlinks=False)
    base = _fd_path(scratch)
    data = f"lowerdir={_fd_path(lower)},upperdir={base}/{upper},workdir={base}/{work}"
    if userns:
        data += ",userxattr"
    fd = os.open(point, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=scratch)
    try:
        _mount("overlay", _fd_path(fd), "overlay", MS_NOSUID | MS_NODEV, data)
    finally:
        os.close(fd)
    mounted = os.open(point, _PATH_FLAGS | os.O_DIRECTORY, dir_fd=scratch)
    try:
        child = mount.get("child")
        if child is None:
            return _open_tree(mounted, OPEN_TREE_CLONE)
        fd = os.open(str(child), _PATH_FLAGS, dir_fd=mounted)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _SetupError(f"mounting on {mount['target']}: the source is not a file")
            return _open_tree(fd, OPEN_TREE_CLONE)
        finally:
            os.close(fd)
    finally:
        os.close(mounted)


def _attach_mounts(
    root: RootDir,
    mounts: Sequence[Mapping[str, Any]],
    sources: Mapping[int, int],
    clones: dict[int, int],
) -> list[str]:
    """Mount every ``RUN --mount`` on its target, in order; the mount points made here."""
    made: list[str] = []
    for index, mount in enumerate(mounts):
        target = str(mount["target"])
        kind = mount["kind"]
        with _step(f"mounting on {target}"):
            if kind == "tmpfs":
                is_dir = True
            elif kind == "secret" or mount.get("child") is not None:
                is_dir = False
            else:
                is_dir = stat.S_ISDIR(os.fstat(sources[index]).st_mode)
            parent, name, created = _mount_point(root, target, is_dir)
            try:
                if created is not None:
                    made.append("/".join(created))
                point = os.open(name, _PATH_FLAGS, dir_fd=parent)
                try:
                    if stat.S_ISDIR(os.fstat(point).st_mode) != is_dir:
                        raise _SetupError(f"mounting on {target}: it was replaced meanwhile")
                    below = _mount_id(point)
                    if kind == "tmpfs":
                        mode = mount.get("mode")
                        data = f"mode={0o1777 if mode is None else int(mode) & 0o7777:o}"
                        if mount.get("size") is not None:
                            data += f",size={int(mount['size'])}"
                        flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if mount["readonly"] else 0)
                        _mount("tmpfs", _fd_path(point), "tmpfs", flags, data)
                    elif index in clones:
                        _move_mount(clones.pop(index), point)
                    else:
                        _mount(_fd_path(sources[index]), _fd_path(point), None, MS_BIND)
                finally:
                    os.close(point)
                if kind != "tmpfs":
                    readonly = kind == "secret" or bool(mount["readonly"])
                    _restrict(parent, name, below, readonly=readonly, noexec=kind == "secret")
            finally:
                os.close(parent)
    return made


def _restrict(parent: int, name: str, below: int, *, readonly: bool, noexec: bool) -> None:
    """Remount the mount on ``name`` (in ``parent``) ``nosuid``, ``nodev`` (``ro`` and
    ``noexec`` when asked), keeping the flags its origin locks."""
    fd = os.open(name, _PATH_FLAGS, dir_fd=parent)
    try:
        if _mount_id(fd) == below:
            raise _SetupError("the new mount is not where it was made")
        present = os.fstatvfs(fd).f_flag
        flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV
        flags |= (MS_RDONLY if readonly else 0) | (MS_NOEXEC if noexec else 0)
        for st_flag, ms_flag in _LOCKED_FLAGS:
            if present & st_flag:
                flags |= ms_flag
        _mount(None, _fd_path(fd), None, flags)
    finally:
        os.close(fd)


def _mount_point(
    root: RootDir, target: str, is_dir: bool
) -> tuple[int, str, tuple[str, ...] | None]:
    """The mount point ``target`` resolved in the root (symlinks followed inside it,
    missing directories made with mode 0755, a missing mount point made empty, a directory
    when ``is_dir``, else a file): an ``O_PATH`` descriptor of its directory, its name, and
    its real path when it was made here."""
    parts = [p for p in target.split("/") if p]
    for _ in range(MAX_TARGET_SYMLINKS + 1):
        created: list[tuple[str, ...]] = []
        if is_dir:
            try:
                opened = root.open_dir(parts, create=True, created=created)
            except NotADirectoryError:
                raise _SetupError(f"mounting on {target}: it is not a directory") from None
            _set_modes(root, created)
            os.close(opened.fd)
            if not opened.path:
                raise _SetupError(f"mounting on {target}: it is the root directory")
            parent = root.open_dir(opened.path[:-1])
            made = opened.path if opened.path in created else None
            return parent.fd, opened.path[-1], made
        parent = root.open_dir(parts[:-1], create=True, created=created)
        _set_modes(root, created)
        name = parts[-1]
        st = lstat_at(parent.fd, name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            link = os.readlink(name, dir_fd=parent.fd)
            base = () if link.startswith("/") else parent.path
            os.close(parent.fd)
            parts = _join_in_root(base, link)
            if not parts:
                raise _SetupError(f"mounting on {target}: it is the root directory")
            continue
        if st is None:
            os.close(os.open(name, _CREATE_FLAGS, 0o644, dir_fd=parent.fd))
            return parent.fd, name, (*parent.path, name)
        if not stat.S_ISREG(st.st_mode):
            os.close(parent.fd)
            raise _SetupError(f"mounting a file on {target}: it is not a regular file")
        return parent.fd, name, None
    raise _SetupError(f"mounting on {target}: too many levels of symbolic links")


def _join_in_root(base: Sequence[str], link: str) -> list[str]:
    """``link`` followed from the real directory ``base``: ``..`` stops at the root."""
    parts = list(base)
    for part in link.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return parts


# -- command --------------------------------------------------------------------------------


def _command(
    spec: Mapping[str, Any], status: socket.socket, cap_last: int, pivoted: bool
) -> NoReturn:
    argv: list[str] = list(spec["argv"])
    env: dict[str, str] = dict(spec["env"])
    try:
        _close_descriptors(status.fileno())
        status.set_inheritable(False)
        with _step(f"setting the working directory to {spec['workdir']}"), RootDir("/") as root:
            created: list[tuple[str, ...]] = []
            opened = root.open_dir(spec["workdir"].split("/"), create=True, created=created)
            try:
                _set_modes(root, created)
                os.fchdir(opened.fd)
            finally:
                os.close(opened.fd)
            expected = "/" + "/".join(opened.path)
            try:
                cwd = os.getcwd()
            except OSError:
                cwd = "(unreachable)"
            if cwd != expected:
                raise _SetupError(
                    f"setting the working directory to {spec['workdir']}: "
                    f"it is outside the container ({cwd})"
                )
        with _step("limiting capabilities"):
            # Under chroot, CAP_SYS_CHROOT is the classic way out: drop it there.
            keep = (
                DEFAULT_CAPABILITIES
                if pivoted
                else tuple(cap for cap in DEFAULT_CAPABILITIES if cap != CAP_SYS_CHROOT)
            )
            _limit_capabilities(cap_last, keep)
        with _step("setting the user"):
            if not spec["userns"]:
                os.setgroups(list(spec["groups"]))
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for signum in signal.valid_signals():
            if signum not in (signal.SIGKILL, signal.SIGSTOP):
                with contextlib.suppress(OSError, ValueError, RuntimeError):
                    signal.signal(signum, signal.SIG_DFL)
        os.umask(0o022)
    except BaseException as exc:
        _report(status, exc)
        os._exit(SETUP_FAILED)

    name = argv[0]
    path = _look_path(name, env.get("PATH", ""))
    if path is None:
        reason = f'exec: "{name}": executable file not found in $PATH'
    else:
        try:
            os.execve(path, argv, env)
        except OSError as exc:
            text = os.strerror(exc.errno) if exc.errno else str(exc)
            reason = f"fork/exec {path}: {text[:1].lower()}{text[1:]}"
    os.write(2, f"process failed to start with error: {reason}\n".encode("utf-8", "replace"))
    os._exit(START_FAILED)


def _close_descriptors(keep: int) -> None:
    """Close every descriptor but 0, 1, 2 and ``keep`` (close-on-exec)."""
    os.closerange(3, keep)
    try:
        _check(
            _libc.close_range(ctypes.c_uint(keep + 1), ctypes.c_uint(0xFFFFFFFF), ctypes.c_int(0)),
            "close_range",
        )
    except (OSError, AttributeError):
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _limit_capabilities(cap_last: int, keep: Sequence[int]) -> None:
    """Drop every capability outside ``keep`` from the bounding set, the ambient set, and
    the permitted, effective and inheritable sets."""
    for cap in range(cap_last + 1):
        if cap not in keep:
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
    with contextlib.suppress(OSError):
        _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl")
    mask = 0
    for cap in keep:
        mask |= 1 << cap
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    current = (ctypes.c_uint32 * 6)()
    _check(_libc.capget(header, current), "capget")
    low, high = current[1] & mask, current[4] & (mask >> 32)
    data = (ctypes.c_uint32 * 6)(low, low, 0, high, high, 0)
    _check(_libc.capset(header, data), "capset")


def _look_path(name: str, path_value: str) -> str | None:
    """Where ``name`` is executed from: itself when it holds a ``/``, else the first
    executable regular file named so in a ``PATH`` directory (empty entries mean ``.``)."""
    if "/" in name:
        return name
    if not name:
        return None
    for directory in path_value.split(":"):
        candidate = f"{directory or '.'}/{name}"
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if os.access(candidate, os.X_OK, effective_ids=True):
            return candidate
    return None


if __name__ == "__main__":
    main()
