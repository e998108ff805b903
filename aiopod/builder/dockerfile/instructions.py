"""The metadata instructions of a Dockerfile: how each changes the image config.

ENV, LABEL, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK,
ONBUILD, MAINTAINER and the config part of WORKDIR, with the semantics buildah 1.28
implements (observed with ``buildah bud``).  Pure: the file-system side of WORKDIR,
and RUN, COPY and ADD, are the executor's.
"""

from __future__ import annotations

import posixpath
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiopod.builder.dockerfile.parser import Instruction, parse_heredoc_marker
from aiopod.builder.dockerfile.words import expand, expand_words, parse_key_values
from aiopod.builder.image_config import ImageConfig
from aiopod.errors import DockerfileError

__all__ = ("METADATA_INSTRUCTIONS", "RunCommand", "apply_metadata", "run_command", "shell_form")

METADATA_INSTRUCTIONS = frozenset(
    {
        "ENV",
        "LABEL",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "VOLUME",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "ONBUILD",
        "MAINTAINER",
    }
)

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def shell_form(config: ImageConfig, text: str) -> list[str]:
    """The argv of a shell-form command: the SHELL (default ``/bin/sh -c``) plus *text*."""
    shell = config.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, text]


@dataclass(frozen=True, slots=True)
class RunCommand:
    """What a RUN executes: ``argv``, the ``text`` its history records, and ``script``,
    ``(name, content)`` of a heredoc to provide as the executable ``/dev/pipes/<name>``
    (``argv`` is then that path)."""

    argv: list[str]
    text: str
    script: tuple[str, str] | None = None


def run_command(config: ImageConfig, instruction: Instruction) -> RunCommand:
    """The command of a RUN, heredocs included, as BuildKit builds it.

    * exec form: the strings as they are;
    * ``RUN <<EOF`` alone: the document is the shell command (leading tabs stripped for
      ``<<-``), or, when it starts with ``#!``, a script run by its own interpreter;
    * heredocs after a command (``RUN cat <<EOF > /f``, several documents): the line and
      every document with its delimiter line, given to the shell to read.
    """
    if instruction.json_args is not None:
        argv = list(instruction.json_args)
        return RunCommand(argv, "[" + ", ".join(f'"{a}"' for a in argv) + "]")
    text = instruction.args
    if not instruction.heredocs:
        return RunCommand(shell_form(config, text), text)
    single = text.strip().startswith("<<") and len(text.split("<<")) == 2
    if single and parse_heredoc_marker(text.strip()) is not None:
        document = instruction.heredocs[0]
        if document.body.startswith("#!"):
            path = f"/dev/pipes/{document.name}"
            return RunCommand([path], text, (document.name, document.body))
        return RunCommand(shell_form(config, document.content), text)
    full = text + "".join(f"\n{doc.body}{doc.name}" for doc in instruction.heredocs)
    return RunCommand(shell_form(config, full), text)


def _command(instruction: Instruction) -> list[str]:
    """CMD and ENTRYPOINT: the exec form as is, the shell form wrapped in ``/bin/sh -c``
    whatever SHELL says (buildah 1.28's imagebuilder; SHELL changes only RUN there)."""
    if instruction.json_args is not None:
        return list(instruction.json_args)
    return ["/bin/sh", "-c", instruction.args]


def _duration_ns(text: str, instruction: Instruction, flag: str, path: str) -> int:
    if not _DURATION.fullmatch(text):
        raise _error(instruction, f"invalid duration {text!r} for --{flag}", path)
    return int(
        sum(
            float(n) * _UNIT_NS[u]
            for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
        )
    )


def _error(instruction: Instruction, message: str, path: str) -> DockerfileError:
    return DockerfileError(f"{instruction.keyword}: {message}", path=path, line=instruction.line)


def _healthcheck(
    config: ImageConfig, instruction: Instruction, env: Mapping[str, str], path: str
) -> None:
    words = instruction.args.split(None, 1)
    if not words:
        raise _error(instruction, "requires an argument", path)
    kind = words[0].upper()
    if kind == "NONE":
        config.set("Healthcheck", {"Test": ["NONE"]})
        return
    if kind != "CMD":
        raise _error(instruction, f"unknown type {words[0]!r}: use CMD or NONE", path)
    rest = words[1] if len(words) > 1 else ""
    if instruction.json_args is not None:
        test = ["CMD", *instruction.json_args]
    else:
        test = ["CMD-SHELL", rest]
    check: dict[str, object] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        value = instruction.flag(flag)
        if value is not None:
            check[key] = _duration_ns(expand(value, env), instruction, flag, path)
    retries = instruction.flag("retries")
    if retries is not None:
        if not retries.isdigit() or int(retries) < 1:
            raise _error(instruction, "--retries must be at least 1", path)
        check["Retries"] = int(retries)
    config.set("Healthcheck", check)


def _stop_signal(value: str, instruction: Instruction, path: str) -> str:
    name = value.upper()
    if name.isdigit() and 0 < int(name) < 65:
        return value
    bare = name.removeprefix("SIG")
    if bare.startswith("RTMIN") or bare.startswith("RTMAX") or hasattr(signal, "SIG" + bare):
        return value
    raise _error(instruction, f"invalid signal: {value}", path)


def apply_metadata(
    config: ImageConfig,
    instruction: Instruction,
    env: Mapping[str, str],
    *,
    cmd_set_in_stage: bool,
    path: str = "Dockerfile",
) -> None:
    """Apply one metadata instruction to *config*, expanding with *env* where Docker does.

    ``cmd_set_in_stage`` tells ENTRYPOINT whether a CMD of this stage must be kept (an
    inherited CMD is cleared by ENTRYPOINT).  Errors are :class:`DockerfileError` naming
    *path* and the instruction's line.
    """
    keyword, args = instruction.keyword, instruction.args
    if keyword == "ENV":
        for key, value in parse_key_values(args, env, instruction="ENV"):
            config.set_env(key, value)
    elif keyword == "LABEL":
        labels = dict(config.get("Labels") or {})
        for key, value in parse_key_values(args, env, instruction="LABEL"):
            labels[key] = value
        config.set("Labels", labels)
    elif keyword == "MAINTAINER":
        config.author = expand(args, env)
    elif keyword == "WORKDIR":
        path = expand(args, env)
        config.set(
            "WorkingDir", posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))
        )
    elif keyword == "USER":
        config.set("User", expand(args, env))
    elif keyword == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for port in expand_words(args, env):
            ports[port if "/" in port else f"{port}/tcp"] = {}
        config.set("ExposedPorts", ports)
    elif keyword == "VOLUME":
        volumes = dict(config.get("Volumes") or {})
        paths = (
            list(instruction.json_args)
            if instruction.json_args is not None
            else expand_words(args, env)
        )
        for path in paths:
            volumes[path] = {}
        config.set("Volumes", volumes)
    elif keyword == "CMD":
        config.set("Cmd", _command(instruction))
    elif keyword == "ENTRYPOINT":
        command = _command(instruction)
        config.set("Entrypoint", command or None)
        if not cmd_set_in_stage:
            config.set("Cmd", None)
    elif keyword == "SHELL":
        if instruction.json_args is None:
            raise _error(instruction, "requires the arguments to be in JSON form", path)
        config.set("Shell", list(instruction.json_args))
    elif keyword == "STOPSIGNAL":
        config.set("StopSignal", _stop_signal(expand(args, env), instruction, path))
    elif keyword == "HEALTHCHECK":
        _healthcheck(config, instruction, env, path)
    elif keyword == "ONBUILD":
        triggers = list(config.get("OnBuild") or [])
        triggers.append(args)
        config.set("OnBuild", triggers)
    else:  # pragma: no cover - the executor dispatches only METADATA_INSTRUCTIONS here
        raise _error(instruction, "is not a metadata instruction", path)


def history_text(instruction: Instruction) -> str:
    """``created_by`` of a metadata instruction: ``/bin/sh -c #(nop) <original>``."""
    return f"/bin/sh -c #(nop) {instruction.original}"


def run_history_text(text: str, build_args: Sequence[tuple[str, str]]) -> str:
    """``created_by`` of a RUN: ``|n k=v … /bin/sh -c <text>`` when build args are in scope."""
    prefix = ""
    if build_args:
        pairs = " ".join(f"{k}={v}" for k, v in sorted(build_args))
        prefix = f"|{len(build_args)} {pairs} "
    return f"{prefix}/bin/sh -c {text}"
