"""The ``RUN`` step of a build: the command in the stage's working container, its layer.

:func:`run_step` expands the step's mounts, asks the session's layer cache, runs the
command with :func:`~aiopod.builder.run.isolation.run_isolated` (its output goes to the
session's progress), removes the mount points the runner made (as buildah: they are in
no layer) and records the layer of what the command changed.

Cancellation: the running command's process tree is killed; no layer is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio.to_thread

from aiopod.builder.dockerfile.instructions import run_command, run_history_text
from aiopod.builder.dockerfile.parser import Instruction
from aiopod.builder.run.isolation import run_isolated
from aiopod.builder.run.mounts import parse_run_mounts, prepared_mounts, remove_mount_points
from aiopod.builder.session import BuildSession, StageRun
from aiopod.errors import BuildError

__all__ = ("PROXY_ARGS", "run_step")

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


async def run_step(
    session: BuildSession,
    run: StageRun,
    instruction: Instruction,
    env: Mapping[str, str],
    created: str,
    *,
    escape: str,
) -> None:
    """Run one ``RUN`` (see the module docstring); *env* holds the variables its words
    expand, *escape* is the Dockerfile's escape character."""
    for flag, _ in instruction.flags:  # never run a step without what it asks for
        if flag != "mount":
            raise BuildError(f"RUN --{flag} is not supported by this builder yet")
    mounts = parse_run_mounts(instruction, env, escape=escape)
    await session.ready(run)
    command = run_command(run.config, instruction)
    # buildah's history (and cache key) is the text after "RUN" as written, flags
    # included (node.Original[4:]); without flags that is the command's text.
    text = instruction.original[4:] if instruction.flags else command.text
    config_env = run.config.env_map()
    # The ARGs in scope for RUN's history, an ENV of the same name winning (buildah).
    history_args = [(k, config_env.get(k, v)) for k, v in run.args.items()]
    created_by = run_history_text(text, history_args)
    if await session.use_cache(run, created_by, adds_layer=True):
        return
    before = await session.snapshot(run)
    run_env = dict(config_env)
    for key, value in run.args.items():
        run_env.setdefault(key, value)
    build_args = session.options.build_args
    for key in PROXY_ARGS:  # given with --build-arg, they need no ARG (nor history)
        if key in build_args:
            run_env.setdefault(key, build_args[key])
    reporter = session.reporter
    async with prepared_mounts(session, mounts) as run_mounts:
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
            f'building at STEP "RUN {text}": while running runtime: exit status {result.exit_code}',
            command_status=result.exit_code,
            output_tail=result.output_tail,
        )
    write = run.diff_writer(before, timestamp=session.options.timestamp)
    await session.add_layer(run, created, created_by, write)
