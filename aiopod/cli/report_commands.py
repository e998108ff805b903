"""Reports on the store: ``image tree``, ``history``, ``info``, ``system df``, and
``system prune``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from aiopod import ImageHistory, UsageSummary
from aiopod._info import render_yaml
from aiopod.cli.app import CliContext, cli, fail, run
from aiopod.cli.exit_codes import OTHER_ERROR
from aiopod.cli.formatting import human_duration, human_size, print_template, render_table
from aiopod.cli.image_commands import image_group
from aiopod.cli.system_commands import system_group
from aiopod.cli.templates import GoStruct, is_json_format, normalise_format, parse
from aiopod.cli.usage import exactly, no_args
from aiopod.errors import TemplateError

pass_cli = click.make_pass_decorator(CliContext)

#: Go's zero time, which podman shows for an entry without a creation time.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def go_json(value: Any) -> str:
    """JSON as Go's encoder writes it: compact, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def rfc3339(when: datetime | None, *, nano: bool = False) -> str:
    """Go's ``time.RFC3339`` (or, with *nano*, ``RFC3339Nano``: the fraction without
    trailing zeros) of *when*, in its own offset."""
    if when is None:
        return _GO_ZERO_TIME
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if nano and when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    offset = when.utcoffset()
    return text + ("Z" if not offset else when.strftime("%z")[:3] + ":" + when.strftime("%z")[3:])


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


#: The headers of ``history --format``'s columns.  podman makes headers from its row
#: type's fields only: the two it computes have none (Go's ``<no value>``).
HISTORY_HEADERS = {
    "Comment": "COMMENT",
    "Created": "CREATED",
    "CreatedBy": "CREATED BY",
    "ID": "ID",
    "Size": "SIZE",
    "Tags": "TAGS",
}
_HISTORY_TABLE = "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def _history_row(entry: ImageHistory, *, human: bool, no_trunc: bool) -> GoStruct:
    shown_id = entry.id or "<missing>"
    created = human_duration(entry.created) if human else rfc3339(entry.created)
    by = entry.created_by
    when = entry.created.astimezone(UTC) if entry.created else None
    fields = {
        "ID": shown_id if no_trunc else shown_id[:12],
        "Created": created,
        "CreatedBy": by if no_trunc or len(by) <= 45 else by[:42] + "...",
        "Size": human_size(entry.size),
        "Comment": entry.comment,
        "Tags": list(entry.tags),
        "CreatedAt": f"{when:%Y-%m-%d %H:%M:%S} +0000 UTC" if when else "",
        "CreatedSince": created,
    }
    # {{json .}} of a row is the entry without the text time ``json`` adds.
    row_json = {k: v for k, v in _history_json(entry).items() if k != "Created"}
    return GoStruct("images.historyReporter", fields, json_value=row_json)


def _history_json(entry: ImageHistory) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": entry.id or "<missing>",
        "created": rfc3339(entry.created, nano=True),
    }
    if entry.created_by:
        document["CreatedBy"] = entry.created_by
    document["size"] = entry.size
    if entry.comment:
        document["comment"] = entry.comment
    document["Created"] = rfc3339(entry.created)
    return document


def _with_history_options(command: Callable[..., None]) -> Callable[..., None]:
    """*command* with the options and argument of ``history`` (shared by ``image
    history``)."""
    command = pass_cli(command)
    command = click.argument("image")(command)
    command = click.option("-q", "--quiet", is_flag=True, help="Show the IDs only.")(command)
    command = click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")(command)
    command = click.option(
        "-H", "--human/--no-human", default=True, help="Show dates as durations (default true)."
    )(command)
    return click.option("--format", "fmt", default=None, help="'json' or a Go template.")(command)


def history(
    ctx: CliContext, fmt: str | None, human: bool, no_trunc: bool, quiet: bool, image: str
) -> None:
    """Show the history of an image."""
    entries = run(ctx, lambda rt: rt.history(image), exit_code=OTHER_ERROR)
    if fmt is not None and is_json_format(fmt):
        click.echo(go_json([_history_json(e) for e in entries]) if entries else "[]")
        return
    rows = [_history_row(e, human=human, no_trunc=no_trunc) for e in entries]
    template = "{{.ID}}" if quiet else fmt if fmt is not None else _HISTORY_TABLE
    print_template(template, rows, "history", headers=HISTORY_HEADERS)


cli.command("history", args_rule=exactly(1))(_with_history_options(history))
image_group.command("history", args_rule=exactly(1))(_with_history_options(history))


def _since(when: datetime | None) -> str:
    """go-units' HumanDuration of the time since *when* (no "ago": ``system df``)."""
    return human_duration(when).removesuffix(" ago")


def _df_size(size: int) -> str:
    return human_size(size, precision=4, separator="")


#: The headers of ``system df --format``'s columns (podman's).
DF_HEADERS = {
    "Active": "ACTIVE",
    "RawReclaimable": "RAW RECLAIMABLE",
    "RawSize": "RAW SIZE",
    "Reclaimable": "RECLAIMABLE",
    "Size": "SIZE",
    "Total": "TOTAL",
    "Type": "TYPE",
}


def _df_row(line: UsageSummary, shown: list[str]) -> GoStruct:
    """A line of the summary as podman's ``system.dfSummary`` (*shown*: its table row)."""
    fields = {
        "Type": line.type,
        "Total": line.total,
        "Active": line.active,
        "RawSize": line.size,
        "RawReclaimable": line.reclaimable,
        "Size": shown[3],
        "Reclaimable": shown[4],
    }
    doc = {
        "Type": line.type,
        "Total": line.total,
        "Active": line.active,
        "Size": line.size,
        "Reclaimable": line.reclaimable,
    }
    return GoStruct("*system.dfSummary", fields, json_value=doc)


@system_group.command("df", args_rule=no_args)
@click.option("-v", "--verbose", is_flag=True, help="Show the usage of each image and container.")
@click.option("--format", "fmt", default=None, help="A Go template for the summary.")
@pass_cli
def df_command(ctx: CliContext, verbose: bool, fmt: str | None) -> None:
    """Show the store's disk usage."""
    usage = run(ctx, lambda rt: rt.disk_usage())
    if not verbose:
        header, *lines = usage.summary_rows()
        if fmt is None:
            click.echo(render_table([header, *lines]), nl=False)
            return
        rows = [_df_row(line, shown) for line, shown in zip(usage.summary, lines, strict=True)]
        print_template(fmt, rows, "df", headers=DF_HEADERS)
        return
    images = [
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ],
        *(
            [
                i.repository,
                i.tag,
                i.id[:12],
                _since(i.created),
                _df_size(i.size),
                _df_size(i.shared_size),
                _df_size(i.unique_size),
                str(i.containers),
            ]
            for i in usage.images
        ),
    ]
    containers = [
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        *(
            [
                c.short_id,
                c.image_id[:12],
                " ".join(c.command),
                "0",  # aiopod has no volumes
                "0B",  # nor running containers to write in them
                _since(c.created),
                c.state,
                c.name,
            ]
            for c in usage.containers
        ),
    ]
    volumes = [["VOLUME NAME", "LINKS", "SIZE"]]
    click.echo("Images space usage:\n\n" + render_table(images), nl=False)
    click.echo("\nContainers space usage:\n\n" + render_table(containers), nl=False)
    click.echo("\nLocal Volumes space usage:\n\n" + render_table(volumes), nl=False)


def _prune_warning(all_images: bool) -> str:
    """podman's question before a system prune (aiopod has no networks or build cache,
    and asks in the same words)."""
    images = (
        "all images without at least one container associated with them"
        if all_images
        else "all dangling images"
    )
    cache = "all build cache" if all_images else "all dangling build cache"
    return (
        "WARNING! This command removes:\n"
        "\t- all stopped containers\n"
        "\t- all networks not used by at least one container\n"
        f"\t- {images}\n"
        f"\t- {cache}\n\n"
        "Are you sure you want to continue? [y/N] "
    )


@system_group.command("prune", args_rule=no_args)
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove every unused image.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--external", is_flag=True, help="Also prune images only storage containers use (aiopod)."
)
@pass_cli
def prune_command(ctx: CliContext, all_images: bool, force: bool, external: bool) -> None:
    """Remove stopped containers and unused images."""
    if not force:
        click.echo(_prune_warning(all_images), nl=False)
        answer = sys.stdin.readline()
        if not answer:
            fail("EOF")
        if not answer.lower().startswith("y"):
            return
    report = run(ctx, lambda rt: rt.prune_system(all=all_images, external=external))
    for error in report.errors:
        click.echo(f"Error: {error.message}", err=True)
    click.echo("\n".join(report.lines()))
    if report.exit_code:
        sys.exit(report.exit_code)


def _info_struct(document: dict[str, Any]) -> GoStruct:
    """``info``'s document as podman's ``define.Info`` and its parts, by their Go names
    (``{{.Store.GraphRoot}}``)."""
    host, store, version = document["host"], document["store"], document["version"]
    containers, images = store["containerStore"], store["imageStore"]

    def part(type_name: str, doc: dict[str, Any], fields: dict[str, Any]) -> GoStruct:
        return GoStruct(type_name, fields, json_value=doc)

    return part(
        "*define.Info",
        document,
        {
            "Host": part(
                "*define.HostInfo",
                host,
                {
                    "Arch": host["arch"],
                    "CPUs": host["cpus"],
                    "Hostname": host["hostname"],
                    "Kernel": host["kernel"],
                    "OS": host["os"],
                },
            ),
            "Store": part(
                "*define.StoreInfo",
                store,
                {
                    "ContainerStore": part(
                        "define.ContainerStore",
                        containers,
                        {k[0].upper() + k[1:]: v for k, v in containers.items()},
                    ),
                    "EventLog": store["eventLog"],
                    "GraphDriverName": store["graphDriverName"],
                    "GraphRoot": store["graphRoot"],
                    "GraphRootAllocated": store["graphRootAllocated"],
                    "GraphRootUsed": store["graphRootUsed"],
                    "ImageStore": part(
                        "define.ImageStore",
                        images,
                        {k[0].upper() + k[1:]: v for k, v in images.items()},
                    ),
                },
            ),
            "Version": part("define.Version", version, dict(version)),
            "Policy": document["policy"],
        },
    )


@cli.command("info", args_rule=no_args)
@click.option("-f", "--format", "fmt", default=None, help="'json' or a Go template.")
@pass_cli
def info_command(ctx: CliContext, fmt: str | None) -> None:
    """Show the host, the store and the versions."""
    document = run(ctx, lambda rt: rt.info()).to_podman_dict()
    if fmt is None:
        click.echo(render_yaml(document), nl=False)
    elif fmt.strip().lower() == "json":
        click.echo(json.dumps(document, indent="    "))
    else:
        text, _ = normalise_format(fmt)
        try:
            click.echo(parse(text, "info").execute(_info_struct(document)), nl=False)
        except TemplateError as exc:
            fail(str(exc))
