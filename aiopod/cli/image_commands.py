"""Image commands: images, image inspect/inspect, tag, untag, load, save, import (each
also under ``image``), image exists."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC
from typing import Any, get_args

import click

from aiopod import Image, Runtime, SaveCompression, SaveFormat
from aiopod._images import images_table, repository_and_tag
from aiopod.cli.app import CliContext, cli, fail, run
from aiopod.cli.exit_codes import OTHER_ERROR
from aiopod.cli.formatting import (
    go_time_string,
    human_duration,
    human_size,
    print_template,
    render_json,
    render_table,
)
from aiopod.cli.templates import GoNilMap, GoStruct, is_json_format
from aiopod.cli.usage import at_least, at_least_or, at_most, between, exactly, no_args
from aiopod.errors import AiopodError
from aiopod.storage.gcpause import paused_gc

pass_cli = click.make_pass_decorator(CliContext)

#: The formats ``save --format`` accepts.
SAVE_FORMATS: tuple[SaveFormat, ...] = get_args(SaveFormat)

#: The compressions ``save --compression-format`` accepts.
SAVE_COMPRESSIONS: tuple[SaveCompression, ...] = get_args(SaveCompression)


def _sorted(images: list[Image]) -> list[Image]:
    # podman sorts by creation time, newest first.
    return sorted(images, key=lambda i: i.created.timestamp() if i.created else 0.0, reverse=True)


def _json_rows(images: list[Image]) -> list[dict[str, Any]]:
    rows = []
    for image in images:
        created = image.created.astimezone(UTC) if image.created else None
        row = {
            "Id": image.id,
            "ParentId": image.parent_id,
            "RepoTags": None,
            "RepoDigests": sorted(image.repo_digests),
            "Size": image.size,
            "SharedSize": 0,
            "VirtualSize": image.size,
            "Labels": dict(image.labels) if image.labels is not None else None,
            "Containers": 0,
            **({"ReadOnly": True} if image.read_only else {}),  # podman's omitempty
            "Names": list(image.names) or None,
            "Digest": image.digest,
            "History": list(image.names_history) or None,
            "Created": int(created.timestamp()) if created else 0,
            "CreatedAt": created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else "",
        }
        if not row["Names"]:
            del row["Names"]
        if not row["History"]:
            del row["History"]
        rows.extend([row] * max(1, len(image.names)))
    return rows


@cli.command("images", args_rule=at_most(1))
@click.option("-a", "--all", "show_all", is_flag=True, help="Show intermediate images too.")
@click.option("-q", "--quiet", is_flag=True, help="Show image IDs only.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate IDs.")
@click.option("--format", "fmt", default=None, help="'json' or a Go template ({{.ID}}).")
@click.option("-n", "--noheading", is_flag=True, help="Do not print the header line.")
@click.argument("reference", required=False)
@pass_cli
def images_command(
    ctx: CliContext,
    show_all: bool,
    quiet: bool,
    no_trunc: bool,
    fmt: str | None,
    noheading: bool,
    reference: str | None,
) -> None:
    """List images in the store."""
    if reference is not None:
        fail(f"listing only the images {reference!r} names is not supported: omit it")
    images = _sorted(run(ctx, lambda rt: rt.images(all=show_all)))
    if fmt is not None and is_json_format(fmt):
        click.echo(render_json(_json_rows(images)), nl=False)
        return
    if quiet:  # one write: a big store lists 100,000 lines
        ids = ["sha256:" + image.id if no_trunc else image.short_id for image in images]
        click.echo("".join(f"{i}\n" for i in ids), nl=False)
        return
    if fmt is not None:
        users = Counter(c.image_id for c in run(ctx, lambda rt: rt.containers(external=True)))
        reporters = [
            _reporter(i, name, no_trunc, users[i.id]) for i in images for name in _names(i)
        ]
        print_template(fmt, reporters, "images", headers=IMAGE_HEADERS, heading=not noheading)
        return
    with paused_gc():  # a row of strings per name: 100,000 rows for a big store
        table = images_table(images, full_ids=no_trunc)
        text = render_table(table[1:] if noheading else table)
    click.echo(text, nl=False)


#: The headers of a ``table`` format's columns (podman's; its computed fields have none).
IMAGE_HEADERS = {
    "Containers": "CONTAINERS",
    "Created": "CREATED",
    "Dangling": "DANGLING",
    "Digest": "DIGEST",
    "History": "HISTORY",
    "ID": "IMAGE ID",
    "Labels": "LABELS",
    "Names": "NAMES",
    "ParentId": "PARENT ID",
    "ReadOnly": "R/O",
    "RepoDigests": "REPO DIGESTS",
    "RepoTags": "REPO TAGS",
    "Repository": "REPOSITORY",
    "SharedSize": "SHARED SIZE",
    "Size": "SIZE",
    "Tag": "TAG",
    "VirtualSize": "VIRTUAL SIZE",
}


def _names(image: Image) -> list[str]:
    """The names a listing shows a row for (``<none>:<none>`` for an untagged image)."""
    return [n for n in image.names if "@" not in n] or ["<none>:<none>"]


def _reporter(image: Image, name: str, no_trunc: bool, containers: int) -> GoStruct:
    """One row of ``images`` as podman's ``images.imageReporter`` (its fields and methods)."""
    repo, tag = ("<none>", "<none>") if name == "<none>:<none>" else repository_and_tag(name)
    created = image.created.astimezone(UTC) if image.created else None
    [doc] = _json_rows([image])[:1]
    fields: dict[str, Any] = {
        "Repository": repo,
        "Tag": tag,
        "ID": "sha256:" + image.id if no_trunc else image.short_id,
        "ParentId": image.parent_id,
        "RepoTags": None,
        "RepoDigests": sorted(image.repo_digests),
        "Digest": image.digest,
        "Created": human_duration(image.created),
        "CreatedSince": human_duration(image.created),
        "CreatedAt": go_time_string(created) if created else "",
        "CreatedTime": go_time_string(created) if created else "",
        "Size": human_size(image.size),
        "SharedSize": 0,
        "VirtualSize": image.size,  # podman's is a number, its Size a method
        "Containers": containers,
        "ReadOnly": image.read_only,
        "Dangling": not image.names,
        "Labels": dict(image.labels) if image.labels is not None else GoNilMap(),
        "Names": list(image.names),
        "History": ", ".join(image.names_history),
    }
    # {{json .}} of a row: podman's reporter, its repository and tag first.
    row_json: dict[str, Any] = {"repository": repo, "tag": tag}
    row_json.update((k, v) for k, v in doc.items() if k != "CreatedAt")
    row_json["RepoTags"] = [n for n in image.names if "@" not in n]
    row_json["Containers"] = containers
    for key in ("Created", "Size", "SharedSize", "VirtualSize", "Labels", "Containers"):
        row_json[key] = row_json.pop(key)
    for key in ("Names", "Digest", "History"):
        if key in row_json:
            row_json[key] = row_json.pop(key)
    return GoStruct("images.imageReporter", fields, json_value=row_json)


def _inspect(
    ctx: CliContext,
    references: tuple[str, ...],
    *,
    generic: bool = False,
    fmt: str | None = None,
) -> None:
    """``image inspect`` (and, with *generic*, ``inspect``): the objects found as JSON, then
    podman's error text for the rest.  ``image inspect`` gives each lookup's own message
    (several as a list); ``inspect`` looks for any kind of object, so whatever it cannot
    find is ``no such object``: the first is the error, the others are logged before it."""

    async def body(rt: Runtime) -> tuple[list[dict[str, Any]], list[tuple[str, AiopodError]]]:
        found, errors = [], []
        for ref in references:
            try:
                found.append(await rt.inspect_image(ref))
            except AiopodError as exc:
                errors.append((ref, exc))
        return found, errors

    found, errors = run(ctx, body)
    if fmt is not None and not is_json_format(fmt):
        rows = [GoStruct("interface {}", doc, json_value=doc) for doc in found]
        # A table has aligned columns but no header line.
        prefix = "inspecting object: printing inspect output: "
        print_template(fmt, rows, "inspect", prefix=prefix, headers={}, heading=False)
    else:
        click.echo(render_json(found, indent="     "), nl=False)
    if not errors:
        return
    if generic:
        for ref, _ in errors[1:]:
            click.echo(f'error inspecting object: no such object: "{ref}"', err=True)
        fail(f'inspecting object: no such object: "{errors[0][0]}"')
    if len(errors) == 1:
        fail(f"inspecting object: {errors[0][1].message}")
    lines = "".join(f"\n\t* inspecting object: {e.message}" for _, e in errors)
    fail(f"{len(errors)} errors occurred:{lines}")


@cli.group("image")
def image_group() -> None:
    """Manage images."""


image_group.add_command(images_command, "list")
image_group.add_command(images_command, "ls")

_INSPECT_FORMAT = click.option(
    "-f", "--format", "fmt", default=None, help="'json' or a Go template ({{.Id}})."
)


@image_group.command("inspect", args_rule=at_least_or(1, "no names or ids specified"))
@_INSPECT_FORMAT
@click.argument("references", nargs=-1, required=True)
@pass_cli
def image_inspect_command(ctx: CliContext, fmt: str | None, references: tuple[str, ...]) -> None:
    """Show an image's configuration as JSON (or through a Go template)."""
    _inspect(ctx, references, fmt=fmt)


@cli.command("inspect", args_rule=at_least_or(1, "no names or ids specified"))
@_INSPECT_FORMAT
@click.argument("references", nargs=-1, required=True)
@pass_cli
def inspect_command(ctx: CliContext, fmt: str | None, references: tuple[str, ...]) -> None:
    """Show an image's configuration as JSON (or through a Go template)."""
    _inspect(ctx, references, generic=True, fmt=fmt)


@cli.command("tag", args_rule=at_least(2))
@click.argument("image")
@click.argument("names", nargs=-1, required=True)
@pass_cli
def tag_command(ctx: CliContext, image: str, names: tuple[str, ...]) -> None:
    """Add names to an image."""
    run(ctx, lambda rt: rt.tag(image, *names), exit_code=OTHER_ERROR)


@cli.command("untag", args_rule=at_least(1))
@click.argument("image")
@click.argument("names", nargs=-1)
@pass_cli
def untag_command(ctx: CliContext, image: str, names: tuple[str, ...]) -> None:
    """Remove names from an image (all of them when none are given)."""
    # podman exits 125 for every untag error, even "image not known".
    run(ctx, lambda rt: rt.untag(image, *names), exit_code=OTHER_ERROR)


@cli.command("load", args_rule=no_args)
@click.option(
    "-i",
    "--input",
    "source",
    default=None,
    metavar="FILE",
    help="Archive or OCI layout (default: standard input).",
)
@click.option("-q", "--quiet", is_flag=True, help="Show no progress.")
@pass_cli
def load_command(ctx: CliContext, source: str | None, quiet: bool) -> None:
    """Load images from a docker-archive, an oci-archive or an OCI layout directory."""
    from aiopod.cli.progress_display import transfer_display

    if source is None or source == "-":
        if sys.stdin.isatty():
            fail("cannot read from terminal, use command-line redirection or the --input flag")
        from aiopod.cli.spool import load_from_stdin

        async def load(rt: Runtime) -> list[Image]:
            with transfer_display(sys.stderr, quiet=quiet) as progress:
                return await load_from_stdin(rt, progress=progress)

    else:

        async def load(rt: Runtime) -> list[Image]:
            with transfer_display(sys.stderr, quiet=quiet) as progress:
                return await rt.load(source, progress=progress)

    loaded = run(ctx, load)
    for image in loaded:
        for name in image.names or ["sha256:" + image.id]:
            click.echo(f"Loaded image: {name}")


@cli.command("save", args_rule=at_least_or(1, "need at least 1 argument"))
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE",
    help="Where to write (default: standard output).",
)
@click.option(
    "--format",
    "fmt",
    default="docker-archive",
    show_default=True,
    help=f"One of {', '.join(SAVE_FORMATS)}.",
)
@click.option(
    "-m", "--multi-image-archive", is_flag=True, help="Accepted for podman compatibility."
)
@click.option(
    "--compress",
    is_flag=True,
    help="Compress the uncompressed layers (oci-archive, oci-dir; gzip unless "
    "--compression-format says otherwise).",
)
@click.option(
    "--compression-format",
    default=None,
    metavar="FORMAT",
    help=f"Compress the uncompressed layers with {' or '.join(SAVE_COMPRESSIONS)} "
    "(implies --compress).",
)
@click.option(
    "--uncompressed",
    is_flag=True,
    help="Write every layer as stored (the default; accepted for podman compatibility).",
)
@click.option("-q", "--quiet", is_flag=True, help="Show no progress.")
@click.argument("references", nargs=-1, required=True)
@pass_cli
def save_command(
    ctx: CliContext,
    output: str | None,
    fmt: str,
    multi_image_archive: bool,
    compress: bool,
    compression_format: str | None,
    uncompressed: bool,
    quiet: bool,
    references: tuple[str, ...],
) -> None:
    """Save images to an archive or an OCI layout directory (it prints nothing)."""
    if fmt not in SAVE_FORMATS:
        if fmt == "docker-dir":
            fail(f"the docker-dir format is not supported: use {', '.join(SAVE_FORMATS)}")
        known = "oci-dir oci-archive docker-dir docker-archive" if ctx.policy == "podman" else ""
        fail(f"format value must be one of {known or ' '.join(SAVE_FORMATS)}")
    format: SaveFormat = fmt
    compression = _save_compression(format, compress, compression_format, uncompressed)
    from aiopod.cli.progress_display import transfer_display

    if output is None:
        if format == "oci-dir":
            fail("an oci-dir is a directory: name it with -o")
        if sys.stdout.isatty():
            fail("refusing to save to terminal. Use -o flag or redirect")
        from aiopod.cli.spool import save_to_stdout

        async def save(rt: Runtime) -> None:
            with transfer_display(sys.stderr, quiet=quiet) as progress:
                await save_to_stdout(
                    rt, references, format, compression=compression, progress=progress
                )

    else:

        async def save(rt: Runtime) -> None:
            with transfer_display(sys.stderr, quiet=quiet) as progress:
                await rt.save(
                    output, references, format=format, compression=compression, progress=progress
                )

    run(ctx, save, exit_code=OTHER_ERROR)


def _save_compression(
    format: SaveFormat, compress: bool, compression_format: str | None, uncompressed: bool
) -> SaveCompression | None:
    """The compression ``save``'s flags ask for (None: layers as stored)."""
    if compression_format is None and not compress:
        return None
    if compression_format is not None and compression_format not in SAVE_COMPRESSIONS:
        fail(
            f"unsupported compression format {compression_format!r}: "
            f"use {' or '.join(SAVE_COMPRESSIONS)}"
        )
    if uncompressed:
        fail("--compress and --compression-format cannot be used with --uncompressed")
    if format == "docker-archive":
        fail(
            "--compress can only be set when --format is oci-archive or oci-dir "
            "(a docker-archive holds uncompressed layers)"
        )
    return "zstd" if compression_format == "zstd" else "gzip"


@cli.command("import", args_rule=between(1, 2))
@click.option("-q", "--quiet", is_flag=True, help="Show no progress.")
@click.argument("tarball")
@click.argument("name", required=False)
@pass_cli
def import_command(ctx: CliContext, quiet: bool, tarball: str, name: str | None) -> None:
    """Make a one-layer image from a root file system tarball."""
    from aiopod.cli.progress_display import transfer_display

    async def import_(rt: Runtime) -> Image:
        with transfer_display(sys.stderr, quiet=quiet) as progress:
            return await rt.import_image(tarball, name, progress=progress)

    image = run(ctx, import_)
    click.echo("sha256:" + image.id)


# podman's ``image`` subcommands that are top-level commands too.
for _command in (load_command, save_command, import_command, tag_command, untag_command):
    image_group.add_command(_command)


@image_group.command("exists", args_rule=exactly(1))
@click.argument("reference")
@pass_cli
def image_exists_command(ctx: CliContext, reference: str) -> None:
    """Exit 0 if the store has the image, 1 if it does not (nothing is printed)."""
    from aiopod.errors import ImageNotKnown

    async def exists(rt: Runtime) -> bool:
        try:
            await rt.get_image(reference)
        except ImageNotKnown:
            return False
        return True

    if not run(ctx, exists):
        sys.exit(1)
