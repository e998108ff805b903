"""System commands: ``system check [--repair]``."""

from __future__ import annotations

import sys

import click

from aiopod.cli.app import CliContext, cli, run
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
    report = run(ctx, lambda rt: rt.check(repair=repair))
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    for action in report.repaired:
        click.echo(f"repaired: {action}")
    if report.ok:
        click.echo("store is consistent")
    elif not repair:
        sys.exit(1)
