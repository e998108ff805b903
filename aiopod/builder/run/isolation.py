"""Run one ``RUN`` step's command isolated in a container root file system.

:func:`run_isolated` starts the helper :mod:`aiopod.builder.run._runner` (``python -m
aiopod.builder.run._runner``), which runs the command with the image's root file system as ``/``
in new mount, PID, UTS and IPC namespaces (and, when aiopod does not run as root, a user
namespace mapping the caller to root).  The module documentation of
:mod:`aiopod.builder.run._runner` describes the set-up step by step; in short:

* ``/proc`` is a fresh procfs of the new PID namespace (partly read-only and masked as
  runc does), ``/dev`` a tmpfs holding bind mounts of the host's ``null``, ``zero``,
  ``full``, ``random``, ``urandom`` and ``tty``, and ``/etc/hosts``, ``/etc/hostname`` and
  ``/etc/resolv.conf`` are files made by aiopod (on a tmpfs of the namespace; the host's
  ``resolv.conf``, as buildah copies it) and bind-mounted over the image's.  A
  symlink of the image at any of these places is replaced inside the root, never followed
  (hostile-input.md B11).  All mounts live only in the private mount namespace.
* The root is entered with ``pivot_root`` and the host's file systems are detached.
* The command has only descriptors 0-2 (B7): stdin is ``/dev/null``, stdout and stderr are
  one pipe streamed to ``on_output`` as it arrives (two pipes when ``on_stderr`` is given,
  stderr's streamed to it).  Its capabilities are the container default set
  (``0x800405fb``, as buildah's), its user the resolved ``USER``.
* When the command exits, its PID namespace's init (the runner) exits and the kernel kills
  everything left in the namespace before :func:`run_isolated` returns (B8).
* ``USER`` is resolved here, before anything runs, from the image's ``/etc/passwd`` and
  ``/etc/group`` read through the in-root resolver (:mod:`aiopod.builder.run.users`); no name
  service is ever called, in this process or in the runner (B9, B10).

The environment is exactly ``env``, plus ``HOME`` from the user's passwd entry when
``env`` has none and ``PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin``
when ``env`` has none.  (buildah also adds ``HOSTNAME``; that is the builder's choice.)
The working directory is created inside the root when missing (mode 0755, root-owned).

The network namespace is the host's, as with buildah's default for ``RUN``.  ``/sys`` is not
mounted.  Rootless use (aiopod not running as root) maps only the caller to root, so only
``USER`` root (uid 0, gid 0) can run there and supplementary groups are not set.

The mount-point stubs the set-up leaves in the root file system (``/proc``, ``/dev``,
``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``, a missing working directory) are
the ones buildah's first ``RUN`` layer has; whether they go into a layer is the builder's
decision, not this module's.

``RUN --mount`` (:class:`RunMount`): the caller opens every source itself (an ``O_PATH``
descriptor of a directory or file it resolved where it wanted, a readable descriptor of
a secret) and the runner mounts it on its target, resolved inside the root as above
(symlinks of the image followed inside the root, never to the host).  Binds are
read-only, or read-write, or writable through an overlay whose upper layer lives in the
namespace (``discard_writes``: nothing reaches the source); a secret is a copy on a tmpfs
of the namespace; a tmpfs is new.  :attr:`RunResult.mount_points` lists the mount points
the runner had to create (buildah removes them after the step; so does the builder).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc

from aiopod.builder.run.users import ResolvedUser, resolve_user
from aiopod.errors import BuildError, UsageError, UserLookupError

__all__ = ("DEFAULT_PATH", "OUTPUT_TAIL_BYTES", "RunMount", "RunResult", "run_isolated")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` of a command whose environment has none (buildah's default)."""

OUTPUT_TAIL_BYTES = 4096
"""How much of the end of the output :attr:`RunResult.output_tail` keeps."""

_READ_CHUNK = 65536
# After the runner exits every process of the namespace is gone, so the output pipe has
# no writer left inside; this bounds the wait for end-of-file if one leaked outside.
_DRAIN_GRACE = 2.0
_REAP_TIMEOUT = 10.0
_MAX_RESOLV_CONF = 64 * 1024
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62})")
_RUNNER_MODULE = "aiopod.builder.run._runner"
# Tests set this false to exercise the chroot fallback of kernels older than 5.2.
_USE_PIVOT_ROOT = True
_FD_SIZE = array.array("i").itemsize


@dataclass(frozen=True)
class RunResult:
    """How a command run by :func:`run_isolated` ended."""

    exit_code: int
    """The command's exit status; ``128 + N`` when signal ``N`` killed it; ``1`` when the
    executable could not be started (buildah's chroot isolation does the same)."""
    output_tail: str
    """The last :data:`OUTPUT_TAIL_BYTES` of stdout and stderr together, decoded as UTF-8
    with replacement characters."""
    mount_points: tuple[str, ...] = ()
    """The mount points of ``mounts`` the runner created (empty directories or files, their
    parents excluded), as real paths relative to the root (``"mnt/data"``)."""


@dataclass(frozen=True)
class RunMount:
    """One mount of ``RUN --mount`` as :func:`run_isolated` makes it on ``target`` (an
    absolute, clean path, resolved inside the root; missing directories are created, mode
    0755, and a missing mount point is an empty directory, or an empty file for a file).

    ``kind``:

    * ``"bind"``: ``fd`` is an ``O_PATH`` descriptor of the source, a directory or a
      regular file.  ``readonly``, else writable; with ``discard_writes`` the command may
      write but the writes go to an overlay whose upper layer is a tmpfs of the namespace,
      so nothing reaches the source (``fd`` is then a directory, and ``child`` names the
      file in it to mount when a file is wanted).  Binds are ``nosuid`` and ``nodev``.
    * ``"tmpfs"``: a new tmpfs of ``size`` bytes (None: the kernel's default), mode
      ``mode`` (default 0o1777), ``readonly`` if asked.
    * ``"secret"``: ``fd`` is a readable descriptor of a regular file; its contents are
      copied to a file on a tmpfs of the namespace (mode ``mode``, default 0o400, owner
      ``uid``:``gid``) bound read-only, ``nosuid``, ``nodev``, ``noexec`` on ``target``.

    The descriptors stay the caller's: :func:`run_isolated` neither closes nor moves them.
    A bind's source is also opened again by its path in the runner's mount namespace (a
    descriptor of the caller's namespace cannot be bound there) and must be the same file;
    without root that is done as the calling user, so every directory above the source
    must be searchable by it.
    """

    kind: Literal["bind", "tmpfs", "secret"]
    target: str
    fd: int = -1
    readonly: bool = True
    discard_writes: bool = False
    child: str | None = None
    size: int | None = None
    mode: int | None = None
    uid: int = 0
    gid: int = 0


async def run_isolated(
    rootfs: Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: str = "/",
    user: str = "",
    on_output: Callable[[bytes], None] | None = None,
    on_stderr: Callable[[bytes], None] | None = None,
    hostname: str | None = None,
    scripts: Mapping[str, str] | None = None,
    mounts: Sequence[RunMount] = (),
    timeout: float | None = None,  # noqa: ASYNC109 - part of the API; applied with fail_after
) -> RunResult:
    """Run ``argv`` with ``rootfs`` as its root file system, isolated as the module says.

    ``argv[0]`` is looked up in the environment's ``PATH`` inside the root unless it holds
    a ``/``.  ``workdir`` is resolved inside the root (symlinks included) and created when
    missing.  ``user`` is a Dockerfile ``USER`` value (``name``, ``uid``, ``name:group``,
    ``uid:gid``; empty for root).  ``on_output`` receives the combined output in chunks of
    at most 64 KiB as it arrives; nothing else of the output is kept but the tail.  With
    ``on_stderr``, stderr is a pipe of its own streamed to it (as podman shows a RUN's
    stdout and stderr apart), and ``on_output`` receives stdout only; the tail holds both,
    in the order they were read.
    ``hostname`` defaults to 12 random hex digits, as buildah's container IDs.  ``scripts``
    (``{name: text}``) are provided as executable files ``/dev/pipes/<name>`` (BuildKit's
    place for a ``RUN <<EOF`` script that starts with ``#!``).  ``mounts`` are made in
    order after everything else (see :class:`RunMount`); a target that cannot be mounted
    on (a file where a directory is needed, a path under ``/proc``) fails the set-up.

    Returns a :class:`RunResult` whatever the command's exit status.  Raises
    :class:`~aiopod.errors.UserLookupError` when ``user`` names a user or group the image
    lacks, :class:`~aiopod.errors.AccountFileError` when the image's account files are
    refused, and :class:`BuildError` when the isolation cannot be set up (the message says
    which step failed: a working directory that is not a directory, say).
    :class:`~aiopod.errors.UsageError` reports malformed arguments.

    Cancellation: when the caller is cancelled, or ``timeout`` seconds pass (then
    :class:`TimeoutError` is raised), the namespace's init is sent SIGKILL, so the kernel
    kills every process of the command's tree (before init is known, the runner's whole
    process group is), and the call returns only once they are all gone.  If ``on_output``
    or ``on_stderr`` raises, the same happens and its exception propagates.
    """
    argv = list(argv)
    _check_arguments(argv, env, workdir)
    _check_mounts(mounts)
    name = _check_hostname(hostname)
    rootless = os.geteuid() != 0
    with anyio.fail_after(timeout):
        account = await _resolve(rootfs, user)
        if rootless and (account.uid, account.gid) != (0, 0):
            raise BuildError(
                f"USER {user!r} is uid {account.uid}, gid {account.gid}: without root, RUN "
                "maps only the caller (to root) and cannot switch to another user"
            )
        command_env = dict(env)
        command_env.setdefault("HOME", account.home)
        command_env.setdefault("PATH", DEFAULT_PATH)
        with anyio.CancelScope(shield=True):  # the descriptor must reach _supervise
            etc_files, root_fd = await anyio.to_thread.run_sync(_prepare, rootfs, name)
        try:
            mount_specs = await anyio.to_thread.run_sync(_mount_specs, mounts)
        except BaseException:
            os.close(root_fd)
            raise
        spec = {
            "argv": argv,
            "env": list(command_env.items()),
            "workdir": workdir,
            "uid": account.uid,
            "gid": account.gid,
            "groups": list(account.groups),
            "hostname": name,
            "etc_files": etc_files,
            "userns": rootless,
            "parent_pid": os.getpid(),
            "pivot_root": _USE_PIVOT_ROOT,
            "scripts": dict(scripts or {}),
            "mounts": mount_specs,
        }
        return await _supervise(
            root_fd,
            json.dumps(spec).encode(),
            on_output,
            on_stderr,
            extra_fds=tuple(m.fd for m in mounts if m.fd >= 0),
        )


# -- arguments and preparation --------------------------------------------------------------


def _check_arguments(argv: Sequence[str], env: Mapping[str, str], workdir: str) -> None:
    if not argv or not argv[0]:
        raise UsageError("RUN needs a command")
    for arg in argv:
        if "\0" in arg:
            raise UsageError(f"RUN argument {arg!r} contains a NUL character")
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise UsageError(f"environment variable name {key!r} is not valid")
        if "\0" in value:
            raise UsageError(f"environment variable {key} contains a NUL character")
    if "\0" in workdir:
        raise UsageError(f"working directory {workdir!r} contains a NUL character")


def _check_mounts(mounts: Sequence[RunMount]) -> None:
    targets: set[str] = set()
    for mount in mounts:
        target = mount.target
        if not target.startswith("/") or "\0" in target or os.path.normpath(target) != target:
            raise UsageError(f"mount target {target!r} is not a clean absolute path")
        if target == "/":
            raise UsageError("a mount target cannot be /")
        if target in targets:
            raise UsageError(f"{target}: duplicate mount destination")
        targets.add(target)
        if mount.kind not in ("bind", "tmpfs", "secret"):
            raise UsageError(f"mount type {mount.kind!r} is not known")
        if mount.kind != "tmpfs" and mount.fd < 0:
            raise UsageError(f"the {mount.kind} mount on {target} needs a descriptor")
        child = mount.child
        if child is not None and (
            not mount.discard_writes or "/" in child or child in ("", ".", "..")
        ):
            raise UsageError(f"the mount on {target} names a child {child!r} it cannot use")


def _mount_specs(mounts: Sequence[RunMount]) -> list[dict[str, Any]]:
    """The runner's description of ``mounts``: a bind's source also by its path, which the
    runner opens again in its own mount namespace (and checks to be the same file)."""
    specs: list[dict[str, Any]] = []
    for mount in mounts:
        spec: dict[str, Any] = {
            "kind": mount.kind,
            "target": mount.target,
            "fd": mount.fd,
            "readonly": mount.readonly,
            "overlay": mount.discard_writes,
            "child": mount.child,
            "size": mount.size,
            "mode": mount.mode,
            "uid": mount.uid,
            "gid": mount.gid,
        }
        if mount.kind == "bind":
            spec["path"] = os.readlink(f"/proc/self/fd/{mount.fd}")
        specs.append(spec)
    return specs


def _check_hostname(hostname: str | None) -> str:
    if hostname is None:
        return secrets.token_hex(6)
    if _HOSTNAME.fullmatch(hostname) is None:
        raise UsageError(f"host name {hostname!r} is not valid")
    return hostname


async def _resolve(rootfs: Path, user: str) -> ResolvedUser:
    try:
        return await anyio.to_thread.run_sync(resolve_user, rootfs, user)
    except UserLookupError as exc:
        raise UserLookupError(f"determining run {exc.which}: {exc}", which=exc.which) from None


def _prepare(rootfs: Path, hostname: str) -> tuple[dict[str, str], int]:
    """The contents of ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (the
    host's, as buildah copies it), and an ``O_PATH`` descriptor of the root file system."""
    try:
        with open("/etc/resolv.conf", "rb") as f:
            resolv = f.read(_MAX_RESOLV_CONF).decode("utf-8", "surrogateescape")
    except OSError:
        resolv = ""
    contents = {
        "hosts": (
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{hostname}\n"
        ),
        "hostname": f"{hostname}\n",
        "resolv.conf": resolv,
    }
    return contents, os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _runner_command(status_fd: int, root_fd: int) -> tuple[list[str], dict[str, str]]:
    """The runner's command line and environment: this interpreter, without user site
    packages, the working directory on ``sys.path`` or byte-code writing, in the C locale
    (so nothing reads message catalogues inside the root) and UTF-8 mode."""
    package_parent = str(Path(__file__).resolve().parent.parent.parent)
    command = [
        sys.executable,
        "-s",
        "-P",
        "-B",
        "-m",
        _RUNNER_MODULE,
        "--status-fd",
        str(status_fd),
        "--root-fd",
        str(root_fd),
    ]
    environment = {
        "PATH": DEFAULT_PATH,
        "LC_ALL": "C",
        "PYTHONUTF8": "1",
        "PYTHONPATH": package_parent,
    }
    return command, environment


# -- supervising the runner -----------------------------------------------------------------


class _Status:
    """The runner's reports: ``started`` (with a pidfd of the namespace's init) and
    ``error`` (a set-up step failed)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pidfd: int | None = None
        self.started = False
        self.mount_points: tuple[str, ...] = ()
        self.error: str | None = None
        self.closed = False

    def drain(self) -> bool:
        """Read every report queued, without blocking; true at end of file."""
        while not self.closed:
            try:
                # socket.recv_fds of 3.11 ignores its flags: recvmsg it is.
                data, ancillary, _flags, _address = self.sock.recvmsg(
                    65536,
                    socket.CMSG_SPACE(4 * _FD_SIZE),
                    socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT,
                )
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.closed = True
                break
            fds = array.array("i")
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % _FD_SIZE])
            for fd in fds:
                if self.pidfd is None:
                    self.pidfd = fd
                else:
                    os.close(fd)
            if not data and not fds:
                self.closed = True
                break
            self._handle(data)
        return True

    def _handle(self, data: bytes) -> None:
        try:
            message: Any = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("started"):
            self.started = True
        points = message.get("mount_points")
        if isinstance(points, list):
            self.mount_points = tuple(str(p) for p in points)
        error = message.get("error")
        if error is not None and self.error is None:
            self.error = str(error)

    async def follow(self) -> None:
        while not self.drain():
            await anyio.wait_readable(self.sock)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.sock.close()


class _Tail:
    def __init__(self, size: int = OUTPUT_TAIL_BYTES) -> None:
        self.size = size
        self.data = bytearray()
        self.cut = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk[-self.size :]
        if len(self.data) > self.size:
            del self.data[: len(self.data) - self.size]
            self.cut = True

    def text(self) -> str:
        data = bytes(self.data)
        if self.cut:  # do not start in the middle of a UTF-8 sequence
            start = 0
            while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
                start += 1
            data = data[start:]
        return data.decode("utf-8", "replace")


async def _supervise(
    root_fd: int,
    spec: bytes,
    on_output: Callable[[bytes], None] | None,
    on_stderr: Callable[[bytes], None] | None = None,
    *,
    extra_fds: Sequence[int] = (),
) -> RunResult:
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except BaseException:
        os.close(root_fd)
        raise
    status = _Status(ours)
    try:
        command, environment = _runner_command(theirs.fileno(), root_fd)
        with anyio.CancelScope(shield=True):  # never lose a started process to cancellation
            process = await anyio.open_process(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if on_stderr is None else subprocess.PIPE,
                cwd="/",
                env=environment,
                start_new_session=True,
                pass_fds=(theirs.fileno(), root_fd, *extra_fds),
            )
    except BaseException:
        status.close()
        raise
    finally:
        theirs.close()
        os.close(root_fd)

    tail = _Tail()
    failures: list[Exception] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_feed, process, spec)
            tg.start_soon(status.follow)
            pumps = [(process.stdout, on_output)]
            if on_stderr is not None:
                pumps.append((process.stderr, on_stderr))
            pumped = []
            for stream, callback in pumps:
                assert stream is not None
                done = anyio.Event()
                pumped.append(done)
                tg.start_soon(_pump, stream, callback, tail, done, failures, tg.cancel_scope)
            await process.wait()
            with anyio.move_on_after(_DRAIN_GRACE):
                for done in pumped:
                    await done.wait()
            tg.cancel_scope.cancel()
        if failures:
            raise failures[0]
    except BaseException:
        _kill(process, status)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await _reap(process, status)
    return _result(process, status, tail)


async def _feed(process: anyio.abc.Process, spec: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.send(spec)
        await process.stdin.aclose()


async def _pump(
    stream: anyio.abc.ByteReceiveStream,
    on_output: Callable[[bytes], None] | None,
    tail: _Tail,
    done: anyio.Event,
    failures: list[Exception],
    scope: anyio.CancelScope,
) -> None:
    try:
        while True:
            try:
                chunk = await stream.receive(_READ_CHUNK)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            tail.add(chunk)
            if on_output is not None:
                try:
                    on_output(chunk)
                except Exception as exc:
                    failures.append(exc)
                    scope.cancel()
                    return
    finally:
        done.set()


def _kill(process: anyio.abc.Process, status: _Status, *, group: bool = False) -> None:
    """SIGKILL the namespace's init: the kernel kills every process of the namespace, then
    the runner reaps init and exits.  Before init is known (or with ``group``), SIGKILL the
    runner's whole process group instead, init included."""
    status.drain()
    if status.pidfd is not None:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(status.pidfd, signal.SIGKILL)
    if (group or status.pidfd is None) and process.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)


async def _reap(process: anyio.abc.Process, status: _Status) -> None:
    """Wait for the runner, then for the namespace's init: when it has exited, every
    process of the namespace is gone (the kernel empties the namespace first)."""
    try:
        with anyio.move_on_after(_REAP_TIMEOUT) as waited:
            await process.wait()
        if waited.cancelled_caught:  # only if the runner hangs: kill its group as well
            _kill(process, status, group=True)
            await process.wait()
        await process.aclose()
        status.drain()
        if status.pidfd is not None:
            with anyio.move_on_after(_REAP_TIMEOUT):
                await anyio.wait_readable(status.pidfd)
    finally:
        status.close()


def _result(process: anyio.abc.Process, status: _Status, tail: _Tail) -> RunResult:
    code = process.returncode
    assert code is not None
    if status.error is not None:
        raise BuildError(f"RUN: {status.error}")
    if not status.started:
        raise BuildError(
            f"RUN: the isolation helper failed (exit status {code}): {tail.text().strip()}"
        )
    if code < 0:
        code = 128 - code
    return RunResult(exit_code=code, output_tail=tail.text(), mount_points=status.mount_points)
