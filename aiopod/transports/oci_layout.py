"""OCI image layouts: as a directory (oci-dir) or as a tar of one (oci-archive).

Reading follows ``index.json`` (at most 4 MiB) to manifests (nested indexes are followed
to the local platform, at most 8 levels deep), checks every blob against its descriptor's
digest and size, refuses documents that are both index and manifest (CVE-2021-41190)
and names images by their ``org.opencontainers.image.ref.name`` (a short name becomes
``localhost/NAME:latest``, as podman does) or, for Docker 25+ archives that only put the
tag there, by ``io.containerd.image.name``.

Writing produces ``oci-layout``, ``index.json`` with one descriptor per name (the full
reference in ``ref.name``) and ``blobs/sha256/…``, exactly the blobs the store holds.

Blocking; callers run it in a worker thread.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiopod._platforms import local_architecture
from aiopod._reference import normalize_local
from aiopod.errors import InvalidArchive, InvalidReference
from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.layout import INDEX_MEDIA_TYPE, LAYOUT_FILE_CONTENT, REF_NAME_ANNOTATION
from aiopod.storage.records import ImageRecord
from aiopod.transports import mediatypes as mt
from aiopod.transports.archive_progress import ArchiveReport, BlobWriting, report_saved
from aiopod.transports.candidate import ImageCandidate, LayerBlob
from aiopod.transports.documents import check_descriptor, check_document, image_descriptors
from aiopod.transports.output import output_file
from aiopod.transports.source import ArchiveSource
from aiopod.transports.tarwriter import TarWriter

__all__ = ("read_oci_layout", "write_oci_layout")

_CONTAINERD_NAME = "io.containerd.image.name"
_MAX_DEPTH = 8


def _name_for(annotations: Any) -> str | None:
    if not isinstance(annotations, dict):
        return None
    for key in (_CONTAINERD_NAME, REF_NAME_ANNOTATION):
        value = annotations.get(key)
        if isinstance(value, str) and value:
            try:
                return str(normalize_local(value))
            except InvalidReference:
                continue
    return None


def _pick_platform(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with_platform = [m for m in manifests if isinstance(m.get("platform"), dict)]
    if not with_platform:
        return manifests
    local = [
        m
        for m in with_platform
        if m["platform"].get("os") == "linux"
        and m["platform"].get("architecture") == local_architecture()
    ]
    return local[:1]


class _Reader:
    def __init__(self, source: ArchiveSource) -> None:
        self.source = source
        self.by_manifest: dict[str, ImageCandidate] = {}

    def index(
        self, doc: dict[str, Any], media_type: str, name: str | None, depth: int, what: str
    ) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidArchive(f"{what}: indexes nest more than {_MAX_DEPTH} levels deep")
        check_document(doc, media_type, what)
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise InvalidArchive(f"{what} has no manifests list")
        descriptors = [
            check_descriptor(m, f"{what} manifests[{i}]") for i, m in enumerate(manifests)
        ]
        if depth > 0:
            descriptors = _pick_platform(descriptors)
        for i, desc in enumerate(descriptors):
            desc_name = _name_for(desc.get("annotations")) if depth == 0 else name
            self.descriptor(desc, desc_name, depth, f"{what} manifests[{i}]")

    def descriptor(self, desc: dict[str, Any], name: str | None, depth: int, what: str) -> None:
        media_type = desc["mediaType"]
        if media_type in mt.INDEX_TYPES:
            blob = self.source.get_blob(desc["digest"], desc["size"])
            doc = self.source.json_object(
                blob, what=f"index {blob.digest}", max_size=self.source.limits.max_manifest
            )
            self.index(doc, media_type, name, depth + 1, f"index {blob.digest}")
        elif media_type in mt.MANIFEST_TYPES:
            self.manifest(desc, name)

    def manifest(self, desc: dict[str, Any], name: str | None) -> None:
        digest = desc["digest"]
        existing = self.by_manifest.get(digest)
        if existing is not None:
            if name is not None and name not in existing.names:
                existing.names.append(name)
            return
        limits = self.source.limits
        blob = self.source.get_blob(digest, desc["size"])
        what = f"manifest {digest}"
        doc = self.source.json_object(blob, what=what, max_size=limits.max_manifest)
        check_document(doc, desc["mediaType"], what)
        config_desc, layer_descs = image_descriptors(doc, what)
        config = self.source.get_blob(config_desc["digest"], config_desc["size"])
        layer_blobs = [
            LayerBlob(self.source.get_blob(d["digest"], d["size"]), d["mediaType"])
            for d in layer_descs
        ]
        self.by_manifest[digest] = ImageCandidate(
            config=config,
            config_doc=self.source.json_object(
                config, what=f"config {config.digest}", max_size=limits.max_config
            ),
            layers=layer_blobs,
            names=[name] if name else [],
            manifest=blob,
            manifest_media_type=desc["mediaType"],
            what=f"image {config.digest.removeprefix('sha256:')[:12]}",
        )


def read_oci_layout(source: ArchiveSource) -> list[ImageCandidate]:
    """The images an OCI layout (staged from a directory or an oci-archive) holds."""
    index_blob = source.get("index.json")
    doc = source.json_object(index_blob, what="index.json", max_size=source.limits.max_index_json)
    reader = _Reader(source)
    reader.index(doc, doc.get("mediaType", INDEX_MEDIA_TYPE), None, 0, "index.json")
    if not reader.by_manifest:
        raise InvalidArchive("index.json refers to no image manifest")
    return list(reader.by_manifest.values())


def _index_document(images: Sequence[tuple[ImageRecord, Sequence[str]]]) -> bytes:
    manifests = []
    for record, names in images:
        base = {
            "mediaType": record.manifest_media_type,
            "digest": record.manifest_digest,
            "size": record.manifest_size,
        }
        if not names:
            manifests.append(base)
        for name in names:
            manifests.append({**base, "annotations": {REF_NAME_ANNOTATION: name}})
    return json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    ).encode()


def _blobs(images: Sequence[tuple[ImageRecord, Sequence[str]]]) -> dict[str, int]:
    blobs: dict[str, int] = {}
    for record, _ in images:
        blobs[record.manifest_digest] = record.manifest_size
        blobs[record.config_digest] = record.config_size
        for layer in record.layers:
            blobs[layer.digest] = layer.size
    return blobs


def _blob_writing(
    report: ArchiveReport | None, digest: str, size: int, configs: set[str], manifests: set[str]
) -> BlobWriting:
    """The records of a blob: a layer's or a config's (a manifest's are none)."""
    if digest in manifests:
        return BlobWriting(None, digest, size)
    return BlobWriting(report, digest, size, "config" if digest in configs else "blob")


def write_oci_layout(
    target: Path,
    images: Sequence[tuple[ImageRecord, Sequence[str]]],
    blob_path: Callable[[str], Path],
    *,
    archive: bool,
    report: ArchiveReport | None = None,
) -> None:
    """Write *images* as an OCI layout: a tar file (``archive``) or a directory; *report*
    receives the progress records (blobs as they are written)."""
    index = _index_document(images)
    blobs = _blobs(images)
    configs = {record.config_digest for record, _ in images}
    manifests = {record.manifest_digest for record, _ in images}
    if archive:
        with output_file(target) as fd:
            tar = TarWriter(fd)
            tar.add_bytes("oci-layout", LAYOUT_FILE_CONTENT)
            tar.add_dir("blobs")
            tar.add_dir("blobs/sha256")
            for digest, size in blobs.items():
                blob = _blob_writing(report, digest, size, configs, manifests)
                tar.add_path(
                    "blobs/sha256/" + digest.removeprefix("sha256:"),
                    blob_path(digest),
                    size,
                    progress=blob.written,
                )
                blob.done()
            tar.add_bytes("index.json", index)
            tar.close()
        report_saved(report)
        return
    if target.exists() and any(target.iterdir()) and not (target / "oci-layout").exists():
        raise InvalidArchive(f"{target} exists and is not an OCI layout")
    (target / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, size in blobs.items():
        raise_if_cancelled()
        blob = _blob_writing(report, digest, size, configs, manifests)
        dest = target / "blobs" / "sha256" / digest.removeprefix("sha256:")
        if not dest.exists():
            shutil.copyfile(blob_path(digest), dest)
        blob.done()
    (target / "oci-layout").write_bytes(LAYOUT_FILE_CONTENT)
    (target / "index.json").write_bytes(index)
    report_saved(report)
