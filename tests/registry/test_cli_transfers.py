"""``aiopod pull`` and ``aiopod push`` as a user sees them, against the tests' own registry:
progress bars when standard error is a terminal (a pseudo-terminal here) and podman's
plain lines when it is not, ``-q``, and ``--retry`` against a registry that fails for a
while and then recovers."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import aiopod, aiopod_env, aiopod_ok, sha256_hex

from registry.fake_registry import FakeRegistry, serve_registry

#: A bar as rich draws it (and nothing in podman's plain lines looks like it).
BAR = "━"
ESCAPE = "\x1b["


@dataclass(frozen=True)
class Published:
    """An image in the fake registry: its reference, image ID and layer digests."""

    reference: str
    image_id: str
    layers: list[str]
    config: str


def publish(registry: FakeRegistry, name: str) -> Published:
    """Two gzip layers (one of 3 MiB of noise, so that a transfer takes many chunks) and
    a config that names their diff IDs."""
    layers, config = registry.add_noisy_image(name, "1", noise_size=3 << 20, seed=9)
    return Published(
        f"{registry.address}/{name}:1",
        sha256_hex(config),
        [f"sha256:{sha256_hex(layer)}" for layer in layers],
        f"sha256:{sha256_hex(config)}",
    )


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    with serve_registry("127.0.0.1") as registry:
        yield registry


def on_terminal(*args: str, root: Path, tmp_path: Path) -> tuple[int, str, str]:
    """Run aiopod with standard error on a pseudo-terminal (120 columns) and standard
    output on a file: (exit status, stdout, everything the terminal received)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = aiopod_env()
    for key in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        env.pop(key, None)
    env["TERM"] = "xterm-256color"
    out = tmp_path / "stdout"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiopod", "--root", str(root), *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=slave,
            env=env,
        )
    os.close(slave)
    received = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
        status = proc.wait(timeout=120)
    return status, out.read_text(), received.decode(errors="replace")


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def last_bar(terminal: str, label: str) -> str:
    """The last state drawn of the bar labelled *label*."""
    start = terminal.rindex(label)
    return terminal[start : terminal.index("\r", start)]


def test_pull_and_push_draw_a_bar_per_blob_on_a_terminal(
    fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    image = publish(fake_registry, "cli/app")
    store = tmp_path / "store"
    status, stdout, terminal = on_terminal(
        "pull", "--tls-verify=false", image.reference, root=store, tmp_path=tmp_path
    )
    assert status == 0, terminal
    assert stdout == f"{image.image_id}\n"  # the ID alone, on standard output
    assert f"Trying to pull {image.reference}..." in terminal
    for digest in image.layers:
        assert f"Copying blob {short(digest)}" in terminal
    assert BAR in terminal and ESCAPE in terminal
    # Each blob's bar ends full: bytes done of the total, and "done".
    noise = last_bar(terminal, f"Copying blob {short(image.layers[0])}")
    assert "3.1/3.1 MB" in noise and noise.endswith(" done")
    assert last_bar(terminal, f"Copying config {short(image.config)}").endswith(" done")
    assert "Writing manifest to image destination" in terminal
    assert "Storing signatures" in terminal

    # A second pull finds every blob in the store: they show as skipped.
    status, stdout, terminal = on_terminal(
        "pull", "--tls-verify=false", image.reference, root=store, tmp_path=tmp_path
    )
    assert status == 0 and stdout == f"{image.image_id}\n"
    for digest in image.layers:
        bar = last_bar(terminal, f"Copying blob {short(digest)}")
        assert bar.endswith(" skipped: already exists")

    # -q: nothing on the terminal, the ID on standard output.
    status, stdout, terminal = on_terminal(
        "pull", "-q", "--tls-verify=false", image.reference, root=store, tmp_path=tmp_path
    )
    assert (status, stdout, terminal) == (0, f"{image.image_id}\n", "")

    destination = f"{fake_registry.address}/cli/copy:1"
    status, stdout, terminal = on_terminal(
        "push", "--tls-verify=false", image.reference, destination, root=store, tmp_path=tmp_path
    )
    assert status == 0, terminal
    assert stdout == ""
    for digest in image.layers:
        assert last_bar(terminal, f"Copying blob {short(digest)}").endswith(" done")
    assert ("cli/copy", "1") in fake_registry.manifests


def test_without_a_terminal_the_lines_are_podmans_and_q_prints_only_the_id(
    fake_registry: FakeRegistry, store: Path
) -> None:
    image = publish(fake_registry, "cli/plain")
    pulled = aiopod_ok("pull", "--tls-verify=false", image.reference, root=store)
    assert pulled.stdout == f"{image.image_id}\n"
    assert pulled.stderr == "".join(
        [
            f"Trying to pull {image.reference}...\n",
            "Getting image source signatures\n",
            *(f"Copying blob {digest}\n" for digest in image.layers),
            f"Copying config {image.config}\n",
            "Writing manifest to image destination\n",
            "Storing signatures\n",
        ]
    )
    quiet = aiopod_ok("pull", "-q", "--tls-verify=false", image.reference, root=store)
    assert (quiet.stdout, quiet.stderr) == (f"{image.image_id}\n", "")
    pushed = aiopod_ok(
        "push", "-q", "--tls-verify=false", image.reference, f"{fake_registry.address}/cli/q:1",
        root=store,
    )  # fmt: skip
    assert (pushed.stdout, pushed.stderr) == ("", "")


def test_retry_outlasts_a_registry_that_fails_for_a_while(
    fake_registry: FakeRegistry, store: Path
) -> None:
    image = publish(fake_registry, "cli/flaky")
    unavailable = (503, "0")  # Retry-After: 0, so that the test does not wait

    fake_registry.misbehave.failures = [unavailable] * 2
    failed = aiopod("pull", "-q", "--tls-verify=false", "--retry", "1", image.reference, root=store)
    assert failed.returncode == 125
    assert failed.stderr.startswith("Error: ") and failed.stderr.count("\n") == 1
    assert "503" in failed.stderr or "try again" in failed.stderr

    fake_registry.misbehave.failures = [unavailable] * 2
    pulled = aiopod("pull", "-q", "--tls-verify=false", "--retry", "2", image.reference, root=store)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == f"{image.image_id}\n"
    assert fake_registry.misbehave.failures == []

    destination = f"{fake_registry.address}/cli/flaky-copy:1"
    fake_registry.misbehave.failures = [unavailable] * 3
    refused = aiopod(
        "push", "--tls-verify=false", "--retry", "0", image.reference, destination, root=store
    )
    assert refused.returncode == 125
    assert refused.stderr.splitlines()[-1].endswith(
        "received unexpected HTTP status: 503 Service Unavailable"
    )
    assert ("cli/flaky-copy", "1") not in fake_registry.manifests

    fake_registry.misbehave.failures = [unavailable] * 3
    pushed = aiopod(
        "push", "-q", "--tls-verify=false", "--retry", "3", image.reference, destination,
        root=store,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert ("cli/flaky-copy", "1") in fake_registry.manifests
