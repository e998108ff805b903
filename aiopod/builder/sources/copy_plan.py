"""The plan of a ``COPY``/``ADD``: where its items go and what its layer holds.

Two steps, both buildah 1.28's rules:

* :func:`copy_plan` turns the destination argument of one instruction, the working
  directory and what the destination is in the image (:func:`destination_hints
  <aiopod.builder.sources.destination.destination_hints>`) into a :class:`CopyPlan`: the
  directory that receives the items and, when the destination names a file, its new name.
* :func:`plan_copy_layer` turns the resolved sources (:func:`resolve_sources
  <aiopod.builder.sources.context.resolve_sources>`), that plan and the destination's
  parents in the image (:func:`resolve_destination
  <aiopod.builder.sources.destination.resolve_destination>`) into the entries of the layer,
  in layer order: :class:`Directory`, :class:`RegularFile`, :class:`HardLink`,
  :class:`Symlink`, :class:`Fifo` and :class:`Device`, each with its name, mode, owner and
  mtime, a link's target, a file's :class:`FileData` (where its bytes are read from).
  :func:`aiopod.builder.layers.copy_layer.write_planned_layer` writes them.

Pure: both work on what was already looked up (the ``lstat`` results the walk kept) and do
no I/O; safe anywhere.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiopod.builder.layers.writer import round_mtime
from aiopod.builder.sources.context import SourceEntry, Xattrs
from aiopod.builder.sources.destination import ResolvedDestination, root_components
from aiopod.builder.sources.ignore import go_clean
from aiopod.errors import BuildError

__all__ = (
    "CopyPlan",
    "Device",
    "Directory",
    "Fifo",
    "FileData",
    "HardLink",
    "LayerEntry",
    "PlannedEntry",
    "RegularFile",
    "Symlink",
    "copy_plan",
    "plan_copy_layer",
)


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

    Pure: looks nothing up
    (:func:`~aiopod.builder.sources.destination.destination_hints` gives the hints).
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
    parts = root_components(dest_abs)
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


# -- the layer's entries ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileData:
    """Where a regular file's bytes come from: ``realpath`` in the build ``context``, which
    must still be the file ``stat`` describes (its ``lstat`` when the sources were
    resolved) when it is read (see :class:`~aiopod.builder.sources.context.SourceReader`)."""

    context: Path
    realpath: str
    stat: os.stat_result


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """What every entry of the layer has: its root-relative ``name`` (``usr/bin/x``), its
    permission bits ``perm`` (no file-type bits), owner, and mtime in whole seconds."""

    name: str
    perm: int
    uid: int
    gid: int
    mtime: int


@dataclass(frozen=True, slots=True)
class Directory(PlannedEntry):
    """A directory, with the extended attributes it carries, if any."""

    xattrs: Mapping[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class RegularFile(PlannedEntry):
    """A regular file of ``size`` bytes read from ``data``."""

    size: int
    data: FileData
    xattrs: Mapping[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class HardLink(PlannedEntry):
    """A hard link to ``target``, the name of a :class:`RegularFile` earlier in the layer."""

    target: str


@dataclass(frozen=True, slots=True)
class Symlink(PlannedEntry):
    """A symbolic link to ``target``, kept as it is (absolute, relative, dangling)."""

    target: str
    xattrs: Mapping[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class Fifo(PlannedEntry):
    """A named pipe."""


@dataclass(frozen=True, slots=True)
class Device(PlannedEntry):
    """A block (``block``) or character device node."""

    block: bool
    major: int
    minor: int


#: One entry of a planned layer.
LayerEntry = Directory | RegularFile | HardLink | Symlink | Fifo | Device


def _path_key(parts: Sequence[str]) -> bytes:
    """containers/storage sorts a diff's changes by their path string, byte-wise."""
    return os.fsencode("/" + "/".join(parts))


def _walk_key(parts: Sequence[str]) -> list[bytes]:
    """A sorted directory walk visits a directory's contents right after it."""
    return [os.fsencode(p) for p in parts]


def plan_copy_layer(
    entries: Sequence[SourceEntry],
    plan: CopyPlan,
    *,
    destination: ResolvedDestination | None = None,
    chown: tuple[int, int] | None,
    chmod: int | None,
    now: int,
    preserve_ownership: bool = False,
    strip_setid: bool = True,
    walk_order: bool = False,
) -> list[LayerEntry]:
    """The entries of the layer a ``COPY``/``ADD`` of ``entries`` (from
    :func:`~aiopod.builder.sources.context.resolve_sources`) makes, as planned by
    :func:`copy_plan`, in layer order.

    What buildah 1.28 puts into such a layer (observed):

    * The destination directory and its parents, as directories.  Ones that do not exist
      yet are mode 0755, owned by ``chown`` (else 0:0), with mtime ``now``.
      ``destination`` (:func:`~aiopod.builder.sources.destination.resolve_destination` in
      the stage's root file system) gives the real destination, through the image's own
      symlinks (``/etc/link -> /tmp`` puts the files under ``tmp/``), and the existing
      parents, repeated with their current mode, owner and mtime (the directory that
      receives new entries gets mtime ``now``).  Without it every parent of
      ``plan.dest_dir`` is a new directory, which replaces whatever the image has there
      when the layer is applied (a symlink, a 1777 ``/tmp``): pass it.
    * A file source becomes one entry (named after the plan's rename, or its own base
      name, the link's name for a dereferenced symlink); a directory source its contents
      (not the directory itself).  Directories that an ignore exception made the walk
      enter are not copied; they appear as new directories (0755) only as parents.
    * Ownership 0:0, or ``chown``, or with ``preserve_ownership`` (``COPY --from``) the
      source's own ids.  ``chmod`` replaces the mode of files and directories (symlinks
      stay 0777).  With ``strip_setid`` (the default for the build context) setuid and
      setgid bits are dropped; the sticky bit stays.  Sockets are left out.
    * Mtimes are the source's rounded to the nearest second (Go's ``Round``).
    * Files hard linked to each other inside one directory source stay hard links (the
      first in layer order holds the data); separate sources make separate files.
    * Entries are sorted by path, as containers/storage writes a diff over a parent layer;
      ``walk_order`` puts them in the order of a sorted directory walk instead, as the
      first layer of a ``FROM scratch`` image is written.

    ``ADD`` archive extraction is not planned here (archives in a ``plan.extract`` copy
    raise :class:`BuildError`): extract those with
    :func:`aiopod.storage.applier.apply_layer`.  Pure: uses the ``lstat`` results,
    symlink targets and xattrs the walk recorded, reads nothing.
    """
    if destination is None:
        destination = ResolvedDestination(plan.dest_dir)
    dest_dir = destination.path
    new_ids = chown if chown is not None else (0, 0)
    planned: dict[tuple[str, ...], LayerEntry] = {}
    # Regular files with other links: (source index, (device, inode)) by path.
    inodes: dict[tuple[str, ...], tuple[int, tuple[int, int]]] = {}

    def new_dir(parts: tuple[str, ...]) -> Directory:
        return Directory("/".join(parts), 0o755, *new_ids, now)

    # The destination and its parents: existing ones as they are, new ones made.
    existing = destination.existing
    for depth in range(1, len(dest_dir) + 1):
        parts = dest_dir[:depth]
        if depth > len(existing):
            planned[parts] = new_dir(parts)
            continue
        found = existing[depth - 1]
        mtime = now if depth == len(existing) else found.mtime  # it gets new entries
        planned[parts] = Directory("/".join(parts), found.perm, found.uid, found.gid, mtime)

    def ids(st: os.stat_result) -> tuple[int, int]:
        if chown is not None:
            return chown
        if preserve_ownership:
            return st.st_uid, st.st_gid
        return 0, 0

    def perm_of(st: os.stat_result) -> int:
        perm = stat.S_IMODE(st.st_mode)
        if strip_setid:
            perm &= ~(stat.S_ISUID | stat.S_ISGID)
        if chmod is not None:
            perm = chmod & 0o7777
        return perm

    def add(
        parts: tuple[str, ...],
        st: os.stat_result,
        link: str | None,
        group: int,
        context: Path,
        realpath: str,
        xattrs: Xattrs,
    ) -> None:
        mode = st.st_mode
        name = "/".join(parts)
        uid, gid = ids(st)
        mtime = round_mtime(st.st_mtime_ns)
        carried = dict(xattrs) or None
        entry: LayerEntry
        if stat.S_ISDIR(mode):
            entry = Directory(name, perm_of(st), uid, gid, mtime, carried)
        elif stat.S_ISREG(mode):
            data = FileData(context, realpath, st)
            entry = RegularFile(name, perm_of(st), uid, gid, mtime, st.st_size, data, carried)
        elif stat.S_ISLNK(mode):
            entry = Symlink(name, 0o777, uid, gid, mtime, link or "", carried)
        elif stat.S_ISFIFO(mode):
            entry = Fifo(name, perm_of(st), uid, gid, mtime)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            entry = Device(name, perm_of(st), uid, gid, mtime, stat.S_ISBLK(mode), major, minor)
        else:
            return  # sockets are skipped, as buildah does
        planned[parts] = entry
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            inodes[parts] = (group, (st.st_dev, st.st_ino))
        else:
            inodes.pop(parts, None)

    for group, source in enumerate(entries):
        if plan.extract and source.is_archive:
            raise BuildError(
                f"{source.source!r}: extracting archives is not done by write_copy_layer"
            )
        if source.is_dir:
            for member in source.members:
                parts = (*dest_dir, *member.relname.split("/"))
                add(
                    parts,
                    member.stat,
                    member.link_target,
                    group,
                    source.context,
                    member.realpath,
                    member.xattrs,
                )
        else:
            name = plan.rename if plan.rename is not None else source.name
            add(
                (*dest_dir, name),
                source.stat,
                None,
                group,
                source.context,
                source.realpath,
                source.xattrs,
            )

    # Parents that no entry provides: directories the walk entered but did not copy.
    for parts in list(planned):
        for depth in range(len(parts) - 1, 0, -1):
            parent = parts[:depth]
            if parent in planned:
                break
            planned[parent] = new_dir(parent)

    order = sorted(planned, key=_walk_key if walk_order else _path_key)
    first_link: dict[tuple[int, tuple[int, int]], str] = {}
    layer: list[LayerEntry] = []
    for parts in order:
        entry = planned[parts]
        key = inodes.get(parts)
        if key is not None:
            target = first_link.get(key)
            if target is None:
                first_link[key] = entry.name
            else:
                entry = HardLink(entry.name, entry.perm, entry.uid, entry.gid, entry.mtime, target)
        layer.append(entry)
    return layer
