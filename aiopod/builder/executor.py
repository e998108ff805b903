"""Running a Dockerfile build into the store (libpod's ``Build``).

Each stage the target needs is built in a *working container*: a storage-only container
of the stage's base image (visible in ``ps --external`` while the build runs, removed
when it ends, however it ends).  RUN executes in the container's root file system with
chroot isolation (:mod:`aiopod.builder.run.isolation`) and its layer is the difference of the
root file system across the step (:mod:`aiopod.builder.layers.snapshot`); COPY and ADD write their
layer straight from the sources and apply it to the root file system; the other
instructions change the config.  Every RUN, COPY and ADD makes one layer; every
instruction one history entry.  With ``layers=True`` every step commits an intermediate
image, and a later build reuses one when the parent, the instruction and (for COPY/ADD)
the content digest of the sources match.

Progress: the build reports its steps, RUN output, cache hits and commits as the records
of :mod:`aiopod.builder.progress`, in the order and with the text ``podman build`` prints.

Cancellation: a cancelled build kills its RUN process tree, removes its working
containers and leaves no image of its own behind (intermediates already committed stay,
as with buildah).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread

from aiopod._containers import create_container, plan_container_removal
from aiopod._reference import check_tag_name, split_transport
from aiopod.builder.copying import copy_step
from aiopod.builder.dockerfile.files import read_dockerfile
from aiopod.builder.dockerfile.instructions import (
    METADATA_INSTRUCTIONS,
    apply_metadata,
    history_text,
)
from aiopod.builder.dockerfile.parser import Dockerfile, Instruction, Stage, parse_dockerfile
from aiopod.builder.dockerfile.words import expand, parse_arg_definitions
from aiopod.builder.image_config import DEFAULT_PATH, ImageConfig
from aiopod.builder.layer_cache import LayerCache, read_config
from aiopod.builder.layers.commit import commit_image, name_built_image
from aiopod.builder.layers.snapshot import Snapshot
from aiopod.builder.options import BuildOptions, BuildResult
from aiopod.builder.progress import (
    BuildFinished,
    ImageCommitted,
    ProgressTarget,
    Reporter,
    StepCached,
    StepCommitted,
    StepStarted,
)
from aiopod.builder.run.mounts import cache_mounts_dir
from aiopod.builder.run.step import PROXY_ARGS, run_step
from aiopod.builder.run.users import resolve_user
from aiopod.builder.session import LayerWrite, StageRun
from aiopod.builder.sources.destination import destination_hints
from aiopod.builder.sources.digest_cache import DigestCache, activated, cache_path
from aiopod.builder.stages import StagePlan, from_env, plan_stages, platform_args
from aiopod.errors import (
    AiopodError,
    BuildError,
    DockerfileError,
    ExpansionError,
    ImageNotKnown,
    InvalidReference,
    StorageFull,
)
from aiopod.events.model import Event
from aiopod.removal.executor import execute_plan
from aiopod.removal.plan import RemovalOptions
from aiopod.removal.podman import plan_podman
from aiopod.storage.applier import apply_layer
from aiopod.storage.fsutil import disk_errors
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.layer_check import LayerLimits
from aiopod.storage.lookup import lookup_image
from aiopod.storage.records import ImageRecord
from aiopod.storage.rootfs_path import RootDir, make_dirs, split_path
from aiopod.storage.store import Store
from aiopod.storage.threads import run_to_completion

__all__ = ("BuildOptions", "BuildResult", "build_image")


def _rfc3339(when: datetime) -> str:
    return (
        when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if when.microsecond
        else when.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


@dataclass(frozen=True)
class _Step:
    """The step running: whether it is the final stage's last (its image is the result)
    and whether it was taken from the cache."""

    last: bool = False
    cached: bool = False


class _Build:
    """One build: its working containers, staging area, events and cache; implements
    :class:`~aiopod.builder.session.BuildSession` for the step handlers."""

    def __init__(self, store: Store, options: BuildOptions, reporter: Reporter) -> None:
        self._store = store
        self._options = options
        self._reporter = reporter
        self.events: list[Event] = []
        self.intermediates: list[str] = []
        self._stage_images: list[str] = []
        """Images this build stored for stages other than the target (without ``layers``)."""
        self._result_id: str | None = None
        self._results: dict[int, ImageRecord] = {}
        self._containers: list[str] = []
        self._shared_roots: dict[str, Path] = {}
        """Root file systems of working containers that steps only read, by image ID."""
        self._area: StagingArea | None = None
        self._dockerfile: Dockerfile | None = None
        self._stages: StagePlan | None = None
        self._step = _Step()
        self._cache = LayerCache(store)

    # -- the session (aiopod.builder.session.BuildSession) -----------------------------

    @property
    def options(self) -> BuildOptions:
        return self._options

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    @property
    def cache_mounts_dir(self) -> Path:
        return cache_mounts_dir(self._store.layout.meta)

    @property
    def layer_limits(self) -> LayerLimits:
        return self._store.layer_limits

    def apply_layer(self, root: str | os.PathLike[str], stream: BinaryIO, what: str) -> None:
        apply_layer(
            root,
            stream,
            limits=self._store.layer_limits,
            allow_special_files=self._store.allow_special_files,
            what=what,
        )

    def created(self) -> str:
        if self._options.timestamp is not None:
            return _rfc3339(datetime.fromtimestamp(self._options.timestamp, UTC))
        return _rfc3339(datetime.now(UTC))

    def new_staging_path(self, suffix: str) -> Path:
        assert self._area is not None
        return self._area.new_path(suffix)

    async def working_container(self, reference: str, what: str) -> Path:
        image_id = await self._image_by_ref(reference, what)
        root = self._shared_roots.get(image_id)
        if root is None:
            _, root = await self._new_container(image_id)
            self._shared_roots[image_id] = root
        return root

    async def _new_container(self, reference: str) -> tuple[str, Path]:
        """A new working container of *reference* (an image ID or ``scratch``), removed
        when the build ends; its ID and root file system."""
        record, events = await create_container(self._store, reference, external=True, owned=True)
        self._containers.append(record.id)
        self.events.extend(events)
        return record.id, self._store.container_dir(record.id) / "rootfs"

    async def _image_by_ref(self, text: str, what: str) -> str:
        """The ID of the image a ``--from``/``from=`` *text* names: an earlier stage of this
        build (by name or number), else an image of the store.  *what* starts the
        message of the :class:`BuildError` raised for anything else."""
        stage = None if self._dockerfile is None else self._dockerfile.find_stage(text)
        if stage is not None:
            image = self._results.get(stage.index)
            if image is None:
                raise BuildError(f"{what}: stage {text!r} is not built before this step")
            return image.id
        record = await self._store_image(text, what)
        if record is None:
            raise BuildError(f"{what}: no stage or image of that name")
        return record.id

    async def _store_image(self, text: str, what: str) -> ImageRecord | None:
        """The image *text* names, pulled first under the build's pull policy: every time
        for ``always`` and ``newer`` (the pull decides whether to transfer), only when the
        store has none for ``missing``; None when the store has none and nothing is pulled.
        A pull's failure is the :class:`BuildError` of the step (*what*)."""
        policy, pull = self._options.pull_policy, self._options.pull
        if pull is None or policy in ("missing", "never"):
            state = await self._store.snapshot()
            try:
                record, _ = lookup_image(state, text)
                return record
            except ImageNotKnown:
                if pull is None or policy == "never":
                    return None
            except InvalidReference:  # a transport (oci:...) is never in the store
                if split_transport(text) is None:
                    raise
                if pull is None or policy == "never":
                    return None
            policy = "always"  # missing, so pulled
        try:
            image_id = await pull(text, policy)
        except AiopodError as exc:
            raise BuildError(f"{what}: pulling {text}: {exc.message}") from exc
        return (await self._store.snapshot()).images[image_id]

    async def ready(self, run: StageRun) -> None:
        if not run.unapplied:
            return
        layers, run.unapplied = run.unapplied, []

        def apply() -> None:
            for digest, staged in layers:
                path = staged if staged is not None and staged.exists() else None
                with (path or self._store.blob_path(digest)).open("rb") as stream:
                    self.apply_layer(run.rootfs, stream, f"layer {digest}")

        await anyio.to_thread.run_sync(apply)
        run.snapshot = None

    async def snapshot(self, run: StageRun) -> Snapshot:
        if run.snapshot is None:
            run.snapshot = await anyio.to_thread.run_sync(Snapshot.take, run.rootfs)
        return run.snapshot

    async def use_cache(self, run: StageRun, created_by: str, *, adds_layer: bool) -> bool:
        if not self._options.layers or self._options.no_cache:
            return False
        hit = await self._cache.find(
            history=run.config.history,
            diff_ids=run.config.diff_ids,
            created_by=created_by,
            adds_layer=adds_layer,
            config=run.config.config,
        )
        if hit is None:
            return False
        cmd_set = run.cmd_set
        run.config = ImageConfig.from_base(hit.config)
        run.cmd_set = cmd_set
        if adds_layer:
            run.unapplied.append((hit.record.layers[-1].digest, None))
            run.snapshot = None
            run.pending = False
        run.base_layers = list(hit.record.layers)
        run.new_layers = []
        run.image = hit.record
        self._step = _Step(last=self._step.last, cached=True)
        await self._reporter.send(StepCached(hit.record.id))
        if not self._step.last:  # the result's ID comes with its COMMIT
            await self._reporter.send(StepCommitted(hit.record.id))
        return True

    async def add_layer(
        self,
        run: StageRun,
        created: str,
        created_by: str,
        write: LayerWrite,
        *,
        apply: bool = False,
    ) -> StagedBlob:
        area = self._area
        assert area is not None
        path = area.new_path(".layer")

        def produce() -> StagedBlob:
            with path.open("wb") as out:
                info = write(out)
            final = area.path / f"layer-{secrets.token_hex(8)}"
            os.replace(path, final)
            return StagedBlob(
                digest=info.diff_id,
                size=info.size,
                path=final,
                compression="none",
                uncompressed_digest=info.diff_id,
                uncompressed_size=info.size,
            )

        blob = await anyio.to_thread.run_sync(produce)
        if apply:
            run.unapplied.append((blob.digest, blob.path))
        run.new_layers.append(blob)
        run.config.add_layer(blob.digest)
        run.config.add_history(created, created_by, empty_layer=False)
        run.snapshot = None
        run.pending = False
        if self._options.layers:
            await self._commit(run, names=[], final=False)
        return blob

    # -- the whole build ---------------------------------------------------------------

    async def run(self) -> BuildResult:
        """Build, then report :class:`BuildFinished`; the reporter is closed either way."""
        try:
            with disk_errors("build", self._store.root):  # a full disk: StorageFull
                result = await self._build()
            names = tuple(result.image.names) if self._options.tags else ()
            await self._reporter.send(BuildFinished(result.image.id, names))
        except anyio.get_cancelled_exc_class():
            self._reporter.close_nowait()
            raise
        except BaseException:
            await self._reporter.aclose()
            raise
        await self._reporter.aclose()
        return result

    async def _build(self) -> BuildResult:
        options = self._options
        path, text = await anyio.to_thread.run_sync(
            read_dockerfile, options.context, options.dockerfile
        )
        dockerfile = parse_dockerfile(text, path=str(path))
        self._dockerfile = dockerfile
        plan = plan_stages(
            dockerfile, target=self._options.target, build_args=self._options.build_args
        )
        self._stages = plan
        self._area = await anyio.to_thread.run_sync(self._store.new_staging_area)
        try:
            for index in plan.needed:
                final = index == plan.target.index
                stage = dockerfile.stages[index]
                self._results[index] = await self._run_stage(stage, plan, final)
            self._result_id = self._results[plan.target.index].id
        finally:
            with anyio.CancelScope(shield=True):
                await self._cleanup()
        return BuildResult(self._results[plan.target.index], self.intermediates, self.events)

    async def _cleanup(self) -> None:
        if self._containers:
            containers = list(self._containers)

            def planner(state: Any, failures: Mapping[str, str]) -> Any:
                return plan_container_removal(
                    state, containers, ignore=True, container_failures=failures
                )

            await execute_plan(self._store, planner, operation="build")
            self._containers.clear()
            self._shared_roots.clear()
        if self._stage_images:
            await self._remove_stage_images()
        if self._area is not None:
            await run_to_completion(self._area.close)
            self._area = None

    async def _remove_stage_images(self) -> None:
        """Without ``layers``, the images of stages other than the target are the build's
        own business: removed when it ends (as buildah does), unless one of them is the
        result or has been named since.  The base images they were built on stay."""
        ids = list(self._stage_images)
        self._stage_images.clear()
        result_id = self._result_id

        def planner(state: Any, failures: Mapping[str, str]) -> Any:
            doomed = [
                i for i in ids if i in state.images and not state.images[i].names and i != result_id
            ]
            options = RemovalOptions(no_prune=True)
            return plan_podman(state, doomed, options, container_failures=failures)

        report = await execute_plan(self._store, planner, operation="build")
        self.events.extend(report.events)

    # -- one stage ---------------------------------------------------------------------

    @property
    def _path(self) -> str:
        return self._dockerfile.path if self._dockerfile is not None else "Dockerfile"

    @property
    def _escape(self) -> str:
        return self._dockerfile.escape if self._dockerfile is not None else "\\"

    async def _start_step(self, stage: Stage, step: int, text: str, *, last: bool) -> None:
        self._step = _Step(last=last)
        assert self._stages is not None
        steps = len(stage.instructions) + 1
        await self._reporter.send(
            StepStarted(stage.index + 1, self._stages.count, stage.written_name, step, steps, text)
        )

    async def _run_stage(self, stage: Stage, plan: StagePlan, final: bool) -> ImageRecord:
        env = from_env(plan.global_args)
        try:
            base_text = expand(stage.base, env)
            wanted_platform = expand(stage.platform or "", env)
        except ExpansionError as exc:
            raise DockerfileError(str(exc), path=self._path, line=stage.line) from None
        assert self._dockerfile is not None
        base_stage = self._dockerfile.find_stage(base_text)
        base_image: ImageRecord | None = None
        if base_stage is not None and base_stage.index in self._results:
            base_image = self._results[base_stage.index]
        # podman shows the base expanded, an earlier stage's by its image ID.
        shown = base_image.id if base_image is not None else base_text
        named = f" AS {stage.written_name}" if stage.written_name else ""
        last = final and not stage.instructions
        await self._start_step(stage, 1, f"FROM {shown}{named}", last=last)
        if base_image is None and base_text != "scratch":
            step = f'building at STEP "FROM {base_text}"'
            base_image = await self._store_image(base_text, step)
            if base_image is None:
                how = (
                    "pull it, or build with --pull"
                    if self._options.pull_policy == "never"
                    else "load or pull it first"
                )
                raise BuildError(f"{step}: image {base_text!r} is not in the store: {how}")
        container_id, rootfs = await self._new_container(
            base_image.id if base_image is not None else "scratch"
        )
        config_doc = None
        if base_image is not None:
            config_doc = await anyio.to_thread.run_sync(read_config, self._store, base_image)
        run = StageRun(
            stage=stage,
            container_id=container_id,
            rootfs=rootfs,
            config=ImageConfig.from_base(config_doc),
            base_layers=list(base_image.layers) if base_image is not None else [],
        )
        if wanted_platform:
            _check_platform(wanted_platform, run.config, base_text)
        if not run.config.get("Env"):  # buildah: a base without Env gets the default PATH
            run.config.set_env(*DEFAULT_PATH.split("=", 1))
        triggers = list(run.config.get("OnBuild") or [])
        run.config.set("OnBuild", None)
        for trigger in triggers:
            parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n", path="ONBUILD")
            for instruction in parsed.stages[0].instructions:
                await self._instruction(run, instruction, plan.global_args)
        for number, instruction in enumerate(stage.instructions, start=2):
            last = final and number == len(stage.instructions) + 1
            await self._start_step(stage, number, instruction.original, last=last)
            await self._instruction(run, instruction, plan.global_args)
        if run.pending and not self._options.layers:
            await self._pending_layer(run)
        names = [str(check_tag_name(t)) for t in self._options.tags] if final else []
        return await self._commit(run, names=names, final=final, stage_end=True)

    async def _pending_layer(self, run: StageRun) -> None:
        """Directories WORKDIR made after the stage's last layer: a layer owned by the
        last history entry (buildah commits a stage's changes with its last step)."""
        await self.ready(run)
        before = run.snapshot
        assert before is not None
        last = run.config.history.pop()
        await self.add_layer(
            run,
            str(last.get("created", self.created())),
            str(last.get("created_by", "")),
            run.diff_writer(before, timestamp=self._options.timestamp),
        )

    async def _instruction(
        self, run: StageRun, instruction: Instruction, global_args: Mapping[str, str]
    ) -> None:
        """Run one instruction; errors name the Dockerfile and line (a malformed word) or
        the step (a failure), as buildah's ``building at STEP "…"`` does."""
        try:
            await self._dispatch(run, instruction, global_args)
        except ExpansionError as exc:
            raise DockerfileError(str(exc), path=self._path, line=instruction.line) from None
        except (DockerfileError, StorageFull):
            raise
        except AiopodError as exc:  # a hostile archive, a user not found, ...
            if isinstance(exc, BuildError) and str(exc).startswith("building at STEP"):
                raise
            raise BuildError(f'building at STEP "{instruction.original}": {exc}') from exc

    async def _dispatch(
        self, run: StageRun, instruction: Instruction, global_args: Mapping[str, str]
    ) -> None:
        keyword = instruction.keyword
        env = dict(run.args)  # variables for expansion: ARGs in scope, then ENV (ENV wins)
        env.update(run.config.env_map())
        created = self.created()
        if keyword == "ARG":
            await self._arg(run, instruction, env, global_args, created)
        elif keyword in METADATA_INSTRUCTIONS:
            apply_metadata(
                run.config, instruction, env, cmd_set_in_stage=run.cmd_set, path=self._path
            )
            if keyword == "CMD":
                run.cmd_set = True
            await self._metadata_step(run, created, history_text(instruction))
            if keyword == "WORKDIR":  # a cache hit too: the next layer step may miss
                await self._make_workdir(run)
        elif keyword == "RUN":
            await run_step(self, run, instruction, env, created, escape=self._escape)
        elif keyword in ("COPY", "ADD"):
            await copy_step(self, run, instruction, env, created)
        else:
            raise DockerfileError(
                f"{keyword} is not supported here", path=self._path, line=instruction.line
            )
        if self._options.layers and keyword not in ("RUN", "COPY", "ADD"):
            await self._commit(run, names=[], final=False)

    async def _arg(
        self,
        run: StageRun,
        instruction: Instruction,
        env: Mapping[str, str],
        global_args: Mapping[str, str],
        created: str,
    ) -> None:
        build_args = self._options.build_args
        for key, default in parse_arg_definitions(instruction.args, env):
            if default is None:
                default = global_args.get(key, platform_args().get(key))
            value = build_args.get(key, default)
            if value is not None:  # declared without a value: unset, as in buildah
                run.args[key] = value
        given = {k for k in PROXY_ARGS if k in build_args}
        names = " ".join(sorted(set(run.args) | given))
        await self._metadata_step(run, created, f"/bin/sh -c #(nop) ARG {names}")

    async def _metadata_step(self, run: StageRun, created: str, created_by: str) -> None:
        """Record a step that changes only the config (already applied to it); with
        ``layers``, adopt the intermediate image of the same step, if one exists."""
        if not await self.use_cache(run, created_by, adds_layer=False):
            run.config.add_history(created, created_by, empty_layer=True)

    async def _make_workdir(self, run: StageRun) -> None:
        """Create the working directory (and its missing parents) as buildah does: mode
        0755, owned by the current USER.  The directories go into the stage's next layer;
        when no RUN, COPY or ADD follows, into a layer of their own at the end, except
        with ``layers``, where (as in buildah) they are not committed then."""
        await self.ready(run)
        workdir = run.config.get("WorkingDir") or "/"
        is_dir, _ = await anyio.to_thread.run_sync(destination_hints, run.rootfs, workdir, "/")
        if is_dir:
            return
        await self.snapshot(run)
        user = run.config.get("User") or ""

        def make() -> bool:
            owner = (0, 0)
            if user:
                try:
                    resolved = resolve_user(run.rootfs, user)
                    owner = (resolved.uid, resolved.gid)
                except (AiopodError, OSError, ValueError):
                    owner = (0, 0)
            with RootDir(run.rootfs) as root:
                return bool(make_dirs(root, split_path(workdir), mode=0o755, owner=owner))

        if await anyio.to_thread.run_sync(make):
            run.pending = True

    # -- commits -----------------------------------------------------------------------

    async def _commit(
        self, run: StageRun, *, names: Sequence[str], final: bool, stage_end: bool = False
    ) -> ImageRecord:
        """Commit the stage's image (*final*: the result, named *names*) and report it as
        podman does: every step's image with ``layers`` but the last one's, which is the
        result's COMMIT; without ``layers`` a stage's only when a later stage builds on it
        (*stage_end*: the commit at the end of a stage)."""
        up_to_date = (
            run.image is not None
            and not run.new_layers
            and len(run.image.history) == len(run.config.history)
        )
        if up_to_date and not final:
            assert run.image is not None
            return run.image
        if up_to_date and self._options.layers:
            # The last step's intermediate image is the result (as in buildah).
            assert run.image is not None
            record, events = await name_built_image(self._store, run.image.id, names)
            self.events.extend(events)
            if record.id in self.intermediates:
                self.intermediates.remove(record.id)
            run.image = record
            if self._step.cached and not names:  # podman: nothing committed, nothing named
                await self._reporter.send(StepCommitted(record.id))
            else:
                await self._report_result(run, record)
            return record
        assert self._area is not None
        record, events = await commit_image(
            self._store,
            self._area,
            base_layers=run.base_layers,
            new_layers=run.new_layers,
            config=run.config,
            created=self.created(),
            names=names,
            new_ids=self._stage_images if not final and not self._options.layers else None,
        )
        self.events.extend(events)
        run.base_layers = list(record.layers)
        run.new_layers = []
        run.image = record
        if not final:
            self.intermediates.append(record.id)
            assert self._stages is not None
            if stage_end:
                shown = run.stage.index in self._stages.base_stages
            else:
                shown = not self._step.last
            if shown:
                await self._reporter.send(StepCommitted(record.id))
        else:
            await self._report_result(run, record)
        return record

    async def _report_result(self, run: StageRun, record: ImageRecord) -> None:
        """``COMMIT`` with the first tag as the caller wrote it, and the result's ID."""
        name = self._options.tags[0] if self._options.tags else None
        assert self._stages is not None
        stage = run.stage.index + 1
        await self._reporter.send(ImageCommitted(record.id, name, stage, self._stages.count))


def _check_platform(wanted: str, config: ImageConfig, base: str) -> None:
    """``FROM --platform``: the base image must be of that platform (nothing is pulled, so
    no other variant of it can be chosen)."""
    parts = wanted.split("/")
    have = [config.os, config.architecture]
    if len(parts) not in (2, 3) or parts[:2] != have:
        raise BuildError(
            f'building at STEP "FROM --platform={wanted} {base}": the image is '
            f"{'/'.join(have)}, not {wanted}"
        )


async def build_image(
    store: Store, options: BuildOptions, *, progress: ProgressTarget | None = None
) -> BuildResult:
    """Build *options*' Dockerfile into *store*; see the module docstring.

    *progress* receives the build's records as :class:`~aiopod.builder.progress.Reporter`
    describes (a memory object stream is closed when the build ends, however it ends).
    """
    build = _Build(store, options, Reporter(progress))
    # The context's source digests are cached in the store (the cache does its I/O in the
    # worker threads that compute digests; creating and activating it does none).
    cache = DigestCache(
        cache_path(store.layout.meta), context=options.context, lookups=not options.no_cache
    )
    with activated(cache):
        return await build.run()
