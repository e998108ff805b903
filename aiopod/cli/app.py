"""The ``aiopod`` command: podman's spelling, output and exit codes.

Each command is a thin wrapper around the public API: it opens a :class:`Runtime` on
the store given by ``--root``, awaits one call under ``anyio.run`` (the CLI is the only
place that starts an event loop) and prints the result.  Errors print ``Error: <message>``
on stderr; the exit code is the error's (1 image not known, 2 in use, 125 otherwise).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from aiopod.errors import AiopodError

if TYPE_CHECKING:
    from aiopod.runtime import Runtime

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
    "images": ("image_commands",),
    "image": ("image_commands", "removal_commands"),
    "inspect": ("image_commands",),
    "tag": ("image_commands",),
    "untag": ("image_commands",),
    "load": ("image_commands",),
    "save": ("image_commands",),
    "import": ("image_commands",),
    "rmi": ("removal_commands",),
    "system": ("system_commands",),
}
ALL_COMMAND_MODULES = tuple(sorted({m for ms in COMMAND_MODULES.values() for m in ms}))


def load_commands(modules: Sequence[str] = ALL_COMMAND_MODULES) -> None:
    """Import command modules of :mod:`aiopod.cli` (registering their commands)."""
    for module in modules:
        importlib.import_module(f"aiopod.cli.{module}")


class CliContext:
    """What the top-level options chose."""

    def __init__(self, root: str | None, policy: str) -> None:
        self.root = root
        self.policy = policy

    def runtime(self) -> Runtime:
        """A runtime on the chosen store."""
        from aiopod.runtime import Runtime

        return Runtime(root=self.root, policy=self.policy)  # type: ignore[arg-type]


def fail(message: str, code: int = 125) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with *code*."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def run(
    ctx: CliContext,
    func: Callable[[Runtime], Awaitable[T]],
    *,
    prefix: str = "",
    exit_code: int | None = None,
) -> T:
    """Open the runtime, await ``func(runtime)``, turn aiopod errors into exit codes.

    *exit_code*, when given, is the status of every aiopod error (podman's ``tag`` and
    ``save`` exit 125 even for "image not known"; only ``rmi`` uses 1 and 2).
    """

    import anyio

    async def body() -> T:
        async with ctx.runtime() as rt:
            return await func(rt)

    try:
        return anyio.run(body)
    except AiopodError as exc:
        fail(prefix + exc.message, exc.exit_code if exit_code is None else exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as exc:
        fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except Exception as exc:
        if os.environ.get("AIOPOD_DEBUG"):
            raise
        fail(f"internal error ({type(exc).__name__}: {exc}); set AIOPOD_DEBUG=1 for a traceback")


class PodmanGroup(click.Group):
    """A group that reports usage errors as podman does: ``Error: …``, exit 125, and
    imports a command's module only when the command is used (:data:`COMMAND_MODULES`)."""

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
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(0)
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
@click.version_option(package_name="aiopod")
@click.pass_context
def cli(ctx: click.Context, root: str | None, policy: str) -> None:
    """aiopod: a daemonless store of OCI images, driven like podman."""
    ctx.obj = CliContext(root, policy)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (commands are imported as they are used)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="aiopod")
