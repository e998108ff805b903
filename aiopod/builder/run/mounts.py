"""``RUN --mount``: what a step mounts, where its sources come from, and what it leaves.

:func:`parse_run_mounts` reads the ``--mount`` flags of a ``RUN`` the way buildah 1.28 does
(observed with it; the differences are listed below):

* The flag's value is expanded with the ARGs and ENV in scope (``source=$DIR``), then cut
  at commas into ``key=value`` options; ``type`` defaults to ``bind``.  An unknown option
  is an error, so is a relative target (``invalid container path``) and two mounts on one
  target.
* ``type=bind``: ``source``/``src`` (default: the root of the source), ``target``/``dst``
  /``destination`` (required), ``from=<stage name|index|image>`` (default: the build
  context), ``ro``/``readonly`` (the default) or ``rw``/``readwrite``.  ``bind-propagation``,
  ``bind-nonrecursive``, ``consistency``, ``z``/``Z``/``relabel`` are accepted and change
  nothing (mounts are private, never recursive, and nothing is relabelled).
* ``type=cache``: ``target``, ``id`` (default: the target), ``sharing`` (``shared``,
  ``private``, ``locked``), ``mode`` (octal, default 0755), ``uid``, ``gid`` (default 0),
  ``ro``/``rw``, and ``from`` + ``source`` (the cache is then that directory of the stage
  or image, as in buildah, and not kept).
* ``type=tmpfs``: ``target``, ``size`` or ``tmpfs-size`` (bytes, or with a ``k``, ``m``,
  ``g`` suffix), ``tmpfs-mode`` (default 1777), ``ro``.
* ``type=secret``: ``id`` (required), ``target`` (default ``/run/secrets/<id>``),
  ``required``, ``mode`` (default 0400), ``uid``, ``gid``.
* ``type=ssh`` is refused (no SSH agent is forwarded); buildah 1.28 ignores it silently.

:func:`prepared_mounts` opens every source for :func:`aiopod.builder.run.isolation.run_isolated`
(:class:`~aiopod.builder.run.isolation.RunMount`), and the runner mounts them inside its private
mount namespace:

* A bind's ``source`` is resolved *inside* the context or the stage's root file system
  (:mod:`aiopod.storage.rootfs_path`): a ``..`` that climbs out of it is an error, and
  symlinks (a last one too) resolve inside it, an absolute target against its root, so a
  context symlink never leads to the host.  (buildah 1.28 follows a context symlink on
  the host and clamps ``..``; it also skips a missing source with a warning, which is an
  error here.)  ``.dockerignore`` does not apply, as in buildah.
* ``rw`` never writes into the source: the writes go to an overlay whose upper layer
  lives in the step's mount namespace and vanishes with it (buildah 1.28 writes into the
  build context).
* A cache is the directory ``<store>/aiopod/build-cache-mounts/<sha256 of id>/cache``,
  made with ``mode``, ``uid`` and ``gid`` the first time and kept across builds (``--no-
  cache`` does not clear it); it never enters a layer.  Sharing uses an ``flock`` on
  ``<...>/lock``, held for the step: ``shared`` takes it shared, ``locked`` exclusive
  (waiting for every other step using the cache, in any process), and ``private`` takes
  it exclusive when it is free and otherwise gives the step a fresh directory of its own,
  removed afterwards.
* A secret is the file given to ``aiopod build --secret id=ID,src=FILE``
  (:attr:`~aiopod.builder.options.BuildOptions.secrets`), copied by the runner to a tmpfs
  of the namespace; a secret that was not given is simply absent unless ``required``.

What the step leaves: the mount points the runner had to create are removed afterwards
(:func:`remove_mount_points`), as buildah removes them, so they are in no layer; the
directories made above them stay (as in buildah: ``RUN --mount=...,target=/a/b`` leaves
``/a``).  A target that existed keeps what it had (buildah 1.28 deletes it).  The history
and the layer cache key are buildah's: ``/bin/sh -c`` and the text after ``RUN`` as written,
flags included; what is mounted is not part of the key (a changed context or secret
reuses the cached step, as in buildah).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread

from aiopod.builder.dockerfile.parser import Instruction
from aiopod.builder.dockerfile.words import expand
from aiopod.builder.run.isolation import RunMount
from aiopod.builder.session import BuildSession
from aiopod.errors import BuildError, TooManySymlinks
from aiopod.storage.fsutil import make_private_dir, remove_tree
from aiopod.storage.rootfs_path import (
    RootDir,
    lstat_at,
    resolve_in_root,
    split_path,
)
from aiopod.storage.threads import run_to_completion

__all__ = (
    "CACHE_DIR_NAME",
    "BindMount",
    "CacheMount",
    "MountRequest",
    "SecretMount",
    "TmpfsMount",
    "cache_mount_dir",
    "cache_mounts_dir",
    "mount_stage_refs",
    "parse_mount",
    "parse_run_mounts",
    "prepared_mounts",
    "remove_mount_points",
)

#: The directory of the store's metadata (``<root>/aiopod``) that holds cache mounts.
CACHE_DIR_NAME = "build-cache-mounts"
#: How often a step waiting for a cache lock tries again (seconds).
LOCK_POLL_INTERVAL = 0.05

Sharing = Literal["shared", "private", "locked"]


@dataclass(frozen=True)
class BindMount:
    """``type=bind``: ``source`` of the build context or of ``from_`` on ``target``."""

    target: str
    source: str = "/"
    from_: str | None = None
    readonly: bool = True


@dataclass(frozen=True)
class CacheMount:
    """``type=cache``: a directory kept across builds under ``id``."""

    target: str
    id: str
    source: str = "/"
    from_: str | None = None
    readonly: bool = False
    sharing: Sharing = "shared"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class TmpfsMount:
    """``type=tmpfs``: an empty tmpfs, new for every step."""

    target: str
    size: int | None = None
    mode: int | None = None
    readonly: bool = False


@dataclass(frozen=True)
class SecretMount:
    """``type=secret``: the secret ``id`` as a read-only file."""

    id: str
    target: str
    required: bool = False
    mode: int = 0o400
    uid: int = 0
    gid: int = 0


MountRequest = BindMount | CacheMount | TmpfsMount | SecretMount

# -- parsing ----------------------------------------------------------------------------

_TARGET_KEYS = ("target", "dst", "destination")
_IGNORED = {
    "bind": ("bind-propagation", "bind-nonrecursive", "consistency", "z", "Z", "relabel"),
    "cache": ("z", "Z", "relabel"),
    "tmpfs": (),
    "secret": (),
}
_KNOWN = {
    "bind": ("source", "src", "from", "ro", "readonly", "rw", "readwrite", *_TARGET_KEYS),
    "cache": (
        *("id", "source", "src", "from", "ro", "readonly", "rw", "readwrite"),
        *("sharing", "mode", "uid", "gid", *_TARGET_KEYS),
    ),
    "tmpfs": ("size", "tmpfs-size", "tmpfs-mode", "ro", "readonly", *_TARGET_KEYS),
    "secret": ("id", "required", "mode", "uid", "gid", *_TARGET_KEYS),
}
_FLAGS = ("ro", "readonly", "rw", "readwrite", "required", *_IGNORED["bind"])
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", re.IGNORECASE)


class _Fail(Exception):
    pass


def _boolean(key: str, value: str | None) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise _Fail(f"{key}: expected true or false, not {value!r}")


def _number(key: str, value: str, base: int = 10) -> int:
    try:
        number = int(value, base)
    except ValueError:
        raise _Fail(f"{key}: {value!r} is not a valid number") from None
    if number < 0 or number > 0xFFFFFFFF:
        raise _Fail(f"{key}: {value!r} is out of range")
    return number


def _mode(key: str, value: str) -> int:
    mode = _number(key, value, 8)
    if mode > 0o7777:
        raise _Fail(f"{key}: {value!r} is not a file mode")
    return mode


def _size(key: str, value: str) -> int:
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise _Fail(f"{key}: {value!r} is not a size")
    factor = 1024 ** "kmgtp".find(match[2].lower()) * 1024 if match[2] else 1
    return int(float(match[1]) * factor)


def _clean_target(value: str) -> str:
    if not value.startswith("/"):
        raise _Fail(f'invalid container path "{value}", must be an absolute path')
    target = "/" + posixpath.normpath(value).lstrip("/")
    if target == "/":
        raise _Fail("cannot mount over /")
    if "\0" in target:
        raise _Fail("the target holds a NUL character")
    return target


def parse_mount(text: str) -> MountRequest:
    """One ``--mount`` value, already expanded (see the module docstring).

    :raises BuildError: the value is malformed or asks for what is not supported.
    """
    try:
        return _parse(text)
    except _Fail as exc:
        raise BuildError(f"RUN --mount={text}: {exc}") from None


def _parse(text: str) -> MountRequest:
    options: dict[str, str | None] = {}
    kind = "bind"
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if key == "type":
            kind = value
            continue
        if not sep and key not in _FLAGS:
            raise _Fail(f"{key}: option requires an argument")
        options[key] = value if sep else None
    if kind == "ssh":
        raise _Fail("type=ssh is not supported: aiopod forwards no SSH agent to RUN")
    if kind not in _KNOWN:
        raise _Fail(f'invalid mount type "{kind}"')
    for key in options:
        if key not in _KNOWN[kind] and key not in _IGNORED[kind]:
            raise _Fail(f"{key}: invalid mount option for type={kind}")

    def text_of(*keys: str) -> str | None:
        found = None
        for key in keys:
            if key in options:
                found = options[key]
        return found

    target_text = text_of(*_TARGET_KEYS)
    readonly: bool | None = None
    for key in ("ro", "readonly", "rw", "readwrite"):
        if key in options:
            flag = _boolean(key, options[key])
            readonly = flag if key in ("ro", "readonly") else not flag
    source = text_of("source", "src") or "/"
    from_ = text_of("from") or None
    uid = _number("uid", text_of("uid") or "0")
    gid = _number("gid", text_of("gid") or "0")
    mode_text = text_of("mode")

    if kind == "secret":
        secret_id = text_of("id")
        if not secret_id:
            raise _Fail("a secret needs id=ID (id=id[,target=path,required=bool,mode=octal,...])")
        target = _clean_target(target_text or f"/run/secrets/{secret_id}")
        required = _boolean("required", options["required"]) if "required" in options else False
        mode = _mode("mode", mode_text) if mode_text else 0o400
        return SecretMount(secret_id, target, required, mode, uid, gid)
    if not target_text:
        raise _Fail("the mount needs a target (target=/path)")
    target = _clean_target(target_text)
    if kind == "bind":
        return BindMount(target, source, from_, True if readonly is None else readonly)
    if kind == "cache":
        sharing = text_of("sharing") or "shared"
        if sharing not in ("shared", "private", "locked"):
            raise _Fail(f'unrecognized value "{sharing}" for field `sharing`')
        return CacheMount(
            target,
            text_of("id") or target,
            source,
            from_,
            False if readonly is None else readonly,
            sharing,  # type: ignore[arg-type]  # checked just above
            _mode("mode", mode_text) if mode_text else 0o755,
            uid,
            gid,
        )
    size_text = text_of("size", "tmpfs-size")
    tmpfs_mode = text_of("tmpfs-mode")
    return TmpfsMount(
        target,
        _size("size", size_text) if size_text else None,
        _mode("tmpfs-mode", tmpfs_mode) if tmpfs_mode else None,
        bool(readonly),
    )


def parse_run_mounts(
    instruction: Instruction, env: Mapping[str, str], *, escape: str = "\\"
) -> list[MountRequest]:
    """Every ``--mount`` of a ``RUN``, expanded with *env* (the ARGs and ENV in scope).

    :raises BuildError: a mount is malformed, or two share a target.
    """
    requests: list[MountRequest] = []
    targets: set[str] = set()
    for value in instruction.flag_values("mount"):
        request = parse_mount(expand(value, env, escape=escape))
        if request.target in targets:
            raise BuildError(f"RUN --mount={value}: {request.target}: duplicate mount destination")
        targets.add(request.target)
        requests.append(request)
    return requests


def mount_stage_refs(instruction: Instruction) -> list[str]:
    """The ``from=`` values of a ``RUN``'s mounts as written (not expanded): the stages
    the step needs built before it."""
    refs: list[str] = []
    if instruction.keyword != "RUN":
        return refs
    for value in instruction.flag_values("mount"):
        for item in value.split(","):
            key, sep, rest = item.partition("=")
            if key == "from" and sep and rest:
                refs.append(rest)
    return refs


# -- sources ----------------------------------------------------------------------------


def cache_mounts_dir(meta_dir: str | os.PathLike[str]) -> Path:
    """Where the store whose metadata directory is *meta_dir* keeps its caches."""
    return Path(meta_dir) / CACHE_DIR_NAME


def _cache_name(cache_id: str) -> str:
    return hashlib.sha256(cache_id.encode("utf-8", "surrogateescape")).hexdigest()


def cache_mount_dir(meta_dir: str | os.PathLike[str], cache_id: str) -> Path:
    """Where the store whose metadata directory is *meta_dir* keeps cache ``cache_id``
    (the directory holding ``cache/`` and ``lock``)."""
    return cache_mounts_dir(meta_dir) / _cache_name(cache_id)


def _open_source(
    root: Path, source: str, *, discard_writes: bool, what: str
) -> tuple[int, str | None]:
    """An ``O_PATH`` descriptor of ``source`` resolved inside ``root`` (a directory or a
    regular file), and ``None``; for a file whose writes are discarded, its directory's
    descriptor and its name instead (the runner overlays the directory).  Blocking."""
    try:
        parts = split_path(source)
    except ValueError:
        raise BuildError(f"source {source!r} is outside the {what}") from None
    try:
        with RootDir(root) as rootdir:
            real, st = resolve_in_root(rootdir, parts, max_final_hops=rootdir.max_symlink_hops)
            if stat.S_ISDIR(st.st_mode):
                return rootdir.open_dir(real).fd, None
            if not stat.S_ISREG(st.st_mode):
                raise BuildError(f"source {source!r} of the {what} is not a directory or file")
            parent = rootdir.open_dir(real[:-1])
            if discard_writes:
                return parent.fd, real[-1]
            try:
                fd = os.open(real[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent.fd)
            finally:
                os.close(parent.fd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise BuildError(f"source {source!r} of the {what} changed while it was opened")
            return fd, None
    except TooManySymlinks:
        raise BuildError(f"source {source!r} of the {what}: too many symbolic links") from None
    except (FileNotFoundError, NotADirectoryError):
        raise BuildError(f"source {source!r} of the {what}: no such file or directory") from None


async def _source_root(session: BuildSession, name: str | None) -> tuple[Path, str]:
    """The directory a mount's ``from`` names (the build context without one) and how
    messages call it.  A stage's or image's root file system is the build's shared working
    container of it (mounts never write into it)."""
    if name is None:
        return session.options.context, "build context"
    root = await session.working_container(name, f"from={name}")
    return root, f"mount source {name!r}"


def _open_cache(base: Path, request: CacheMount) -> int:
    """Make the cache (``cache/`` with the request's mode and owner, the first time) and
    open its lock file.  Blocking."""
    make_private_dir(base.parent)
    base.mkdir(mode=0o700, exist_ok=True)
    _make_owned_dir(base / "cache", request)
    return os.open(base / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _make_owned_dir(path: Path, request: CacheMount) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    os.chown(path, request.uid, request.gid)
    os.chmod(path, request.mode)


async def _lock(fd: int, *, exclusive: bool, wait: bool) -> bool:
    """``flock`` *fd*; without *wait* only if it is free.  Waiting polls, so it can be
    cancelled."""
    operation = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    while True:
        try:
            fcntl.flock(fd, operation)  # never blocks (LOCK_NB)
            return True
        except BlockingIOError:
            if not wait:
                return False
        await anyio.sleep(LOCK_POLL_INTERVAL)


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _open_secret(path: Path, secret_id: str) -> int:
    """A readable descriptor of the secret's file (a regular file).  Blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise BuildError(f"secret {secret_id!r}: cannot open {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BuildError(f"secret {secret_id!r}: {path} is not a regular file")
    return fd


@asynccontextmanager
async def prepared_mounts(
    session: BuildSession, requests: Sequence[MountRequest]
) -> AsyncIterator[list[RunMount]]:
    """Open what *requests* mount, for the duration of the block: the
    :class:`~aiopod.builder.run.isolation.RunMount` list to give ``run_isolated`` (shallow
    targets first, so that one inside another is mounted after it).

    Creates the working containers of ``from`` stages and images (removed with the
    build's), the cache directories, and takes the cache locks, waiting for ``locked``
    ones (cancellable).  On exit, however the block ends, the descriptors are closed, the
    locks released and a ``private`` cache's throwaway directory removed (shielded from
    cancellation).

    :raises BuildError: a source is missing, outside its root or not a file or directory;
    a required secret was not given; a ``from`` names no stage or image.
    """
    fds: list[int] = []
    throwaway: list[Path] = []
    mounts: list[RunMount] = []
    try:
        for request in sorted(requests, key=lambda r: r.target.count("/")):
            if isinstance(request, TmpfsMount):
                mounts.append(
                    RunMount(
                        "tmpfs",
                        request.target,
                        readonly=request.readonly,
                        size=request.size,
                        mode=request.mode,
                    )
                )
            elif isinstance(request, SecretMount):
                path = session.options.secrets.get(request.id)
                if path is None:
                    if request.required:
                        raise BuildError(
                            f"secret required but no secret with id {request.id} found"
                        )
                    continue
                fd = await anyio.to_thread.run_sync(_open_secret, Path(path), request.id)
                fds.append(fd)
                mounts.append(
                    RunMount(
                        "secret",
                        request.target,
                        fd,
                        mode=request.mode,
                        uid=request.uid,
                        gid=request.gid,
                    )
                )
            elif isinstance(request, BindMount) or request.from_ is not None:
                root, what = await _source_root(session, request.from_)
                discard = not request.readonly
                opener = functools.partial(
                    _open_source, root, request.source, discard_writes=discard, what=what
                )
                fd, child = await anyio.to_thread.run_sync(opener)
                fds.append(fd)
                mounts.append(
                    RunMount(
                        "bind",
                        request.target,
                        fd,
                        readonly=request.readonly,
                        discard_writes=discard,
                        child=child,
                    )
                )
            else:
                directory = await _cache(session, request, fds, throwaway)
                fd = await anyio.to_thread.run_sync(_open_dir, directory)
                fds.append(fd)
                mounts.append(RunMount("bind", request.target, fd, readonly=request.readonly))
        yield mounts
    finally:
        for fd in fds:
            os.close(fd)
        for path in throwaway:
            await run_to_completion(remove_tree, path)


async def _cache(
    session: BuildSession, request: CacheMount, fds: list[int], throwaway: list[Path]
) -> Path:
    """The directory of a cache mount, its lock taken as ``sharing`` says (the lock's
    descriptor is appended to *fds*, whose closing releases it); a ``private`` cache in
    use elsewhere gets a throwaway directory (appended to *throwaway*)."""
    base = session.cache_mounts_dir / _cache_name(request.id)
    lock = await anyio.to_thread.run_sync(_open_cache, base, request)
    fds.append(lock)
    if request.sharing == "private":
        if await _lock(lock, exclusive=True, wait=False):
            return base / "cache"
        scratch = session.new_staging_path("-cache-mount")

        def make_scratch() -> Path:
            scratch.mkdir(mode=0o700)
            throwaway.append(scratch)
            _make_owned_dir(scratch / "cache", request)
            return scratch / "cache"

        return await anyio.to_thread.run_sync(make_scratch)
    await _lock(lock, exclusive=request.sharing == "locked", wait=True)
    return base / "cache"


# -- after the step -----------------------------------------------------------------------


def remove_mount_points(rootfs: Path, paths: Sequence[str]) -> None:
    """Remove the mount points the runner made (root-relative real paths), deepest first:
    each if it is still an empty directory or an empty regular file.  Nothing is followed
    on the way (a path that now goes through a symlink is left alone).  Blocking."""
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
    for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):
        parts = [p for p in path.split("/") if p not in ("", ".", "..")]
        if not parts:
            continue
        fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in parts[:-1]:
                following = os.open(name, flags, dir_fd=fd)
                os.close(fd)
                fd = following
            name = parts[-1]
            st = lstat_at(fd, name)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                with contextlib.suppress(OSError):  # not empty: something belongs there
                    os.rmdir(name, dir_fd=fd)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(name, dir_fd=fd)
        except OSError:
            continue  # gone, or no longer a directory on the way
        finally:
            os.close(fd)
