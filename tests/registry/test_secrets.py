"""A password given to aiopod goes to the registry and to the auth file, and nowhere else.

Against docker-registry with htpasswd (Basic) authentication, a session of logins, pushes
and pulls, with the right password and with a wrong one, on the command line and through
the API: neither password, nor the ``user:password`` pair in base64 (what the auth file
and the ``Authorization`` header carry), nor the password URL-quoted, shows in any
output, in any file of the store (its event log included), in the events aiopod reports,
in the log records of any logger, or in the text, repr or attributes of any exception a
failure raises (its causes included).
"""

from __future__ import annotations

import base64
import logging
import traceback
import urllib.parse
from pathlib import Path

import anyio.to_thread
import pytest
from peers import aiopod, directory, file, synthetic_image, write_docker_archive

from aiopod import AuthenticationFailed, Runtime
from aiopod.errors import AiopodError
from registry.real_registries import SecureRegistry

pytestmark = [pytest.mark.anyio, pytest.mark.peer("docker-registry")]

NAME = "localhost/secret:1"
IMAGE = synthetic_image([NAME], [[directory("etc"), file("etc/hostname", b"secret-test\n")]])
#: A wrong password as distinctive as the right one: it must not show either.
WRONG = "Wr0ng-pa55w0rd-9f3c"


def forms(user: str, password: str) -> list[str]:
    """Every form in which a password could leak."""
    pair = f"{user}:{password}".encode()
    return [
        password,
        base64.b64encode(pair).decode(),
        base64.urlsafe_b64encode(pair).decode(),
        base64.b64encode(password.encode()).decode(),
        urllib.parse.quote(password),
        urllib.parse.quote_plus(password),
    ]


def secrets_of(registry: SecureRegistry) -> list[str]:
    return forms(registry.user, registry.password) + forms(registry.user, WRONG)


def leaks(text: str | bytes, secrets: list[str]) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in secrets if s.encode() in data]


def files_leaking(root: Path, secrets: list[str]) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            leaked = leaks(path.read_bytes(), secrets)
            if leaked:
                found[str(path.relative_to(root))] = leaked
    return found


def exception_text(exc: BaseException) -> str:
    """str, repr, attributes and the whole formatted chain of *exc*."""
    parts = []
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            pending += list(current.exceptions)
    parts.append("".join(traceback.format_exception(exc)))
    return "\n".join(parts)


def test_the_command_line_never_shows_a_password(
    basic_registry: SecureRegistry, tmp_path: Path
) -> None:
    reg, user, password = basic_registry.address, basic_registry.user, basic_registry.password
    root, authfile = tmp_path / "store", tmp_path / "auth.json"
    archive = write_docker_archive(tmp_path / "image.tar", [IMAGE])
    target = f"{reg}/secret/app:1"
    auth = ["--authfile", str(authfile), "--tls-verify=false"]
    steps: list[tuple[list[str], int]] = [
        (["load", "-i", str(archive)], 0),
        (["login", *auth, "-u", user, "-p", WRONG, reg], 125),
        (["push", *auth, NAME, target], 125),  # no credentials stored yet
        (["push", *auth, "--creds", f"{user}:{WRONG}", NAME, target], 125),
        (["pull", *auth, "--creds", f"{user}:{WRONG}", target], 125),
        (["login", *auth, "-u", user, "-p", password, reg], 0),
        (["push", *auth, NAME, target], 0),  # with the stored credentials
        (["pull", *auth, target], 0),
        (["pull", *auth, "--creds", f"{user}:{password}", target], 0),
        (["pull", *auth, "--creds", f"{user}:{password}", f"{reg}/secret/none:1"], 125),
        (["push", *auth, "--creds", f"{user}:{password}", NAME, f"{reg}/secret/copy:1"], 0),
        (["login", *auth, "--get-login", reg], 0),
        (["events", "--stream=false", "--format", "json"], 0),
        (["logout", "--authfile", str(authfile), reg], 0),
    ]
    secrets = secrets_of(basic_registry)
    for args, status in steps:
        proc = aiopod(*args, root=root)
        assert proc.returncode == status, (args, proc.stdout, proc.stderr)
        assert not leaks(proc.stdout + proc.stderr, secrets), (args, proc.stdout, proc.stderr)
    events = aiopod("events", "--stream=false", root=root).stdout
    assert "pull" in events and "push" in events
    assert not files_leaking(root, secrets)


async def test_the_api_never_shows_a_password(
    basic_registry: SecureRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, user, password = basic_registry.address, basic_registry.user, basic_registry.password
    secrets = secrets_of(basic_registry)
    authfile = tmp_path / "auth.json"
    archive = write_docker_archive(tmp_path / "image.tar", [IMAGE])
    target = f"{reg}/secret/api:1"
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []
    async with Runtime(tmp_path / "store") as rt:
        await rt.load(archive)
        with pytest.raises(AuthenticationFailed) as login_failed:
            await rt.login(reg, user, WRONG, authfile=authfile, tls_verify=False)
        failures.append(login_failed.value)
        for call in (
            rt.push(NAME, target, credentials=(user, WRONG), authfile=authfile, tls_verify=False),
            rt.pull(target, credentials=f"{user}:{WRONG}", authfile=authfile, tls_verify=False),
            rt.pull(
                f"{reg}/secret/none:1",
                credentials=(user, password),
                authfile=authfile,
                tls_verify=False,
            ),
        ):
            with pytest.raises(AiopodError) as caught:
                await call
            failures.append(caught.value)
        await rt.login(reg, user, password, authfile=authfile, tls_verify=False)
        digest = await rt.push(NAME, target, authfile=authfile, tls_verify=False)
        image = await rt.pull(
            f"{target.rsplit(':', 1)[0]}@{digest}", authfile=authfile, tls_verify=False
        )
        inspected = await rt.inspect_image(image.id)
        events = await anyio.to_thread.run_sync(lambda: [repr(e) for e in rt.event_log.read()])
    assert isinstance(failures[1], AuthenticationFailed)
    for failure in failures:
        assert not leaks(exception_text(failure), secrets), exception_text(failure)
    assert any("Pulled" in e for e in events) and any("Pushed" in e for e in events)
    assert not leaks(repr(inspected) + repr(image) + "".join(events), secrets)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    assert not leaks(logged, secrets), logged
    assert not files_leaking(tmp_path / "store", secrets)
