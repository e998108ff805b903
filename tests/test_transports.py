"""Archives in and out without peers: hostile inputs are refused, round trips are exact.

Every malformed input of hostile-input.md table A (plus truncated and non-tar input) is
loaded through :meth:`Runtime.load` *and* through ``aiopod load`` (exit 125, ``Error: ``
on stderr, no traceback).  After each, every file of the store is as it was and
``system check`` is clean.  Round trips cover docker-archive, oci-archive and OCI
directories, ``save`` in every format, and ``import`` of root file system tarballs.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from imagefactory import (
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    FakeImage,
    Link,
    Members,
    child_image,
    docker_archive_members,
    make_image,
    oci_layout_members,
    rootfs_tarball,
    sha256_digest,
    store_files,
    write_dir,
    write_docker_archive,
    write_oci_archive,
    write_oci_dir,
    write_tar,
)
from peers import aiopod

from aiopod import (
    AiopodError,
    ImageNotKnown,
    InvalidArchive,
    LimitExceeded,
    Runtime,
    UsageError,
)
from aiopod._platforms import local_architecture
from aiopod._runtime import SAVE_FORMATS
from aiopod.cli.exit_codes import exit_code_of

APP = make_image("localhost/app:1", seed="app")
BASE = make_image("localhost/base:1", seed="base")
CHILD = child_image(BASE, "localhost/child:1", files={"usr/child": b"child"})
OTHER = make_image("localhost/other:1", "localhost/other:2", seed="other")
MiB = 1 << 20


def run(func: Callable[[Runtime], Any], root: Path) -> Any:
    async def body() -> Any:
        async with Runtime(root) as rt:
            return await func(rt)

    return anyio.run(body)


def stored_blobs(root: Path) -> set[str]:
    return {"sha256:" + p.name for p in (root / "blobs" / "sha256").iterdir()}


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    """A store that already holds images (one shares a layer with the bad inputs)."""
    root = tmp_path / "store"
    archive = write_docker_archive(tmp_path / "initial.tar", [BASE, OTHER])
    run(lambda rt: rt.load(archive), root)
    return root


# ------------------------------------------------------------------------------ bad inputs


@dataclass(frozen=True)
class Bad:
    """A malformed archive: how to write it, the error class and part of its message."""

    write: Callable[[Path], Path]
    error: type[AiopodError]
    message: str


def docker(
    images: list[FakeImage] | None = None,
    *,
    hook: Callable[[list[dict[str, Any]]], Any] | None = None,
    edit: Callable[[Members], None] | None = None,
) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        members = docker_archive_members(images or [CHILD], manifest_hook=hook)
        if edit is not None:
            edit(members)
        return write_tar(path / "bad.tar", members)

    return write


def oci(
    images: list[FakeImage] | None = None,
    *,
    as_dir: bool = False,
    edit: Callable[[Members], None] | None = None,
    **hooks: Any,
) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        members = oci_layout_members(images or [CHILD], **hooks)
        if edit is not None:
            edit(members)
        if as_dir:
            return write_dir(path / "bad-layout", members)
        return write_tar(path / "bad-oci.tar", members)

    return write


def raw(data: bytes) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        (path / "raw.tar").write_bytes(data)
        return path / "raw.tar"

    return write


def set_entry(**fields: Any) -> Callable[[list[dict[str, Any]]], None]:
    def hook(manifest: list[dict[str, Any]]) -> None:
        manifest[0].update(fields)

    return hook


def set_layer(index: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    def hook(manifest: dict[str, Any]) -> None:
        manifest["layers"][index].update(fields)

    return hook


def set_config(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def hook(manifest: dict[str, Any]) -> None:
        manifest["config"].update(fields)

    return hook


def set_index_descriptor(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def hook(index: dict[str, Any]) -> None:
        index["manifests"][0].update(fields)

    return hook


def duplicate_key(key: str, value: str) -> Callable[[bytes], bytes]:
    """Prefix a JSON object with a second copy of *key* (the original one comes later)."""
    return lambda data: b"{" + f'"{key}":{value},'.encode() + data[1:]


def layer_blob_name(image: FakeImage, index: int, compression: str = "gzip") -> str:
    data = image.layers[index]
    if compression == "gzip":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def replace_member(name: str, content: bytes | Link) -> Callable[[Members], None]:
    def edit(members: Members) -> None:
        members[name] = content

    return edit


def drop_member(name: str) -> Callable[[Members], None]:
    def edit(members: Members) -> None:
        del members[name]

    return edit


def truncated_docker_archive(path: Path) -> Path:
    data = write_docker_archive(path / "whole.tar", [CHILD]).read_bytes()
    (path / "truncated.tar").write_bytes(data[:2000])  # inside the first layer's data
    return path / "truncated.tar"


def symlinked_oci_blob(path: Path) -> Path:
    """An OCI directory whose config blob is a symlink to a file outside, with the right
    content: a reader that follows links would accept it."""
    layout = write_oci_dir(path / "layout", [CHILD])
    outside = path / "outside-config.json"
    outside.write_bytes(CHILD.config)
    blob = layout / "blobs" / "sha256" / CHILD.id
    blob.unlink()
    blob.symlink_to(outside)
    return layout


def config_with_duplicate_key() -> FakeImage:
    config = b'{"rootfs":{"type":"layers","diff_ids":[]},' + CHILD.config[1:]
    return FakeImage(("localhost/dup:1",), CHILD.layers, config)


BAD_DIGESTS = {
    "traversal": "sha256:../../x",
    "upper-case": "sha256:" + "A" * 64,
    "md5": "md5:" + "0" * 32,
    "short": "sha256:" + "a" * 63,
}

BAD_INPUTS: dict[str, Bad] = {
    # A1: names in manifest.json are archive members, never paths.
    "A1-config-path-traversal": Bad(
        docker(hook=set_entry(Config="../../../../etc/passwd")), InvalidArchive, "no member"
    ),
    "A1-layer-absolute-path": Bad(
        docker(hook=set_entry(Layers=["/etc/shadow"])), InvalidArchive, "no member"
    ),
    "A1-config-symlink-out-of-the-archive": Bad(
        docker(
            hook=set_entry(Config="evil.json"),
            edit=replace_member("evil.json", Link("../../../../etc/passwd")),
        ),
        InvalidArchive,
        "no member",
    ),
    "A1-layer-symlink-to-an-absolute-path": Bad(
        docker(
            hook=set_entry(Layers=["evil.tar", "x.tar"]),
            edit=replace_member("evil.tar", Link("/etc/shadow")),
        ),
        InvalidArchive,
        "no member",
    ),
    "A1-oci-dir-blob-symlinked-outside": Bad(symlinked_oci_blob, InvalidArchive, "no file"),
    # A2: layers must hash to the config's diff_ids, one for one.
    "A2-layer-digest-is-not-the-diff-id": Bad(
        docker([make_image("localhost/bad:1", diff_ids=["sha256:" + "0" * 64])]),
        InvalidArchive,
        "uncompresses to",
    ),
    "A2-more-diff-ids-than-layers": Bad(
        docker([make_image("localhost/bad:1", diff_ids=[*APP.diff_ids, *BASE.diff_ids])]),
        InvalidArchive,
        "config lists 2 diff_ids but there are 1 layers",
    ),
    "A2-fewer-diff-ids-than-layers": Bad(
        docker([make_image("localhost/bad:1", layers=CHILD.layers, diff_ids=BASE.diff_ids)]),
        InvalidArchive,
        "config lists 1 diff_ids but there are 2 layers",
    ),
    "A2-diff-id-not-a-digest": Bad(
        docker([make_image("localhost/bad:1", diff_ids=["sha256:xyz"])]),
        InvalidArchive,
        "invalid digest",
    ),
    "A2-oci-gzip-layer-digest-is-not-the-diff-id": Bad(
        oci([make_image("localhost/bad:1", diff_ids=["sha256:" + "0" * 64])]),
        InvalidArchive,
        "uncompresses to",
    ),
    # A3: size limits before parsing.
    "A3-manifest-json-over-1-MiB": Bad(
        docker(
            edit=lambda m: m.update(
                {"manifest.json": m["manifest.json"] + b" " * MiB}  # type: ignore[operator]
            )
        ),
        LimitExceeded,
        "manifest.json",
    ),
    "A3-index-json-over-4-MiB": Bad(
        oci(index_bytes_hook=lambda data: data + b" " * (4 * MiB)), LimitExceeded, "index.json"
    ),
    "A3-oci-dir-index-json-over-4-MiB": Bad(
        oci(as_dir=True, index_bytes_hook=lambda data: data + b" " * (4 * MiB)),
        LimitExceeded,
        "index.json",
    ),
    # A5: blobs must match their descriptors.
    "A5-oci-blob-bytes-differ": Bad(
        oci(edit=replace_member(layer_blob_name(CHILD, 1), gzip.compress(b"other", mtime=0))),
        InvalidArchive,
        "has content with digest",
    ),
    "A5-oci-layer-size-differs": Bad(
        oci(manifest_hook=set_layer(0, size=7)), InvalidArchive, "descriptor says 7"
    ),
    "A5-oci-config-size-differs": Bad(
        oci(manifest_hook=set_config(size=len(CHILD.config) + 1)),
        InvalidArchive,
        "descriptor says",
    ),
    "A5-oci-blob-missing": Bad(
        oci(edit=drop_member(layer_blob_name(CHILD, 1))), InvalidArchive, "no member"
    ),
    "A5-oci-dir-blob-missing": Bad(
        oci(as_dir=True, edit=drop_member(layer_blob_name(CHILD, 1))),
        InvalidArchive,
        "no file",
    ),
    # A6: a document is an index or a manifest, as its descriptor says (CVE-2021-41190).
    "A6-index-with-manifests-and-layers": Bad(
        oci(index_hook=lambda index: index.update(layers=[])), InvalidArchive, "both"
    ),
    "A6-manifest-with-manifests-and-layers": Bad(
        oci(manifest_hook=lambda doc: doc.update(manifests=[])), InvalidArchive, "both"
    ),
    "A6-manifest-media-type-contradicts-descriptor": Bad(
        oci(manifest_hook=lambda doc: doc.update(mediaType=OCI_INDEX)),
        InvalidArchive,
        "mediaType",
    ),
    "A6-descriptor-says-index-for-a-manifest": Bad(
        oci(index_hook=set_index_descriptor(mediaType=OCI_INDEX)), InvalidArchive, "mediaType"
    ),
    # A7: duplicate keys (a parser differential).
    "A7-oci-manifest-duplicate-layers": Bad(
        oci(manifest_bytes_hook=duplicate_key("layers", "[]")), InvalidArchive, "duplicate key"
    ),
    "A7-index-duplicate-manifests": Bad(
        oci(index_bytes_hook=duplicate_key("manifests", "[]")), InvalidArchive, "duplicate key"
    ),
    "A7-config-duplicate-rootfs": Bad(
        docker([config_with_duplicate_key()]), InvalidArchive, "duplicate key"
    ),
    "A7-manifest-json-duplicate-config": Bad(
        docker(
            edit=lambda m: m.update(
                {"manifest.json": b'[{"Config":"x.json",' + m["manifest.json"][2:]}  # type: ignore[index]
            )
        ),
        InvalidArchive,
        "duplicate key",
    ),
    # A8: RepoTags must be valid references.
    "A8-repo-tag-with-dot-dot": Bad(
        docker(hook=set_entry(RepoTags=["../x:latest"])), InvalidArchive, "invalid name"
    ),
    "A8-repo-tag-upper-case": Bad(
        docker(hook=set_entry(RepoTags=["localhost/UPPER:1"])),
        InvalidArchive,
        "must be lowercase",
    ),
    "A8-repo-tag-129-characters": Bad(
        docker(hook=set_entry(RepoTags=["localhost/app:" + "t" * 129])),
        InvalidArchive,
        "invalid name",
    ),
    "A8-repo-tags-not-a-list": Bad(
        docker(hook=set_entry(RepoTags="localhost/app:1")), InvalidArchive, "RepoTags"
    ),
    # Broken containers.
    "truncated-tar": Bad(truncated_docker_archive, InvalidArchive, "not a readable tar"),
    "not-a-tar": Bad(raw(b"this is not a tar archive\n" * 40), InvalidArchive, "not a readable"),
    "empty-file": Bad(raw(b""), InvalidArchive, "empty file"),
    "neither-docker-nor-oci": Bad(
        lambda p: write_tar(p / "x.tar", {"hello.txt": b"hi"}), InvalidArchive, "neither"
    ),
    "empty-manifest-json-list": Bad(docker(hook=lambda m: []), InvalidArchive, "no images"),
    "manifest-json-not-a-list": Bad(
        docker(hook=lambda m: {"Config": "x"}), InvalidArchive, "not a JSON array"
    ),
    "manifest-json-not-json": Bad(
        docker(edit=replace_member("manifest.json", b"[{")), InvalidArchive, "not valid JSON"
    ),
    "oci-gzip-layer-declared-plain-tar": Bad(
        oci(manifest_hook=set_layer(1, mediaType=OCI_LAYER_TAR)),
        InvalidArchive,
        "gzip-compressed",
    ),
    "oci-plain-layer-declared-gzip": Bad(
        oci(compression="none", manifest_hook=set_layer(1, mediaType=OCI_LAYER_GZIP)),
        InvalidArchive,
        "none-compressed",
    ),
    "oci-unknown-layer-media-type": Bad(
        oci(manifest_hook=set_layer(0, mediaType="application/x-evil")),
        InvalidArchive,
        "unsupported media type",
    ),
    "oci-index-without-images": Bad(
        oci(index_hook=lambda index: index.update(manifests=[])), InvalidArchive, "no image"
    ),
}


def _bad_digest_cases() -> dict[str, Bad]:
    """A4: digests are validated before any path is formed (CVE-2024-3727)."""
    cases = {}
    for kind, digest in BAD_DIGESTS.items():
        cases[f"A4-index-descriptor-{kind}"] = oci(index_hook=set_index_descriptor(digest=digest))
        cases[f"A4-config-descriptor-{kind}"] = oci(manifest_hook=set_config(digest=digest))
        cases[f"A4-layer-descriptor-{kind}"] = oci(manifest_hook=set_layer(0, digest=digest))
    return {name: Bad(write, InvalidArchive, "invalid digest") for name, write in cases.items()}


BAD_INPUTS.update(_bad_digest_cases())
BAD_INPUTS["A4-oci-dir-layer-descriptor-traversal"] = Bad(
    oci(as_dir=True, manifest_hook=set_layer(0, digest="sha256:../../../etc/passwd")),
    InvalidArchive,
    "invalid digest",
)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_archive_is_refused_by_load_and_leaves_the_store_unchanged(
    case: str, populated: Path, tmp_path: Path
) -> None:
    bad = BAD_INPUTS[case]
    archive = bad.write(tmp_path)
    before = store_files(populated)

    async def load_then_check(rt: Runtime) -> Any:
        with pytest.raises(AiopodError) as excinfo:
            await rt.load(archive)
        return excinfo.value, await rt.check()

    error, report = run(load_then_check, populated)
    assert isinstance(error, bad.error), repr(error)
    assert bad.message in str(error)
    assert exit_code_of(error) == 125
    assert report.problems == []
    assert store_files(populated) == before


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_archive_is_refused_by_the_command_line(
    case: str, populated: Path, tmp_path: Path
) -> None:
    archive = BAD_INPUTS[case].write(tmp_path)
    before = store_files(populated)

    result = aiopod("load", "-i", archive, root=populated)

    assert result.returncode == 125
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert BAD_INPUTS[case].message in result.stderr
    assert "Traceback" not in result.stderr
    assert store_files(populated) == before
    assert run(lambda rt: rt.check(), populated).ok


def test_a_missing_archive_is_an_error(populated: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArchive, match="no such file"):
        run(lambda rt: rt.load(tmp_path / "nothing.tar"), populated)
    result = aiopod("load", "-i", tmp_path / "nothing.tar", root=populated)
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ")


# ------------------------------------------------------------------------------ loading


def test_load_docker_archive_with_one_image(tmp_path: Path) -> None:
    root = tmp_path / "store"
    archive = write_docker_archive(tmp_path / "app.tar", [APP])
    [image] = run(lambda rt: rt.load(archive), root)
    assert image.id == APP.id
    assert image.names == ("localhost/app:1",)
    assert image.layers == APP.diff_ids
    manifest = json.loads((root / "blobs" / "sha256" / image.digest[7:]).read_bytes())
    assert manifest["config"]["digest"] == APP.config_digest
    assert [layer["digest"] for layer in manifest["layers"]] == list(APP.diff_ids)
    assert stored_blobs(root) == {image.digest, APP.config_digest, *APP.diff_ids}


def test_load_docker_archive_with_several_images_stores_shared_layers_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    archive = write_docker_archive(tmp_path / "multi.tar", [BASE, CHILD, OTHER])
    loaded = run(lambda rt: rt.load(archive), root)
    assert [i.id for i in loaded] == [BASE.id, CHILD.id, OTHER.id]
    assert [i.names for i in loaded] == [
        ("localhost/base:1",),
        ("localhost/child:1",),
        ("localhost/other:1", "localhost/other:2"),
    ]
    assert CHILD.diff_ids[0] == BASE.diff_ids[0]
    layers = {*BASE.diff_ids, *CHILD.diff_ids, *OTHER.diff_ids}
    assert len(layers) == 3
    configs_and_manifests = {i.digest for i in loaded} | {f"sha256:{i.id}" for i in loaded}
    assert stored_blobs(root) == layers | configs_and_manifests
    assert run(lambda rt: rt.check(), root).ok


def test_short_repo_tags_are_normalised_as_podman_load_does(tmp_path: Path) -> None:
    """podman 4.3 (measured): RepoTags get ``localhost/`` unless they name a registry."""
    images = [
        make_image("app:1", seed="1"),
        make_image("x/y:2", seed="2"),
        make_image("docker.io/z:3", seed="3"),
        make_image("quay.io/q/w:4", seed="4"),
    ]
    archive = write_docker_archive(tmp_path / "names.tar", images)
    loaded = run(lambda rt: rt.load(archive), tmp_path / "store")
    assert [i.names for i in loaded] == [
        ("localhost/app:1",),
        ("localhost/x/y:2",),
        ("docker.io/library/z:3",),
        ("quay.io/q/w:4",),
    ]


def test_an_image_without_repo_tags_loads_without_names(tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "none.tar", [make_image(seed="anonymous")])
    [image] = run(lambda rt: rt.load(archive), tmp_path / "store")
    assert image.names == ()
    assert image.dangling


def test_loading_an_image_again_merges_its_names(tmp_path: Path) -> None:
    root = tmp_path / "store"
    first = write_docker_archive(tmp_path / "1.tar", [APP])
    second = write_docker_archive(tmp_path / "2.tar", [APP.named("localhost/app:2")])
    run(lambda rt: rt.load(first), root)
    blobs = stored_blobs(root)
    [image] = run(lambda rt: rt.load(second), root)
    assert image.names == ("localhost/app:1", "localhost/app:2")
    assert stored_blobs(root) == blobs


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("layout", ["oci-archive", "oci-dir"])
def test_load_oci_layout_verifies_diff_ids_and_keeps_the_manifest_digest(
    tmp_path: Path, layout: str, compression: Any
) -> None:
    root = tmp_path / "store"
    writer = write_oci_archive if layout == "oci-archive" else write_oci_dir
    source = writer(tmp_path / "src", [CHILD, OTHER], compression=compression)
    index = oci_layout_members([CHILD, OTHER], compression=compression)["index.json"]
    digests = [d["digest"] for d in json.loads(index)["manifests"]]  # type: ignore[arg-type]

    loaded = run(lambda rt: rt.load(source), root)

    assert [i.id for i in loaded] == [CHILD.id, OTHER.id]
    assert [i.layers for i in loaded] == [CHILD.diff_ids, OTHER.diff_ids]
    assert [i.digest for i in loaded] == [digests[0], digests[1]]
    assert [i.names for i in loaded] == [
        ("localhost/child:1",),
        ("localhost/other:1", "localhost/other:2"),
    ]
    layer_blobs = {
        sha256_digest(gzip.compress(layer, compresslevel=6, mtime=0))
        if compression == "gzip"
        else sha256_digest(layer)
        for image in (CHILD, OTHER)
        for layer in image.layers
    }
    assert layer_blobs <= stored_blobs(root)  # stored as they came, compressed or not
    assert run(lambda rt: rt.check(), root).ok


def test_oci_ref_names_are_normalised_and_an_unnamed_image_has_no_names(tmp_path: Path) -> None:
    source = write_oci_dir(tmp_path / "src", [APP.named("short"), make_image(seed="unnamed")])
    loaded = run(lambda rt: rt.load(source), tmp_path / "store")
    assert [i.names for i in loaded] == [("localhost/short:latest",), ()]


def test_a_load_stages_outside_the_store_and_leaves_no_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "store"
    run(lambda rt: rt.load(write_docker_archive(tmp_path / "a.tar", [APP])), root)
    assert list((root / "aiopod" / "tmp").iterdir()) == []
    assert list((root / "aiopod" / "journal").iterdir()) == []


# ------------------------------------------------------------------------------ saving


def saved_layers(path: Path, fmt: str) -> dict[str, list[str]]:
    """{name: sha256 of each *uncompressed* layer} as an archive written by ``save`` has it."""
    if fmt == "docker-archive":
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
        result = {}
        for entry in json.loads(members["manifest.json"]):
            digests = [sha256_digest(members[name]) for name in entry["Layers"]]
            for name in entry["RepoTags"] or [""]:
                result[name] = digests
        return result
    if fmt == "oci-archive":
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    else:
        members = {
            p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    result = {}
    for desc in json.loads(members["index.json"])["manifests"]:
        manifest = json.loads(members["blobs/sha256/" + desc["digest"][7:]])
        digests = []
        for layer in manifest["layers"]:
            blob = members["blobs/sha256/" + layer["digest"][7:]]
            assert sha256_digest(blob) == layer["digest"]
            if layer["mediaType"].endswith("gzip"):
                blob = gzip.decompress(blob)
            digests.append(sha256_digest(blob))
        name = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
        result[name] = digests
    return result


def saved_names(path: Path, fmt: str) -> list[str]:
    return sorted(saved_layers(path, fmt))


@pytest.mark.parametrize("source", ["docker-archive", "oci-archive"])
@pytest.mark.parametrize("fmt", SAVE_FORMATS)
def test_save_then_load_into_a_fresh_store_gives_the_same_images(
    tmp_path: Path, fmt: Any, source: str
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    images = [BASE, CHILD, OTHER]
    if source == "docker-archive":
        archive = write_docker_archive(tmp_path / "in.tar", images)
    else:
        archive = write_oci_archive(tmp_path / "in.tar", images, compression="gzip")
    originals = run(lambda rt: rt.load(archive), first)
    names = [name for image in originals for name in image.names]
    out = tmp_path / ("out" if fmt == "oci-dir" else "out.tar")

    run(lambda rt: rt.save(out, names, format=fmt), first)
    reloaded = run(lambda rt: rt.load(out), second)

    assert {(i.id, i.names, i.layers) for i in reloaded} == {
        (i.id, i.names, i.layers) for i in originals
    }
    for name, digests in saved_layers(out, fmt).items():
        [image] = [i for i in originals if name in i.names]
        assert tuple(digests) == image.layers, name  # byte-identical layer content
    if fmt != "docker-archive":  # an OCI layout keeps the manifests as they are stored
        assert {i.digest for i in reloaded} == {i.digest for i in originals}
    assert run(lambda rt: rt.check(), second).ok


@pytest.mark.parametrize("fmt", SAVE_FORMATS)
def test_save_by_id_writes_every_name_and_by_name_only_that_name(tmp_path: Path, fmt: Any) -> None:
    root = tmp_path / "store"
    run(lambda rt: rt.load(write_docker_archive(tmp_path / "in.tar", [OTHER, APP])), root)
    by_id = tmp_path / ("by-id" if fmt == "oci-dir" else "by-id.tar")
    by_name = tmp_path / ("by-name" if fmt == "oci-dir" else "by-name.tar")

    run(lambda rt: rt.save(by_id, [OTHER.id[:12]], format=fmt), root)
    run(lambda rt: rt.save(by_name, ["other:2"], format=fmt), root)

    assert saved_names(by_id, fmt) == ["localhost/other:1", "localhost/other:2"]
    assert saved_names(by_name, fmt) == ["localhost/other:2"]


def test_save_of_two_references_to_one_image_writes_it_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    run(lambda rt: rt.load(write_docker_archive(tmp_path / "in.tar", [OTHER])), root)
    out = tmp_path / "out.tar"
    run(lambda rt: rt.save(out, ["other:2", "other:1"]), root)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest == [
        {
            "Config": f"{OTHER.id}.json",
            "RepoTags": ["localhost/other:2", "localhost/other:1"],
            "Layers": [d[7:] + ".tar" for d in OTHER.diff_ids],
        }
    ]


async def save(rt: Runtime, *, out: Path, fmt: Any) -> None:
    await rt.save(out, [CHILD.id, OTHER.id], format=fmt)


def test_save_is_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "store"
    run(lambda rt: rt.load(write_docker_archive(tmp_path / "in.tar", [CHILD, OTHER])), root)
    for fmt in ("docker-archive", "oci-archive"):
        one, two = tmp_path / f"1-{fmt}.tar", tmp_path / f"2-{fmt}.tar"
        for out in (one, two):
            run(functools.partial(save, out=out, fmt=fmt), root)
        assert one.read_bytes() == two.read_bytes(), fmt


def test_save_of_an_unknown_image_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    run(lambda rt: rt.load(write_docker_archive(tmp_path / "in.tar", [APP])), root)
    out = tmp_path / "out.tar"
    with pytest.raises(ImageNotKnown):
        run(lambda rt: rt.save(out, ["app:1", "nosuch"]), root)
    with pytest.raises(UsageError):
        run(lambda rt: rt.save(out, ["app:1"], format="tar"), root)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        run(lambda rt: rt.save(out, []), root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tar", "store"]


def test_save_to_a_directory_that_is_not_an_oci_layout_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    run(lambda rt: rt.load(write_docker_archive(tmp_path / "in.tar", [APP])), root)
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidArchive, match="not an OCI layout"):
        run(lambda rt: rt.save(target, ["app:1"], format="oci-dir"), root)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


# ------------------------------------------------------------------------------ import


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_import_makes_a_one_layer_image_from_a_rootfs_tarball(
    tmp_path: Path, compression: Any
) -> None:
    root = tmp_path / "store"
    tarball, diff_id = rootfs_tarball(
        tmp_path / "rootfs.tar",
        {"bin/sh": b"#!", "etc/passwd": b"root:x:0:0::/:/bin/sh\n"},
        compression,
    )
    image = run(lambda rt: rt.import_image(tarball, "imported:1"), root)
    assert image.names == ("localhost/imported:1",)
    assert image.layers == (diff_id,)
    assert sha256_digest(tarball.read_bytes()) in stored_blobs(root)  # stored as given
    doc = run(lambda rt: rt.inspect_image("imported:1"), root)
    assert doc["RootFS"]["Layers"] == [diff_id]
    assert len(doc["History"]) == 1
    assert run(lambda rt: rt.check(), root).ok


def test_import_without_a_name_gives_a_dangling_image(tmp_path: Path) -> None:
    tarball, _ = rootfs_tarball(tmp_path / "rootfs.tar", {"a": b"a"})
    image = run(lambda rt: rt.import_image(tarball), tmp_path / "store")
    assert image.names == ()
    assert image.dangling


@pytest.mark.parametrize(
    "content", [b"not a tarball at all" * 30, gzip.compress(b"not a tar" * 100, mtime=0)]
)
def test_import_of_something_that_is_not_a_tarball_is_refused(
    populated: Path, tmp_path: Path, content: bytes
) -> None:
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(content)
    before = store_files(populated)
    with pytest.raises(AiopodError) as excinfo:
        run(lambda rt: rt.import_image(bogus, "bogus"), populated)
    assert exit_code_of(excinfo.value) == 125
    assert store_files(populated) == before
    result = aiopod("import", bogus, "bogus", root=populated)
    assert result.returncode == 125 and result.stderr.startswith("Error: ")
    assert store_files(populated) == before


def test_import_through_the_command_line_prints_the_id(tmp_path: Path) -> None:
    root = tmp_path / "store"
    tarball, diff_id = rootfs_tarball(tmp_path / "rootfs.tar.gz", {"a": b"a"}, "gzip")
    result = aiopod("import", tarball, "imp", root=root)
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip().removeprefix("sha256:")
    image = run(lambda rt: rt.get_image("imp"), root)
    assert image.id == image_id
    assert image.layers == (diff_id,)


# ------------------------------------------------------------------------------ CLI round trip


def test_load_and_save_through_the_command_line(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    archive = write_docker_archive(tmp_path / "in.tar", [CHILD, OTHER])
    loaded = aiopod("load", "-i", archive, root=first)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines() == [
        "Loaded image: localhost/child:1",
        "Loaded image: localhost/other:1",
        "Loaded image: localhost/other:2",
    ]
    out = tmp_path / "out.tar"
    saved = aiopod("save", "--format", "oci-archive", "-o", out, "child:1", "other:1", root=first)
    assert saved.returncode == 0, saved.stderr
    again = aiopod("load", "-i", out, root=second)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "Loaded image: localhost/child:1",
        "Loaded image: localhost/other:1",
    ]


def test_load_of_an_unnamed_image_prints_its_id(tmp_path: Path) -> None:
    anonymous = make_image(seed="anonymous")
    archive = write_docker_archive(tmp_path / "in.tar", [anonymous])
    result = aiopod("load", "-i", archive, root=tmp_path / "store")
    assert result.stdout == f"Loaded image: sha256:{anonymous.id}\n"


# ------------------------------------------------------------------------------ layouts


def test_docker_archive_layer_members_may_be_symlinks_inside_the_archive(tmp_path: Path) -> None:
    """docker save writes ``<v1id>/layer.tar`` links to the first copy of a shared layer."""

    def link_layers(manifest: list[dict[str, Any]]) -> None:
        manifest[0]["Layers"] = ["v1a/layer.tar", "v1b/layer.tar"]

    members = docker_archive_members([CHILD], manifest_hook=link_layers)
    first, second = (d[7:] + ".tar" for d in CHILD.diff_ids)
    members["v1a/layer.tar"] = Link(f"../{first}")
    members["v1b/layer.tar"] = Link(f"../v1a/../{second}")
    [image] = run(lambda rt: rt.load(write_tar(tmp_path / "v1.tar", members)), tmp_path / "s")
    assert image.id == CHILD.id
    assert image.layers == CHILD.diff_ids


def _nest(members: Members, levels: int, platforms: list[dict[str, str]] | None = None) -> None:
    """Wrap the layout's manifest descriptors in *levels* image indexes; the innermost one
    gives descriptor *i* the platform ``platforms[i]``.  The outer descriptor keeps the
    first descriptor's name."""
    index = json.loads(members["index.json"])  # type: ignore[arg-type]
    inner = index["manifests"]
    name = inner[0].get("annotations")
    for descriptor in inner:
        descriptor.pop("annotations", None)
    if platforms is not None:
        inner = [{**d, "platform": p} for d, p in zip(inner, platforms, strict=True)]
    for _ in range(levels):
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": inner})
        blob = data.encode()
        members["blobs/sha256/" + hashlib.sha256(blob).hexdigest()] = blob
        inner = [{"mediaType": OCI_INDEX, "digest": sha256_digest(blob), "size": len(blob)}]
    if name:
        inner[0]["annotations"] = name
    index["manifests"] = inner
    members["index.json"] = json.dumps(index).encode()


def test_a_nested_index_is_followed_to_the_local_platform(tmp_path: Path) -> None:
    arch = local_architecture()
    foreign = "s390x" if arch != "s390x" else "ppc64le"
    members = oci_layout_members([OTHER.named(), APP])
    local = {"os": "linux", "architecture": arch}
    _nest(members, 2, [{"os": "linux", "architecture": foreign}, local])
    [image] = run(lambda rt: rt.load(write_tar(tmp_path / "n.tar", members)), tmp_path / "s")
    assert image.id == APP.id


def test_an_index_nested_too_deep_is_refused(populated: Path, tmp_path: Path) -> None:
    members = oci_layout_members([APP])
    _nest(members, 12)
    archive = write_tar(tmp_path / "deep.tar", members)
    before = store_files(populated)
    with pytest.raises(InvalidArchive, match="nest more than"):
        run(lambda rt: rt.load(archive), populated)
    assert store_files(populated) == before


def test_an_index_for_other_platforms_only_loads_nothing(populated: Path, tmp_path: Path) -> None:
    members = oci_layout_members([APP])
    _nest(members, 1, [{"os": "linux", "architecture": "no-such-arch"}])
    archive = write_tar(tmp_path / "foreign.tar", members)
    with pytest.raises(InvalidArchive, match="no image manifest"):
        run(lambda rt: rt.load(archive), populated)


def test_a_load_cancelled_before_its_commit_leaves_the_store_unchanged(
    populated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import aiopod.transports.load as load_module

    original = load_module._stage_archive

    def slow_stage(*args: Any) -> Any:
        result = original(*args)
        time.sleep(0.3)  # staged, not yet committed, when the caller gives up
        return result

    monkeypatch.setattr(load_module, "_stage_archive", slow_stage)
    archive = write_docker_archive(tmp_path / "app.tar", [APP])
    before = store_files(populated)

    async def cancel_the_load(rt: Runtime) -> bool:
        with anyio.move_on_after(0.1) as scope:
            await rt.load(archive)
        return scope.cancelled_caught

    assert run(cancel_the_load, populated)
    assert store_files(populated) == before
    assert run(lambda rt: rt.check(), populated).ok
