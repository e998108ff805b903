"""Running a Dockerfile build into the store (libpod's ``Build``).

Each stage the target needs is built in a *working container*: a storage-only container
of the stage's base image (visible in ``ps --external`` while the build runs, removed
when it ends, however it ends).  RUN executes in the container's root file system with
chroot isolation (:mod:`aiopod.build.isolation`) and its layer is the difference of the
root file system across the step (:mod:`aiopod.build.snapshot`); COPY and ADD write their
layer straight from the sources and apply it to the root file system; the other
instructions change the config.  Every RUN, COPY and ADD makes one layer; every
instruction one history entry.  With ``layers=True`` every step commits an intermediate
image, and a later build reuses one when the parent, the instruction and (for COPY/ADD)
the content digest of the sources match.

Progress: the build reports its steps, RUN output, cache hits and commits as the records
of :mod:`aiopod.build.progress`, in the order and with the text ``podman build`` prints.

Cancellation: a cancelled build kills its RUN process tree, removes its working
containers and leaves no image of its own behind (intermediates already committed stay,
as with buildah).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from aiopod.build.commit import commit_image, name_built_image
from aiopod.build.digest_cache import DigestCache, activated, cache_path
from aiopod.build.image_config import DEFAULT_PATH, ImageConfig, local_architecture
from aiopod.build.instructions import (
    METADATA_INSTRUCTIONS,
    apply_metadata,
    history_text,
    run_command,
    run_history_text,
)
from aiopod.build.isolation import run_isolated
from aiopod.build.parser import Dockerfile, Instruction, Stage, parse_dockerfile
from aiopod.build.progress import (
    BuildFinished,
    ImageCommitted,
    ProgressTarget,
    Reporter,
    StepCached,
    StepCommitted,
    StepStarted,
)
from aiopod.build.run_mounts import (
    mount_stage_refs,
    parse_run_mounts,
    prepared_mounts,
    remove_mount_points,
)
from aiopod.build.snapshot import Snapshot, write_diff_layer
from aiopod.build.words import ExpansionError, expand, parse_arg_definitions
from aiopod.containers import create_container, plan_container_removal
from aiopod.errors import AiopodError, BuildError, DockerfileError, ImageNotKnown
from aiopod.events.model import Event
from aiopod.reference import check_tag_name
from aiopod.removal.executor import execute_plan
from aiopod.removal.plan import RemovalOptions
from aiopod.removal.podman import plan_podman
from aiopod.storage.applier import apply_layer
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.lookup import lookup_image
from aiopod.storage.records import HistoryEntry, ImageRecord, LayerRecord
from aiopod.storage.store import Store

__all__ = ("BuildOptions", "BuildResult", "build_image")


#: Build args RUN sees when given, without an ARG declaring them (kept out of history).
PROXY_ARGS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
)


def _platform_args() -> dict[str, str]:
    """The platform ARGs every build knows (build and target platform: this machine's)."""
    arch = local_architecture()
    args = {}
    for prefix in ("BUILD", "TARGET"):
        args.update(
            {
                f"{prefix}PLATFORM": f"linux/{arch}",
                f"{prefix}OS": "linux",
                f"{prefix}ARCH": arch,
                f"{prefix}VARIANT": "",
            }
        )
    return args


@dataclass(frozen=True)
class BuildOptions:
    """What to build: the context, the Dockerfile and the flags of ``podman build``."""

    context: Path
    dockerfile: Path | None = None
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    layers: bool = False
    timestamp: int | None = None
    target: str | None = None
    no_cache: bool = False
    secrets: Mapping[str, Path] = field(default_factory=dict)
    """``RUN --mount=type=secret,id=ID`` sources: the file of each secret ID (read when a
    step mounts it; never stored in the image or its history)."""


@dataclass
class BuildResult:
    """The built image, the intermediate images the build committed and its events."""

    image: ImageRecord
    intermediates: list[str]
    events: list[Event]


@dataclass
class _StageRun:
    stage: Stage
    container_id: str
    rootfs: Path
    config: ImageConfig
    base_layers: list[LayerRecord]
    new_layers: list[StagedBlob] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False
    snapshot: Snapshot | None = None
    """The root file system as of the last layer, when it may have changed since."""
    pending: bool = False
    #: Layers recorded but not yet applied to the root file system (digest, staged file):
    #: applied only before a step reads it, so a last COPY or cached step costs no unpack.
    unapplied: list[tuple[str, Path | None]] = field(default_factory=list)
    """WORKDIR made directories that no layer holds yet (``snapshot`` is from before)."""
    image: ImageRecord | None = None


def _rfc3339(when: datetime) -> str:
    return (
        when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if when.microsecond
        else when.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


class _Build:
    def __init__(self, store: Store, options: BuildOptions, reporter: Reporter) -> None:
        self.store = store
        self.options = options
        self.reporter = reporter
        self.events: list[Event] = []
        self.intermediates: list[str] = []
        self.stage_images: list[str] = []
        """Images this build stored for stages other than the target (without ``layers``)."""
        self.result_id: str | None = None
        self.results: dict[int, ImageRecord] = {}
        self.containers: list[str] = []
        self.area: StagingArea | None = None
        self.stage_count = 1
        """Stages up to the target (podman's ``[stage/count]``)."""
        self.base_stages: set[int] = set()
        """Stages a later stage builds on (podman shows their image ID without layers)."""
        self.last_step = False
        """The step running is the final stage's last: its image is the result."""
        self.step_cached = False
        """The step running was taken from the cache."""
        self.dockerfile: Dockerfile | None = None
        self.mount_roots: dict[str, Path] = {}
        """Root file systems of the images ``RUN --mount from=`` used, by image ID."""

    # -- time --------------------------------------------------------------------------

    def created(self) -> str:
        if self.options.timestamp is not None:
            return _rfc3339(datetime.fromtimestamp(self.options.timestamp, UTC))
        return _rfc3339(datetime.now(UTC))

    # -- the whole build ---------------------------------------------------------------

    async def run(self) -> BuildResult:
        """Build, then report :class:`BuildFinished`; the reporter is closed either way."""
        try:
            result = await self._build()
            names = tuple(result.image.names) if self.options.tags else ()
            await self.reporter.send(BuildFinished(result.image.id, names))
        except anyio.get_cancelled_exc_class():
            self.reporter.close_nowait()
            raise
        except BaseException:
            await self.reporter.aclose()
            raise
        await self.reporter.aclose()
        return result

    async def _build(self) -> BuildResult:
        dockerfile = await self._read_dockerfile()
        self.dockerfile = dockerfile
        target = self._target(dockerfile)
        global_args = self._global_args(dockerfile)
        needed = self._needed_stages(dockerfile, target, global_args)
        self.stage_count = target.index + 1
        self.base_stages = self._base_stages(dockerfile, needed, global_args)
        self.area = await anyio.to_thread.run_sync(self.store.new_staging_area)
        try:
            for index in needed:
                stage = dockerfile.stages[index]
                final = index == target.index
                self.results[index] = await self._run_stage(dockerfile, stage, global_args, final)
            self.result_id = self.results[target.index].id
        finally:
            with anyio.CancelScope(shield=True):
                await self._cleanup()
        return BuildResult(self.results[target.index], self.intermediates, self.events)

    async def _read_dockerfile(self) -> Dockerfile:
        path, text = await anyio.to_thread.run_sync(self._dockerfile_text)
        return parse_dockerfile(text, path=str(path))

    def _dockerfile_text(self) -> tuple[Path, str]:
        """The Dockerfile and its text: ``-f`` as given or else in the context (where
        podman looks too), by default ``Containerfile`` or else ``Dockerfile`` in the
        context (podman's order).  A missing context, file or content is an error worded as
        podman's."""
        options = self.options
        if not options.context.is_dir():
            raise BuildError(f'context must be a directory: "{os.path.abspath(options.context)}"')
        if options.dockerfile is None:
            path = options.context / "Containerfile"
            if not path.exists():
                path = options.context / "Dockerfile"
        else:
            path = options.dockerfile
        if not path.exists() and not path.is_absolute():
            path = options.context / path
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise BuildError(f"stat {os.path.abspath(path)}: no such file or directory") from None
        except OSError as exc:
            raise BuildError(f"reading Dockerfile {path}: {exc.strerror}") from None
        if not text.strip():
            raise BuildError(f'no contents in "{os.path.abspath(path)}"')
        return path, text

    def _target(self, dockerfile: Dockerfile) -> Stage:
        if self.options.target is None:
            return dockerfile.stages[-1]
        found = dockerfile.find_stage(self.options.target)
        if found is None:
            raise BuildError(f'the target "{self.options.target}" was not found')
        return found

    def _stage_ref(self, dockerfile: Dockerfile, text: str) -> Stage | None:
        return dockerfile.find_stage(text)

    def stage_by_ref(self, text: str) -> Stage | None:
        """The stage of this build named or numbered *text* (``COPY --from``)."""
        return None if self.dockerfile is None else self.dockerfile.find_stage(text)

    async def image_by_ref(self, text: str, what: str) -> str:
        """The ID of the image a ``--from``/``from=`` *text* names: an earlier stage of this
        build (by name or number), else an image of the store.  *what* starts the
        message of the :class:`BuildError` raised for anything else."""
        stage = self.stage_by_ref(text)
        if stage is not None:
            image = self.results.get(stage.index)
            if image is None:
                raise BuildError(f"{what}: stage {text!r} is not built before this step")
            return image.id
        state = await self.store.snapshot()
        try:
            record, _ = lookup_image(state, text)
        except ImageNotKnown:
            raise BuildError(f"{what}: no stage or image of that name") from None
        return record.id

    def _needed_stages(
        self, dockerfile: Dockerfile, target: Stage, global_args: Mapping[str, str]
    ) -> list[int]:
        """The stages *target* needs (its base and ``COPY --from`` sources, recursively),
        in file order; names are expanded with the global ARGs (``FROM ${BASE}``)."""
        needed: set[int] = set()

        def ref(text: str) -> Stage | None:
            try:
                return self._stage_ref(dockerfile, expand(text, self._from_env(global_args)))
            except ExpansionError:
                return None

        def visit(stage: Stage) -> None:
            if stage.index in needed:
                return
            needed.add(stage.index)
            base = ref(stage.base)
            if base is not None and base.index < stage.index:
                visit(base)
            for instruction in stage.instructions:
                sources = mount_stage_refs(instruction)  # RUN --mount=...,from=<stage>
                if instruction.keyword == "COPY" and instruction.flag("from") is not None:
                    sources.append(instruction.flag("from") or "")
                for source in sources:
                    found = ref(source)
                    if found is not None and found.index < stage.index:
                        visit(found)

        visit(target)
        return sorted(needed)

    def _base_stages(
        self, dockerfile: Dockerfile, needed: Sequence[int], global_args: Mapping[str, str]
    ) -> set[int]:
        """The stages among *needed* that a later needed stage names in its FROM."""
        bases: set[int] = set()
        for index in needed:
            stage = dockerfile.stages[index]
            try:
                base = self._stage_ref(dockerfile, expand(stage.base, self._from_env(global_args)))
            except ExpansionError:
                continue
            if base is not None and base.index < stage.index:
                bases.add(base.index)
        return bases

    def _from_env(self, global_args: Mapping[str, str]) -> dict[str, str]:
        """Variables a FROM line can use: the global ARGs and the platform ARGs."""
        return {**_platform_args(), **global_args}

    def _global_args(self, dockerfile: Dockerfile) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in dockerfile.global_args:
            try:
                pairs = self._arg_pairs(instruction, values, dockerfile.escape)
            except ExpansionError as exc:
                raise DockerfileError(
                    str(exc), path=dockerfile.path, line=instruction.line
                ) from None
            for key, value in pairs:
                given = self.options.build_args.get(key, value)
                if given is not None:
                    values[key] = given
        return values

    def _arg_pairs(
        self, instruction: Instruction, env: Mapping[str, str], escape: str = "\\"
    ) -> list[tuple[str, str | None]]:
        return parse_arg_definitions(instruction.args, env, escape=escape)

    async def _cleanup(self) -> None:
        if self.containers:

            def planner(state: Any, failures: Mapping[str, str]) -> Any:
                return plan_container_removal(
                    state, self.containers, ignore=True, container_failures=failures
                )

            await execute_plan(self.store, planner)
            self.containers.clear()
        if self.stage_images:
            await self._remove_stage_images()
        if self.area is not None:
            await anyio.to_thread.run_sync(self.area.close)
            self.area = None

    async def _remove_stage_images(self) -> None:
        """Without ``layers``, the images of stages other than the target are the build's
        own business: removed when it ends (as buildah does), unless one of them is the
        result or has been named since.  The base images they were built on stay."""
        ids = list(self.stage_images)
        self.stage_images.clear()

        def planner(state: Any, failures: Mapping[str, str]) -> Any:
            doomed = [
                i
                for i in ids
                if i in state.images and not state.images[i].names and i != self.result_id
            ]
            options = RemovalOptions(no_prune=True)
            return plan_podman(state, doomed, options, container_failures=failures)

        report = await execute_plan(self.store, planner)
        self.events.extend(report.events)

    # -- one stage ---------------------------------------------------------------------

    async def _step(self, stage: Stage, step: int, instruction_text: str) -> None:
        self.step_cached = False
        steps = len(stage.instructions) + 1
        name = stage.written_name
        await self.reporter.send(
            StepStarted(stage.index + 1, self.stage_count, name, step, steps, instruction_text)
        )

    async def _run_stage(
        self, dockerfile: Dockerfile, stage: Stage, global_args: dict[str, str], final: bool
    ) -> ImageRecord:
        try:
            base_text = expand(stage.base, self._from_env(global_args))
            wanted_platform = expand(stage.platform or "", self._from_env(global_args))
        except ExpansionError as exc:
            raise DockerfileError(str(exc), path=self._path, line=stage.line) from None
        base_stage = self._stage_ref(dockerfile, base_text)
        base_image: ImageRecord | None = None
        if base_stage is not None and base_stage.index in self.results:
            base_image = self.results[base_stage.index]
        # podman shows the base expanded, an earlier stage's by its image ID.
        shown = base_image.id if base_image is not None else base_text
        named = f" AS {stage.written_name}" if stage.written_name else ""
        self.last_step = final and not stage.instructions
        await self._step(stage, 1, f"FROM {shown}{named}")
        if base_image is None and base_text != "scratch":
            state = await self.store.snapshot()
            try:
                base_image, _ = lookup_image(state, base_text)
            except ImageNotKnown:
                raise BuildError(
                    f'building at STEP "FROM {base_text}": image {base_text!r} is not in the '
                    "store: load or pull it first"
                ) from None
        reference = base_image.id if base_image is not None else "scratch"
        record, events = await create_container(self.store, reference, external=True, owned=True)
        self.containers.append(record.id)
        self.events.extend(events)
        config_doc = None
        if base_image is not None:
            config_doc = await anyio.to_thread.run_sync(
                self._read_json, self.store.blob_path(base_image.config_digest)
            )
        run = _StageRun(
            stage=stage,
            container_id=record.id,
            rootfs=self.store.container_dir(record.id) / "rootfs",
            config=ImageConfig.from_base(config_doc),
            base_layers=list(base_image.layers) if base_image is not None else [],
        )
        if wanted_platform:
            self._check_platform(wanted_platform, run.config, base_text)
        if not run.config.get("Env"):  # buildah: a base without Env gets the default PATH
            run.config.set_env(*DEFAULT_PATH.split("=", 1))
        triggers = list(run.config.get("OnBuild") or [])
        run.config.set("OnBuild", None)
        for trigger in triggers:
            parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n", path="ONBUILD")
            for instruction in parsed.stages[0].instructions:
                await self._instruction(run, instruction, global_args)
        for number, instruction in enumerate(stage.instructions, start=2):
            self.last_step = final and number == len(stage.instructions) + 1
            await self._step(stage, number, instruction.original)
            await self._instruction(run, instruction, global_args)
        if run.pending and not self.options.layers:
            await self._pending_layer(run)
        names = [str(check_tag_name(t)) for t in self.options.tags] if final else []
        image = await self._commit(run, names=names, final=final, stage_end=True)
        return image

    @staticmethod
    def _check_platform(wanted: str, config: ImageConfig, base: str) -> None:
        """``FROM --platform``: the base image must be of that platform (nothing is
        pulled, so no other variant of it can be chosen)."""
        parts = wanted.split("/")
        have = [config.os, config.architecture]
        if len(parts) not in (2, 3) or parts[:2] != have:
            raise BuildError(
                f'building at STEP "FROM --platform={wanted} {base}": the image is '
                f"{'/'.join(have)}, not {wanted}"
            )

    async def ready(self, run: _StageRun) -> None:
        """Apply the layers recorded but not yet applied, before a step reads the root
        file system (RUN, COPY/ADD, WORKDIR)."""
        if not run.unapplied:
            return
        layers, run.unapplied = run.unapplied, []

        def apply() -> None:
            for digest, staged in layers:
                path = staged if staged is not None and staged.exists() else None
                with (path or self.store.blob_path(digest)).open("rb") as stream:
                    apply_layer(run.rootfs, stream)

        await anyio.to_thread.run_sync(apply)
        run.snapshot = None

    async def _pending_layer(self, run: _StageRun) -> None:
        """Directories WORKDIR made after the stage's last layer: a layer owned by the
        last history entry (buildah commits a stage's changes with its last step)."""
        await self.ready(run)
        before = run.snapshot
        assert before is not None
        volumes = list((run.config.get("Volumes") or {}).keys())
        last = run.config.history.pop()
        await self.add_layer(
            run,
            str(last.get("created", self.created())),
            str(last.get("created_by", "")),
            lambda out: write_diff_layer(
                before, run.rootfs, out, timestamp=self.options.timestamp, exclude=volumes
            ),
        )

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        import json

        doc = json.loads(path.read_bytes())
        assert isinstance(doc, dict)
        return doc

    def _scope_env(self, run: _StageRun) -> dict[str, str]:
        """Variables for expansion: ARGs in scope, then ENV (ENV wins)."""
        env = dict(run.args)
        env.update(run.config.env_map())
        return env

    async def _instruction(
        self, run: _StageRun, instruction: Instruction, global_args: Mapping[str, str]
    ) -> None:
        """Run one instruction; errors name the Dockerfile and line (a malformed word) or
        the step (a failure), as buildah's ``building at STEP "…"`` does."""
        try:
            await self._dispatch(run, instruction, global_args)
        except ExpansionError as exc:
            raise DockerfileError(str(exc), path=self._path, line=instruction.line) from None
        except DockerfileError:
            raise
        except AiopodError as exc:  # a hostile archive, a user not found, ...
            if isinstance(exc, BuildError) and str(exc).startswith("building at STEP"):
                raise
            raise BuildError(f'building at STEP "{instruction.original}": {exc}') from exc

    @property
    def _path(self) -> str:
        return self.dockerfile.path if self.dockerfile is not None else "Dockerfile"

    async def _dispatch(
        self, run: _StageRun, instruction: Instruction, global_args: Mapping[str, str]
    ) -> None:
        keyword = instruction.keyword
        env = self._scope_env(run)
        created = self.created()
        if keyword == "ARG":
            for key, default in self._arg_pairs(instruction, env):
                if default is None:
                    default = global_args.get(key, _platform_args().get(key))
                value = self.options.build_args.get(key, default)
                if value is not None:  # declared without a value: unset, as in buildah
                    run.args[key] = value
            given = {k for k in PROXY_ARGS if k in self.options.build_args}
            names = " ".join(sorted(set(run.args) | given))
            await self._metadata_step(run, created, f"/bin/sh -c #(nop) ARG {names}")
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
            await self._run(run, instruction, env, created)
        elif keyword in ("COPY", "ADD"):
            await self._copy(run, instruction, env, created)
        else:
            raise DockerfileError(
                f"{keyword} is not supported here", path=self._path, line=instruction.line
            )
        if self.options.layers and keyword not in ("RUN", "COPY", "ADD"):
            await self._commit(run, names=[], final=False)

    async def _metadata_step(self, run: _StageRun, created: str, created_by: str) -> None:
        """Record a step that changes only the config (already applied to it); with
        ``layers``, adopt the intermediate image of the same step, if one exists."""
        if not await self.use_cache(run, created_by, adds_layer=False):
            run.config.add_history(created, created_by, empty_layer=True)

    async def _make_workdir(self, run: _StageRun) -> None:
        """Create the working directory (and its missing parents) as buildah does: mode
        0755, owned by the current USER.  The directories go into the stage's next layer;
        when no RUN, COPY or ADD follows, into a layer of their own at the end, except
        with ``layers``, where (as in buildah) they are not committed then."""
        from aiopod.build.context import destination_hints

        await self.ready(run)
        workdir = run.config.get("WorkingDir") or "/"
        is_dir, _ = await anyio.to_thread.run_sync(destination_hints, run.rootfs, workdir, "/")
        if is_dir:
            return
        if run.snapshot is None:
            run.snapshot = await anyio.to_thread.run_sync(Snapshot.take, run.rootfs)

        def make() -> bool:
            from aiopod.build.users import resolve_user
            from aiopod.storage.rootfs_path import RootDir, split_path

            uid = gid = 0
            user = run.config.get("User") or ""
            if user:
                try:
                    resolved = resolve_user(run.rootfs, user)
                    uid, gid = resolved.uid, resolved.gid
                except (AiopodError, OSError, ValueError):
                    uid = gid = 0
            created: list[tuple[str, ...]] = []
            with RootDir(run.rootfs) as root:
                os.close(root.open_dir(split_path(workdir), create=True, created=created).fd)
                for path in created:  # O_PATH descriptors: change them through /proc
                    opened = root.open_dir(path)
                    try:
                        os.chmod(f"/proc/self/fd/{opened.fd}", 0o755)
                        os.chown(f"/proc/self/fd/{opened.fd}", uid, gid)
                    finally:
                        os.close(opened.fd)
            return bool(created)

        if await anyio.to_thread.run_sync(make):
            run.pending = True

    # -- RUN -------------------------------------------------------------------------------

    async def snapshot(self, run: _StageRun) -> Snapshot:
        """The root file system as of the stage's last layer (taken now if unchanged)."""
        if run.snapshot is None:
            run.snapshot = await anyio.to_thread.run_sync(Snapshot.take, run.rootfs)
        return run.snapshot

    def _run_args(self, run: _StageRun) -> list[tuple[str, str]]:
        """The ARGs in scope for RUN's history, an ENV of the same name winning (buildah)."""
        env = run.config.env_map()
        return [(k, env.get(k, v)) for k, v in run.args.items()]

    async def _run(
        self, run: _StageRun, instruction: Instruction, env: Mapping[str, str], created: str
    ) -> None:
        for flag, _ in instruction.flags:  # never run a step without what it asks for
            if flag != "mount":
                raise BuildError(f"RUN --{flag} is not supported by this builder yet")
        escape = self.dockerfile.escape if self.dockerfile is not None else "\\"
        mounts = parse_run_mounts(instruction, env, escape=escape)
        await self.ready(run)
        command = run_command(run.config, instruction)
        # buildah's history (and cache key) is the text after "RUN" as written, flags
        # included (node.Original[4:]); without flags that is the command's text.
        text = instruction.original[4:] if instruction.flags else command.text
        created_by = run_history_text(text, self._run_args(run))
        if await self.use_cache(run, created_by, adds_layer=True):
            return
        before = await self.snapshot(run)
        run_env = dict(run.config.env_map())
        for key, value in run.args.items():
            run_env.setdefault(key, value)
        for key in PROXY_ARGS:  # given with --build-arg, they need no ARG (nor history)
            if key in self.options.build_args:
                run_env.setdefault(key, self.options.build_args[key])

        reporter = self.reporter
        async with prepared_mounts(self, mounts) as run_mounts:
            try:
                result = await run_isolated(
                    run.rootfs,
                    command.argv,
                    env=run_env,
                    workdir=run.config.get("WorkingDir") or "/",
                    user=run.config.get("User") or "",
                    on_output=lambda data: reporter.output("stdout", data),
                    on_stderr=lambda data: reporter.output("stderr", data),
                    scripts=dict([command.script]) if command.script else None,
                    mounts=run_mounts,
                )
            finally:
                reporter.end_output()
        if result.mount_points:  # as buildah: the mount points made are not in the layer
            await anyio.to_thread.run_sync(remove_mount_points, run.rootfs, result.mount_points)
        if result.exit_code != 0:
            raise BuildError(
                f'building at STEP "RUN {text}": while running runtime: exit status '
                f"{result.exit_code}",
                exit_code=result.exit_code,
                output_tail=result.output_tail,
            )
        volumes = list((run.config.get("Volumes") or {}).keys())
        await self.add_layer(
            run,
            created,
            created_by,
            lambda out: write_diff_layer(
                before, run.rootfs, out, timestamp=self.options.timestamp, exclude=volumes
            ),
        )

    async def add_layer(
        self,
        run: _StageRun,
        created: str,
        created_by: str,
        write: Callable[[Any], Any],
        *,
        apply: bool = False,
    ) -> StagedBlob:
        """Write a layer with *write* into the staging area and record it; with *apply*,
        apply it to the working container's root file system (before any commit)."""
        assert self.area is not None
        path = self.area.new_path(".layer")

        def produce() -> StagedBlob:
            with path.open("wb") as out:
                info = write(out)
            final = self.area.path / f"layer-{secrets.token_hex(8)}"  # type: ignore[union-attr]
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
        if self.options.layers:
            await self._commit(run, names=[], final=False)
        return blob

    # -- COPY / ADD --------------------------------------------------------------------

    async def _copy(
        self, run: _StageRun, instruction: Instruction, env: Mapping[str, str], created: str
    ) -> None:
        from aiopod.build.copying import copy_step

        await copy_step(self, run, instruction, env, created)

    # -- cache and commits -------------------------------------------------------------

    async def use_cache(self, run: _StageRun, created_by: str, *, adds_layer: bool) -> bool:
        """With ``layers``, adopt an intermediate image made by the same step before.

        A stored image is the same step when its history is this stage's history (every
        field, as buildah compares it) plus one entry with *created_by* (with a layer
        when the step *adds_layer*), its layers are this stage's plus that one, and its
        runtime config equals the one the step leaves (so an instruction whose text is
        the same but whose values differ, such as ``ENV X=$ARG``, misses).
        """
        if not self.options.layers or self.options.no_cache:
            return False
        state = await self.store.snapshot()
        history = run.config.history
        diff_ids = run.config.diff_ids
        expected = len(diff_ids) + (1 if adds_layer else 0)
        for record in state.images.values():
            if len(record.history) != len(history) + 1:
                continue
            entry = record.history[-1]
            if entry.created_by != created_by or entry.empty_layer == adds_layer:
                continue
            if (
                list(record.diff_ids[: len(diff_ids)]) != diff_ids
                or len(record.diff_ids) != expected
            ):
                continue
            if list(record.history[:-1]) != [HistoryEntry.from_config(h) for h in history]:
                continue  # another base, or another build's steps (created times differ)
            config_doc = await anyio.to_thread.run_sync(
                self._read_json, self.store.blob_path(record.config_digest)
            )
            if (config_doc.get("config") or {}) != run.config.config:
                continue
            await self._adopt(run, record, config_doc, adds_layer)
            self.step_cached = True
            await self.reporter.send(StepCached(record.id))
            if not self.last_step:  # the result's ID comes with its COMMIT
                await self.reporter.send(StepCommitted(record.id))
            return True
        return False

    async def _adopt(
        self, run: _StageRun, record: ImageRecord, config_doc: dict[str, Any], adds_layer: bool
    ) -> None:
        cmd_set = run.cmd_set
        run.config = ImageConfig.from_base(config_doc)
        run.cmd_set = cmd_set
        if adds_layer:
            run.unapplied.append((record.layers[-1].digest, None))
            run.snapshot = None
            run.pending = False
        run.base_layers = list(record.layers)
        run.new_layers = []
        run.image = record

    async def _commit(
        self, run: _StageRun, *, names: Sequence[str], final: bool, stage_end: bool = False
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
        if up_to_date and self.options.layers:
            # The last step's intermediate image is the result (as in buildah).
            assert run.image is not None
            record, events = await name_built_image(self.store, run.image.id, names)
            self.events.extend(events)
            if record.id in self.intermediates:
                self.intermediates.remove(record.id)
            run.image = record
            if self.step_cached and not names:  # podman: nothing committed, nothing named
                await self.reporter.send(StepCommitted(record.id))
            else:
                await self._report_result(run, record)
            return record
        assert self.area is not None
        created = self.created()
        record, events = await commit_image(
            self.store,
            self.area,
            base_layers=run.base_layers,
            new_layers=run.new_layers,
            config=run.config,
            created=created,
            names=names,
            new_ids=self.stage_images if not final and not self.options.layers else None,
        )
        self.events.extend(events)
        run.base_layers = list(record.layers)
        run.new_layers = []
        run.image = record
        if not final:
            self.intermediates.append(record.id)
            shown = run.stage.index in self.base_stages if stage_end else not self.last_step
            if shown:
                await self.reporter.send(StepCommitted(record.id))
        else:
            await self._report_result(run, record)
        return record

    async def _report_result(self, run: _StageRun, record: ImageRecord) -> None:
        """``COMMIT`` with the first tag as the caller wrote it, and the result's ID."""
        name = self.options.tags[0] if self.options.tags else None
        stage = run.stage.index + 1
        await self.reporter.send(ImageCommitted(record.id, name, stage, self.stage_count))


async def build_image(
    store: Store, options: BuildOptions, *, progress: ProgressTarget | None = None
) -> BuildResult:
    """Build *options*' Dockerfile into *store*; see the module docstring.

    *progress* receives the build's records as :class:`~aiopod.build.progress.Reporter`
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
