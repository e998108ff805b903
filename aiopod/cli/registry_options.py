"""The registry options podman's commands share, with podman's spellings and defaults.

``--authfile FILE``, ``--tls-verify[=BOOL]`` and ``--cert-dir DIR`` (``login``, ``pull``,
``push``, ``build``), ``--creds USER[:PASS]`` (``pull``, ``push``, ``build``).
``--tls-verify`` left out means "as ``registries.conf`` says" (a registry marked
``insecure`` there is reached over plain HTTP), not "verify": only a value given on the
command line overrides the configuration, as in podman.

:func:`check_authfile` is podman's check, before a pull, push or build, that the auth
file named by ``--authfile``, ``$REGISTRY_AUTH_FILE`` or ``$DOCKER_CONFIG`` exists;
:func:`read_creds` reads ``--creds`` as podman does, asking for a missing user name
(``Username: ``, a word from standard input) or password (``Password: ``, from the
terminal without echo).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from aiopod.cli.app import fail

if TYPE_CHECKING:  # the registry modules load only when a command uses them
    from aiopod.transports.registry.credentials import Credentials

__all__ = (
    "authfile_option",
    "cert_dir_option",
    "check_authfile",
    "creds_option",
    "read_creds",
    "registry_options",
    "tls_verify_option",
)

authfile_option = click.option(
    "--authfile", default=None, metavar="FILE", help="The auth file to use."
)
tls_verify_option = click.option(
    "--tls-verify",
    type=click.BOOL,
    default=None,
    is_flag=False,
    flag_value=True,
    help="Require HTTPS and verify certificates (default: registries.conf decides).",
)
cert_dir_option = click.option(
    "--cert-dir", default=None, metavar="DIR", help="Certificates for the registry."
)
creds_option = click.option(
    "--creds", default=None, metavar="USER[:PASS]", help="Credentials for the registry."
)


def registry_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--tls-verify``, ``--creds``, ``--authfile`` and ``--cert-dir``, in that order."""
    for option in (cert_dir_option, authfile_option, creds_option, tls_verify_option):
        func = option(func)
    return func


def check_authfile(authfile: str | None, *, prefix: str = "") -> None:
    """Exit 125 as podman does when the auth file the command would use was named (by
    *authfile*, ``$REGISTRY_AUTH_FILE`` or ``$DOCKER_CONFIG``) and cannot be found:
    ``Error: <prefix>stat FILE: no such file or directory``."""
    from aiopod.transports.registry.credentials import auth_files

    files = auth_files(authfile)
    if not files.chosen:
        return
    try:
        os.stat(files.write)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        fail(f"{prefix}stat {files.write}: {reason[:1].lower()}{reason[1:]}")


def read_creds(creds: str | None) -> Credentials | None:
    """``--creds USER[:PASS]`` as credentials (none when it is empty or not given).

    A missing user name is asked for on standard output (``Username: ``) and read as one
    word from standard input; a missing password likewise (``Password: ``), read without
    echo from the terminal, and when standard input is no terminal the command exits 125
    as podman does.  Blocking: call it before the command's event loop starts."""
    if not creds:
        return None
    username, _, password = creds.partition(":")
    if not username:
        click.echo("Username: ", nl=False)
        words = sys.stdin.readline().split()
        username = words[0] if words else ""
    if not password:
        click.echo("Password: ", nl=False)
        if not sys.stdin.isatty():
            fail("could not read password from terminal: inappropriate ioctl for device")
        password = getpass.getpass(prompt="")
    from aiopod.transports.registry.credentials import Credentials

    return Credentials(username, password)
