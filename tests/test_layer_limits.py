"""Decompression bombs are refused while they stream, on every path that inflates a layer.

The bomb is the issue's, eight times over: a gzip layer of 67 MB (level 9 zeros,
concatenated members) that inflates to 64 GiB, ratio ~1028.  With the default limits
(L24 of ``docs/design/hostile-input.md``: ratio 1000, judged past 1 GiB) every path
stops it after inflating about 1 GiB, so it reads about a sixty-fourth of the blob (a
few MiB more of read-ahead buffers, which an 8 GiB bomb would not leave room to tell
apart).  Rather than time it (the machine is shared), each test counts the bytes the
process read while the call ran (``rchar`` of ``/proc/self/io``) and checks that the
store is exactly as before and ``check`` is clean.

The bomb's diff_id is a placeholder: hashing 8 GiB would take the time the limit saves,
and a layer is refused for its size before its diff_id is compared (a wrong diff_id
raises :class:`InvalidArchive`, not :class:`LimitExceeded`).
"""

from __future__ import annotations

import functools
import gzip
import json
import sys
import tarfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import zstandard
from imagefactory import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME,
    canonical_json,
    sha256_digest,
    store_files,
    write_dir,
    write_tar,
)
from peers import aiopod, aiopod_env, run

from aiopod import BuildError, LimitExceeded, Runtime, UsageError

pytestmark = pytest.mark.anyio

GiB = 1 << 30
MiB = 1 << 20
_MEMBER_SIZE = 64 * MiB
BOMB_INFLATED = 64 * GiB
PLACEHOLDER_DIFF_ID = "sha256:" + "0" * 64


@functools.cache
def gzip_zeros() -> bytes:
    """64 GiB of zeros in gzip members of 64 MiB (level 9: 65 kB each)."""
    member = gzip.compress(bytes(_MEMBER_SIZE), compresslevel=9, mtime=0)
    return member * (BOMB_INFLATED // _MEMBER_SIZE)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A gzip layer tar of one file of zeros, inflating to 64 GiB (plus one header block)."""
    header = tarfile.TarInfo("zeros")
    header.size = BOMB_INFLATED - 2 * tarfile.BLOCKSIZE  # then the end-of-archive marker
    return gzip.compress(header.tobuf(tarfile.PAX_FORMAT), mtime=0) + gzip_zeros()


def _config(diff_id: str) -> bytes:
    return canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "bomb"}],
        }
    )


def write_docker_bomb(path: Path, blob: bytes) -> Path:
    config = _config(PLACEHOLDER_DIFF_ID)
    manifest = [{"Config": "config.json", "RepoTags": ["localhost/bomb:1"], "Layers": ["l.tar"]}]
    return write_tar(
        path, {"l.tar": blob, "config.json": config, "manifest.json": json.dumps(manifest).encode()}
    )


def write_oci_bomb(path: Path, blob: bytes) -> Path:
    config = _config(PLACEHOLDER_DIFF_ID)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(blob), "size": len(blob)}
            ],
        }
    )
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256_digest(manifest),
                "size": len(manifest),
                "annotations": {REF_NAME: "bomb"},
            }
        ],
    }
    members: dict[str, Any] = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": canonical_json(index),
    }
    for data in (blob, config, manifest):
        members["blobs/sha256/" + sha256_digest(data).removeprefix("sha256:")] = data
    return write_dir(path, members)


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


async def refused_reading(call: Callable[[], Awaitable[Any]]) -> tuple[LimitExceeded, int]:
    """Await *call*, which must raise LimitExceeded; return it and the bytes read meanwhile."""
    before = _bytes_read()
    with pytest.raises(LimitExceeded) as caught:
        await call()
    return caught.value, _bytes_read() - before


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Path]:
    """A store root holding one ordinary image, so that "unchanged" means something."""
    root = tmp_path / "store"
    base = tmp_path / "base.tar"
    with tarfile.open(base, "w") as tar:
        tar.addfile(tarfile.TarInfo("etc"))
    anyio.run(_import, root, base)
    yield root


async def _import(root: Path, path: Path) -> None:
    async with Runtime(root) as rt:
        await rt.import_image(path, "localhost/base:1")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path_kind", ["docker-archive", "oci-dir", "import", "pull-oci"])
async def test_a_64_gib_gzip_bomb_is_refused_after_reading_a_fraction_of_it(
    tmp_path: Path, populated: Path, bomb: bytes, path_kind: str
) -> None:
    if path_kind == "docker-archive":
        source = write_docker_bomb(tmp_path / "bomb.tar", bomb)
    elif path_kind == "import":
        source = tmp_path / "bomb.tar.gz"
        source.write_bytes(bomb)
    else:
        source = write_oci_bomb(tmp_path / "layout", bomb)
    before = store_files(populated)
    async with Runtime(populated) as rt:
        if path_kind == "import":
            error, read = await refused_reading(lambda: rt.import_image(source, "bomb"))
        elif path_kind == "pull-oci":
            error, read = await refused_reading(lambda: rt.pull(f"oci:{source}:bomb"))
        else:
            error, read = await refused_reading(lambda: rt.load(source))
        report = await rt.check()
    # Refused at about 1 GiB inflated of 64; a quarter leaves room for read-ahead buffers.
    assert read < len(bomb) // 4, (read, len(bomb))
    assert "1000 times" in str(error) and "max_layer_ratio" in str(error)
    assert store_files(populated) == before
    assert report.ok, report.problems


@pytest.mark.timeout(120)
async def test_a_zstd_bomb_is_refused_at_the_ratio_limit(tmp_path: Path, populated: Path) -> None:
    """zstd reaches 32,000:1 on zeros: a 34 MB blob would inflate to 1 TiB."""
    frames = (1 << 40) // _MEMBER_SIZE
    header = tarfile.TarInfo("zeros")
    header.size = frames * _MEMBER_SIZE - 2 * tarfile.BLOCKSIZE
    compressor = zstandard.ZstdCompressor(level=19)
    blob = compressor.compress(header.tobuf(tarfile.PAX_FORMAT))
    blob += compressor.compress(bytes(_MEMBER_SIZE)) * frames
    source = tmp_path / "bomb.tar.zst"
    source.write_bytes(blob)
    before = store_files(populated)
    async with Runtime(populated) as rt:
        error, read = await refused_reading(lambda: rt.import_image(source, "bomb"))
        assert (await rt.check()).ok
    assert read < len(blob) // 4, (read, len(blob))
    assert "of zstd" in str(error) and "max_layer_ratio" in str(error)
    assert store_files(populated) == before


@pytest.mark.timeout(120)
async def test_a_compressed_archive_padded_with_a_bomb_is_refused(
    tmp_path: Path, populated: Path
) -> None:
    """A gzip docker-archive whose end is followed by gigabytes of compressed zeros (L16):
    the archive as a whole is held to the ratio limit while its padding is read."""
    layer = tarfile.TarInfo("etc")
    layer.type = tarfile.DIRTYPE
    layer_tar = layer.tobuf(tarfile.PAX_FORMAT) + bytes(2 * tarfile.BLOCKSIZE)
    manifest = [{"Config": "c.json", "RepoTags": ["localhost/padded:1"], "Layers": ["l.tar"]}]
    members = {
        "l.tar": layer_tar,
        "c.json": _config(sha256_digest(layer_tar)),
        "manifest.json": json.dumps(manifest).encode(),
    }
    plain = write_tar(tmp_path / "plain.tar", members)
    source = tmp_path / "padded.tar.gz"
    source.write_bytes(gzip.compress(plain.read_bytes(), mtime=0) + gzip_zeros())
    before = store_files(populated)
    async with Runtime(populated) as rt:
        error, read = await refused_reading(lambda: rt.load(source))
        assert (await rt.check()).ok
    assert read < source.stat().st_size // 4
    assert f"archive {source}" in str(error) and "max_layer_ratio" in str(error)
    assert store_files(populated) == before


def _small_gzip_layer(path: Path, size: int, compression: str = "gz") -> Path:
    with tarfile.open(path, f"w:{compression}") as tar:  # type: ignore[call-overload]
        info = tarfile.TarInfo("data")
        info.size = size
        tar.addfile(info, _Zeros(size))
    return path


class _Zeros:
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


@pytest.mark.parametrize("compression", ["gz", ""])
async def test_the_layer_size_limit_is_set_on_the_runtime_and_names_the_layer(
    tmp_path: Path, populated: Path, compression: str
) -> None:
    layer = _small_gzip_layer(tmp_path / "layer.tar.gz", 4 * MiB, compression)
    before = store_files(populated)
    async with Runtime(populated, max_layer_size=2 * MiB) as rt:
        with pytest.raises(LimitExceeded) as caught:
            await rt.import_image(layer, "big")
    message = str(caught.value)
    assert str(layer) in message and "2 MiB" in message and "max_layer_size" in message
    assert store_files(populated) == before
    async with Runtime(populated, max_layer_size=8 * MiB) as rt:
        assert (await rt.import_image(layer, "big")).names == ("localhost/big:latest",)


def test_the_limits_are_global_options_and_environment_variables(
    tmp_path: Path, populated: Path
) -> None:
    layer = _small_gzip_layer(tmp_path / "layer.tar.gz", 4 * MiB)
    refused = aiopod("--max-layer-size", "2m", "import", layer, "big", root=populated)
    assert refused.returncode == 125, refused.stderr
    assert refused.stderr.startswith("Error: layer ") and "2 MiB" in refused.stderr
    assert "Traceback" not in refused.stderr
    env = {**aiopod_env(), "AIOPOD_MAX_LAYER_SIZE": "3m", "AIOPOD_MAX_LAYER_RATIO": "2"}
    command: list[str | Path] = [sys.executable, "-m", "aiopod", "--root", populated]
    command += ["import", layer, "big"]
    by_env = run(command, env=env, check=False)
    assert by_env.returncode == 125 and "3 MiB" in by_env.stderr, by_env.stderr
    accepted = aiopod("--max-layer-size", "8MiB", "import", layer, "big", root=populated)
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.parametrize(
    ("options", "word"),
    [({"max_layer_size": 0}, "max_layer_size"), ({"max_layer_ratio": 0.5}, "max_layer_ratio")],
)
def test_a_limit_that_refuses_everything_is_a_usage_error(
    tmp_path: Path, options: dict[str, Any], word: str
) -> None:
    with pytest.raises(UsageError, match=word):
        Runtime(tmp_path, **options)


async def test_a_container_is_unpacked_within_the_runtime_limits(
    tmp_path: Path, populated: Path
) -> None:
    """A layer the store took under one limit is refused by a runtime with a lower one:
    every path that inflates a layer holds it to the runtime's limits."""
    layer = _small_gzip_layer(tmp_path / "layer.tar.gz", 4 * MiB)
    async with Runtime(populated) as rt:
        await rt.import_image(layer, "big")
    before = store_files(populated)
    async with Runtime(populated, max_layer_size=2 * MiB) as rt:
        with pytest.raises(LimitExceeded, match="max_layer_size") as caught:
            await rt.create_working_container("big")
        assert await rt.containers(external=True) == []
        assert (await rt.check()).ok
    assert str(caught.value).startswith("layer sha256:")
    assert store_files(populated) == before


async def test_an_archive_a_build_adds_is_held_to_the_limits(
    tmp_path: Path, populated: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    _small_gzip_layer(context / "big.tar.gz", 4 * MiB)
    (context / "Dockerfile").write_text("FROM scratch\nADD big.tar.gz /\n")
    async with Runtime(populated, max_layer_size=2 * MiB) as rt:
        before = {image.id for image in await rt.images(all=True)}
        with pytest.raises(BuildError, match=r"ADD big\.tar\.gz") as caught:
            await rt.build(context, tags=["localhost/big-build"])
        assert {image.id for image in await rt.images(all=True)} == before
        assert await rt.containers(external=True) == []
        assert (await rt.check()).ok
    assert "archive big.tar.gz is larger than the limit of 2 MiB" in str(caught.value)
    assert "max_layer_size" in str(caught.value)
