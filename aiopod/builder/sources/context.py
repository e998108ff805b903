"""``COPY``/``ADD`` sources inside a build context: what they match, and reading them.

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

:class:`SourceReader` opens the files found for reading, inside their context, each
checked to be the file the walk saw.

What is done with the entries lives elsewhere: :mod:`aiopod.builder.sources.copy_plan`
(the destination rules and the layer's entries), :mod:`aiopod.builder.sources.content_digest`
(buildah's ``file:``/``dir:`` summary) and :mod:`aiopod.builder.layers.copy_layer` (the
layer).

Everything here is blocking; async callers run it in a worker thread.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiopod.builder.sources.ignore import (
    IgnoreRules,
    go_clean,
    go_pattern_regex,
    has_glob_meta,
)
from aiopod.errors import BuildError, TooManySymlinks
from aiopod.storage.compression import open_decompressed
from aiopod.storage.rootfs_path import (
    RootDir,
    lstat_at,
    open_in_root,
    open_parent_in_root,
    path_components,
    resolve_in_root,
)

__all__ = (
    "MAX_SOURCE_SYMLINKS",
    "Member",
    "SourceEntry",
    "SourceReader",
    "Xattrs",
    "resolve_sources",
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


# -- reading ---------------------------------------------------------------------------------


class SourceReader:
    """Opens the regular files :func:`resolve_sources` found, for reading, inside their
    context.

    :meth:`open` resolves the file's directory inside the context (its symlinks followed
    with the context as ``/``, as the walk did), opens the name itself without following
    it, and checks that it is still the regular file the walk saw (same device, inode and
    size): a source replaced or resized in between raises :class:`BuildError` rather than
    being read.  The last directory's descriptor is kept, so the files of one directory
    read in a row resolve it once; :meth:`close` closes it and the contexts' root
    descriptors.

    Blocking; one reader serves one thread at a time.
    """

    def __init__(self) -> None:
        self._roots: dict[Path, RootDir] = {}
        self._dir_key: tuple[Path, str] | None = None
        self._dir_fd = -1

    def open(self, context: Path, realpath: str, expected: os.stat_result) -> int:
        """A read descriptor of ``realpath`` (a path in ``context``, as
        :attr:`SourceEntry.realpath` and :attr:`Member.realpath` give it) that is still the
        file ``expected`` describes.  The caller closes it."""
        root = self._roots.get(context)
        if root is None:
            root = self._roots[context] = RootDir(context)
        head, _, name = realpath.rpartition("/")
        key = (context, head)
        if key != self._dir_key:
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
            self._dir_key = None
            self._dir_fd = open_parent_in_root(root, head)
            self._dir_key = key
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self._dir_fd)
        except OSError as exc:
            raise BuildError(f"reading {realpath!r} in the build context: {exc.strerror}") from exc
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_size != expected.st_size
            or (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino)
        ):
            os.close(fd)
            raise BuildError(f"{realpath!r} in the build context changed while being copied")
        return fd

    def close(self) -> None:
        """Close the cached descriptors.  Idempotent; the reader can be used again."""
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        self._dir_key = None
        for root in self._roots.values():
            root.close()
        self._roots.clear()
