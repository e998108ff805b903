"""Which stages a build runs, and the global ``ARG`` values their ``FROM`` lines see.

Pure functions of the parsed Dockerfile and the build's options (no I/O):
:func:`plan_stages` picks the target (``--target``, else the last stage), evaluates the
global ``ARG`` instructions (those before the first ``FROM``) with ``--build-arg``
values, and finds the stages the target needs: its base and every stage a ``COPY
--from`` or ``RUN --mount ...,from=`` names, recursively, in file order.  A stage named
by a later stage's ``FROM`` is a *base stage*: podman shows its image ID when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiopod._platforms import local_architecture
from aiopod.builder.dockerfile.parser import Dockerfile, Stage
from aiopod.builder.dockerfile.words import expand, parse_arg_definitions
from aiopod.builder.run.mounts import mount_stage_refs
from aiopod.errors import BuildError, DockerfileError, ExpansionError

__all__ = ("StagePlan", "from_env", "plan_stages", "platform_args")


def platform_args() -> dict[str, str]:
    """The platform ARGs every build knows (build and target platform: this machine's)."""
    arch = local_architecture()
    args: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        args[f"{prefix}PLATFORM"] = f"linux/{arch}"
        args[f"{prefix}OS"] = "linux"
        args[f"{prefix}ARCH"] = arch
        args[f"{prefix}VARIANT"] = ""
    return args


def from_env(global_args: Mapping[str, str]) -> dict[str, str]:
    """The variables a ``FROM`` line can use: the platform ARGs and the global ARGs."""
    return {**platform_args(), **global_args}


@dataclass(frozen=True)
class StagePlan:
    """The stages of one build."""

    target: Stage
    global_args: Mapping[str, str]
    """The global ARGs' values (``--build-arg`` wins over a default)."""
    needed: tuple[int, ...]
    """The indexes of the stages to build, in file order (the target last)."""
    base_stages: frozenset[int]
    """The needed stages a later needed stage names in its ``FROM``."""

    @property
    def count(self) -> int:
        """Stages up to the target (podman's ``[stage/count]``)."""
        return self.target.index + 1


def plan_stages(
    dockerfile: Dockerfile, *, target: str | None, build_args: Mapping[str, str]
) -> StagePlan:
    """The :class:`StagePlan` of *dockerfile* (see the module docstring).

    :raises BuildError: *target* names no stage.
    :raises DockerfileError: a global ARG cannot be expanded.
    """
    chosen = _target(dockerfile, target)
    values = _global_args(dockerfile, build_args)
    needed = _needed_stages(dockerfile, chosen, values)
    return StagePlan(chosen, values, needed, _base_stages(dockerfile, needed, values))


def _target(dockerfile: Dockerfile, target: str | None) -> Stage:
    if target is None:
        return dockerfile.stages[-1]
    found = dockerfile.find_stage(target)
    if found is None:
        raise BuildError(f'the target "{target}" was not found')
    return found


def _global_args(dockerfile: Dockerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in dockerfile.global_args:
        try:
            pairs = parse_arg_definitions(instruction.args, values, escape=dockerfile.escape)
        except ExpansionError as exc:
            raise DockerfileError(str(exc), path=dockerfile.path, line=instruction.line) from None
        for key, value in pairs:
            given = build_args.get(key, value)
            if given is not None:
                values[key] = given
    return values


def _earlier_stage(
    dockerfile: Dockerfile, stage: Stage, text: str, global_args: Mapping[str, str]
) -> Stage | None:
    """The stage before *stage* that *text* (expanded with the global ARGs) names."""
    try:
        found = dockerfile.find_stage(expand(text, from_env(global_args)))
    except ExpansionError:
        return None
    return found if found is not None and found.index < stage.index else None


def _needed_stages(
    dockerfile: Dockerfile, target: Stage, global_args: Mapping[str, str]
) -> tuple[int, ...]:
    needed: set[int] = set()
    pending = [target]
    while pending:
        stage = pending.pop()
        if stage.index in needed:
            continue
        needed.add(stage.index)
        refs = [stage.base]
        for instruction in stage.instructions:
            refs.extend(mount_stage_refs(instruction))  # RUN --mount=...,from=<stage>
            if instruction.keyword == "COPY" and instruction.flag("from") is not None:
                refs.append(instruction.flag("from") or "")
        for ref in refs:
            found = _earlier_stage(dockerfile, stage, ref, global_args)
            if found is not None:
                pending.append(found)
    return tuple(sorted(needed))


def _base_stages(
    dockerfile: Dockerfile, needed: tuple[int, ...], global_args: Mapping[str, str]
) -> frozenset[int]:
    bases = set()
    for index in needed:
        stage = dockerfile.stages[index]
        base = _earlier_stage(dockerfile, stage, stage.base, global_args)
        if base is not None:
            bases.add(base.index)
    return frozenset(bases)
