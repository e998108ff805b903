"""The ``aiopod`` command: podman's spelling, output and exit codes.

Each command is a thin wrapper around the public API: it opens a :class:`Runtime` on
the store given by ``--root``, awaits one call under ``anyio.run`` (the CLI is the only
place that starts an event loop) and prints the result.  Errors print ``Error: <message>``
on stderr and exit with the code :mod:`aiopod.cli.exit_codes` gives their class (1 image
not known, 2 in use, 125 otherwise).
The command line itself is read, and its mistakes reported, as podman's
(:mod:`aiopod.cli.usage`).

Signals: SIGINT, SIGTERM and SIGHUP all stop a command the same way: the call is
cancelled (a build kills its RUN and removes its working containers, a load or save
drops what it staged; a change that has started committing is finished first) and the
command exits ``128 + N`` (130, 143, 129), as a shell reports a process the signal
killed.  While that clean-up runs, a second signal is no longer caught: it takes its
default action (a second Ctrl-C raises ``KeyboardInterrupt``, exit 130).  What a killed
command leaves behind is found by ``aiopod system check``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import anyio.abc
import click

from aiopod.cli.exit_codes import OTHER_ERROR, exit_code_of
from aiopod.cli.usage import CommandLineError, PodmanCommand, scan
from aiopod.errors import AiopodError, CommitUnfinished

if TYPE_CHECKING:
    from aiopod import Runtime

__all__ = ("CliContext", "cli", "fail", "main", "run")

T = TypeVar("T")

#: The modules that define the commands (each registers its own on import), imported
#: only when the command line names one of their commands: ``aiopod build`` loads
#: neither the image transports nor the event formats.  A name missing here makes every
#: module load, so a new command works before it is listed.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "build": ("build_commands",),
    "create": ("container_commands",),
    "from": ("container_commands",),
    "rm": ("container_commands",),
    "ps": ("container_commands",),
    "events": ("event_commands",),
    "history": ("report_commands",),
    "images": ("image_commands",),
    "image": ("image_commands", "removal_commands", "report_commands"),
    "info": ("report_commands",),
    "inspect": ("image_commands",),
    "tag": ("image_commands",),
    "untag": ("image_commands",),
    "load": ("image_commands",),
    "login": ("registry_commands",),
    "logout": ("registry_commands",),
    "save": ("image_commands",),
    "import": ("image_commands",),
    "rmi": ("removal_commands",),
    "system": ("system_commands", "report_commands"),
    "pull": ("pull_push_commands",),
    "push": ("pull_push_commands",),
}
ALL_COMMAND_MODULES = tuple(sorted({m for ms in COMMAND_MODULES.values() for m in ms}))


def load_commands(modules: Sequence[str] = ALL_COMMAND_MODULES) -> None:
    """Import command modules of :mod:`aiopod.cli` (registering their commands)."""
    for module in modules:
        importlib.import_module(f"aiopod.cli.{module}")


class CliContext:
    """What the top-level options chose (``None``: the runtime's default)."""

    def __init__(
        self,
        root: str | None,
        policy: str,
        *,
        max_layer_size: int | None = None,
        max_layer_ratio: float | None = None,
        allow_special_files: bool = False,
        create: bool = False,
        read_only: bool = False,
        additional_stores: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.create = create
        self.read_only = read_only
        self.additional_stores = tuple(additional_stores)
        self.policy = policy
        self.max_layer_size = max_layer_size
        self.max_layer_ratio = max_layer_ratio
        self.allow_special_files = allow_special_files

    def runtime(self) -> Runtime:
        """A runtime on the chosen store."""
        from aiopod import Runtime

        limits: dict[str, Any] = {}
        if self.max_layer_size is not None:
            limits["max_layer_size"] = self.max_layer_size
        if self.max_layer_ratio is not None:  # 0 on the command line: no limit
            limits["max_layer_ratio"] = self.max_layer_ratio or None
        return Runtime(
            root=self.root,
            policy=self.policy,  # type: ignore[arg-type]
            allow_special_files=self.allow_special_files,
            create=self.create,
            read_only=self.read_only,
            additional_stores=self.additional_stores,
            **limits,
        )


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ByteSize(click.ParamType[int]):
    """A number of bytes, with an optional binary unit: ``1073741824``, ``512m``, ``64GiB``."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removesuffix("b").removesuffix("i")
        number, unit = (text[:-1], text[-1]) if text[-1:] in "kmgt" else (text, "")
        try:
            size = int(float(number) * _SIZE_UNITS[unit])
        except ValueError:
            self.fail(f"{value!r} is not a size (bytes, or a number with k, m, g or t)", param, ctx)
        if size <= 0:
            self.fail(f"{value!r} is not a positive size", param, ctx)
        return size


#: The signals that stop a command as Ctrl-C does (see the module's docstring).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def fail(message: str, code: int = OTHER_ERROR) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with *code*.

    A standard error that cannot be written (the terminal hung up) does not change the
    exit code."""
    with contextlib.suppress(OSError):
        click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Print a warning as podman prints its own: ``WARNING: message`` on stderr (a change
    that was made but left a step to recovery, :class:`~aiopod.errors.CommitUnfinished`),
    each text once (a command that opens the store twice meets the same one twice)."""
    text = f"WARNING: {message}"
    if text in _SHOWN:
        return
    _SHOWN.add(text)
    with contextlib.suppress(OSError):
        click.echo(text, err=True)


_SHOWN: set[str] = set()


class _Stopped(Exception):
    """A stop signal cancelled the command's call."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


async def _until_stopped(call: Callable[[], Awaitable[T]]) -> T:
    """Await *call*; the first of :data:`STOP_SIGNALS` cancels it.

    Raises :class:`_Stopped` when the signal came before *call* returned (whatever
    *call* raised while being cancelled is chained to it); a call that finished anyway
    (its commit was shielded) returns its result.  Once a signal has arrived the
    signals are no longer caught, so a second one takes its default action.
    """
    stopped: list[int] = []
    result: list[T] = []

    async def watch(scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            task_status.started()
            async for signum in signals:
                stopped.append(signum)
                scope.cancel()
                return

    try:
        async with anyio.create_task_group() as group:
            await group.start(watch, group.cancel_scope)
            result.append(await call())
            group.cancel_scope.cancel()
    except BaseException as exc:
        if stopped and not result:
            raise _Stopped(stopped[0]) from exc
        if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            raise exc.exceptions[0] from None  # the call's own error (the watcher raises none)
        raise
    if not result:
        raise _Stopped(stopped[0])
    return result[0]


def run(
    ctx: CliContext,
    func: Callable[[Runtime], Awaitable[T]],
    *,
    prefix: str = "",
    exit_code: int | None = None,
    ends_on_signal: bool = False,
) -> T:
    """Open the runtime, await ``func(runtime)``, turn aiopod errors into exit codes
    (:func:`~aiopod.cli.exit_codes.exit_code_of`).

    *exit_code*, when given, is the status of every aiopod error instead (podman's
    ``tag``, ``untag`` and ``save`` exit 125 even for "image not known").

    A stop signal cancels the call and exits ``128 + N``; with *ends_on_signal* it is
    the command's normal end instead, exit 0 (``events --stream`` follows until then).
    """

    async def body() -> T:
        async with ctx.runtime() as rt:
            return await func(rt)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", CommitUnfinished)
            warnings.showwarning = _show_warning
            return anyio.run(_until_stopped, body)
    except _Stopped as stop:
        if ends_on_signal:
            sys.exit(0)
        fail(f"interrupted by {signal.Signals(stop.signum).name}", 128 + stop.signum)
    except AiopodError as exc:
        fail(prefix + exc.message, exit_code_of(exc) if exit_code is None else exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 128 + signal.SIGINT)
    except OSError as exc:
        fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except Exception as exc:
        if os.environ.get("AIOPOD_DEBUG"):
            raise
        fail(f"internal error ({type(exc).__name__}: {exc}); set AIOPOD_DEBUG=1 for a traceback")


class PodmanGroup(click.Group):
    """A group that reports usage errors as podman does (:mod:`aiopod.cli.usage`), and
    imports a command's module only when the command is used (:data:`COMMAND_MODULES`).

    Its commands are :class:`~aiopod.cli.usage.PodmanCommand`, its groups its own kind.
    """

    command_class = PodmanCommand
    group_class = type

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        scanned = scan(self, ctx, args, interspersed=False)
        if not scanned.positional and not scanned.stopped:
            click.echo(ctx.get_help())
            raise CommandLineError(f"missing command '{ctx.command_path} COMMAND'")
        return super().parse_args(ctx, scanned.argv)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if self.get_command(ctx, args[0]) is None:
            raise CommandLineError(
                f"unrecognized command `{ctx.command_path} {args[0]}`\n"
                f"Try '{ctx.command_path} --help' for more information"
            )
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            load_commands(COMMAND_MODULES.get(cmd_name, ALL_COMMAND_MODULES))
        if cmd_name not in self.commands:
            load_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)

    def main(self, args: Sequence[str] | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().main(args=args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            fail(exc.format_message())
        except click.exceptions.Abort:
            fail("interrupted", 130)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message())


@click.group(cls=PodmanGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    envvar="AIOPOD_ROOT",
    metavar="DIR",
    help="Store directory (default $AIOPOD_ROOT, $XDG_DATA_HOME/aiopod or ~/.local/share/aiopod).",
)
@click.option(
    "--policy",
    type=click.Choice(["libpod", "podman", "docker"]),
    default="libpod",
    show_default=True,
    help="Removal policy.",
)
@click.option(
    "--max-layer-size",
    type=ByteSize(),
    envvar="AIOPOD_MAX_LAYER_SIZE",
    metavar="SIZE",
    help="Refuse a layer that inflates past SIZE (default 64g).",
)
@click.option(
    "--max-layer-ratio",
    type=click.FloatRange(min=0),
    envvar="AIOPOD_MAX_LAYER_RATIO",
    metavar="N",
    help="Refuse a layer that inflates past N times its compressed size once past 1 GiB "
    "(default 1000; 0: no limit).",
)
@click.option(
    "--allow-special-files",
    is_flag=True,
    envvar="AIOPOD_ALLOW_SPECIAL_FILES",
    help="Make the device nodes and FIFOs of layers in root file systems.",
)
@click.option(
    "--create",
    is_flag=True,
    help="Make the store in a directory that is not empty (a missing or empty one needs "
    "no asking).",
)
@click.option(
    "--read-only",
    is_flag=True,
    envvar="AIOPOD_READ_ONLY",
    help="Open the store for reading only (automatic when it is not writable).",
)
@click.option(
    "--additional-store",
    "additional_stores",
    multiple=True,
    envvar="AIOPOD_ADDITIONAL_STORES",
    metavar="DIR",
    help="A read-only aiopod store whose images are usable too (podman's "
    "additionalimagestores); repeatable.",
)
@click.version_option(package_name="aiopod")
@click.pass_context
def cli(
    ctx: click.Context,
    root: str | None,
    policy: str,
    max_layer_size: int | None,
    max_layer_ratio: float | None,
    allow_special_files: bool,
    create: bool,
    read_only: bool,
    additional_stores: tuple[str, ...],
) -> None:
    """aiopod: a daemonless store of OCI images, driven like podman."""
    ctx.obj = CliContext(
        root,
        policy,
        max_layer_size=max_layer_size,
        max_layer_ratio=max_layer_ratio,
        allow_special_files=allow_special_files,
        create=create,
        read_only=read_only,
        additional_stores=additional_stores,
    )


def program_name() -> str:
    """The name this program was started by, as podman names itself in its messages:
    ``aiopod`` for ``python -m aiopod``, ``podman`` for a link called so."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return "aiopod" if not name or name.endswith(".py") or name == "-c" else name


#: Modules the command line never uses that importing httpx would load (40-140 ms of
#: every pull, push and login): trio, which httpcore imports to serve trio event loops (the
#: command line runs on asyncio), and httpx's own command line (it imports rich).
UNUSED_IMPORTS = ("trio", "httpx._main")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (commands are imported as they are used).

    Started as a program (*argv* ``None``), it first keeps :data:`UNUSED_IMPORTS` out of
    the process (an import of them then fails, and httpx and httpcore do without)."""
    if argv is None:
        for name in UNUSED_IMPORTS:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    cli.main(args=list(argv) if argv is not None else None, prog_name=program_name())
