"""Usage errors, differentially: podman 4.3.1's real binary and aiopod, side by side.

Every command line below is wrong the way a user gets it wrong (too few or too many
arguments, an unknown flag or shorthand, a flag without its value, a bad boolean or
integer, an unknown command, a group without its command) or right in pflag's ways that
click alone reads differently (``-f=false``, ``--`` before an argument that starts with a
dash).  podman runs on a private store; aiopod on a fresh one.

The program's name: podman names itself in these messages as it was started
(``See 'podman rmi --help'``; a link called ``mypod`` says ``mypod``), so aiopod does the
same.  Started under the name ``podman`` (a launcher script of that name, as a drop-in
link would be) with ``--policy podman``, aiopod's standard error and exit code are
podman's byte for byte.  Started as ``python -m aiopod`` it says ``aiopod`` where podman
says ``podman``, and nothing else differs; that is checked under the default policy,
because the usage errors do not depend on the policy (the policies are about removal,
the command line is podman's everywhere).  Standard output is compared too, except
where podman prints its own help (a group without a command), which is not aiopod's.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Podman, aiopod, aiopod_env, run

pytestmark = pytest.mark.peer("podman")

#: Command lines and why each is wrong (or right), as measured on podman 4.3.1.
CASES: list[tuple[str, list[str]]] = [
    # too few or too many arguments: cobra's Args rules and podman's own words
    ("requires at least 2 arg(s)", ["tag"]),
    ("requires at least 2 arg(s), one given", ["tag", "x"]),
    ("requires at least 1 arg(s)", ["untag"]),
    ("requires at least 1 arg(s) (create)", ["create"]),
    ("accepts at most 1 arg(s) (images)", ["images", "a", "b"]),
    ("accepts at most 1 arg(s) (build)", ["build", "a", "b"]),
    ("accepts between 1 and 2 arg(s), none", ["import"]),
    ("accepts between 1 and 2 arg(s), three", ["import", "a", "b", "c"]),
    ("takes no arguments (load)", ["load", "a"]),
    ("takes no arguments (image prune)", ["image", "prune", "x"]),
    ("takes no arguments (ps)", ["ps", "x"]),
    ("takes no arguments (events)", ["events", "x"]),
    ("save needs an image", ["save"]),
    ("save needs an image, with -o", ["save", "-o", "/nonexistent/out.tar"]),
    ("inspect needs a name", ["inspect"]),
    ("image inspect needs a name", ["image", "inspect"]),
    ("rmi needs a name", ["rmi"]),
    ("image rm needs a name", ["image", "rm"]),
    ("rmi --all with a name", ["rmi", "-a", "x"]),
    ("rm needs a name", ["rm"]),
    ("rm --all with a name", ["rm", "-a", "x"]),
    # flags pflag does not know
    ("unknown flag", ["rmi", "--nosuch", "x"]),
    ("unknown flag (tag)", ["tag", "--x", "a", "b"]),
    ("unknown flag (import)", ["import", "--bogus"]),
    ("unknown flag before the command", ["--nosuch"]),
    ("unknown shorthand flag", ["rmi", "-z", "x"]),
    ("unknown shorthand flag after a known one", ["rmi", "-fz", "x"]),
    ("unknown shorthand flag before a known one", ["rmi", "-zf", "x"]),
    ("unknown shorthand flag (images)", ["images", "-qz"]),
    ("unknown shorthand flag (untag)", ["untag", "-x"]),
    ("unknown flag beats too many arguments", ["images", "a", "b", "--nosuch"]),
    ("bad flag syntax", ["images", "---all"]),
    # flags without their values, and values that are not what the flag takes
    ("flag needs an argument", ["images", "--format"]),
    ("flag needs an argument (-o)", ["save", "-o"]),
    ("flag needs an argument (--output)", ["save", "--output"]),
    ("flag needs an argument (-i)", ["load", "-i"]),
    ("flag needs an argument (--timestamp)", ["build", "--timestamp"]),
    ("flag needs an argument before the command", ["--root"]),
    ("invalid boolean", ["images", "-q", "--all=x"]),
    ("invalid boolean (--external)", ["image", "prune", "--external=maybe"]),
    ("invalid boolean, numeric", ["rmi", "--all=2", "x"]),
    ("invalid boolean, shorthand", ["rmi", "-f=x", "x"]),
    ("invalid integer", ["build", "--timestamp", "x", "."]),
    ("integer out of range", ["build", "--timestamp=99999999999999999999", "."]),
    ("invalid integer, underscore last", ["build", "--timestamp=1_", "."]),
    # commands that do not exist, groups without a command
    ("unrecognized command", ["nosuch"]),
    ("unrecognized command of a group", ["image", "nosuch"]),
    ("unrecognized command of system", ["system", "nosuch"]),
    ("missing command", ["image"]),
    ("missing command (system)", ["system"]),
    ("missing command at the root", []),
    # pflag's syntax, read right
    ("a boolean set to false", ["rmi", "--force=false", "nosuch"]),
    ("a shorthand boolean set to false", ["rmi", "-f=false", "nosuch"]),
    ("an argument after --", ["rmi", "--", "-x"]),
    ("the last value of a boolean counts", ["rmi", "-a", "--all=false"]),
    ("flags after the arguments", ["untag", "nosuch", "--bogus"]),
    ("unknown flag before the image (create)", ["create", "--nosuch", "nosuch"]),
]

#: Where podman prints its own help on standard output: only the errors are compared.
PODMAN_HELP = {"missing command", "missing command (system)", "missing command at the root"}


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    peer = Podman.create(tmp_path_factory.mktemp("podman"))
    yield peer
    peer.cleanup()


@pytest.fixture(scope="module")
def aiopod_as_podman(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A launcher of aiopod's command line called ``podman``, as a drop-in link would be."""
    launcher = tmp_path_factory.mktemp("bin") / "podman"
    launcher.write_text(f"#!{sys.executable}\nfrom aiopod.cli import main\n\nmain()\n")
    launcher.chmod(0o755)
    return launcher


def outcome(proc: subprocess.CompletedProcess[str], case: str) -> tuple[int, str, str]:
    stdout = "<help>" if case in PODMAN_HELP and proc.stdout else proc.stdout
    return proc.returncode, stdout, proc.stderr


@pytest.mark.parametrize(("case", "args"), CASES, ids=[case for case, _ in CASES])
def test_aiopod_started_as_podman_says_what_podman_says(
    podman: Podman, aiopod_as_podman: Path, tmp_path: Path, case: str, args: list[str]
) -> None:
    expected = outcome(podman(*args, check=False), case)
    cmd: list[str | Path] = [aiopod_as_podman, "--root", tmp_path / "store", "--policy", "podman"]
    cmd += args
    assert outcome(run(cmd, check=False, env=aiopod_env()), case) == expected


@pytest.mark.parametrize(("case", "args"), CASES, ids=[case for case, _ in CASES])
def test_aiopod_says_the_same_in_its_own_name_under_any_policy(
    podman: Podman, tmp_path: Path, case: str, args: list[str]
) -> None:
    rc, stdout, stderr = outcome(podman(*args, check=False), case)
    expected = (rc, stdout.replace("podman", "aiopod"), stderr.replace("podman", "aiopod"))
    assert outcome(aiopod(*args, root=tmp_path / "store"), case) == expected


#: ``--timestamp`` values, read by podman as Go's ``strconv.ParseInt(v, 0, 64)`` does.
INTEGERS = ["0x10", "010", "08", "1_000", "0x_1f", "_1", "1__0", "1_", "+5", "-5", "0b101"]
INTEGERS += ["0o17", "0x", "", "9223372036854775807", "9223372036854775808"]
INTEGERS += ["-9223372036854775808", "-9223372036854775809", " 5", "5 ", "１"]


@pytest.mark.parametrize("value", INTEGERS)
def test_integer_flags_take_what_podman_takes(podman: Podman, tmp_path: Path, value: str) -> None:
    """A value podman takes gets as far as the (missing) context; one it refuses is its
    error, in its words."""
    args = ["build", f"--timestamp={value}", str(tmp_path / "no-context")]
    proc = podman(*args, check=False)
    expected = (proc.returncode, proc.stdout, proc.stderr.replace("podman", "aiopod"))
    assert outcome(aiopod(*args, root=tmp_path / "store"), "") == expected


@pytest.mark.parametrize(
    ("args", "terminal"),
    [(["load"], "stdin"), (["save", "nosuch"], "stdout"), (["save", "-q", "nosuch"], "stdout")],
)
def test_load_and_save_refuse_a_terminal_as_podman(
    podman: Podman, tmp_path: Path, args: list[str], terminal: str
) -> None:
    """Without ``-i`` (``-o``) the archive is standard input (output), but not a terminal."""

    def at_a_terminal(cmd: list[str | Path], env: dict[str, str] | None) -> tuple[int, str]:
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(
                [str(c) for c in cmd],
                stdin=follower if terminal == "stdin" else subprocess.DEVNULL,
                stdout=follower if terminal == "stdout" else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        finally:
            os.close(leader)
            os.close(follower)
        return proc.returncode, proc.stderr

    peer: list[str | Path] = ["podman", *podman.storage_args(), "--tmpdir", podman.tmpdir, *args]
    rc, stderr = at_a_terminal(peer, podman.env())
    mine: list[str | Path] = [sys.executable, "-m", "aiopod", "--root", tmp_path / "store", *args]
    assert at_a_terminal(mine, aiopod_env()) == (rc, stderr)
    assert rc == 125


def test_an_unknown_save_format_is_refused_in_podmans_words_under_its_policy(
    podman: Podman, aiopod_as_podman: Path, tmp_path: Path
) -> None:
    """podman's list names docker-dir, which aiopod does not write: its own policy says
    what aiopod writes instead (and docker-dir is refused as not supported)."""
    args = ["save", "--format", "bogus", "-o", str(tmp_path / "out"), "nosuch"]
    expected = outcome(podman(*args, check=False), "")
    cmd: list[str | Path] = [aiopod_as_podman, "--root", tmp_path / "store", "--policy", "podman"]
    assert outcome(run([*cmd, *args], check=False, env=aiopod_env()), "") == expected
    assert aiopod(*args, root=tmp_path / "store").stderr == (
        "Error: format value must be one of docker-archive oci-archive oci-dir\n"
    )
    args[2] = "docker-dir"
    assert aiopod(*args, root=tmp_path / "store").stderr == (
        "Error: the docker-dir format is not supported: use docker-archive, oci-archive, oci-dir\n"
    )
