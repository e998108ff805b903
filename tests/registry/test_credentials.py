"""Credentials and auth files: which file answers (against ``podman login --get-login``),
which key inside it, how a login writes, and that a password never shows."""

from __future__ import annotations

import base64
import json
import os
import pickle
import stat
from pathlib import Path

import pytest
from peers import Podman, run

from aiopod import ConfigurationError, Credentials, NotLoggedIn, UsageError
from aiopod.transports.registry.credentials import (
    auth_files,
    find_credentials,
    remove_credentials,
    store_credentials,
)
from aiopod.transports.registry.tls import TLSConfig, ssl_context

REGISTRY = "127.0.0.1:5999"


def auth_json(path: Path, entries: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    auths = {
        key: {"auth": base64.b64encode(f"{user}:pw".encode()).decode()}
        for key, user in entries.items()
    }
    path.write_text(json.dumps({"auths": auths}))


# Which of the files holding credentials for REGISTRY answers, for each environment.
LAYOUTS = {
    "nothing set": {},
    "runtime dir": {"XDG_RUNTIME_DIR": "{base}/run"},
    "REGISTRY_AUTH_FILE": {
        "XDG_RUNTIME_DIR": "{base}/run",
        "REGISTRY_AUTH_FILE": "{base}/chosen.json",
    },
    "DOCKER_CONFIG": {"DOCKER_CONFIG": "{base}/docker-config"},
    "XDG_CONFIG_HOME": {"XDG_CONFIG_HOME": "{base}/elsewhere"},
    "missing runtime dir": {"XDG_RUNTIME_DIR": "{base}/no-such-dir"},
}


@pytest.mark.peer("podman")
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("remove", [(), ("config",), ("config", "docker")])
def test_the_file_that_answers_is_the_one_podman_reads(
    tmp_path: Path, podman: Podman, layout: str, remove: tuple[str, ...]
) -> None:
    base = tmp_path / "b"
    home = base / "home"
    files = {
        "run": base / "run/containers/auth.json",
        "config": home / ".config/containers/auth.json",
        "docker": home / ".docker/config.json",
        "chosen": base / "chosen.json",
        "docker-config": base / "docker-config/config.json",
        "elsewhere": base / "elsewhere/containers/auth.json",
    }
    for user, path in files.items():
        if user not in remove:
            auth_json(path, {REGISTRY: user})
    environ = {"HOME": str(home), **{k: v.format(base=base) for k, v in LAYOUTS[layout].items()}}
    env = {
        k: v for k, v in podman.env().items() if k not in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE")
    }
    env.pop("XDG_RUNTIME_DIR", None)
    env.pop("XDG_CONFIG_HOME", None)
    cmd = ["podman", *podman.storage_args(), "login", "--get-login", REGISTRY]
    proc = run(cmd, check=False, env={**env, **environ})
    found = find_credentials(REGISTRY, auth_files(environ=environ))
    expected = proc.stdout.strip() if proc.returncode == 0 else None
    assert (found.username if found else None) == expected


def test_the_most_specific_key_answers(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    auth_json(
        path,
        {REGISTRY: "host", f"{REGISTRY}/team": "team", f"{REGISTRY}/team/app": "app"},
    )
    files = auth_files(path)
    assert find_credentials(f"{REGISTRY}/team/app/x", files).username == "app"  # type: ignore[union-attr]
    assert find_credentials(f"{REGISTRY}/team/other", files).username == "team"  # type: ignore[union-attr]
    assert find_credentials(f"{REGISTRY}/solo", files).username == "host"  # type: ignore[union-attr]
    assert find_credentials("other.test/x", files) is None


def test_keys_written_as_urls_are_read_for_their_host(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    auth_json(path, {"https://index.docker.io/v1/": "hub", f"http://{REGISTRY}/v2/": "url"})
    files = auth_files(path)
    assert find_credentials("docker.io/library/alpine", files).username == "hub"  # type: ignore[union-attr]
    assert find_credentials(f"{REGISTRY}/x", files).username == "url"  # type: ignore[union-attr]


def test_a_login_writes_0600_atomically_and_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "auth.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps({"auths": {"other.test": {"auth": "eDp5"}}, "credHelpers": {"a": "b"}})
    )
    files = auth_files(path)
    store_credentials(REGISTRY, Credentials("u", "secret"), files)
    document = json.loads(path.read_text())
    assert document["credHelpers"] == {"a": "b"}
    assert document["auths"][REGISTRY] == {"auth": base64.b64encode(b"u:secret").decode()}
    assert "other.test" in document["auths"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["auth.json"]  # no temporary file left
    remove_credentials(REGISTRY, files)
    with pytest.raises(NotLoggedIn, match=f"not logged into {REGISTRY}"):
        remove_credentials(REGISTRY, files)


def test_a_new_auth_file_gets_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "auth.json"
    store_credentials(REGISTRY, Credentials("u", "p"), auth_files(path))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_malformed_auth_file_is_named_without_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text('{"auths": {"r": {"auth": "c2VjcmV0LXBhc3N3b3Jk!"}}')
    with pytest.raises(ConfigurationError) as caught:
        find_credentials("r", auth_files(path))
    assert str(path) in str(caught.value)
    path.write_text('{"auths": {"r": {"auth": "c2VjcmV0LXBhc3N3b3Jk!"}}}')
    with pytest.raises(ConfigurationError, match="not base64") as caught:
        find_credentials("r", auth_files(path))
    assert "secret-password" not in str(caught.value)


def test_credentials_never_show_their_password() -> None:
    credentials = Credentials("alice", "hunter2")
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert "hunter2" not in text
        assert "alice" in text
    assert Credentials.parse("bob:pa:ss") == Credentials("bob", "pa:ss")
    assert pickle.loads(pickle.dumps(credentials)) == credentials
    for bad in ("", ":pw"):
        with pytest.raises(UsageError):
            Credentials.parse(bad)


def test_a_client_certificate_needs_its_key_and_the_reverse(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "client.cert").write_text("")
    with pytest.raises(ConfigurationError, match=r"missing key client\.key for client certificate"):
        ssl_context(TLSConfig("h", cert_dir=certs))
    (certs / "client.cert").unlink()
    (certs / "other.key").write_text("")
    with pytest.raises(ConfigurationError, match=r"missing client certificate other\.cert for key"):
        ssl_context(TLSConfig("h", cert_dir=certs))
