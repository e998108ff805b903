"""``build``: a Dockerfile build into the store, with podman's step output."""

from __future__ import annotations

import os
import sys

import click

from aiopod.cli.app import CliContext, cli, fail, run

pass_cli = click.make_pass_decorator(CliContext)


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    args: dict[str, str] = {}
    for value in values:
        key, eq, rest = value.partition("=")
        if not key:
            fail(f"invalid --build-arg {value!r}: use KEY=VALUE")
        if not eq:
            if key not in os.environ:
                continue
            rest = os.environ[key]
        args[key] = rest
    return args


@cli.command("build")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME", help="Name the image.")
@click.option("-f", "--file", "dockerfile", default=None, metavar="FILE", help="The Dockerfile.")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="A build argument.")
@click.option("--layers", is_flag=True, help="Commit every step; reuse cached steps.")
@click.option("--timestamp", type=int, default=None, metavar="N", help="Created time (seconds).")
@click.option("--target", default=None, metavar="STAGE", help="Stop at this stage.")
@click.option("--no-cache", is_flag=True, help="Do not reuse cached steps.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.argument("context", default=".")
@pass_cli
def build_command(
    ctx: CliContext,
    tags: tuple[str, ...],
    dockerfile: str | None,
    build_args: tuple[str, ...],
    layers: bool,
    timestamp: int | None,
    target: str | None,
    no_cache: bool,
    quiet: bool,
    context: str,
) -> None:
    """Build an image from a Dockerfile in CONTEXT."""

    def progress(text: str) -> None:
        if not quiet:
            sys.stdout.write(text)
            sys.stdout.flush()

    image = run(
        ctx,
        lambda rt: rt.build(
            context,
            dockerfile=dockerfile,
            tags=tags,
            build_args=_build_args(build_args),
            layers=layers,
            timestamp=timestamp,
            target=target,
            no_cache=no_cache,
            progress=progress,
        ),
    )
    if not quiet:
        for name in image.names:
            click.echo(f"Successfully tagged {name}")
    click.echo(image.id)
