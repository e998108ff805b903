"""Reports on the store: ``image tree``."""

from __future__ import annotations

import click

from aiopod.cli.app import CliContext, run
from aiopod.cli.exit_codes import OTHER_ERROR
from aiopod.cli.image_commands import image_group
from aiopod.cli.usage import exactly

pass_cli = click.make_pass_decorator(CliContext)


@image_group.command("tree", args_rule=exactly(1))
@click.option("--whatrequires", is_flag=True, help="Show the layers built on the image.")
@click.argument("image")
@pass_cli
def tree_command(ctx: CliContext, whatrequires: bool, image: str) -> None:
    """Draw an image's layers as a tree."""
    # podman exits 125 for every error here, "image not known" too.
    tree = run(
        ctx, lambda rt: rt.image_tree(image, what_requires=whatrequires), exit_code=OTHER_ERROR
    )
    click.echo(str(tree))
