"""COPY and ADD steps of a build.

Sources come from the build context (with its ignore rules) or, with ``--from``, from an
earlier stage's or an image's root file system: the build's working container of it,
unpacked once per build and shared with ``RUN --mount from=``
(:meth:`~aiopod.builder.session.BuildSession.working_container`).  Sources are resolved
inside it, so its symlinks never reach the host (``hostile-input.md`` B3).

The layer is written straight from the sources (:func:`write_copy_layer`) and then
applied to the working container through the root-confined applier; ``ADD`` of a local
tar archive extracts it at the destination instead (applied through the same applier,
so a hostile archive cannot escape: B5), and its layer is the difference of the root
file system.  ``ADD <url>`` and heredoc documents (``COPY <<EOF /dest``) are first written
into the staging area (:mod:`aiopod.builder.sources.materialized`) and copied like context
files; a download is never extracted (B6).  History: ``/bin/sh -c #(nop) COPY
<file|dir|multi>:<digest> in <dest> ``, which the layer cache compares.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from aiopod.builder.dockerfile.parser import Heredoc, Instruction
from aiopod.builder.dockerfile.words import expand, expand_words
from aiopod.builder.layers.copy_layer import write_copy_layer
from aiopod.builder.layers.snapshot import write_diff_layer
from aiopod.builder.layers.tar_header import go_tar_header
from aiopod.builder.run.users import resolve_user
from aiopod.builder.session import BuildSession, StageRun
from aiopod.builder.sources.content_digest import sources_digest
from aiopod.builder.sources.context import SourceEntry, resolve_sources
from aiopod.builder.sources.copy_plan import CopyPlan, copy_plan
from aiopod.builder.sources.destination import destination_hints
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.builder.sources.materialized import (
    Downloaded,
    download,
    is_url,
    url_summary,
    write_heredoc,
)
from aiopod.errors import AiopodError, BuildError
from aiopod.storage.compression import open_decompressed
from aiopod.storage.layer_check import LayerLimits
from aiopod.storage.rootfs_path import RootDir, make_dirs, open_in_root

__all__ = ("copy_step",)


#: Flags Docker knows that this builder does not implement (buildah 1.28 has none of them).
_UNSUPPORTED_FLAGS = frozenset({"link", "exclude", "checksum", "keep-git-dir"})


def _chown(run: StageRun, value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        resolved = resolve_user(run.rootfs, value)
    except AiopodError:
        raise  # an unknown user, an unusable /etc/passwd: worded already
    except (OSError, ValueError) as exc:
        raise BuildError(f"--chown={value}: {exc}") from None
    return resolved.uid, resolved.gid


def _chmod(value: str | None) -> int | None:
    if not value:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise BuildError(f"--chmod={value}: not an octal mode") from None
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"--chmod={value}: not a file mode")
    return mode


async def copy_step(
    session: BuildSession,
    run: StageRun,
    instruction: Instruction,
    env: Mapping[str, str],
    created: str,
) -> None:
    """Run one COPY or ADD (see the module docstring)."""
    keyword = instruction.keyword
    await session.ready(run)
    words = (
        list(instruction.json_args)
        if instruction.json_args is not None
        else expand_words(instruction.args, env)
    )
    if len(words) < 2:
        raise BuildError(f"{keyword} requires at least two arguments")
    *sources, dest = words
    for flag, value in instruction.flags:  # never copy without what the step asks for
        if flag in _UNSUPPORTED_FLAGS and value != "false":
            raise BuildError(f"{keyword} --{flag} is not supported by this builder yet")
    from_flag = instruction.flag("from")
    chown = _chown(run, expand(instruction.flag("chown") or "", env))
    chmod = _chmod(expand(instruction.flag("chmod") or "", env))
    workdir = run.config.get("WorkingDir") or "/"
    if from_flag:
        source = expand(from_flag, env)
        context = await session.working_container(source, f"COPY --from={source}")
        strip = False
    else:
        context, strip = session.options.context, True
    extra = await _materialize(session, instruction, sources, env, from_flag is not None)
    local = [(i, s) for i, s in enumerate(sources) if i not in extra]

    def prepare() -> tuple[Any, Any, str]:
        entries: list[SourceEntry] = []
        if local:
            ignore = IgnoreRules.load(context) if strip else IgnoreRules()
            found = resolve_sources(
                context, [s for _, s in local], ignore, check_archives=keyword == "ADD"
            )
            entries = [dataclasses.replace(e, index=local[e.index][0]) for e in found]
        for index, (directory, name, _) in extra.items():
            (entry,) = resolve_sources(directory, [name], IgnoreRules())
            entries.append(dataclasses.replace(entry, source=sources[index], index=index))
        entries.sort(key=lambda e: e.index)  # stable: a glob's matches keep their order
        is_dir, is_file = destination_hints(run.rootfs, dest, workdir)
        extract = keyword == "ADD"
        plan = copy_plan(
            entries,
            dest,
            workdir,
            dest_is_dir_hint=is_dir,
            dest_is_file_hint=is_file,
            extract=extract,
            nsources=len(sources),
        )
        downloads = {i: d for i, (_, _, d) in extra.items() if d is not None}
        summary = _summary(
            entries, plan, chown, chmod, strip, extract, downloads, session.layer_limits
        )
        return entries, plan, summary

    entries, plan, summary = await anyio.to_thread.run_sync(prepare)
    # buildah records the destination as written (``.``, ``relative.txt``, ``$DIR/``).
    written_dest = words[-1] if instruction.json_args is not None else instruction.words()[-1]
    created_by = f"/bin/sh -c #(nop) {keyword} {summary} in {written_dest} "
    if await session.use_cache(run, created_by, adds_layer=True):
        return
    archives = [e for e in entries if e.is_archive] if keyword == "ADD" else []

    def write_copy(out: Any, chosen: Any = entries) -> Any:
        return write_copy_layer(
            chosen,
            plan,
            chown=chown,
            chmod=chmod,
            timestamp=session.options.timestamp,
            out=out,
            rootfs=run.rootfs,
            preserve_ownership=not strip,
            strip_setid=strip,
        )

    if not archives and not run.pending:
        await session.add_layer(run, created, created_by, write_copy, apply=True)
        return
    # Archives to extract, or directories WORKDIR made that belong in this layer: change
    # the root file system, and the layer is its difference.
    before = await session.snapshot(run)

    def change() -> None:
        for entry in entries:
            if entry.is_archive and keyword == "ADD":
                _extract(session, context, run.rootfs, plan, entry, chown)
            else:
                _copy_applied(session, run.rootfs, lambda out, e=entry: write_copy(out, [e]))

    await anyio.to_thread.run_sync(change)

    def write(out: Any) -> Any:
        return write_diff_layer(before, run.rootfs, out, timestamp=session.options.timestamp)

    await session.add_layer(run, created, created_by, write)


def _summary(
    entries: Sequence[SourceEntry],
    plan: CopyPlan,
    chown: tuple[int, int] | None,
    chmod: int | None,
    strip: bool,
    extract: bool,
    downloads: Mapping[int, Downloaded],
    limits: LayerLimits,
) -> str:
    """The content summary of the history (see :func:`sources_digest`); an archive ``ADD``
    extracts stands for its contents, as in buildah (a ``.tar`` and the same ``.tar.gz``
    give the same summary), and a download for its tar stream (:func:`url_summary`, with
    no ``file:`` prefix, as in buildah)."""

    def one(entry: SourceEntry) -> str:
        downloaded = downloads.get(entry.index)
        if downloaded is not None:
            name = plan.rename or downloaded.url_name
            return url_summary(downloaded, name=name, chown=chown, chmod=chmod)
        if extract and entry.is_archive:
            return f"file:{_archive_digest(entry, limits)}"
        return sources_digest(
            [entry],
            plan,
            chown=chown,
            chmod=chmod,
            preserve_ownership=not strip,
            strip_setid=strip,
        )

    if not downloads and not any(extract and e.is_archive for e in entries):
        return sources_digest(
            entries, plan, chown=chown, chmod=chmod, preserve_ownership=not strip, strip_setid=strip
        )
    parts = [one(e) for e in entries]
    if len(parts) == 1:
        return parts[0]
    return "multi:" + hashlib.sha256(",".join(parts).encode()).hexdigest()


async def _materialize(
    session: BuildSession,
    instruction: Instruction,
    sources: Sequence[str],
    env: Mapping[str, str],
    with_from: bool,
) -> dict[int, tuple[Path, str, Downloaded | None]]:
    """Write the sources that are not context files (``ADD`` URLs, heredoc documents) each
    into its own directory of the staging area: ``{index: (directory, name, download)}``.
    """
    keyword = instruction.keyword
    heredocs = list(instruction.heredocs)
    wanted: dict[int, Heredoc | str] = {}
    for index, source in enumerate(sources):
        if heredocs and source.startswith("<<"):
            marker = source[2:].removeprefix("-")
            if marker == heredocs[0].name:
                wanted[index] = heredocs.pop(0)
                continue
        if keyword == "ADD" and is_url(source):
            wanted[index] = source
    if not wanted:
        return {}
    if with_from:
        raise BuildError(f"{keyword} --from cannot be combined with a URL or heredoc source")
    base = session.new_staging_path("-sources")
    mtime = session.options.timestamp
    if mtime is None:
        mtime = int(datetime.now(UTC).timestamp())
    made: dict[int, tuple[Path, str, Downloaded | None]] = {}
    for index, what in wanted.items():
        directory = base / str(index)
        await anyio.to_thread.run_sync(functools.partial(directory.mkdir, 0o700, parents=True))
        if isinstance(what, str):
            downloaded = await download(what, directory)
            made[index] = (directory, downloaded.name, downloaded)
        else:
            write = functools.partial(write_heredoc, mtime=mtime, keyword=keyword)
            name = await anyio.to_thread.run_sync(write, what, directory, env)
            made[index] = (directory, name, None)
    return made


_TAR_TYPES = {
    tarfile.REGTYPE: b"0",
    tarfile.AREGTYPE: b"0",
    tarfile.LNKTYPE: b"1",
    tarfile.SYMTYPE: b"2",
    tarfile.CHRTYPE: b"3",
    tarfile.BLKTYPE: b"4",
    tarfile.DIRTYPE: b"5",
    tarfile.FIFOTYPE: b"6",
}


def _archive_digest(entry: Any, limits: LayerLimits) -> str:
    """buildah's digest of an archive it extracts: the archive's own entries (names,
    permission bits, ids and user names as stored, directories ending in ``/``) re-encoded
    by Go's tar writer with zeroed times, their data, and two zero blocks.  The archive
    is held to the layer *limits* as it is read (a bomb stops there)."""
    h = hashlib.sha256()
    with RootDir(entry.context) as root:
        fd = open_in_root(root, entry.realpath)
    with (
        os.fdopen(fd, "rb") as raw,
        open_decompressed(
            raw,
            max_bytes=limits.max_bytes,
            max_ratio=limits.max_compression_ratio,
            ratio_after=limits.ratio_after_bytes,
            what=f"archive {entry.source}",
        ) as data,
        tarfile.open(fileobj=data, mode="r|") as archive,
    ):
        for member in archive:
            kind = _TAR_TYPES.get(member.type)
            if kind is None:
                continue
            name = member.name + "/" if member.isdir() else member.name
            xattrs = {
                key.removeprefix("SCHILY.xattr."): value.encode("utf-8", "surrogateescape")
                for key, value in member.pax_headers.items()
                if key.startswith("SCHILY.xattr.")
            }
            size = member.size if member.isreg() else 0
            h.update(
                go_tar_header(
                    name,
                    typeflag=kind,
                    mode=member.mode,
                    uid=member.uid,
                    gid=member.gid,
                    size=size,
                    linkname=member.linkname,
                    uname=member.uname,
                    gname=member.gname,
                    devmajor=member.devmajor,
                    devminor=member.devminor,
                    xattrs=xattrs or None,
                )
            )
            if size:
                stream = archive.extractfile(member)
                assert stream is not None
                while chunk := stream.read(1 << 20):
                    h.update(chunk)
                h.update(bytes(-size % 512))
    h.update(bytes(1024))
    return h.hexdigest()


def _copy_applied(session: BuildSession, rootfs: Path, write: Any) -> None:
    """Write a copy layer into a temporary file and apply it to ``rootfs``."""
    with tempfile.TemporaryFile() as layer:
        write(layer)
        layer.seek(0)
        session.apply_layer(rootfs, layer, "copy layer")


def _extract(
    session: BuildSession,
    context: Path,
    rootfs: Path,
    plan: Any,
    entry: Any,
    owner: tuple[int, int] | None,
) -> None:
    """Unpack the archive ``entry`` (read inside ``context``) into the destination
    directory of ``plan`` (created as needed: mode 0755, owned by ``owner`` or root),
    through the root-confined applier."""
    with RootDir(context) as source_root:
        fd = open_in_root(source_root, entry.realpath)
    with os.fdopen(fd, "rb") as stream, RootDir(rootfs) as root:
        make_dirs(root, plan.dest_dir, mode=0o755, owner=owner or (0, 0))
        opened = root.open_dir(plan.dest_dir)
        try:
            session.apply_layer(f"/proc/self/fd/{opened.fd}", stream, f"archive {entry.source}")
        finally:
            os.close(opened.fd)
