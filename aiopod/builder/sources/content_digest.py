"""buildah's content summary of ``COPY``/``ADD`` sources (``file:<hex>``, ``dir:<hex>``).

:func:`sources_digest` computes the summary buildah 1.28 puts into the history (``COPY
<summary> in <dest>``) and uses as the layer cache key: the sha256 of the tar stream its
copier produces for each source entry (headers from :mod:`aiopod.builder.layers.tar_header`,
owner names from :mod:`aiopod.builder.sources.account_names`), served from and recorded in
the :mod:`aiopod.builder.sources.digest_cache` when one is active.

Blocking: reads every source file once (through
:class:`~aiopod.builder.sources.context.SourceReader`, inside its context), may start the
owner-name helper process, and reads and writes the cache file; async callers run it in
a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiopod.builder.layers import tar_header
from aiopod.builder.sources.account_names import AccountNames, lookup_account_names, name_sources
from aiopod.builder.sources.context import SourceEntry, SourceReader, Xattrs
from aiopod.builder.sources.copy_plan import CopyPlan
from aiopod.builder.sources.digest_cache import DigestCache, active as active_digest_cache
from aiopod.errors import BuildError

__all__ = (
    "DIGEST_REVISION",
    "sources_digest",
)


@dataclass
class _DigestOptions:
    chown: tuple[int, int] | None
    chmod: int | None
    preserve_ownership: bool
    strip_setid: bool


def _stream_header(
    name: str,
    st: os.stat_result,
    link: str | None,
    xattrs: Xattrs,
    names: AccountNames,
    opts: _DigestOptions,
    hardlink_to: str | None = None,
) -> tuple[bytes, int]:
    """The header copier ``Get`` writes for one item, re-encoded with zeroed times as
    buildah's digester does; returns it and the data size that follows."""
    mode = st.st_mode
    perm = stat.S_IMODE(mode)
    if opts.strip_setid:
        perm &= ~(stat.S_ISUID | stat.S_ISGID)
    is_dir = stat.S_ISDIR(mode)
    if opts.chmod is not None:
        perm = opts.chmod
    if opts.chown is not None:
        uid, gid = opts.chown
    elif opts.preserve_ownership:
        uid, gid = st.st_uid, st.st_gid
    else:
        uid, gid = 0, 0
    size = 0
    linkname = ""
    devmajor = devminor = 0
    if is_dir:
        typeflag = tar_header.TYPE_DIR
    elif stat.S_ISREG(mode):
        if hardlink_to is not None:
            typeflag, linkname = tar_header.TYPE_LINK, hardlink_to
        else:
            typeflag, size = tar_header.TYPE_REG, st.st_size
    elif stat.S_ISLNK(mode):
        typeflag, linkname = tar_header.TYPE_SYMLINK, link or ""
    elif stat.S_ISFIFO(mode):
        typeflag = tar_header.TYPE_FIFO
    else:
        typeflag = tar_header.TYPE_BLOCK if stat.S_ISBLK(mode) else tar_header.TYPE_CHAR
        devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    header = tar_header.go_tar_header(
        name,
        typeflag=typeflag,
        mode=perm,
        uid=uid,
        gid=gid,
        size=size,
        mtime=0,
        linkname=linkname,
        uname=names.user(st.st_uid),
        gname=names.group(st.st_gid),
        devmajor=devmajor,
        devminor=devminor,
        xattrs=dict(xattrs) or None,
    )
    return header, size


def _entry_stats(entry: SourceEntry) -> list[os.stat_result]:
    return [member.stat for member in entry.members] if entry.is_dir else [entry.stat]


def _entry_names(entry: SourceEntry) -> AccountNames:
    """The names of the owners of *entry*'s files, as buildah's copier gives them."""
    stats = _entry_stats(entry)
    return lookup_account_names(
        entry.context, (st.st_uid for st in stats), (st.st_gid for st in stats)
    )


def _entry_digest(
    entry: SourceEntry,
    rename: str | None,
    opts: _DigestOptions,
    names: AccountNames,
    reader: SourceReader,
) -> str:
    h = hashlib.sha256()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)

    def data(realpath: str, st: os.stat_result) -> None:
        size = st.st_size
        fd = reader.open(entry.context, realpath, st)
        try:
            left = size
            while left:
                got = os.readv(fd, [view[: min(len(view), left)]])
                if not got:
                    raise BuildError(f"{realpath!r} in the build context shrank while being read")
                h.update(view[:got])
                left -= got
        finally:
            os.close(fd)
        if size % 512:
            h.update(bytes(512 - size % 512))

    if entry.is_dir:
        seen: dict[tuple[int, int], str] = {}
        for member in entry.members:
            st = member.stat
            link_to = None
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                link_to = seen.get(key)
                if link_to is None:
                    seen[key] = member.relname
            header, size = _stream_header(
                member.relname, st, member.link_target, member.xattrs, names, opts, link_to
            )
            h.update(header)
            if size:
                data(member.realpath, st)
    else:
        name = rename if rename is not None else entry.name
        header, size = _stream_header(name, entry.stat, None, entry.xattrs, names, opts)
        h.update(header)
        if size:
            data(entry.realpath, entry.stat)
    h.update(bytes(1024))
    return h.hexdigest()


#: The revision of the digest below: bump it whenever the same sources would get another
#: digest, so that digests cached by an older aiopod (:mod:`aiopod.builder.sources.digest_cache`)
#: are not served.
DIGEST_REVISION = 3


def sources_digest(
    entries: Sequence[SourceEntry],
    plan: CopyPlan | None = None,
    *,
    chown: tuple[int, int] | None = None,
    chmod: int | None = None,
    preserve_ownership: bool = False,
    strip_setid: bool = True,
    cache: DigestCache | None = None,
) -> str:
    """buildah's content summary of a ``COPY``/``ADD``: ``file:<hex>`` or ``dir:<hex>`` for
    one item, ``multi:<hex>`` for several (the sha256 of ``"file:<hex>,dir:<hex>,..."``),
    ``""`` for none.  History records ``COPY <summary> in <dest>``; the layer cache uses it.

    Each item's hex is the sha256 of the tar stream buildah's copier produces for it,
    re-encoded by Go's ``archive/tar`` with mtime, atime and ctime zeroed: names relative
    to a directory source (no trailing ``/``) or the file's (renamed) base name, permission
    bits without file-type bits (setuid/setgid stripped unless ``strip_setid`` is false;
    ``chmod`` replaces them, symlinks included), ids 0:0 or ``chown`` (or the file's with
    ``preserve_ownership``), the user and group names of the file's own ids as buildah's
    copier finds them in its ``chroot`` (:mod:`aiopod.builder.sources.account_names`: the root's
    ``etc/passwd`` and ``etc/group`` and the host's other name services), hard links
    inside a directory as links, the relevant xattrs as PAX records, the data, and the two
    zero blocks.  This reproduces buildah 1.28's digests bit for bit (tests compare them).
    A ``touch`` keeps the digest; a ``chmod`` or content change alters it.

    Each entry's hex comes from *cache* (by default the active
    :class:`~aiopod.builder.sources.digest_cache.DigestCache`, if any) when its files' ``lstat``
    fields are those it was recorded with, and is recorded there otherwise.

    Blocking: reads every source file once (none for an entry the cache holds), and the
    cache file.
    """
    opts = _DigestOptions(chown, chmod, preserve_ownership, strip_setid)
    rename = plan.rename if plan is not None else None
    cache = cache if cache is not None else active_digest_cache()
    options = (chown, chmod, preserve_ownership, strip_setid, rename)
    reader = SourceReader()
    parts: list[str] = []
    sources: dict[Path, list[tuple[str, str]]] = {}
    try:
        for entry in entries:
            if cache is None or not cache.serves(entry.context):
                names = _entry_names(entry)
                parts.append(f"{entry.kind}:{_entry_digest(entry, rename, opts, names, reader)}")
                continue
            if entry.context not in sources:
                sources[entry.context] = [("names", repr(name_sources(entry.context)))]
            key = cache.fingerprint(
                entry, options=options, names=sources[entry.context], revision=DIGEST_REVISION
            )
            hexdigest = cache.lookup(key)
            if hexdigest is None:
                names = _entry_names(entry)
                hexdigest = _entry_digest(entry, rename, opts, names, reader)
                cache.record(key, hexdigest)
            parts.append(f"{entry.kind}:{hexdigest}")
    finally:
        reader.close()
        if cache is not None:
            cache.flush()
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return "multi:" + hashlib.sha256(",".join(parts).encode()).hexdigest()
