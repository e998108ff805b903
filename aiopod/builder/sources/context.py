"""``COPY``/``ADD`` sources inside a build context, their destination, and their digest.

:func:`resolve_sources` turns the source arguments of one instruction into
:class:`SourceEntry` items, as buildah 1.28 does (all checked against it in
``tests/builder/test_context.py``):

* A source is joined to the context and cleaned lexically; one that leaves the context
  (``../x``, ``d/../../x``, ``/../x``) is an error: "possible escaping context directory".
  An absolute source is relative to the context (``/etc/shadow`` is
  ``<context>/etc/shadow``).
* Sources are globs with Go's ``filepath.Match`` rules per component (``*``, ``?`` and
  ``[...]`` never cross ``/``; ``*`` matches dot files); matches are sorted; a glob that
  matches nothing, or a missing file, is an error ("no such file or directory").
* The context is the root of every lookup: symlinks met on the way, and a symlink named as
  a source (it is dereferenced, up to 16 times), resolve *inside* the context, an
  absolute target against the context root, ``..`` stopping at it.  ``leak -> /etc``
  makes ``leak/shadow`` mean ``<context>/etc/shadow``; nothing outside the context is
  ever opened (the in-root resolver of :mod:`aiopod.storage.rootfs_path`).
* A directory source stands for its contents, walked in sorted order; symlinks inside it
  stay symlinks (dangling ones too); sockets are skipped.
* Ignore rules (:mod:`aiopod.builder.sources.ignore`) drop matches and walked entries, by their
  path in the context (a dereferenced source by its target's path too); an excluded
  directory is still walked when an exception may re-include something inside.  A source
  whose every match is excluded is an error ("no items matching glob ... copied").

:func:`copy_plan` applies the destination rules, :func:`sources_digest` computes the
``file:<hex>``/``dir:<hex>``/``multi:<hex>`` summary buildah puts into the history and uses
as the layer cache key, and :func:`aiopod.builder.layers.writer.write_copy_layer` writes the
layer.

Everything here is blocking; async callers run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiopod.builder.layers.tar_header import (
    TYPE_BLOCK,
    TYPE_CHAR,
    TYPE_DIR,
    TYPE_FIFO,
    TYPE_LINK,
    TYPE_REG,
    TYPE_SYMLINK,
    go_tar_header,
)
from aiopod.builder.layers.writer import _ContextReader
from aiopod.builder.sources.account_names import AccountNames, lookup_account_names
from aiopod.builder.sources.digest_cache import DigestCache, active as active_digest_cache
from aiopod.builder.sources.ignore import (
    IgnoreRules,
    go_clean,
    go_pattern_regex,
    has_glob_meta,
)
from aiopod.errors import BuildError
from aiopod.storage.compression import open_decompressed
from aiopod.storage.rootfs_path import (
    RootDir,
    TooManySymlinks,
    lstat_at,
    open_in_root,
    open_parent_in_root,
    path_components,
    resolve_in_root,
)

__all__ = (
    "CopyPlan",
    "Member",
    "SourceEntry",
    "copy_plan",
    "destination_hints",
    "resolve_sources",
    "sources_digest",
)

#: buildah's copier follows at most this many symlinks when a source is one.
MAX_SOURCE_SYMLINKS = 16
_RELEVANT_XATTRS = ("security.capability", "security.ima")

Xattrs = tuple[tuple[str, bytes], ...]


def _xattrs_at(dir_fd: int, name: str) -> Xattrs:
    """The extended attributes buildah carries (``security.capability``, ``security.ima``,
    ``user.*``) of ``name`` in ``dir_fd``, never following it."""
    path = f"/proc/self/fd/{dir_fd}/{name}"
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for key in sorted(keys):
        if key in _RELEVANT_XATTRS or key.startswith("user."):
            try:
                out.append((key, os.getxattr(path, key, follow_symlinks=False)))
            except OSError:
                continue
    return tuple(out)


# -- entries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One entry found below a directory source.

    ``relname`` is its path below the source directory (``sub/x``), ``realpath`` its path
    in the context (for reading, and for the ignore rules), ``stat`` its ``lstat``,
    ``link_target`` a symlink's target.
    """

    relname: str
    realpath: str
    stat: os.stat_result
    link_target: str | None = None
    xattrs: Xattrs = ()


@dataclass(frozen=True)
class SourceEntry:
    """One item a ``COPY``/``ADD`` source matched, after dereferencing a symlink.

    ``source`` is the argument as written and ``index`` its position; ``relpath`` the
    match in the context (``.`` for the context itself) and ``name`` its base name (a
    file is copied under that name); ``realpath`` the dereferenced path in the context and
    ``stat`` its ``lstat``.  A directory's contents are ``members``, in walk order.
    """

    context: Path
    source: str
    index: int
    relpath: str
    name: str
    realpath: str
    stat: os.stat_result
    members: tuple[Member, ...] = ()
    xattrs: Xattrs = ()
    is_archive: bool = False

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.stat.st_mode)

    @property
    def is_regular(self) -> bool:
        return stat.S_ISREG(self.stat.st_mode)

    @property
    def kind(self) -> str:
        """``"dir"`` or ``"file"``: the content type of the history summary."""
        return "dir" if self.is_dir else "file"


def _escapes(context_abs: str, source: str) -> bool:
    joined = go_clean(context_abs + "/" + source)
    return not (joined == context_abs or joined.startswith(context_abs.rstrip("/") + "/"))


def _relative(context_abs: str, source: str) -> str:
    joined = go_clean(context_abs + "/" + source)
    if joined == context_abs:
        return "."
    return joined[len(context_abs.rstrip("/")) + 1 :]


def _sort_key(name: str) -> bytes:
    return os.fsencode(name)


def _list_dir(root: RootDir, parts: Sequence[str]) -> list[str]:
    """Names in the directory ``parts`` (followed inside the root); [] if it is none."""
    try:
        fd = open_parent_in_root(root, "/".join(parts))
    except (FileNotFoundError, NotADirectoryError, TooManySymlinks):
        return []
    try:
        return sorted(os.listdir(fd), key=_sort_key)
    finally:
        os.close(fd)


def _exists_lstat(root: RootDir, parts: Sequence[str]) -> bool:
    try:
        parent = root.open_dir(list(parts[:-1]))
    except (FileNotFoundError, NotADirectoryError, TooManySymlinks):
        return False
    try:
        return lstat_at(parent.fd, parts[-1]) is not None
    finally:
        os.close(parent.fd)


def _glob(root: RootDir, parts: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Go's ``filepath.Glob`` inside the root: paths as matched (not dereferenced)."""
    if not any(has_glob_meta(p) for p in parts):
        if not parts or _exists_lstat(root, parts):
            return [parts]
        return []
    head, pattern = parts[:-1], parts[-1]
    dirs = _glob(root, head) if any(has_glob_meta(p) for p in head) else [head]
    regex = go_pattern_regex(pattern)
    out: list[tuple[str, ...]] = []
    for directory in dirs:
        out.extend((*directory, n) for n in _list_dir(root, directory) if regex.match(n))
    return out


def _walk(root: RootDir, realpath: str, rules: IgnoreRules) -> list[Member]:
    """The contents of the directory ``realpath`` (a real path in the root): a preorder
    walk with names sorted byte-wise, ignore rules applied, sockets skipped."""
    members: list[Member] = []
    top = open_parent_in_root(root, realpath)
    prefix = "" if realpath in ("", ".") else realpath + "/"
    # Each frame: (dir fd, path below the source, path in the context, sorted names, next).
    stack: list[tuple[int, str, str, list[os.DirEntry[str]], int]] = []

    def push(fd: int, rel: str, real: str) -> None:
        with os.scandir(fd) as it:
            names = sorted(it, key=lambda e: _sort_key(e.name))
        stack.append((fd, rel, real, names, 0))

    try:
        push(top, "", prefix)
    except BaseException:
        os.close(top)
        raise
    try:
        while stack:
            fd, rel, real, names, i = stack[-1]
            if i >= len(names):
                os.close(fd)
                stack.pop()
                continue
            stack[-1] = (fd, rel, real, names, i + 1)
            entry = names[i]
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISSOCK(mode):
                continue
            child_rel, child_real = rel + name, real + name
            is_dir = stat.S_ISDIR(mode)
            copy = True
            if rules.patterns and rules.excluded(child_real):
                if not (is_dir and rules.may_contain_included(child_real)):
                    continue
                copy = False
            if copy:
                link = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(mode) else None
                members.append(Member(child_rel, child_real, st, link, _xattrs_at(fd, name)))
            if is_dir:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                child = os.open(name, flags, dir_fd=fd)
                try:
                    push(child, child_rel + "/", child_real + "/")
                except BaseException:
                    os.close(child)
                    raise
    finally:
        for frame in stack:
            os.close(frame[0])
    return members


def _looks_like_archive(root: RootDir, realpath: str) -> bool:
    """buildah's test for ``ADD``: the file, decompressed if it is, starts with a valid tar
    header (an archive of only zero blocks is no archive)."""
    try:
        fd = open_in_root(root, realpath)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        try:
            with open_decompressed(f, max_bytes=1 << 20) as data:
                head = data.read(tarfile.BLOCKSIZE)
        except Exception:
            return False
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def resolve_sources(
    context: Path,
    sources: Sequence[str],
    rules: IgnoreRules,
    *,
    check_archives: bool = False,
) -> list[SourceEntry]:
    """Resolve the local source arguments of one ``COPY``/``ADD`` inside ``context``.

    Returns one :class:`SourceEntry` per match that is not excluded, in argument order
    and, within an argument, in sorted match order.  With ``check_archives`` (``ADD``),
    regular files that are tar archives (plain, gzip, bzip2, xz, zstd) get
    ``is_archive``.  URLs are not sources here.  Raises :class:`BuildError` with buildah's
    wording for a source that escapes the context, matches nothing, cannot be read, or
    is entirely excluded.  Blocking: walks every directory source.
    """
    context = Path(context)
    context_abs = go_clean(os.path.abspath(context))
    entries: list[SourceEntry] = []
    where = f"checking on sources under {str(context_abs)!r}"
    with RootDir(context) as root:
        for index, source in enumerate(sources):
            if _escapes(context_abs, source):
                raise BuildError(
                    f"{where}: possible escaping context directory error: "
                    f"{source!r} is outside of the build context"
                )
            rel = _relative(context_abs, source)
            parts = tuple(path_components(rel))
            try:
                for p in parts:
                    go_pattern_regex(p)
            except ValueError:
                raise BuildError(f"{where}: {source!r}: syntax error in pattern") from None
            try:
                matches = _glob(root, parts)
            except TooManySymlinks as exc:
                raise BuildError(f"{where}: {source!r}: {exc.strerror}") from exc
            if not matches:
                raise BuildError(f"{where}: {'/' + '/'.join(parts)!r}: no such file or directory")
            filtered = 0
            before = len(entries)
            for match in matches:
                entry = _entry(root, context, source, index, match, rules, check_archives)
                if entry is None:
                    filtered += 1
                else:
                    entries.append(entry)
            if len(entries) == before:
                using = f" using {rules.source}" if rules.source is not None else ""
                raise BuildError(
                    f"no items matching glob {str(context_abs) + '/' + rel!r} copied "
                    f"({filtered} filtered out{using}): no such file or directory"
                )
    return entries


def _entry(
    root: RootDir,
    context: Path,
    source: str,
    index: int,
    match: tuple[str, ...],
    rules: IgnoreRules,
    check_archives: bool,
) -> SourceEntry | None:
    rel = "/".join(match) or "."
    shown = "/" + "/".join(match)
    try:
        real, st = resolve_in_root(root, match, max_final_hops=MAX_SOURCE_SYMLINKS)
    except FileNotFoundError:
        raise BuildError(f"reading {source!r}: {shown!r}: no such file or directory") from None
    except NotADirectoryError:
        raise BuildError(f"reading {source!r}: {shown!r}: not a directory") from None
    except TooManySymlinks as exc:
        raise BuildError(f"reading {source!r}: {shown!r}: {exc.strerror}") from exc
    realpath = "/".join(real) or "."
    is_dir = stat.S_ISDIR(st.st_mode)
    if (
        rel != "."
        and rules.excluded(rel)
        and not (is_dir and rules.may_contain_included(rel, top_level=True))
    ):
        return None
    if not is_dir and realpath != "." and rules.excluded(realpath):
        return None  # copier checks the dereferenced item again
    if stat.S_ISSOCK(st.st_mode):
        raise BuildError(f"reading {source!r}: {shown!r} is a socket")
    name = match[-1] if match else os.path.basename(str(context))
    members: tuple[Member, ...] = ()
    xattrs: Xattrs = ()
    if is_dir:
        members = tuple(_walk(root, realpath if real else "", rules))
    elif real:
        parent = root.open_dir(real[:-1])
        try:
            xattrs = _xattrs_at(parent.fd, real[-1])
        finally:
            os.close(parent.fd)
    archive = bool(
        check_archives and stat.S_ISREG(st.st_mode) and _looks_like_archive(root, realpath)
    )
    return SourceEntry(context, source, index, rel, name, realpath, st, members, xattrs, archive)


# -- destination -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyPlan:
    """Where a ``COPY``/``ADD`` puts its entries.

    ``dest`` is the absolute destination as buildah computes it (a trailing ``/`` kept);
    ``dest_dir`` the root-relative components of the directory that receives the items
    (``..`` can never climb above the root: ``/../../tmp/x`` is ``tmp/x``); ``rename`` the
    new name of the single file when the destination names a file; ``extract`` whether
    archives are to be unpacked (``ADD``).
    """

    dest: str
    dest_dir: tuple[str, ...]
    rename: str | None = None
    extract: bool = False


def _rootpath_components(path: str) -> tuple[str, ...]:
    """``path`` as root-relative components, ``..`` stopping at the root (Go's Clean)."""
    return tuple(path_components(go_clean("/" + path)))


def copy_plan(
    entries: Sequence[SourceEntry],
    dest: str,
    workdir: str,
    *,
    dest_is_dir_hint: bool,
    dest_is_file_hint: bool = False,
    extract: bool = False,
    nsources: int | None = None,
) -> CopyPlan:
    """buildah's destination rules for ``COPY``/``ADD`` of ``entries`` to ``dest``.

    * A relative destination is joined to ``workdir``; an empty one is ``workdir/``.
    * It must be a directory when several sources were given (``nsources``, by default
      the number of distinct arguments among ``entries``; buildah accepts the missing
      trailing ``/`` where Docker refuses), when it ends in ``/``, when it is the
      working directory, or when the single source is a directory (or an archive to
      extract).  The entries then go *into* it (created with its parents if missing).
    * Otherwise, when it is an existing directory (``dest_is_dir_hint``: it exists in the
      image as a directory, after the image's symlinks) the entries go into it; when the
      single source is a regular file, or the destination is an existing file
      (``dest_is_file_hint``), the destination names the file (``rename``).  A glob that
      matched several files with such a destination leaves only the last one, as in
      buildah.
    * An existing file where a directory is needed is an error.

    Pure: looks nothing up (:func:`destination_hints` gives the hints).
    """
    work = "/" + workdir.strip("/") if workdir.strip("/") else "/"
    if not dest.startswith("/"):
        joined = go_clean(work + "/" + dest)
        dest_abs = joined.rstrip("/") + "/" if (dest == "" or dest.endswith("/")) else joined
    else:
        dest_abs = dest
    count = nsources if nsources is not None else len({e.index for e in entries})
    must_be_dir = count > 1 or dest_abs.endswith("/") or go_clean(dest_abs) == go_clean(work)
    can_be_file = False
    if count == 1 and entries:
        first = entries[0]
        if first.is_dir or (first.is_archive and extract):
            must_be_dir = True
        can_be_file = first.is_regular
    parts = _rootpath_components(dest_abs)
    rename: str | None = None
    if dest_is_dir_hint or not parts:
        pass
    elif dest_is_file_hint:
        if must_be_dir:
            raise BuildError(f"destination {dest_abs} already exists but is not a directory")
        rename = parts[-1]
    elif not must_be_dir and can_be_file:
        rename = parts[-1]
    if rename is not None:
        return CopyPlan(dest_abs, parts[:-1], rename, extract)
    return CopyPlan(dest_abs, parts, None, extract)


def destination_hints(rootfs: Path, dest: str, workdir: str) -> tuple[bool, bool]:
    """``(is_dir, is_file)`` of a ``COPY`` destination in ``rootfs``, resolved inside it
    (the image's symlinks followed with ``rootfs`` as ``/``).  Blocking."""
    work = "/" + workdir.strip("/") if workdir.strip("/") else "/"
    dest_abs = dest if dest.startswith("/") else go_clean(work + "/" + dest)
    with RootDir(rootfs) as root:
        try:
            _, st = resolve_in_root(root, _rootpath_components(dest_abs), max_final_hops=40)
        except (FileNotFoundError, NotADirectoryError, TooManySymlinks):
            return False, False
    return stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)


# -- the content digest ---------------------------------------------------------------------------


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
        typeflag = TYPE_DIR
    elif stat.S_ISREG(mode):
        if hardlink_to is not None:
            typeflag, linkname = TYPE_LINK, hardlink_to
        else:
            typeflag, size = TYPE_REG, st.st_size
    elif stat.S_ISLNK(mode):
        typeflag, linkname = TYPE_SYMLINK, link or ""
    elif stat.S_ISFIFO(mode):
        typeflag = TYPE_FIFO
    else:
        typeflag = TYPE_BLOCK if stat.S_ISBLK(mode) else TYPE_CHAR
        devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    header = go_tar_header(
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


def _name_items(names: AccountNames) -> list[tuple[str, str]]:
    """*names* as the digest cache hashes them."""
    return [
        *((f"uid {uid}", name) for uid, name in sorted(names.users.items())),
        *((f"gid {gid}", name) for gid, name in sorted(names.groups.items())),
    ]


def _entry_digest(
    entry: SourceEntry,
    rename: str | None,
    opts: _DigestOptions,
    names: AccountNames,
    reader: _ContextReader,
) -> str:
    h = hashlib.sha256()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)

    def data(realpath: str, st: os.stat_result) -> None:
        size = st.st_size
        fd = reader.open(entry, realpath, st)
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
DIGEST_REVISION = 2


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
    reader = _ContextReader()
    parts: list[str] = []
    try:
        for entry in entries:
            names = _entry_names(entry)
            if cache is None or not cache.serves(entry.context):
                parts.append(f"{entry.kind}:{_entry_digest(entry, rename, opts, names, reader)}")
                continue
            key = cache.fingerprint(
                entry, options=options, names=_name_items(names), revision=DIGEST_REVISION
            )
            hexdigest = cache.lookup(key)
            if hexdigest is None:
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
