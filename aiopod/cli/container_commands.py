"""Container commands: ``create``, ``from``, ``rm``, ``ps``."""

from __future__ import annotations

import sys
from datetime import UTC
from typing import Any

import click

from aiopod import Container
from aiopod.cli.app import CliContext, cli, run
from aiopod.cli.formatting import (
    go_time_string,
    human_duration,
    print_template,
    render_json,
    render_table,
)
from aiopod.cli.removal_commands import print_errors
from aiopod.cli.templates import GoNilMap, GoStruct, is_json_format
from aiopod.cli.usage import at_least, no_args
from aiopod.errors import ContainerNotKnown

pass_cli = click.make_pass_decorator(CliContext)


@cli.command("create", args_rule=at_least(1), interspersed=False)
@click.option("--name", default=None, help="The container's name.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_cli
def create_command(ctx: CliContext, name: str | None, image: str, command: tuple[str, ...]) -> None:
    """Create a container of IMAGE (its root file system is unpacked from the image)."""
    container = run(ctx, lambda rt: rt.create_container(image, command, name=name))
    click.echo(container.id)


def _one_image(got: int, _path: str) -> str | None:
    """``buildah from``'s words for a wrong number of arguments."""
    if got == 0:
        return 'an image name (or "scratch") must be specified'
    return "too many arguments specified" if got > 1 else None


@cli.command("from", args_rule=_one_image)
@click.option("--name", default=None, help="The working container's name.")
@click.argument("image")
@pass_cli
def from_command(ctx: CliContext, name: str | None, image: str) -> None:
    """Create a storage-only working container of IMAGE (as ``buildah from``)."""
    container = run(ctx, lambda rt: rt.create_working_container(image, name=name))
    click.echo(container.name)


@cli.command("rm")
@click.option("-f", "--force", is_flag=True, help="Accepted for podman compatibility.")
@click.option("-a", "--all", "all_containers", is_flag=True, help="Remove every container.")
@click.option("-i", "--ignore", is_flag=True, help="Skip containers that do not exist.")
@click.argument("references", nargs=-1)
@pass_cli
def rm_command(
    ctx: CliContext, force: bool, all_containers: bool, ignore: bool, references: tuple[str, ...]
) -> None:
    """Remove containers (runtime and storage-only) by name or ID."""
    report = run(
        ctx, lambda rt: rt.remove_containers(references, all=all_containers, ignore=ignore)
    )
    if all_containers:
        for container_id in report.removed_containers:
            click.echo(container_id)
    else:
        unknown = {e.reference for e in report.errors if isinstance(e, ContainerNotKnown)}
        for reference in references:
            if reference not in unknown:
                click.echo(reference)
    print_errors(report.errors)
    sys.exit(report.exit_code)


def _ps_row(container: Container) -> list[str]:
    command = " ".join(container.command)
    status = "Storage" if container.external else "Created"
    return [
        container.short_id,
        container.image_name,
        command,
        human_duration(container.created),
        status,
        "",
        container.name,
    ]


#: The headers of a ``table`` format's columns (podman's).
PS_HEADERS = {
    "AutoRemove": "AUTO REMOVE",
    "Cgroup": "CGROUPNS",
    "Command": "COMMAND",
    "Created": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedHuman": "CREATED",
    "ExitCode": "EXIT CODE",
    "Exited": "EXITED",
    "ExitedAt": "EXITED AT",
    "ID": "CONTAINER ID",
    "IPC": "IPC",
    "Image": "IMAGE",
    "ImageID": "IMAGE ID",
    "IsInfra": "IS INFRA",
    "Labels": "LABELS",
    "MNT": "MNT",
    "Mounts": "MOUNTS",
    "NET": "NET",
    "Names": "NAMES",
    "Namespaces": "NAMESPACES",
    "Networks": "NETWORKS",
    "PIDNS": "PIDNS",
    "Pid": "PID",
    "Pod": "POD ID",
    "PodName": "PODNAME",
    "Ports": "PORTS",
    "RunningFor": "RUNNING FOR",
    "Size": "SIZE",
    "StartedAt": "STARTED AT",
    "State": "STATE",
    "Status": "STATUS",
    "UTS": "UTS",
    "User": "USERNS",
}


def _ps_reporter(container: Container, no_trunc: bool) -> GoStruct:
    """One row of ``ps`` as podman's ``containers.psReporter`` (fields and methods)."""
    created = container.created.astimezone(UTC) if container.created else None
    doc = _ps_json(container)
    fields: dict[str, Any] = {
        **doc,
        "ID": container.id if no_trunc else container.short_id,
        "Command": " ".join(container.command),
        "Created": go_time_string(created) if created else "",
        "CreatedAt": go_time_string(created) if created else "",
        "CreatedHuman": human_duration(container.created),
        "RunningFor": human_duration(container.created),
        "ImageID": container.image_id[:12] if not no_trunc else container.image_id,
        "Labels": GoNilMap(),
        "Mounts": [],
        "Names": container.name,
        "State": container.state.capitalize(),
        "Networks": "",
        "Ports": "",
        "Pod": "",
        "Namespaces": {},
        **dict.fromkeys(("Cgroup", "IPC", "MNT", "NET", "PIDNS", "User", "UTS"), ""),
    }
    return GoStruct("containers.psReporter", fields, json_value=doc)


def _ps_json(container: Container) -> dict[str, Any]:
    created = container.created.astimezone(UTC) if container.created else None
    return {
        "AutoRemove": False,
        "Command": list(container.command),
        "CreatedAt": human_duration(container.created),
        "Exited": False,
        "ExitedAt": 0 if container.external else -62135596800,
        "ExitCode": 0,
        "Id": container.id,
        "Image": container.image_name,
        "ImageID": container.image_id,
        "IsInfra": False,
        "Labels": None,
        "Mounts": None if container.external else [],
        "Names": [container.name],
        "Namespaces": {},
        "Networks": None if container.external else ["podman"],
        "Pid": 0,
        "Pod": "",
        "PodName": "",
        "Ports": None,
        "Size": None,
        "StartedAt": 0 if container.external else -62135596800,
        "State": container.state,
        "Status": "Storage" if container.external else "Created",
        "Created": int(created.timestamp()) if created else 0,
    }


@cli.command("ps", args_rule=no_args)
@click.option("-a", "--all", "show_all", is_flag=True, help="All containers (none run here).")
@click.option("--external", is_flag=True, help="Also storage-only containers.")
@click.option("-q", "--quiet", is_flag=True, help="IDs only.")
@click.option("--no-trunc", is_flag=True, help="Full IDs.")
@click.option("--format", "fmt", default=None, help="'json' or a Go template ({{.Names}}).")
@click.option("-n", "--noheading", is_flag=True, help="Do not print the header line.")
@pass_cli
def ps_command(
    ctx: CliContext,
    show_all: bool,
    external: bool,
    quiet: bool,
    no_trunc: bool,
    fmt: str | None,
    noheading: bool,
) -> None:
    """List containers.  Without -a only running ones, and none run in aiopod."""
    containers = run(ctx, lambda rt: rt.containers(external=external))
    if not show_all and not external:
        containers = []
    if fmt is not None and is_json_format(fmt):
        click.echo(render_json([_ps_json(c) for c in containers], indent="  "), nl=False)
        return
    if fmt is not None:
        reporters = [_ps_reporter(c, no_trunc) for c in containers]
        print_template(fmt, reporters, "ps", headers=PS_HEADERS, heading=not noheading)
        return
    if quiet:
        for container in containers:
            click.echo(container.id if no_trunc else container.short_id)
        return
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for container in containers:
        row = _ps_row(container)
        if no_trunc:
            row[0] = container.id
        rows.append(row)
    click.echo(render_table(rows[1:] if noheading else rows), nl=False)
