"""Removal commands: ``rmi`` (``image rm``) and ``image prune``.

``rmi -a`` draws progress bars (``Removing containers``, ``Removing images``) on a
standard error that is a terminal (:mod:`aiopod.cli.progress_display`) and prints
nothing more elsewhere, as podman."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from aiopod import DeleteImage, RemovalReport, Untag
from aiopod.cli.app import CliContext, cli, run
from aiopod.cli.image_commands import image_group
from aiopod.cli.usage import no_args
from aiopod.errors import AiopodError
from aiopod.removal.docker import familiar_name

if TYPE_CHECKING:
    from aiopod import RemovalRecord, Runtime

__all__ = ("print_errors",)

pass_cli = click.make_pass_decorator(CliContext)


def print_errors(errors: Sequence[AiopodError]) -> None:
    """podman's error block: ``Error: msg``, or ``Error: N errors occurred:`` and a
    ``\\t* msg`` line per error."""
    if len(errors) == 1:
        click.echo(f"Error: {errors[0].message}", err=True)
    elif errors:
        lines = "".join(f"\n\t* {e.message}" for e in errors)
        click.echo(f"Error: {len(errors)} errors occurred:{lines}", err=True)


def _finish_docker(report: RemovalReport) -> None:
    """docker's ``rmi`` output: the lines in the order things happened (a layer's chain
    ID after its image), then every error, ``Error response from daemon: <message>``."""
    for step in report.plan.steps if report.plan else ():
        if isinstance(step, Untag):
            click.echo(f"Untagged: {familiar_name(step.name)}")
        elif isinstance(step, DeleteImage) and step.reported:
            click.echo(f"Deleted: sha256:{step.image_id}")
            for chain_id in step.released_layers:
                click.echo(f"Deleted: {chain_id}")
    for error in report.errors:
        click.echo(f"Error response from daemon: {error.message}", err=True)
    sys.exit(report.exit_code)


def _finish(report: RemovalReport) -> None:
    if report.plan is not None and report.plan.policy == "docker":
        _finish_docker(report)
    for name in report.untagged:
        click.echo(f"Untagged: {name}")
    for image_id in report.deleted:
        click.echo(f"Deleted: {image_id}")
    print_errors(report.errors)
    sys.exit(report.exit_code)


def _rmi(
    ctx: CliContext,
    references: tuple[str, ...],
    force: bool,
    all_images: bool,
    ignore: bool,
    no_prune: bool,
    dry_run: bool,
) -> None:
    async def remove(rt: Runtime) -> RemovalReport:
        display: contextlib.AbstractContextManager[Callable[[RemovalRecord], None] | None]
        if all_images and not dry_run:
            # ``rmi -a``: bars on a terminal; elsewhere nothing (podman prints nothing more).
            from aiopod.cli.progress_display import transfer_display

            display = transfer_display(sys.stderr)
        else:
            display = contextlib.nullcontext()
        with display as progress:
            return await rt.remove_images(
                references,
                force=force,
                all=all_images,
                ignore=ignore,
                no_prune=no_prune,
                dry_run=dry_run,
                progress=progress,
            )

    _finish(run(ctx, remove))


_RMI_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("-f", "--force", is_flag=True, help="Remove the containers that use the images."),
    click.option("-a", "--all", "all_images", is_flag=True, help="Remove every image."),
    click.option("-i", "--ignore", is_flag=True, help="Skip images that do not exist."),
    click.option("--no-prune", is_flag=True, help="Keep parents left dangling."),
    click.option("--dry-run", is_flag=True, help="Print what would happen; change nothing."),
    click.argument("references", nargs=-1),
    pass_cli,
]


F = TypeVar("F", bound=Callable[..., None])


def _with_rmi_options(func: F) -> F:
    decorated: Any = func
    for decorator in reversed(_RMI_OPTIONS):
        decorated = decorator(decorated)
    return cast(F, decorated)


@cli.command("rmi")
@_with_rmi_options
def rmi_command(ctx: CliContext, **kwargs: bool | tuple[str, ...]) -> None:
    """Remove images: untag a name, or delete the image (podman's rules)."""
    _rmi(ctx, **kwargs)  # type: ignore[arg-type]


@image_group.command("rm")
@_with_rmi_options
def image_rm_command(ctx: CliContext, **kwargs: bool | tuple[str, ...]) -> None:
    """Remove images (same as ``rmi``)."""
    _rmi(ctx, **kwargs)  # type: ignore[arg-type]


@image_group.command("prune", args_rule=no_args)
@click.option("-a", "--all", "all_images", is_flag=True, help="Every image no container uses.")
@click.option(
    "--external", is_flag=True, help="Also images only external (build) containers use, and those."
)
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def prune_command(ctx: CliContext, all_images: bool, external: bool, force: bool) -> None:
    """Remove dangling images (``-a``: all images without containers)."""
    if not force:
        what = (
            "all images without at least one container associated with them"
            if all_images
            else "all dangling images"
        )
        click.echo(f"WARNING! This command removes {what}.")
        click.echo("Are you sure you want to continue? [y/N] ", nl=False)
        answer = sys.stdin.readline()
        if not answer.strip().lower().startswith("y"):
            return
    report = run(ctx, lambda rt: rt.prune_images(all=all_images, external=external))
    if report.errors:
        # podman prints only the error, not what the prune removed before it.
        print_errors(report.errors[:1])
        sys.exit(125)
    for image_id in report.deleted:
        click.echo(image_id)
