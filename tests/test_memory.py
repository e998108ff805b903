"""Loading and saving stream: a 1 GiB image never needs more than 150 MiB of memory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

GiB = 1 << 30
MiB = 1 << 20
LIMIT_KIB = 150 * 1024


class _Pattern(io.RawIOBase):
    """``size`` bytes of a repeating, non-zero pattern, generated on the fly."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.block = hashlib.sha256(b"aiopod").digest() * (MiB // 32)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.remaining, len(self.block))
        buffer[:n] = self.block[:n]
        self.remaining -= n
        return n


def _layer_tar(path: Path, payload: int) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = payload
        tar.addfile(info, io.BufferedReader(_Pattern(payload), MiB))


def _docker_archive(path: Path, layer: Path) -> None:
    digest = hashlib.sha256()
    with layer.open("rb") as stream:
        while chunk := stream.read(4 * MiB):
            digest.update(chunk)
    diff_id = "sha256:" + digest.hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "test"}],
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["localhost/big:1"], "Layers": ["layer.tar"]}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        tar.add(layer, arcname="layer.tar")
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _peak_rss_kib(*args: str) -> int:
    """Run ``python -m aiopod ARGS`` in a child and return its peak resident memory (KiB)."""
    probe = (
        "import resource, subprocess, sys;"
        "r = subprocess.run([sys.executable, '-m', 'aiopod', *sys.argv[1:]]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.exit(r.returncode)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    os.statvfs("/tmp").f_bavail * os.statvfs("/tmp").f_frsize < 6 * GiB,
    reason="needs about 5 GiB of free disk space",
)
def test_load_and_save_of_a_1_gib_image_stay_under_150_mib_of_memory(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    _layer_tar(layer, GiB)
    archive = tmp_path / "big.tar"
    _docker_archive(archive, layer)
    layer.unlink()
    root = str(tmp_path / "store")

    load_peak = _peak_rss_kib("--root", root, "load", "-i", str(archive))
    archive.unlink()
    peaks = {"load": load_peak}
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"out-{fmt}.tar"
        peaks[fmt] = _peak_rss_kib("--root", root, "save", "--format", fmt, "-o", str(out), "big:1")
        assert out.stat().st_size > GiB
        out.unlink()

    assert all(peak < LIMIT_KIB for peak in peaks.values()), peaks
