"""``aiopod pull`` and ``aiopod push`` against ``podman pull`` and ``podman push`` 4.3 on
Debian's docker-registry (plain, and with htpasswd authentication): the same command
line in both tools, each on a store of its own but with the same ``registries.conf``
(the registries marked insecure), auth file and home, gives the same exit status, the
same standard output (the image ID) and the same lines on standard error: podman's
progress lines and its one ``Error: …`` line for a missing tag or repository, a closed
port, a registry that wants credentials, a wrong password, an auth file that is not
there.

podman's own retry warnings (``time=… level=warning msg="Failed, retrying …"``) are left
out: podman repeats a whole copy after a network error, aiopod retries each request.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import (
    Podman,
    aiopod_env,
    directory,
    file,
    free_port,
    run,
    synthetic_image,
    write_docker_archive,
    write_oci_layout,
)

from registry.real_registries import SecureRegistry

pytestmark = pytest.mark.peer("podman", "skopeo", "docker-registry")

NAME = "localhost/diff:1"
IMAGE = synthetic_image(
    [NAME],
    [
        [directory("etc"), file("etc/os-release", b"ID=diff\n")],
        [directory("data"), file("data/blob", bytes(range(256)) * 2048)],
    ],
)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


@dataclass
class Tools:
    """podman and aiopod, each with a store of its own, sharing one ``registries.conf``,
    auth file (``$REGISTRY_AUTH_FILE``) and home under the test's directory."""

    base: Path
    podman: Podman

    @property
    def authfile(self) -> Path:
        return self.base / "auth.json"

    def env(self, env: dict[str, str]) -> dict[str, str]:
        for key in ("DOCKER_CONFIG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
            env.pop(key, None)
        env["HOME"] = str(self.base / "home")
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.base / "registries.conf")
        env["REGISTRY_AUTH_FILE"] = str(self.authfile)
        return env

    def insecure(self, *addresses: str) -> None:
        (self.base / "registries.conf").write_text(
            "".join(f'[[registry]]\nlocation = "{a}"\ninsecure = true\n' for a in addresses)
        )

    def run_podman(self, *args: str) -> Outcome:
        cmd = ["podman", *self.podman.storage_args(), "--tmpdir", str(self.podman.tmpdir),
               "--events-backend", "none", *args]  # fmt: skip
        return _outcome(run(cmd, check=False, env=self.env(self.podman.env())))

    def run_aiopod(self, *args: str) -> Outcome:
        cmd = [sys.executable, "-m", "aiopod", "--root", str(self.base / "aiopod"), *args]
        return _outcome(run(cmd, check=False, env=self.env(aiopod_env())))

    def both(self, *args: str) -> tuple[Outcome, Outcome]:
        """(podman's outcome, aiopod's) of the same command line."""
        return self.run_podman(*args), self.run_aiopod(*args)


def _outcome(proc: subprocess.CompletedProcess[str]) -> Outcome:
    lines = proc.stderr.splitlines(True)
    kept = "".join(line for line in lines if not line.startswith("time="))
    return Outcome(proc.returncode, proc.stdout, kept)


@pytest.fixture
def tools(tmp_path: Path, podman: Podman, registry: str, basic_registry: SecureRegistry) -> Tools:
    """Both tools, with the session's registries marked insecure, an empty auth file and
    the image NAME loaded in both stores from one docker-archive."""
    tools = Tools(tmp_path / "shared", podman)
    (tools.base / "home").mkdir(parents=True)
    tools.authfile.write_text("{}")
    tools.insecure(registry, basic_registry.address)
    archive = write_docker_archive(tmp_path / "image.tar", [IMAGE])
    for ran in (tools.run_podman("load", "-i", str(archive)),
                tools.run_aiopod("load", "-i", str(archive))):  # fmt: skip
        assert ran.status == 0, ran
    return tools


@pytest.fixture
def published(tmp_path: Path, registry: str, basic_registry: SecureRegistry) -> Iterator[str]:
    """The repository path (no registry) of IMAGE as tag ``1`` in both registries,
    copied there by skopeo from an OCI layout."""
    layout = write_oci_layout(tmp_path / "layout", [IMAGE])
    path = f"diff/{tmp_path.name.lower()}"
    creds = f"{basic_registry.user}:{basic_registry.password}"
    for address, extra in ((registry, []), (basic_registry.address, ["--dest-creds", creds])):
        run(["skopeo", "copy", "--dest-tls-verify=false", *extra, f"oci:{layout}:{NAME}",
             f"docker://{address}/{path}:1"])  # fmt: skip
    yield path


def closed_port() -> str:
    return f"127.0.0.1:{free_port()}"


def test_a_pull_prints_podmans_lines_and_the_image_id(tools: Tools, registry: str, published: str):
    theirs, ours = tools.both("pull", f"{registry}/{published}:1")
    assert theirs.status == ours.status == 0, (theirs, ours)
    assert ours.stdout == theirs.stdout == f"{IMAGE.id}\n"
    # The blob lines come in the order the transfers start: compared as a set.
    assert sorted(ours.lines) == sorted(theirs.lines)
    assert (
        ours.lines[:2]
        == theirs.lines[:2]
        == [
            f"Trying to pull {registry}/{published}:1...",
            "Getting image source signatures",
        ]
    )
    assert ours.lines[-3:] == theirs.lines[-3:]
    assert ours.lines[-3:][0].startswith("Copying config sha256:")

    quiet = tools.both("pull", "-q", f"{registry}/{published}:1")
    assert quiet[1] == quiet[0] == Outcome(0, f"{IMAGE.id}\n", "")


@pytest.mark.parametrize(
    "case",
    ["missing tag", "missing repository", "closed port", "credentials required",
     "wrong password", "password given", "missing auth file", "password asked for"],
)  # fmt: skip
def test_a_pull_fails_in_podmans_words(
    tools: Tools, registry: str, basic_registry: SecureRegistry, published: str, case: str
) -> None:
    secure = basic_registry.address
    args: Sequence[str] = {
        "missing tag": [f"{registry}/{published}:nope"],
        "missing repository": [f"{registry}/{published}-nothere:1"],
        "closed port": [f"{closed_port()}/{published}:1"],
        "credentials required": [f"{secure}/{published}:1"],
        "wrong password": ["--creds", f"{basic_registry.user}:wrong", f"{secure}/{published}:1"],
        "password given": [
            "--creds", f"{basic_registry.user}:{basic_registry.password}",
            f"{secure}/{published}-nothere:1",
        ],
        "missing auth file": ["--authfile", str(tools.base / "none.json"), f"{registry}/x:1"],
        "password asked for": ["--creds", basic_registry.user, f"{secure}/{published}:1"],
    }[case]  # fmt: skip
    theirs, ours = tools.both("pull", *args)
    assert theirs.status == 125 and theirs.lines[-1].startswith("Error: "), theirs
    assert ours == theirs
    assert basic_registry.password not in ours.stderr


def test_a_push_prints_podmans_lines(tools: Tools, registry: str, tmp_path: Path) -> None:
    destination = f"{registry}/diff/{tmp_path.name.lower()}-pushed"
    theirs = tools.run_podman("push", NAME, f"{destination}:podman")
    ours = tools.run_aiopod("push", NAME, f"{destination}:aiopod")
    assert theirs.status == ours.status == 0, (theirs, ours)
    assert ours.stdout == theirs.stdout == ""
    assert sorted(ours.lines) == sorted(theirs.lines)
    assert ours.lines[0] == theirs.lines[0] == "Getting image source signatures"
    assert ours.lines[-3:] == theirs.lines[-3:]
    assert ours.lines[-3] == f"Copying config sha256:{IMAGE.id}"

    quiet = tools.both("push", "-q", NAME, f"{destination}:quiet")
    assert quiet[1] == quiet[0] == Outcome(0, "", "")


@pytest.mark.parametrize(
    "case",
    ["closed port", "credentials required", "wrong password", "image not known",
     "tls verified on plain http", "missing auth file", "not a destination",
     "unknown transport", "image not known first"],
)  # fmt: skip
def test_a_push_fails_in_podmans_words(
    tools: Tools, registry: str, basic_registry: SecureRegistry, tmp_path: Path, case: str
) -> None:
    path = f"diff/{tmp_path.name.lower()}-refused:1"
    secure = basic_registry.address
    args: Sequence[str] = {
        "closed port": [NAME, f"{closed_port()}/{path}"],
        "credentials required": [NAME, f"{secure}/{path}"],
        "wrong password": ["--creds", f"{basic_registry.user}:wrong", NAME, f"{secure}/{path}"],
        "image not known": ["localhost/not-here:1", f"{registry}/{path}"],
        "tls verified on plain http": ["--tls-verify=true", NAME, f"{registry}/{path}"],
        "missing auth file": ["--authfile", str(tools.base / "none.json"), NAME,
                              f"{registry}/{path}"],
        "not a destination": [NAME, "Bad/Name"],
        "unknown transport": [NAME, f"{registry}/Bad/Name:1"],
        "image not known first": ["localhost/not-here:1", "Bad/Name:1"],
    }[case]  # fmt: skip
    theirs, ours = tools.both("push", *args)
    assert theirs.status == ours.status == 125, (theirs, ours)
    assert ours.stdout == theirs.stdout == ""
    # Which blob a failure names depends on which transfer failed first; podman repeats
    # its progress lines at each of its retries of the whole copy.
    assert DIGEST.sub("sha256:…", ours.lines[-1]) == DIGEST.sub("sha256:…", theirs.lines[-1])
    assert set(ours.lines) - {ours.lines[-1]} == set(theirs.lines) - {theirs.lines[-1]}
    assert basic_registry.password not in ours.stderr


def test_a_build_checks_its_auth_file_first(tools: Tools, registry: str, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {registry}/diff/not-pulled:1\n")
    missing = str(tools.base / "none.json")
    theirs, ours = tools.both("build", "--authfile", missing, str(context))
    assert (
        ours
        == theirs
        == Outcome(
            125, "", f"Error: checking authfile: stat {missing}: no such file or directory\n"
        )
    )


def test_a_user_name_left_out_of_creds_is_asked_for(
    tools: Tools, registry: str, published: str
) -> None:
    """``--creds :PASSWORD``: podman asks for the user name (``Username: `` on standard
    output, a word from standard input; none here) and pulls with what it has."""
    theirs, ours = tools.both("pull", "--creds", ":pw", f"{registry}/{published}:1")
    assert ours.status == theirs.status == 0
    assert ours.stdout == theirs.stdout == f"Username: {IMAGE.id}\n"
