"""docker-archive: the format of ``docker save`` and ``podman save --format docker-archive``.

Reading: ``manifest.json`` (at most 1 MiB) lists, per image, the config member, the layer
members and ``RepoTags``; names are matched exactly against archive members (never used
as paths), and symlinked members (the legacy ``<v1id>/layer.tar``) are resolved inside
the archive.  Writing: one uncompressed ``<diff_id>.tar`` per layer, ``<id>.json`` per
config and ``manifest.json``, which ``docker load`` and ``podman load`` read.

Blocking; callers run it in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from aiopod._reference import normalize_local
from aiopod.errors import InvalidArchive, InvalidReference
from aiopod.storage.compression import open_decompressed
from aiopod.storage.records import ImageRecord
from aiopod.transports.archive_progress import ArchiveReport, BlobWriting, report_saved
from aiopod.transports.candidate import ImageCandidate, LayerBlob
from aiopod.transports.output import output_file
from aiopod.transports.source import ArchiveSource
from aiopod.transports.tarwriter import TarWriter

__all__ = ("read_docker_archive", "write_docker_archive")


def _names(repo_tags: object, what: str) -> list[str]:
    if repo_tags is None:
        return []
    if not isinstance(repo_tags, list) or not all(isinstance(t, str) for t in repo_tags):
        raise InvalidArchive(f"{what}: RepoTags is not a list of names")
    names = []
    for tag in repo_tags:
        try:
            names.append(str(normalize_local(tag)))
        except InvalidReference as exc:
            raise InvalidArchive(f"{what}: invalid name {tag!r} in RepoTags: {exc}") from None
    return names


def read_docker_archive(source: ArchiveSource) -> list[ImageCandidate]:
    """The images a staged docker-archive holds (not yet validated against each other)."""
    limits = source.limits
    entries = source.json_list(
        source.get("manifest.json"),
        what="manifest.json",
        max_size=limits.max_docker_manifest_json,
    )
    if not entries:
        raise InvalidArchive("manifest.json lists no images")
    candidates = []
    for index, entry in enumerate(entries):
        what = f"manifest.json entry {index}"
        if not isinstance(entry, dict):
            raise InvalidArchive(f"{what} is not an object")
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str):
            raise InvalidArchive(f"{what} has no Config")
        if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
            raise InvalidArchive(f"{what} has no list of Layers")
        config = source.get(config_name)
        config_doc = source.json_object(
            config, what=f"config {config_name}", max_size=limits.max_config
        )
        candidates.append(
            ImageCandidate(
                config=config,
                config_doc=config_doc,
                layers=[LayerBlob(source.get(name)) for name in layer_names],
                names=_names(entry.get("RepoTags"), what),
                what=f"image {config.digest.removeprefix('sha256:')[:12]}",
            )
        )
    return candidates


def write_docker_archive(
    path: Path,
    images: Sequence[tuple[ImageRecord, Sequence[str]]],
    blob_path: Callable[[str], Path],
    report: ArchiveReport | None = None,
) -> None:
    """Write *images* (each with the names to record for it) as a docker-archive;
    *report* receives the progress records (layers by their uncompressed digest, as
    they are written)."""
    manifest = []
    written: set[str] = set()
    with output_file(path) as fd:
        tar = TarWriter(fd)
        for record, names in images:
            layer_names = []
            for layer in record.layers:
                name = layer.diff_id.removeprefix("sha256:") + ".tar"
                layer_names.append(name)
                blob = BlobWriting(report, layer.diff_id, layer.uncompressed_size)
                if name not in written:
                    written.add(name)
                    source = blob_path(layer.digest)
                    size = layer.uncompressed_size
                    if layer.digest == layer.diff_id:
                        tar.add_path(name, source, size, mode=0o444, progress=blob.written)
                    else:
                        with source.open("rb") as raw, open_decompressed(raw) as stream:
                            tar.add_stream(name, stream, size, mode=0o444, progress=blob.written)
                blob.done()
            config_name = record.id + ".json"
            config = BlobWriting(report, record.config_digest, record.config_size, "config")
            if config_name not in written:
                written.add(config_name)
                tar.add_path(
                    config_name, blob_path(record.config_digest), record.config_size, 0o444
                )
            config.done()
            report_saved(report)
            manifest.append({"Config": config_name, "RepoTags": list(names), "Layers": layer_names})
        tar.add_bytes("manifest.json", json.dumps(manifest, separators=(",", ":")).encode(), 0o444)
        tar.close()
