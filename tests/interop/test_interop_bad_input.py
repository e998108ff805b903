"""``aiopod load`` at the command line: valid archives built in Python, and hostile or broken
ones (no peers needed).

A bad input must give exit status 125, an ``Error: `` message on stderr, no ``Loaded image``
line, and leave the store exactly as it was (same files, same bytes) — and never write
outside the store. Cases follow ``docs/design/hostile-input.md`` (A1, A2, A4, A5, L1, L18).
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from peers import (
    SyntheticImage,
    aiopod,
    aiopod_images,
    aiopod_ok,
    directory,
    docker_archive_members,
    file,
    loaded_names,
    oci_layout_members,
    sha256_hex,
    store_snapshot,
    symlink,
    synthetic_image,
    tar_bytes,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
    write_tar,
)

BASE_NAME = "localhost/base:1"


def base_image() -> SyntheticImage:
    return synthetic_image(
        [BASE_NAME],
        [
            [directory("etc"), file("etc/hostname", b"base\n"), symlink("etc/link", "hostname")],
            [directory("data"), file("data/blob.bin", b"x" * 5000, 0o600)],
        ],
        labels={"org.example": "base"},
    )


def victim_image(name: str = "localhost/victim:1") -> SyntheticImage:
    return synthetic_image([name], [[directory("v"), file("v/file.txt", b"victim\n")]])


@pytest.fixture
def primed_store(store: Path, tmp_path: Path) -> Path:
    """A store that already holds one valid image, so "unchanged" has something to keep."""
    archive = write_docker_archive(tmp_path / "base.tar", [base_image()])
    aiopod_ok("load", "-i", archive, root=store)
    return store


def assert_rejected(store: Path, source: Path) -> str:
    """aiopod load -i SOURCE fails cleanly and changes nothing; return the error message."""
    before = store_snapshot(store)
    images_before = aiopod_images(store)
    result = aiopod("load", "-i", source, root=store)
    assert result.returncode == 125, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("Error: "), result.stderr
    assert loaded_names(result.stdout) == []
    after = store_snapshot(store)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    assert aiopod_images(store) == images_before
    return result.stderr


# --------------------------------------------------------------------------------------------
# Valid archives written in Python


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "oci-dir", "oci-dir-plain"])
def test_python_written_archive_loads_with_config_digest_as_id(
    store: Path, tmp_path: Path, fmt: str
) -> None:
    """A two-layer image written in Python in FMT → aiopod load: ID = sha256(config bytes)."""
    image = base_image()
    path = tmp_path / "archive"
    if fmt == "docker-archive":
        write_docker_archive(path, [image])
    elif fmt == "oci-archive":
        write_oci_archive(path, [image])
    else:
        write_oci_layout(path, [image], compress=fmt == "oci-dir")
    result = aiopod_ok("load", "-i", path, root=store)
    assert loaded_names(result.stdout) == [BASE_NAME]
    assert aiopod_images(store) == {image.id: [BASE_NAME]}


def test_unnamed_image_loads_and_is_reported_by_id(store: Path, tmp_path: Path) -> None:
    """A docker-archive entry with no RepoTags loads as ``Loaded image: sha256:<id>``."""
    image = synthetic_image([], [[file("f", b"no name\n")]])
    result = aiopod_ok("load", "-i", write_docker_archive(tmp_path / "a.tar", [image]), root=store)
    assert loaded_names(result.stdout) == [f"sha256:{image.id}"]
    assert aiopod_images(store) == {image.id: []}


# --------------------------------------------------------------------------------------------
# Broken and hostile archives


def test_missing_input_file_is_an_error(primed_store: Path, tmp_path: Path) -> None:
    assert_rejected(primed_store, tmp_path / "does-not-exist.tar")


def test_random_bytes_are_not_an_archive(primed_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "noise.tar"
    path.write_bytes(os.urandom(64 * 1024))
    assert_rejected(primed_store, path)


def truncated(archive: Path, fraction: float) -> bytes:
    """The first ``fraction`` of an archive's member headers and data (not of its padding)."""
    with tarfile.open(archive) as tf:
        last = tf.getmembers()[-1]
        data_end = last.offset_data + last.size
    return archive.read_bytes()[: int(data_end * fraction)]


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_truncated_docker_archive_is_rejected(
    primed_store: Path, tmp_path: Path, fraction: float
) -> None:
    """A docker-archive cut short (L18): inside a layer, ..., inside manifest.json."""
    images = [victim_image(), base_image()]
    whole = write_docker_archive(tmp_path / "whole.tar", images)
    path = tmp_path / "truncated.tar"
    path.write_bytes(truncated(whole, fraction))
    assert_rejected(primed_store, path)


@pytest.mark.parametrize("fraction", [0.3, 0.99])
def test_truncated_oci_archive_is_rejected(
    primed_store: Path, tmp_path: Path, fraction: float
) -> None:
    """An oci-archive cut short inside its blobs (the last member is the manifest blob)."""
    whole = write_oci_archive(tmp_path / "whole.tar", [base_image()])
    path = tmp_path / "truncated.tar"
    path.write_bytes(truncated(whole, fraction))
    assert_rejected(primed_store, path)


def test_truncated_gzip_layer_in_oci_layout_is_rejected(primed_store: Path, tmp_path: Path) -> None:
    """An OCI layout whose gzip layer blob is cut short (stored under the cut bytes' digest)."""

    def cut_layer(members: dict[str, bytes], index: dict[str, Any]) -> None:
        manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        manifest = json.loads(members.pop(f"blobs/sha256/{manifest_digest}"))
        layer = members.pop(
            f"blobs/sha256/{manifest['layers'][0]['digest'].removeprefix('sha256:')}"
        )
        cut = layer[: len(layer) // 2]
        members[f"blobs/sha256/{sha256_hex(cut)}"] = cut
        manifest["layers"][0].update(digest=f"sha256:{sha256_hex(cut)}", size=len(cut))
        data = json.dumps(manifest).encode()
        members[f"blobs/sha256/{sha256_hex(data)}"] = data
        index["manifests"][0].update(digest=f"sha256:{sha256_hex(data)}", size=len(data))

    assert_rejected(primed_store, write_members(tmp_path / "layout", _oci_members_with(cut_layer)))


Mutation = Callable[[dict[str, bytes]], None]


def _set_manifest(members: dict[str, bytes], **changes: object) -> None:
    manifest = json.loads(members["manifest.json"])
    manifest[0].update(changes)
    members["manifest.json"] = json.dumps(manifest).encode()


DOCKER_ARCHIVE_MUTATIONS: dict[str, Mutation] = {
    # A1: names in manifest.json are tar member names, never file system paths.
    "config-path-traversal": lambda m: _set_manifest(m, Config="../../etc/passwd"),
    "layer-path-traversal": lambda m: _set_manifest(
        m, Layers=["../../../../etc/passwd", *json.loads(m["manifest.json"])[0]["Layers"][1:]]
    ),
    "layer-absolute-path": lambda m: _set_manifest(m, Layers=["/etc/shadow"]),
    "missing-layer-member": lambda m: _set_manifest(m, Layers=["0" * 64 + ".tar"]),
    "missing-config-member": lambda m: _set_manifest(m, Config="f" * 64 + ".json"),
    "manifest-not-json": lambda m: m.update({"manifest.json": b"[{not json"}),
    "manifest-not-a-list": lambda m: m.update({"manifest.json": b'{"Config": "x"}'}),
    "no-manifest": lambda m: m.__delitem__("manifest.json"),
    # A8: an invalid reference in RepoTags.
    "invalid-repo-tag": lambda m: _set_manifest(m, RepoTags=["../x:latest"]),
    "uppercase-repo-tag": lambda m: _set_manifest(m, RepoTags=["localhost/UPPER:1"]),
}


@pytest.mark.parametrize("mutation", DOCKER_ARCHIVE_MUTATIONS)
def test_malformed_docker_archive_is_rejected(
    primed_store: Path, tmp_path: Path, mutation: str
) -> None:
    members = docker_archive_members([victim_image()])
    DOCKER_ARCHIVE_MUTATIONS[mutation](members)
    assert_rejected(primed_store, write_tar(tmp_path / "bad.tar", members))


def test_config_path_traversal_does_not_read_host_file(primed_store: Path, tmp_path: Path) -> None:
    """A1 with the traversal target present next to the archive: still rejected."""
    members = docker_archive_members([victim_image()])
    _set_manifest(members, Config="../outside.json")
    (tmp_path / "outside.json").write_bytes(victim_image().config)
    sub = tmp_path / "sub"
    sub.mkdir()
    assert_rejected(primed_store, write_tar(sub / "bad.tar", members))


def test_layer_whose_digest_differs_from_diff_id_is_rejected(
    primed_store: Path, tmp_path: Path
) -> None:
    """A2: the config's diff_id is not the sha256 of the layer in the archive."""
    image = synthetic_image(
        ["localhost/liar:1"], [[file("f", b"real content\n")]], diff_ids=[f"sha256:{'a' * 64}"]
    )
    members = docker_archive_members([image])
    # Name the layer member after the diff_id the config claims.
    real = next(name for name in members if name.endswith(".tar"))
    members[f"{'a' * 64}.tar"] = members.pop(real)
    _set_manifest(members, Layers=[f"{'a' * 64}.tar"])
    assert_rejected(primed_store, write_tar(tmp_path / "liar.tar", members))


def test_diff_id_count_mismatch_is_rejected(primed_store: Path, tmp_path: Path) -> None:
    """A2: two layers in manifest.json, one diff_id in the config."""
    layer_a = tar_bytes([file("a", b"a\n")])
    layer_b = tar_bytes([file("b", b"b\n")])
    image = synthetic_image(
        ["localhost/count:1"], [layer_a, layer_b], diff_ids=[f"sha256:{sha256_hex(layer_a)}"]
    )
    assert_rejected(primed_store, write_docker_archive(tmp_path / "count.tar", [image]))


OciMutation = Callable[[dict[str, bytes], dict[str, Any]], None]


def write_members(path: Path, members: dict[str, bytes]) -> Path:
    """Write ``members`` as files of a directory (an OCI layout)."""
    for name, content in members.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    return path


def _oci_members_with(mutate: OciMutation) -> dict[str, bytes]:
    members = oci_layout_members([victim_image()])
    index = json.loads(members["index.json"])
    mutate(members, index)
    members["index.json"] = json.dumps(index).encode()
    return members


def _tamper_config(members: dict[str, bytes], index: dict[str, Any]) -> None:
    config_name = f"blobs/sha256/{victim_image().id}"
    members[config_name] = members[config_name].replace(b'"amd64"', b'"arm64"')


def _bad_digest(value: str) -> OciMutation:
    def mutate(members: dict[str, bytes], index: dict[str, Any]) -> None:
        index["manifests"][0]["digest"] = value

    return mutate


def _missing_manifest(members: dict[str, bytes], index: dict[str, Any]) -> None:
    members.pop(f"blobs/sha256/{index['manifests'][0]['digest'].removeprefix('sha256:')}")


OCI_MUTATIONS: dict[str, OciMutation] = {
    # A5: bytes do not match the digest they are stored under.
    "config-bytes-tampered": _tamper_config,
    # A4: digests that are not sha256:<64 lower-case hex>.
    "digest-path-traversal": _bad_digest("sha256:../../../../etc/passwd"),
    "digest-uppercase": _bad_digest("sha256:" + "A" * 64),
    "digest-short": _bad_digest("sha256:abc"),
    "digest-md5": _bad_digest("md5:" + "0" * 32),
    "missing-manifest-blob": _missing_manifest,
}


@pytest.mark.parametrize("mutation", OCI_MUTATIONS)
@pytest.mark.parametrize("container", ["oci-dir", "oci-archive"])
def test_malformed_oci_input_is_rejected(
    primed_store: Path, tmp_path: Path, mutation: str, container: str
) -> None:
    members = _oci_members_with(OCI_MUTATIONS[mutation])
    if container == "oci-archive":
        source = write_tar(tmp_path / "bad.tar", members)
    else:
        source = write_members(tmp_path / "bad-layout", members)
    assert_rejected(primed_store, source)


def test_layer_with_parent_traversal_never_writes_outside_the_store(
    primed_store: Path, tmp_path: Path
) -> None:
    """L1: a layer member ``../../…/<tmp>/host/escaped`` — nothing is written outside.

    podman 4.3 loads such an archive (containers/storage clamps ``..`` when it applies the
    layer), so aiopod may either load it or refuse it cleanly; it must never write outside.
    """
    sentinel_dir = tmp_path / "host"
    sentinel_dir.mkdir()
    depth = len(primed_store.resolve().parts) + 8
    evil = "../" * depth + str(sentinel_dir / "escaped").lstrip("/")
    image = synthetic_image(["localhost/evil:1"], [[file("ok", b"ok\n"), file(evil, b"pwned\n")]])
    archive = write_docker_archive(tmp_path / "evil.tar", [image])
    before = store_snapshot(primed_store)
    result = aiopod("load", "-i", archive, root=primed_store)
    assert list(sentinel_dir.iterdir()) == []
    if result.returncode == 0:
        assert loaded_names(result.stdout) == ["localhost/evil:1"]
        aiopod_ok("system", "check", root=primed_store)
    else:
        assert result.returncode == 125 and result.stderr.startswith("Error: "), result
        assert store_snapshot(primed_store) == before
