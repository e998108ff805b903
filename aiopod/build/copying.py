"""COPY and ADD steps of a build.

Sources come from the build context (with its ignore rules) or, with ``--from``, from an
earlier stage's or an image's root file system (unpacked into a temporary working
container; sources are resolved inside it, so its symlinks never reach the host: B3).
The layer is written straight from the sources (:func:`write_copy_layer`) and then
applied to the working container through the root-confined applier; ``ADD`` of a local
tar archive extracts it at the destination instead (applied through the same applier,
so a hostile archive cannot escape: B5), and its layer is the difference of the root
file system.  History: ``/bin/sh -c #(nop) COPY <file|dir|multi>:<digest> in <dest> ``,
which the layer cache compares.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aiopod.build.context import copy_plan, destination_hints, resolve_sources, sources_digest
from aiopod.build.ignore import IgnoreRules
from aiopod.build.layer_writer import write_copy_layer
from aiopod.build.parser import Instruction
from aiopod.build.snapshot import Snapshot, write_diff_layer
from aiopod.build.users import resolve_user
from aiopod.build.words import expand, expand_words
from aiopod.containers import create_container
from aiopod.errors import BuildError, ImageNotKnown
from aiopod.storage.applier import apply_layer
from aiopod.storage.lookup import lookup_image
from aiopod.storage.rootfs_path import RootDir

if TYPE_CHECKING:
    from aiopod.build.executor import _Build, _StageRun

__all__ = ("copy_step",)


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _chown(run: _StageRun, value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        resolved = resolve_user(run.rootfs, value)
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


async def _source_root(build: _Build, run: _StageRun, source: str) -> tuple[Path, bool]:
    """The directory ``COPY --from=<source>`` reads from, and whether it is a context."""
    dockerfile_stage = build.stage_by_ref(source)
    if dockerfile_stage is not None:
        image = build.results.get(dockerfile_stage.index)
        if image is None:
            raise BuildError(f"COPY --from={source}: stage {source!r} is not built before this one")
        reference = image.id
    else:
        state = await build.store.snapshot()
        try:
            record, _ = lookup_image(state, source)
        except ImageNotKnown:
            raise BuildError(f"COPY --from={source}: no stage or image of that name") from None
        reference = record.id
    container, events = await create_container(build.store, reference, external=True)
    build.containers.append(container.id)
    build.events.extend(events)
    return build.store.container_dir(container.id) / "rootfs", False


async def copy_step(
    build: _Build, run: _StageRun, instruction: Instruction, env: Mapping[str, str], created: str
) -> None:
    """Run one COPY or ADD (see the module docstring)."""
    keyword = instruction.keyword
    if instruction.heredocs:
        raise BuildError(f"{keyword} with a heredoc is not supported by this builder yet")
    words = (
        list(instruction.json_args)
        if instruction.json_args is not None
        else expand_words(instruction.args, env)
    )
    if len(words) < 2:
        raise BuildError(f"{keyword} requires at least two arguments")
    *sources, dest = words
    if keyword == "ADD" and any(_is_url(s) for s in sources):
        raise BuildError(f"ADD {' '.join(sources)}: remote sources are not supported yet")
    from_flag = instruction.flag("from")
    chown = _chown(run, expand(instruction.flag("chown") or "", env))
    chmod = _chmod(expand(instruction.flag("chmod") or "", env))
    workdir = run.config.get("WorkingDir") or "/"
    if from_flag:
        context, strip = (await _source_root(build, run, expand(from_flag, env)))[0], False
    else:
        context, strip = build.options.context, True

    def prepare() -> tuple[Any, Any, str]:
        ignore = IgnoreRules.load(context) if strip else IgnoreRules()
        entries = resolve_sources(context, sources, ignore, check_archives=keyword == "ADD")
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
        summary = sources_digest(entries, plan, chown=chown, chmod=chmod, strip_setid=strip)
        return entries, plan, summary

    entries, plan, summary = await anyio.to_thread.run_sync(prepare)
    created_by = f"/bin/sh -c #(nop) {keyword} {summary} in {plan.dest} "
    if await build.use_cache(run, created_by, adds_layer=True):
        return
    archives = [e for e in entries if getattr(e, "is_archive", False)] if keyword == "ADD" else []
    if archives:
        await _add_archives(build, run, entries, plan, created, created_by)
        return

    def write(out: Any) -> Any:
        return write_copy_layer(
            entries,
            plan,
            chown=chown,
            chmod=chmod,
            timestamp=build.options.timestamp,
            out=out,
            rootfs=run.rootfs,
            preserve_ownership=not strip,
            strip_setid=strip,
        )

    blob = await build.add_layer(run, created, created_by, write)

    def apply() -> None:
        with blob.path.open("rb") as stream:
            apply_layer(run.rootfs, stream)

    await anyio.to_thread.run_sync(apply)
    run.snapshot = None


async def _add_archives(
    build: _Build, run: _StageRun, entries: Any, plan: Any, created: str, created_by: str
) -> None:
    """ADD with local archives: extract each at the destination, the rest copied; the
    layer is the difference of the root file system."""
    before = await anyio.to_thread.run_sync(Snapshot.take, run.rootfs)

    def extract() -> None:
        with RootDir(run.rootfs) as root:
            opened = root.open_dir(plan.dest_dir, create=True)
            try:
                target = f"/proc/self/fd/{opened.fd}"
                for entry in entries:
                    if getattr(entry, "is_archive", False):
                        with open(entry.realpath, "rb") as stream:
                            apply_layer(target, stream)
                    else:
                        raise BuildError(
                            "ADD of archives together with other sources is not supported yet"
                        )
            finally:
                os.close(opened.fd)

    await anyio.to_thread.run_sync(extract)

    def write(out: Any) -> Any:
        return write_diff_layer(before, run.rootfs, out, timestamp=build.options.timestamp)

    await build.add_layer(run, created, created_by, write)
    run.snapshot = None
