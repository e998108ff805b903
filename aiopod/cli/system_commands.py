"""System commands: ``system check [--repair]``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from aiopod.cli.app import CliContext, cli, run

if TYPE_CHECKING:
    from aiopod import CheckReport, Runtime
from aiopod.cli.usage import no_args

pass_cli = click.make_pass_decorator(CliContext)


@cli.group("system")
def system_group() -> None:
    """Manage the store."""


@system_group.command("check", args_rule=no_args)
@click.option("-r", "--repair", is_flag=True, help="Fix what is wrong (removes damaged images).")
@pass_cli
def check_command(ctx: CliContext, repair: bool) -> None:
    """Verify blobs, metadata and layout; report (and with --repair fix) problems."""
    from aiopod.cli.progress_display import transfer_display

    async def check(rt: Runtime) -> CheckReport:
        # A bar of the blobs' bytes verified on a terminal; podman's check prints nothing.
        with transfer_display(sys.stderr) as progress:
            return await rt.check(repair=repair, progress=progress)

    report = run(ctx, check)
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    for action in report.repaired:
        click.echo(f"repaired: {action}")
    if report.ok:
        click.echo("store is consistent")
    elif not repair:
        sys.exit(1)
