"""The examples shipped in ``examples/`` run, on this checkout's aiopod, and do what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from peers import Podman, aiopod_env

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str | Path, timeout: float = 120) -> str:
    """Run ``examples/NAME`` on this checkout's aiopod; its standard output."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
        env=aiopod_env(),
    )
    return result.stdout


def test_quickstart_imports_tags_saves_and_reloads_with_the_same_id(tmp_path: Path) -> None:
    out = run_example("quickstart.py", tmp_path)
    assert "imported rootfs.tar as localhost/quickstart:1" in out
    assert "tagged: localhost/quickstart:1, localhost/quickstart:latest" in out
    assert "the same ID" in out
    assert "store check: consistent" in out
    assert (tmp_path / "store" / "oci-layout").is_file()


def test_remove_with_subscriber_untags_then_forces_and_streams_every_event() -> None:
    out = run_example("remove_with_subscriber.py")
    assert "rmi app:2 -> untagged ['localhost/app:2'], exit 0" in out
    assert "rmi app:1 -> ['image is in use by external container " in out
    assert "or force the removal'], exit 2" in out
    assert "rmi -f app:1 -> removed 2 containers" in out
    for line in ("Untagged image", "Removed container", "Deleted image"):
        assert f"event: {line}" in out


@pytest.mark.peer("docker-registry", "podman")
def test_fleet_builds_once_pushes_and_every_machine_pulls_podmans_image(
    tmp_path: Path, registry: str, podman: Podman
) -> None:
    out = run_example("fleet.py", registry, "--insecure", tmp_path, timeout=300)
    assert "(pulled by the build)" in out
    assert "4 machines run the same image" in out
    pulled = [line.split() for line in out.splitlines() if line.startswith("machine-")]
    assert len(pulled) == 4
    podman("pull", "-q", "--tls-verify=false", f"{registry}/fleet/app:1")
    inspected = json.loads(podman("image", "inspect", f"{registry}/fleet/app:1").stdout)[0]
    assert {(short_id, digest) for _, short_id, digest in pulled} == {
        (inspected["Id"][:12], inspected["Digest"])
    }
