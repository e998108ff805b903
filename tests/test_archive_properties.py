"""Properties of the archive readers: whatever the bytes, only aiopod's documented errors.

An archive, its ``manifest.json`` and ``index.json``, its manifests and configs, its
compressed layers and their tar headers come from whoever made the archive.  Whatever
they hold, reading them raises an :class:`~aiopod.errors.AiopodError` (``InvalidArchive``,
``UnsafeLayer``, ``LimitExceeded``, ...) or succeeds; never another exception.  Where a
reader has a writer (tar headers, compression, JSON, whole archives) what is written is
read back unchanged.

The reference parser and the Dockerfile parser have their own properties
(``tests/test_reference.py``, ``tests/builder/test_parser.py``).  The number of examples
follows the hypothesis profile (``--hypothesis-profile=long``: benchmarks/README.md).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import assume, example, given, strategies as st
from imagefactory import (
    FakeImage,
    Link,
    Members,
    docker_archive_members,
    make_image,
    oci_layout_members,
    sha256_digest,
    write_tar,
)

from aiopod.errors import AiopodError, InvalidArchive
from aiopod.storage.compression import detect_compression, open_decompressed
from aiopod.storage.ingest import StagingArea
from aiopod.storage.layer_check import scan_layer
from aiopod.storage.tar_reader import TarReader
from aiopod.transports.candidate import build_record
from aiopod.transports.docker_archive import read_docker_archive
from aiopod.transports.jsonutil import MAX_DEPTH, parse_json_list, parse_json_object
from aiopod.transports.oci_layout import read_oci_layout
from aiopod.transports.source import ArchiveLimits, open_source

# -- JSON documents ---------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(_nested(50_000))
@example(b'{"a":1,"a":2}')
@example(b"\xff\xfe{}")
@example(b"NaN")
def test_json_documents_raise_only_invalid_archive(data: bytes) -> None:
    for parse in (parse_json_object, parse_json_list):
        with suppress(InvalidArchive):
            parse(data, what="document", max_size=1 << 20)


def test_documents_nest_at_most_64_levels() -> None:
    assert parse_json_object(_nested(MAX_DEPTH), what="doc", max_size=1 << 20)
    for depth in (MAX_DEPTH + 1, 900, 100_000):  # 900: parsed by json, too deep for a repr()
        with pytest.raises(InvalidArchive, match="nests arrays or objects"):
            parse_json_object(_nested(depth), what="doc", max_size=1 << 20)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_json_objects_round_trip(doc: dict[str, Any]) -> None:
    assert parse_json_object(json.dumps(doc).encode(), what="doc", max_size=1 << 20) == doc


# -- compressed streams -----------------------------------------------------------------------

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "none": lambda data: data,
}
_MAGICS = [b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh9", b"\xfd7zXZ\x00", b"\x50\x2a\x4d\x18"]


def _inflate(data: bytes) -> bytes:
    with open_decompressed(io.BytesIO(data), max_bytes=1 << 20) as stream:
        return stream.read()


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    """*data* with a few bytes changed, cut short or extended."""
    blob = bytearray(data)
    for _ in range(draw.draw(st.integers(0, 3))):
        if not blob:
            break
        position = draw.draw(st.integers(0, len(blob) - 1))
        blob[position] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(blob)))
    tail = draw.draw(st.binary(max_size=8))
    return bytes(blob[:cut]) + tail if draw.draw(st.booleans()) else bytes(blob) + tail


@given(st.sampled_from(sorted(COMPRESSORS)), st.binary(max_size=2000))
def test_every_compression_round_trips(kind: str, data: bytes) -> None:
    # Uncompressed data that starts like a compressed stream is read as one, by design.
    assume(kind != "none" or detect_compression(data[:6]) == "none")
    assert _inflate(COMPRESSORS[kind](data)) == data


@given(st.sampled_from(_MAGICS), st.binary(max_size=300))
def test_garbage_after_a_magic_number_raises_only_aiopod_errors(magic: bytes, rest: bytes) -> None:
    with suppress(AiopodError):
        _inflate(magic + rest)


@given(st.sampled_from(sorted(COMPRESSORS)), st.binary(max_size=500), st.data())
def test_damaged_compressed_streams_raise_only_aiopod_errors(
    kind: str, data: bytes, draw: st.DataObject
) -> None:
    with suppress(AiopodError):
        _inflate(_mutate(COMPRESSORS[kind](data), draw))


# -- tar headers ------------------------------------------------------------------------------

_names = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=120,
).filter(lambda n: n.strip("/") not in ("", ".", ".."))
_KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]


@st.composite
def tar_members(draw: st.DrawFn) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(draw(_names))
    info.type = draw(st.sampled_from(_KINDS))
    info.mode = draw(st.integers(0, 0o7777))
    info.uid = draw(st.integers(0, 2**21 - 1))
    info.gid = draw(st.integers(0, 2**21 - 1))
    info.mtime = draw(st.integers(0, 2**33 - 1))
    data = b""
    if info.type == tarfile.REGTYPE:
        data = draw(st.binary(max_size=1500))
        info.size = len(data)
    elif info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = draw(_names)
    if draw(st.booleans()):
        key = "SCHILY.xattr.user." + draw(st.text("abcxyz", min_size=1, max_size=6))
        info.pax_headers = {key: draw(st.text(max_size=20))}
    return info, data


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _read_tar(data: bytes) -> list[tuple[Any, ...]]:
    reader = TarReader(io.BytesIO(data))
    buffer = memoryview(bytearray(4096))
    seen = []
    for member in reader:
        content = b"".join(bytes(chunk) for chunk in reader.read_data(member, buffer))
        seen.append(
            (
                member.name,
                member.type,
                member.mode,
                member.uid,
                member.gid,
                int(member.mtime),
                member.linkname,
                content,
                member.xattrs,
            )
        )
    reader.drain()
    return seen


@given(
    st.lists(tar_members(), max_size=5), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
)
def test_tar_headers_round_trip(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> None:
    expected = [
        (
            info.name.rstrip("/") if info.type == tarfile.DIRTYPE else info.name,
            info.type,
            info.mode,
            info.uid,
            info.gid,
            info.mtime,
            info.linkname,
            data,
            {
                k.removeprefix("SCHILY.xattr."): v.encode()
                for k, v in info.pax_headers.items()
                if fmt == tarfile.PAX_FORMAT
            },
        )
        for info, data in members
    ]
    assert _read_tar(_tar(members, fmt)) == expected


@given(st.binary(max_size=3000))
@example(b"\0" * 1024)
@example(b"\0" * 512 + b"x")
def test_arbitrary_bytes_as_a_tar_raise_only_aiopod_errors(data: bytes) -> None:
    with suppress(AiopodError):
        _read_tar(data)
    with suppress(AiopodError):
        scan_layer(io.BytesIO(data))


@given(st.lists(tar_members(), min_size=1, max_size=3), st.data())
def test_damaged_tars_raise_only_aiopod_errors(
    members: list[tuple[tarfile.TarInfo, bytes]], draw: st.DataObject
) -> None:
    data = _mutate(_tar(members, tarfile.PAX_FORMAT), draw)
    with suppress(AiopodError):
        _read_tar(data)


# -- whole archives ----------------------------------------------------------------------------


@contextmanager
def staging() -> Iterator[tuple[StagingArea, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        area = StagingArea.create(Path(tmp) / "tmp")
        try:
            yield area, Path(tmp)
        finally:
            area.close()


def read_archive(members: Members) -> list[Any]:
    """Stage an archive of *members* and validate its images as ``load`` does."""
    with staging() as (area, tmp):
        path = write_tar(tmp / "archive.tar", members)
        source = open_source(area, path, ArchiveLimits())
        if source.has("manifest.json"):
            candidates = read_docker_archive(source)
        else:
            candidates = read_oci_layout(source)
        return [build_record(candidate, area)[0] for candidate in candidates]


_IMAGE = make_image("localhost/app:1", seed="prop")
_DOCKER = docker_archive_members([_IMAGE])
_OCI = oci_layout_members([_IMAGE])
_MEMBER_NAMES = sorted({*_DOCKER, *_OCI, "../etc/passwd", "/etc/shadow", "blobs/sha256/x"})
_DIGESTS = [
    sha256_digest(data) for data in (*_DOCKER.values(), *_OCI.values()) if isinstance(data, bytes)
]

# JSON that looks like the archive's documents: their keys, member names and digests.
_words = st.one_of(
    st.sampled_from(_MEMBER_NAMES),
    st.sampled_from(_DIGESTS),
    st.sampled_from(
        [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "layers",
            "localhost/app:1",
            "UPPER:case",
            "sha256:../../x",
        ]
    ),
    st.text(max_size=10),
)
_keys = st.sampled_from(
    [
        "Config",
        "Layers",
        "RepoTags",
        "schemaVersion",
        "mediaType",
        "manifests",
        "config",
        "layers",
        "digest",
        "size",
        "annotations",
        "org.opencontainers.image.ref.name",
        "platform",
        "rootfs",
        "diff_ids",
        "type",
        "history",
        "urls",
        "Labels",
        "created",
        "created_by",
        "empty_layer",
        "config",
    ]
) | st.text(max_size=6)
archive_json = st.recursive(
    st.one_of(_scalars, _words, st.integers(-1, 5000)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)
    ),
    max_leaves=25,
)


def _replaced(members: Members, name: str, doc: Any) -> Members:
    changed = dict(members)
    changed[name] = json.dumps(doc).encode()
    return changed


def _valid(members: Members, name: str) -> Any:
    content = members[name]
    assert isinstance(content, bytes)
    return json.loads(content)


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


_INDEX_DOC = _valid(_OCI, "index.json")
_MANIFEST_NAME = _blob_name(_INDEX_DOC["manifests"][0]["digest"])
_MANIFEST_DOC = _valid(_OCI, _MANIFEST_NAME)
_CONFIG_DOC = _valid(_OCI, _blob_name(_MANIFEST_DOC["config"]["digest"]))
_DOCKER_CONFIG_NAME = f"{_IMAGE.id}.json"


def variants(valid: Any) -> st.SearchStrategy[Any]:
    """Documents near *valid* (some of its keys replaced, or one of its objects), or anything."""

    def merged(changes: dict[str, Any], inner: dict[str, Any], key: str) -> Any:
        doc = json.loads(json.dumps(valid))
        if isinstance(doc, dict):
            target = doc.get(key)
            if isinstance(target, dict):
                target.update(inner)
            elif isinstance(target, list) and target and isinstance(target[0], dict):
                target[0].update(inner)
            doc.update(changes)
        return doc

    keys = sorted(valid) if isinstance(valid, dict) else ["x"]
    changes = st.dictionaries(_keys | st.sampled_from(keys), archive_json, max_size=2)
    return st.one_of(archive_json, st.builds(merged, changes, changes, st.sampled_from(keys)))


def _oci_with(index: Any, manifest: Any, config: Any) -> Members:
    """An OCI layout of these documents, each referenced by its real digest and size."""
    members: Members = {name: data for name, data in _OCI.items() if "blobs/" in name}
    members["oci-layout"] = _OCI["oci-layout"]

    def put(doc: Any) -> tuple[str, int]:
        data = json.dumps(doc).encode()
        digest = sha256_digest(data)
        members[_blob_name(digest)] = data
        return digest, len(data)

    if config is not _CONFIG_DOC:
        digest, size = put(config)
        manifest = json.loads(json.dumps(_MANIFEST_DOC))
        manifest["config"].update(digest=digest, size=size)
    if manifest is not _MANIFEST_DOC:
        digest, size = put(manifest)
        index = json.loads(json.dumps(_INDEX_DOC))
        index["manifests"][0].update(digest=digest, size=size)
    members["index.json"] = json.dumps(index).encode()
    return members


@given(variants(_valid(_DOCKER, "manifest.json")) | variants(_CONFIG_DOC).map(lambda d: ("c", d)))
def test_any_docker_manifest_json_or_config_raises_only_aiopod_errors(doc: Any) -> None:
    if isinstance(doc, tuple):
        members = _replaced(_DOCKER, _DOCKER_CONFIG_NAME, doc[1])
    else:
        members = _replaced(_DOCKER, "manifest.json", doc)
    with suppress(AiopodError):
        read_archive(members)


@given(
    st.one_of(
        variants(_INDEX_DOC).map(lambda d: _oci_with(d, _MANIFEST_DOC, _CONFIG_DOC)),
        variants(_MANIFEST_DOC).map(lambda d: _oci_with(_INDEX_DOC, d, _CONFIG_DOC)),
        variants(_CONFIG_DOC).map(lambda d: _oci_with(_INDEX_DOC, _MANIFEST_DOC, d)),
    )
)
def test_any_oci_document_raises_only_aiopod_errors(members: Members) -> None:
    with suppress(AiopodError):
        read_archive(members)


def test_the_documents_fuzzed_are_reached() -> None:
    """The layouts above are read up to the document that changed: unchanged, they load."""
    assert len(read_archive(_oci_with(_INDEX_DOC, _MANIFEST_DOC, _CONFIG_DOC))) == 1
    changed = dict(_CONFIG_DOC, rootfs={"type": "layers", "diff_ids": []})
    with pytest.raises(InvalidArchive, match="diff_ids"):
        read_archive(_oci_with(_INDEX_DOC, _MANIFEST_DOC, changed))
    with pytest.raises(InvalidArchive, match="diff_ids"):
        read_archive(_replaced(_DOCKER, _DOCKER_CONFIG_NAME, changed))


@given(st.sampled_from(sorted(_DOCKER)), st.data())
def test_damaged_docker_archive_members_raise_only_aiopod_errors(
    name: str, draw: st.DataObject
) -> None:
    members = dict(_DOCKER)
    content = members[name]
    assert isinstance(content, bytes)
    members[name] = _mutate(content, draw)
    if draw.draw(st.booleans()):
        members[draw.draw(st.sampled_from(_MEMBER_NAMES))] = Link(draw.draw(_words))
    with suppress(AiopodError):
        read_archive(members)


_files = st.dictionaries(
    st.sampled_from(["etc/a", "etc/b", "usr/bin/x", "srv/data", "a"]),
    st.binary(max_size=100),
    min_size=1,
    max_size=3,
).filter(lambda files: not ("a" in files and any(k.startswith("a/") for k in files)))
_image_names = st.lists(
    st.from_regex(r"localhost/[a-z0-9]{1,8}:[a-z0-9]{1,8}", fullmatch=True), max_size=2, unique=True
)


@given(
    st.lists(
        st.tuples(_image_names, st.lists(_files, min_size=1, max_size=2)), min_size=1, max_size=2
    ),
    st.sampled_from(["docker-archive", "oci-archive"]),
    st.sampled_from(["gzip", "none"]),
)
def test_written_archives_are_read_back_as_they_were_written(
    specs: list[tuple[list[str], list[dict[str, bytes]]]], fmt: str, compression: str
) -> None:
    images: list[FakeImage] = []
    for index, (names, layers) in enumerate(specs):
        image = make_image(*names, seed=str(index), layers=layers)
        if any(image.id == other.id for other in images):
            continue
        images.append(image)
    if fmt == "docker-archive":
        members = docker_archive_members(images, compression=compression)  # type: ignore[arg-type]
    else:
        members = oci_layout_members(images, compression=compression)  # type: ignore[arg-type]
    records = read_archive(members)
    read = {record.id: record for record in records}
    for image in images:
        if fmt == "oci-archive" and not image.names:
            assert image.id in read  # an unnamed descriptor
        record = read[image.id]
        assert sorted(record.names) == sorted(image.names)
        assert tuple(layer.diff_id for layer in record.layers) == image.diff_ids


def test_the_profile_sets_the_examples(pytestconfig: pytest.Config) -> None:
    """``--hypothesis-profile=long`` reaches the properties (they set no count of their own)."""
    from hypothesis import settings

    profile = pytestconfig.getoption("hypothesis_profile") or "ci"
    assert settings.get_current_profile_name() == profile
    assert settings().max_examples == (5000 if profile == "long" else 100)
