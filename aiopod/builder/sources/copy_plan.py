"""Where the items of a ``COPY``/``ADD`` go: buildah's destination rules.

:func:`copy_plan` turns the destination argument of one instruction, the working
directory and what the destination is in the image (:func:`destination_hints
<aiopod.builder.sources.destination.destination_hints>`) into a :class:`CopyPlan`: the
directory that receives the items and, when the destination names a file, its new name.

Pure: no I/O, safe anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiopod.builder.sources.context import SourceEntry
from aiopod.builder.sources.destination import root_components
from aiopod.builder.sources.ignore import go_clean
from aiopod.errors import BuildError

__all__ = (
    "CopyPlan",
    "copy_plan",
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
