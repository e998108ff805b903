"""``pull`` and ``push``: images from and to repositories, with podman's output.

Progress goes to standard error (:mod:`aiopod.cli.progress_display`): bars for the blobs
when that is a terminal, else podman's lines (``Trying to pull …``, ``Getting image source
signatures``, ``Copying blob …``, ``Copying config …``, ``Writing manifest to image
destination``, ``Storing signatures``); ``-q`` silences it.  ``pull`` prints each image's
full ID on standard output.  Every failure exits 125 with one ``Error: …`` line, as
podman's ``pull`` and ``push`` do (even for an image the source does not have).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import click

from aiopod.cli.app import CliContext, cli, fail, run
from aiopod.cli.exit_codes import OTHER_ERROR
from aiopod.cli.progress_display import transfer_display
from aiopod.cli.registry_options import check_authfile, read_creds, registry_options
from aiopod.cli.usage import at_least, between

if TYPE_CHECKING:
    from aiopod.transports.registry.push import Compression

pass_cli = click.make_pass_decorator(CliContext)


def _registry_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``pull`` and ``push`` share (podman's spellings)."""
    options = [
        click.option("--retry", type=int, default=3, metavar="N", help="Attempts on failure."),
        click.option("-q", "--quiet", is_flag=True, help="Suppress progress output."),
    ]
    for option in reversed(options):
        func = option(func)
    return registry_options(func)


def _platform(platform: str | None, arch: str | None, os: str | None, variant: str | None) -> str:
    from aiopod._platforms import local_architecture

    if platform is not None:
        if arch is not None or os is not None:
            fail("--platform option can not be specified with --arch or --os")
        return platform
    text = f"{os or 'linux'}/{arch or local_architecture()}"
    return f"{text}/{variant}" if variant else text


@cli.command("pull", args_rule=at_least(1))
@_registry_options
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]", help="Platform to pull.")
@click.option("--arch", default=None, metavar="ARCH", help="Architecture to pull.")
@click.option("--os", "os_name", default=None, metavar="OS", help="Operating system to pull.")
@click.option("--variant", default=None, metavar="VARIANT", help="Architecture variant.")
@click.argument("references", nargs=-1)
@pass_cli
def pull_command(
    ctx: CliContext,
    tls_verify: bool | None,
    creds: str | None,
    authfile: str | None,
    cert_dir: str | None,
    retry: int,
    quiet: bool,
    platform: str | None,
    arch: str | None,
    os_name: str | None,
    variant: str | None,
    references: tuple[str, ...],
) -> None:
    """Pull images into the store (REFERENCE: oci:PATH[:REFERENCE])."""
    check_authfile(authfile)
    credentials = read_creds(creds)
    chosen = None
    if platform or arch or os_name or variant:
        chosen = _platform(platform, arch, os_name, variant)

    async def pull_all(rt: Any) -> list[str]:
        ids = []
        for reference in references:
            with transfer_display(sys.stderr, quiet=quiet) as progress:
                image = await rt.pull(
                    reference,
                    platform=chosen,
                    tls_verify=tls_verify,
                    credentials=credentials,
                    authfile=authfile,
                    cert_dir=cert_dir,
                    retry=retry,
                    progress=progress,
                )
            click.echo(image.id)
            ids.append(image.id)
        return ids

    run(ctx, pull_all, exit_code=OTHER_ERROR)


@cli.command("push", args_rule=between(1, 2))
@_registry_options
@click.option(
    "--compression-format",
    type=click.Choice(["gzip", "zstd"]),
    default=None,
    help="Compress every layer with this (default: gzip the uncompressed ones).",
)
@click.option("--digestfile", default=None, metavar="FILE", help="Write the digest here.")
@click.argument("image")
@click.argument("destination", required=False)
@pass_cli
def push_command(
    ctx: CliContext,
    tls_verify: bool | None,
    creds: str | None,
    authfile: str | None,
    cert_dir: str | None,
    retry: int,
    quiet: bool,
    compression_format: str | None,
    digestfile: str | None,
    image: str,
    destination: str | None,
) -> None:
    """Push an image to DESTINATION (oci:PATH[:TAG]; default: its own name)."""
    check_authfile(authfile)
    credentials = read_creds(creds)

    async def push(rt: Any) -> None:
        with transfer_display(sys.stderr, quiet=quiet) as progress:
            await rt.push(
                image,
                destination,
                compression=cast("Compression | None", compression_format),
                tls_verify=tls_verify,
                credentials=credentials,
                authfile=authfile,
                cert_dir=cert_dir,
                retry=retry,
                digestfile=digestfile,
                progress=progress,
            )

    run(ctx, push, exit_code=OTHER_ERROR)
