"""``aiopod events``: the store's event log, printed as podman (or Docker) prints events.

``aiopod events [--since T] [--until T] [-f KEY=VALUE]... [--stream[=BOOL]] [--format F]``

* ``--stream`` (default) follows the log until interrupted (Ctrl-C, SIGTERM or SIGHUP end it
  with exit 0) or until ``--until`` passes.  Without ``--since``/``--until`` it prints only
  new events, as podman does; with either it first prints the logged ones.
* ``--stream=false`` prints the logged events and exits.
* ``aiopod events verify [--since SEQ]`` checks the log's hash chain
  (:mod:`aiopod.events.verify`): it prints how many records it checked, or the first
  edited, dropped, inserted, reordered or truncated record and exits 1.
* Output, by ``--policy``: a text line per event (under ``libpod``: the event's ``seq``,
  then podman's ``Time.String()`` line in the canonical vocabulary; podman's own lines
  under ``podman``, the Docker CLI's under ``docker``); ``--format json`` gives
  JSON lines (aiopod's shape under ``libpod``, podman's under ``podman``, Docker's under
  ``docker``); a Go template of ``{{.Field}}`` and ``{{json .}}`` actions gives one line
  per event.  Events that have no counterpart in the chosen tool's vocabulary (podman has
  no ``Deleted``) are skipped under ``podman`` and ``docker``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import click

from aiopod import Event, EventFilter, EventLog, Runtime
from aiopod.cli.app import CliContext, cli, fail, run
from aiopod.cli.exit_codes import exit_code_of
from aiopod.cli.templates import (
    GoNilMap,
    GoString,
    GoStruct,
    normalise_format,
    parse as parse_template,
)
from aiopod.cli.usage import no_args
from aiopod.errors import AiopodError, TemplateError
from aiopod.events.filters import parse_filters, podman_event_values
from aiopod.events.formats import (
    INTERNAL_ATTRIBUTES,
    format_docker_text,
    format_go_time,
    format_podman_text,
    format_rfc3339_nano,
    go_json,
    native_status,
    to_docker_json,
    to_native_json,
    to_podman_json,
)

__all__ = ("event_renderer", "events_command")

pass_cli = click.make_pass_decorator(CliContext)

Renderer = Callable[[Event], "str | None"]


#: The fields of podman 4.3's ``events.Event`` (``Details`` is embedded: ``PodID`` and
#: ``Attributes`` are fields too).
_PODMAN_EVENT_TYPE = "*events.Event"


def _podman_fields(event: Event, policy: str) -> GoStruct | None:
    doc = to_podman_json(event)
    if policy == "podman" and doc is None:
        return None
    if policy == "podman" and doc is not None:
        status, event_id, name = doc["Status"], doc.get("ID", ""), doc.get("Name", "")
    else:
        status, event_id, name = native_status(event), event.id, event.name or ""
    labels = {k: v for k, v in event.attributes.items() if k not in INTERNAL_ATTRIBUTES}
    # podman's image events have a nil map (``map[]``, JSON null), containers a map.
    attributes = labels if event.type == "container" else GoNilMap()
    image = event.attributes.get("image", "") if event.type == "container" else ""
    json_value: dict[str, Any] = {}
    if event_id:
        json_value["ID"] = event_id
    if image:
        json_value["Image"] = image
    if name:
        json_value["Name"] = name
    json_value.update(
        Status=status,
        Time=format_rfc3339_nano(event.when, None),
        Type=event.type,
        Attributes=labels if event.type == "container" else None,
    )
    fields: dict[str, Any] = {
        "ContainerExitCode": 0,
        "ID": event_id,
        "Image": image,
        "Name": name,
        "Network": "",
        "Status": GoString(status, "events.Status"),
        "Time": format_go_time(event.when),
        "Type": GoString(event.type, "events.Type"),
        "HealthStatus": "",
        "Details": {"PodID": "", "Attributes": attributes},
        "PodID": "",
        "Attributes": attributes,
    }
    if policy == "libpod":
        fields.update(
            Seq=event.seq,
            Kind=event.kind.value,
            Action=event.action,
            Names=list(event.names),
            Digest=event.digest or "",
            Policy=event.policy or "",
            Options=dict(event.options),
            Actor=event.actor.to_json() if event.actor is not None else {},
            Prev=event.prev or "",
        )
    return GoStruct(_PODMAN_EVENT_TYPE, fields, json_value=json_value)


def _docker_fields(event: Event) -> GoStruct | None:
    doc = to_docker_json(event)
    if doc is None:
        return None
    fields = {
        "Status": doc["status"],
        "ID": doc["id"],
        "From": doc.get("from", ""),
        "Type": doc["Type"],
        "Action": doc["Action"],
        "Actor": doc["Actor"],
        "Scope": doc["scope"],
        "Time": doc["time"],
        "TimeNano": doc["timeNano"],
    }
    return GoStruct("events.Message", fields, json_value=doc)


def event_renderer(policy: str, fmt: str | None, *, truncate: bool = False) -> Renderer:
    """The function that turns an event into its output line (None: print nothing).

    :raises ~aiopod.errors.TemplateError: *fmt* is not a template (at once), or,
        from the renderer, an event lacks a field the template names (as podman, only
        when an event is printed).
    """
    if not fmt:
        if policy == "docker":
            return format_docker_text
        if policy == "podman":
            return lambda e: format_podman_text(e, truncate=truncate)
        return lambda e: _libpod_line(e, truncate)
    if fmt.strip().lower() == "json":
        if policy == "docker":
            return lambda e: None if (d := to_docker_json(e)) is None else go_json(d)
        if policy == "podman":
            return lambda e: None if (d := to_podman_json(e)) is None else go_json(d)
        return lambda e: go_json(to_native_json(e))
    text, table = normalise_format(fmt)
    # A table format is run as a list's (podman's range), so it fails on the first event,
    # as podman's does; a line break at its end is the line's own.
    text = "{{range .}}" + text + "{{end -}}" if table else text.removesuffix("\n")
    parsed = parse_template(text, "events")

    def template(event: Event) -> str | None:
        data = _docker_fields(event) if policy == "docker" else _podman_fields(event, policy)
        return None if data is None else parsed.execute(data)

    return template


def _libpod_line(event: Event, truncate: bool) -> str | None:
    """podman's line in the canonical vocabulary, after the event's seq (a gap shows)."""
    line = format_podman_text(event, status=native_status(event), truncate=truncate)
    return None if line is None else f"{event.seq} {line}"


def _verify_or_nothing(got: int, path: str) -> str | None:
    # ``verify`` is the one argument; anything else gets podman's ``validate.NoArgs``.
    return None if got <= 1 else no_args(got, path)


@cli.command("events", args_rule=_verify_or_nothing)
@click.argument("action", required=False, metavar="[verify]")
@click.option(
    "--since",
    metavar="TIME",
    help="Show events after TIME (RFC 3339, unix, 10m); with verify: from record SEQ.",
)
@click.option("--until", metavar="TIME", help="Show events before TIME; ends --stream then.")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="type, event, image, container, name, label (repeat: OR within a key).",
)
@click.option(
    "--stream",
    type=click.BOOL,
    default=True,
    is_flag=False,
    flag_value=True,
    show_default=True,
    help="Follow new events (--stream=false: print the logged ones and exit).",
)
@click.option("--format", "fmt", default=None, help="'json' or a Go template ({{.Status}}).")
@click.option(
    "--no-trunc",
    type=click.BOOL,
    default=True,
    is_flag=False,
    flag_value=True,
    show_default=True,
    help="Do not truncate IDs.",
)
@pass_cli
def events_command(
    ctx: CliContext,
    action: str | None,
    since: str | None,
    until: str | None,
    filters: tuple[str, ...],
    stream: bool,
    fmt: str | None,
    no_trunc: bool,
) -> None:
    """Show the store's events (what every aiopod process did to it), or verify them."""
    if action is not None:
        _verify(ctx, action, since)
        return
    if ctx.policy == "podman":
        filters = tuple(podman_event_values(filters))
    try:
        event_filter = parse_filters(filters, since=since, until=until)
    except AiopodError as exc:
        fail(exc.message, exit_code_of(exc))
    try:
        render = event_renderer(ctx.policy, fmt, truncate=not no_trunc)
    except TemplateError as exc:
        fail(str(exc))
    if stream:
        run(
            ctx,
            lambda rt: _stream(rt, render, event_filter, past=bool(since or until)),
            ends_on_signal=True,
        )
    else:
        run(ctx, lambda rt: _print_logged(rt, render, event_filter))


def _verify(ctx: CliContext, action: str, since: str | None) -> None:
    if action != "verify":
        fail(no_args(1, click.get_current_context().command_path) or "")
    start = None
    if since is not None:
        try:
            start = int(since)
        except ValueError:
            fail(f"--since of events verify is a seq (a number), not {since!r}")
    report = run(ctx, lambda rt: rt.events.verify(since=start))
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.problem is not None:
        problem = report.problem
        click.echo(f"Error: {problem.kind} record: {problem.message}", err=True)
        sys.exit(1)
    if report.checked:
        click.echo(
            f"event log verified: {report.checked} records, seq {report.first_seq} "
            f"to {report.last_seq}, hash chain intact"
        )
    else:
        click.echo("event log verified: no records")


def _emit(render: Renderer, event: Event) -> None:
    line = render(event)
    if line is not None:
        sys.stdout.write(line + "\n")


def _silence_stdout() -> None:
    # After a broken pipe, stop Python from complaining when it flushes stdout at exit.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


async def _print_logged(rt: Runtime, render: Renderer, event_filter: EventFilter) -> None:
    log = EventLog.for_store(rt.root)

    def dump() -> None:
        for event in log.read(filter=event_filter):
            _emit(render, event)
        sys.stdout.flush()

    try:
        await anyio.to_thread.run_sync(dump)
    except BrokenPipeError:
        _silence_stdout()


async def _stream(rt: Runtime, render: Renderer, event_filter: EventFilter, *, past: bool) -> None:
    log = EventLog.for_store(rt.root)
    after_seq = None if past else await anyio.to_thread.run_sync(log.last_seq)

    try:
        followed = log.follow(after_seq=after_seq, filter=event_filter, until=event_filter.until)
        async with contextlib.aclosing(followed) as events:
            async for event in events:
                _emit(render, event)
                sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
