"""Registry commands: ``aiopod login`` and ``aiopod logout``, with podman's output.

``aiopod login [-u USER] [-p PASS | --password-stdin] [--get-login] [--authfile FILE]
[--tls-verify=BOOL] [--cert-dir DIR] [-v] [REGISTRY]``

* prints ``Login Succeeded!`` once the registry accepted the credentials and they are
  written (``-v`` also prints ``Used:  FILE``); ``--get-login`` prints the stored user;
* without ``-u`` and ``-p``, stored credentials are checked first (``Authenticating with
  existing credentials for KEY``, then ``Existing credentials are valid. Already logged
  in to REGISTRY`` or ``Existing credentials are invalid, please enter valid username
  and password``); a missing user name is read from standard input (``Username: ``) and
  a missing password from the terminal, without echo (``Password: ``), as podman does;
* ``--password-stdin`` reads the password from standard input (its lines joined).

``aiopod logout [-a] [--authfile FILE] [REGISTRY]`` prints ``Removed login credentials
for KEY`` (``... for all registries`` with ``-a``).  Errors are podman's, exit 125.  The
password is never printed.
"""

from __future__ import annotations

import functools
import getpass
import sys

import anyio.to_thread
import click

from aiopod import Runtime
from aiopod.cli.app import CliContext, cli, run
from aiopod.cli.registry_options import authfile_option, cert_dir_option, tls_verify_option
from aiopod.cli.usage import at_most
from aiopod.errors import AuthenticationFailed, NotLoggedIn, UsageError
from aiopod.transports.registry.login import credentials_key

__all__ = ("login_command", "logout_command")

pass_cli = click.make_pass_decorator(CliContext)


async def _read_line() -> str:
    return await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)


async def _prompt_user(stored: str | None) -> str:
    click.echo(f"Username ({stored}): " if stored else "Username: ", nl=False)
    line = await _read_line()
    if not line:
        raise UsageError("getting username and password: reading username: EOF")
    return line.strip() or (stored or "")


async def _prompt_password() -> str:
    if not sys.stdin.isatty():
        click.echo("Password: ", nl=False)
        raise UsageError(
            "getting username and password: reading password: inappropriate ioctl for device"
        )
    password = await anyio.to_thread.run_sync(lambda: getpass.getpass("Password: "))
    return password


async def _stored_user(rt: Runtime, registry: str | None, authfile: str | None) -> str | None:
    if not registry:
        return None
    try:
        return await rt.logged_in_user(registry, authfile=authfile)
    except NotLoggedIn:
        return None


@cli.command("login", args_rule=at_most(1))
@click.option("-u", "--username", default="", help="Username for the registry.")
@click.option("-p", "--password", default="", help="Password for the registry.")
@click.option("--password-stdin", is_flag=True, help="Take the password from standard input.")
@click.option("--get-login", is_flag=True, help="Print the user name stored for the registry.")
@authfile_option
@tls_verify_option
@cert_dir_option
@click.option("-v", "--verbose", is_flag=True, help="Print the auth file used.")
@click.argument("registry", required=False)
@pass_cli
def login_command(
    ctx: CliContext,
    username: str,
    password: str,
    password_stdin: bool,
    get_login: bool,
    authfile: str | None,
    tls_verify: bool | None,
    cert_dir: str | None,
    verbose: bool,
    registry: str | None,
) -> None:
    """Log in to a container registry."""

    async def body(rt: Runtime) -> None:
        if get_login:
            if not registry:
                raise UsageError("please provide a registry to get the login of")
            click.echo(await rt.logged_in_user(registry, authfile=authfile))
            return
        secret = password
        if password_stdin:
            if password:
                raise UsageError("Can't specify both --password-stdin and --password")
            if not username:
                raise UsageError("Must provide --username with --password-stdin")
            data = await anyio.to_thread.run_sync(sys.stdin.read)
            secret = "".join(data.splitlines())
        login = functools.partial(
            rt.login, authfile=authfile, tls_verify=tls_verify, cert_dir=cert_dir
        )
        stored = await _stored_user(rt, registry, authfile)
        if not username and not secret and stored is not None:
            key, _ = credentials_key(registry or "")
            click.echo(f"Authenticating with existing credentials for {key}")
            try:
                outcome = await login(registry)
            except (AuthenticationFailed, NotLoggedIn):
                click.echo(
                    "Existing credentials are invalid, please enter valid username and password"
                )
            else:
                click.echo(
                    f"Existing credentials are valid. Already logged in to {outcome.registry}"
                )
                return
        user = username or await _prompt_user(stored)
        if not secret:
            secret = await _prompt_password()
            click.echo()
        outcome = await login(registry, user, secret)
        if verbose and outcome.path is not None:
            click.echo(f"Used:  {outcome.path}")
        click.echo("Login Succeeded!")

    run(ctx, body)


@cli.command("logout", args_rule=at_most(1))
@click.option("-a", "--all", "all_", is_flag=True, help="Remove the credentials of every registry.")
@authfile_option
@click.argument("registry", required=False)
@pass_cli
def logout_command(ctx: CliContext, all_: bool, authfile: str | None, registry: str | None) -> None:
    """Log out of a container registry."""
    outcome = run(ctx, lambda rt: rt.logout(registry, all=all_, authfile=authfile))
    if outcome.key is None:
        click.echo("Removed login credentials for all registries")
    elif outcome.other_tool:
        click.echo(
            f"Not logged into {outcome.key} with current tool. Existing credentials were "
            "established via docker login. Please use docker logout instead."
        )
    else:
        click.echo(f"Removed login credentials for {outcome.key}")
