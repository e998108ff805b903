"""``build``: a Dockerfile build into the store, with podman's step output.

Standard output is ``podman build``'s, record by record (:mod:`aiopod.builder.progress`):
the steps, RUN's standard output, cache hits, commits, ``Successfully tagged`` for every
name of the result when tags are given, and its full ID.  RUN's standard error goes to
standard error.  With ``-q`` only the ID is printed (and RUN's standard error).  A failed
RUN exits with the command's exit status after ``Error: building at STEP "RUN …": while
running runtime: exit status N``, as podman does.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

import click

from aiopod import BuildFinished, ProgressRecord, StepOutput
from aiopod.cli.app import CliContext, cli, fail, run
from aiopod.cli.registry_options import check_authfile, read_creds, registry_options
from aiopod.cli.usage import at_most

if TYPE_CHECKING:
    from aiopod import BuildPullPolicy, TransferRecord

pass_cli = click.make_pass_decorator(CliContext)


def _write(out: TextIO, data: bytes) -> None:
    """Write *data* as it is (RUN output need not be UTF-8) and flush."""
    out.flush()
    binary = getattr(out, "buffer", None)
    if binary is not None:
        binary.write(data)
        binary.flush()
    else:  # a text-only stream (tests that replace sys.stdout)
        out.write(data.decode("utf-8", "replace"))
        out.flush()


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


def _secrets(values: tuple[str, ...]) -> dict[str, str]:
    """``--secret id=ID,src=FILE`` (``type=file`` may be given; ``source`` is ``src``)."""
    secrets: dict[str, str] = {}
    for value in values:
        fields: dict[str, str] = {}
        for item in value.split(","):
            key, eq, rest = item.partition("=")
            if not eq:
                fail(f"invalid --secret {value!r}: use id=ID,src=FILE")
            fields["src" if key == "source" else key] = rest
        unknown = set(fields) - {"id", "src", "type"}
        if fields.get("type", "file") != "file" or unknown:
            fail(f"invalid --secret {value!r}: only id=ID,src=FILE secrets are supported")
        if not fields.get("id") or not fields.get("src"):
            fail(f"invalid --secret {value!r}: use id=ID,src=FILE")
        secrets[fields["id"]] = fields["src"]
    return secrets


#: ``--pull`` values as podman 4.3 reads them (``--pull`` alone is ``true``: always).
_PULL_VALUES: dict[str, BuildPullPolicy] = {
    "true": "always",
    "always": "always",
    "false": "missing",
    "missing": "missing",
    "ifmissing": "missing",
    "never": "never",
    "newer": "newer",
    "ifnewer": "newer",
}


def _pull_policy(value: str | None, always: bool, never: bool) -> BuildPullPolicy:
    if always:
        return "always"
    if never:
        return "never"
    if value is None:
        return "missing"
    policy = _PULL_VALUES.get(value.strip().lower())
    if policy is None:
        fail(f"unsupported pull policy {value!r}: use missing, always, never or newer")
    return policy


@cli.command("build", args_rule=at_most(1))
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME", help="Name the image.")
@click.option("-f", "--file", "dockerfile", default=None, metavar="FILE", help="The Dockerfile.")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="A build argument.")
@click.option("--layers", is_flag=True, help="Commit every step; reuse cached steps.")
@click.option("--timestamp", type=int, default=None, metavar="N", help="Created time (seconds).")
@click.option("--target", default=None, metavar="STAGE", help="Stop at this stage.")
@click.option("--no-cache", is_flag=True, help="Do not reuse cached steps.")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="id=ID,src=FILE",
    help="A secret for RUN --mount=type=secret.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option(
    "--pull",
    "pull",
    is_flag=False,
    flag_value="true",
    default=None,
    metavar="POLICY",
    help="Pull policy: missing (default), always (--pull alone), never, newer.",
)
@click.option("--pull-always", is_flag=True, help="Always pull the images the build names.")
@click.option("--pull-never", is_flag=True, help="Never pull the images the build names.")
@registry_options
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
    secrets: tuple[str, ...],
    quiet: bool,
    pull: str | None,
    pull_always: bool,
    pull_never: bool,
    tls_verify: bool | None,
    creds: str | None,
    authfile: str | None,
    cert_dir: str | None,
    context: str,
) -> None:
    """Build an image from a Dockerfile in CONTEXT."""

    def progress(record: ProgressRecord) -> None:
        if isinstance(record, StepOutput):
            if record.stream == "stderr":
                _write(sys.stderr, record.data)
            elif not quiet:
                _write(sys.stdout, record.data)
        elif isinstance(record, BuildFinished) and quiet:
            _write(sys.stdout, f"{record.image_id}\n".encode())
        elif not quiet:
            _write(sys.stdout, record.text.encode())

    def pull_progress(record: TransferRecord) -> None:
        if record.text and not quiet:
            sys.stderr.write(record.text)
            sys.stderr.flush()

    check_authfile(authfile, prefix="checking authfile: ")
    credentials = read_creds(creds)
    secret_files = _secrets(secrets)
    policy = _pull_policy(pull, pull_always, pull_never)
    run(
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
            secrets=secret_files,
            progress=progress,
            pull=policy,
            tls_verify=tls_verify,
            credentials=credentials,
            authfile=authfile,
            cert_dir=cert_dir,
            pull_progress=pull_progress,
        ),
    )
