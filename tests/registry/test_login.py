"""``aiopod login``/``logout`` against podman 4.3 on the same real registries: each step of
a session runs in both tools (each with its own auth file and home), and their output,
exit status and auth file must be the same, byte for byte; aiopod's output never holds
the password."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import Podman, aiopod_env, run

from registry.real_registries import SecureRegistry

pytestmark = pytest.mark.peer("podman", "docker-registry")


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str
    authfile: bytes | None


def _without_warnings(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(True) if not line.startswith("time="))


@dataclass
class Side:
    """One tool with a home of its own; ``{authfile}`` and ``{home}`` in arguments are
    replaced by its own paths."""

    name: str
    base: Path
    podman: Podman | None = None

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def authfile(self) -> Path:
        return self.base / "auth.json"

    def env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = self.podman.env() if self.podman is not None else aiopod_env()
        for key in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
            env.pop(key, None)
        env["HOME"] = str(self.home)
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.base / "registries.conf")
        env.update({k: v.format(home=self.home, base=self.base) for k, v in extra.items()})
        return env

    def __call__(
        self, args: Sequence[str], *, input: str | None, env: Mapping[str, str], watch: Path
    ) -> Outcome:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.base / "registries.conf").touch()
        argv = [a.format(authfile=self.authfile, home=self.home) for a in args]
        if self.podman is not None:
            cmd = ["podman", *self.podman.storage_args(), "--tmpdir", str(self.podman.tmpdir)]
        else:
            cmd = [sys.executable, "-m", "aiopod", "--root", str(self.base / "store")]
        proc = run([*cmd, *argv], check=False, input=input, env=self.env(env))
        watched = Path(str(watch).format(authfile=self.authfile, home=self.home, base=self.base))
        data = watched.read_bytes() if watched.exists() else None
        stdout, stderr = (t.replace(str(self.base), "{base}") for t in (proc.stdout, proc.stderr))
        return Outcome(proc.returncode, stdout, _without_warnings(stderr), data)


@pytest.fixture
def sides(tmp_path: Path, podman: Podman) -> tuple[Side, Side]:
    return Side("podman", tmp_path / "p", podman), Side("aiopod", tmp_path / "a")


def compare(
    sides: tuple[Side, Side],
    steps: Sequence[tuple[Sequence[str], str | None]],
    *,
    password: str,
    env: Mapping[str, str] | None = None,
    watch: str = "{authfile}",
) -> list[Outcome]:
    podman, ours = sides
    outcomes = []
    for args, input in steps:
        expected = podman(args, input=input, env=env or {}, watch=Path(watch))
        got = ours(args, input=input, env=env or {}, watch=Path(watch))
        assert got == expected, f"{' '.join(args)}:\npodman: {expected}\naiopod: {got}"
        assert password not in got.stdout + got.stderr
        outcomes.append(got)
    return outcomes


def test_a_login_session_on_a_basic_auth_registry_matches_podman(
    sides: tuple[Side, Side], basic_registry: SecureRegistry
) -> None:
    reg, user, password = basic_registry.address, basic_registry.user, basic_registry.password
    auth = ["--authfile", "{authfile}"]
    insecure = [*auth, "--tls-verify=false"]
    steps: list[tuple[list[str], str | None]] = [
        (["login", *auth, "-u", user, "-p", password, reg], None),
        (["login", *insecure, "-u", user, "-p", "wrong", reg], None),
        (["login", *insecure, "-u", user, "-p", password, reg], None),
        (["login", *auth, "--get-login", reg], None),
        (["login", *insecure, reg], None),
        (["login", *insecure, "-u", user, "--password-stdin", reg], password + "\n"),
        (["login", *insecure, "-u", user, "-p", password, f"https://{reg}/v2/"], None),
        (["login", *insecure, "-u", user, "-p", password, f"{reg}/team/app"], None),
        (["login", *insecure, "-u", user, "-p", password, f"{reg}/team/app:1"], None),
        (["login", *auth, "--get-login", f"{reg}/team/app/sub"], None),
        (["login", *auth, "--get-login", "127.0.0.1:1"], None),
        (["logout", *auth, f"{reg}/team/app"], None),
        (["logout", *auth, f"{reg}/team/app"], None),
        (["logout", *auth, "-a", reg], None),
        (["logout", *auth, "-a"], None),
        (["login", *insecure, "--password-stdin", reg], password),
        (["login", *insecure, "-u", user, "-p", "x", "--password-stdin", reg], password),
        (["login", *insecure, "-u", user, "-p", password, "a", "b"], None),
        (["logout", "--authfile", "{home}/missing.json", reg], None),
    ]
    outcomes = compare(sides, steps, password=password)
    assert outcomes[2].stdout == "Login Succeeded!\n"
    assert outcomes[4].stdout.endswith(f"Already logged in to {reg}\n")
    assert outcomes[11].stdout == f"Removed login credentials for {reg}/team/app\n"
    # The auth file: mode 0600, the password only base64-encoded in "auth".
    authfile = sides[1].authfile
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    assert password not in authfile.read_text()


def test_a_login_over_tls_matches_podman(
    sides: tuple[Side, Side], tls_registry: SecureRegistry
) -> None:
    reg, user, password = tls_registry.address, tls_registry.user, tls_registry.password
    login = ["login", "--authfile", "{authfile}", "-u", user, "-p", password]
    compare(
        sides,
        [
            ([*login, reg], None),
            ([*login, "--cert-dir", str(tls_registry.host_cert_dir), reg], None),
            ([*login, "--tls-verify=false", reg], None),
            ([*login, "--tls-verify=false", "-p", "wrong", reg], None),
        ],
        password=password,
    )
    # The per-user certs.d directory in the home (~/.config/containers/certs.d/HOST:PORT).
    for side in sides:
        certs = side.home / ".config" / "containers" / "certs.d"
        certs.mkdir(parents=True)
        os.symlink(tls_registry.host_cert_dir, certs / reg)
    compare(sides, [([*login, reg], None)], password=password)


def test_the_default_auth_file_is_podmans(
    sides: tuple[Side, Side], basic_registry: SecureRegistry
) -> None:
    """Without --authfile: $XDG_RUNTIME_DIR/containers/auth.json is written; the user's
    ~/.config/containers/auth.json is read after it; $REGISTRY_AUTH_FILE replaces both."""
    reg, user, password = basic_registry.address, basic_registry.user, basic_registry.password
    for side in sides:
        (side.base / "run").mkdir(parents=True)
        config = side.home / ".config" / "containers"
        config.mkdir(parents=True)
        (config / "auth.json").write_text('{"auths": {"127.0.0.1:2": {"auth": "dXNlcjI6cHc="}}}')
        (side.base / "chosen.json").write_text(
            '{"auths": {"127.0.0.1:2": {"auth": "dXNlcjM6cHc="}}}'
        )
    runtime = {"XDG_RUNTIME_DIR": "{base}/run"}
    written = "{base}/run/containers/auth.json"
    login = ["login", "--tls-verify=false", "-u", user, "-p", password, reg]
    compare(
        sides,
        [(login, None), (["login", "--get-login", "127.0.0.1:2"], None)],
        password=password,
        env=runtime,
        watch=written,
    )
    compare(
        sides,
        [(["login", "--get-login", "127.0.0.1:2"], None), (["logout", "127.0.0.1:2"], None)],
        password=password,
        env={**runtime, "REGISTRY_AUTH_FILE": "{base}/chosen.json"},
        watch="{base}/chosen.json",
    )
    compare(
        sides,
        [(login, None)],
        password=password,
        env={"XDG_RUNTIME_DIR": "{base}/no-such-dir"},
        watch=written,
    )


def test_a_login_to_a_registry_out_of_reach_fails_as_podmans(
    sides: tuple[Side, Side], basic_registry: SecureRegistry, registry: str
) -> None:
    """A closed port, TLS asked of a plain-HTTP registry (registries.conf says nothing of
    it), and a registry that wants no credentials at all."""
    from peers import free_port

    reg, user, password = basic_registry.address, basic_registry.user, basic_registry.password
    login = ["login", "--authfile", "{authfile}", "-u", user, "-p", password]
    outcomes = compare(
        sides,
        [
            ([*login, f"127.0.0.1:{free_port()}"], None),
            ([*login, reg], None),
            ([*login, "--tls-verify=false", registry], None),
        ],
        password=password,
    )
    assert [o.status for o in outcomes[:2]] == [125, 125]
    assert all(o.stderr.startswith("Error: ") for o in outcomes[:2])
