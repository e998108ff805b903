"""The public view of an image: :class:`Image`, and podman's ``inspect`` document."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiopod._display import Displayable, html_table, plural
from aiopod._text import human_duration, human_size, render_table
from aiopod.storage.layertree import LayerTree
from aiopod.storage.records import ImageRecord

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)?")

__all__ = (
    "Image",
    "ImageList",
    "image_from_record",
    "images_table",
    "inspect_document",
    "parse_created",
    "repo_digests",
    "repository_and_tag",
)


@functools.lru_cache(maxsize=4096)  # images often share one (a build's, a fixed epoch)
@functools.lru_cache(maxsize=1024)  # a listing parses the creation times of every image
def parse_created(text: str) -> datetime | None:
    """Parse an RFC 3339 ``created`` value (nanoseconds allowed); None when absent or bad."""
    if not text:
        return None
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    head, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    value = f"{head}.{(fraction or '').ljust(6, '0')[:6]}{zone}"
    try:
        created = datetime.fromisoformat(value)
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def repo_digests(names: tuple[str, ...], digests: tuple[str, ...]) -> list[str]:
    """podman's RepoDigests: ``repository@digest`` for every name's repository and digest."""
    result: list[str] = []
    for name in names:
        repo = name.split("@", 1)[0]
        slash = repo.rfind("/")
        colon = repo.rfind(":")
        if colon > slash:
            repo = repo[:colon]
        for digest in digests:
            item = f"{repo}@{digest}"
            if item not in result:
                result.append(item)
    return sorted(result)


def repository_and_tag(name: str) -> tuple[str, str]:
    """A name's repository and tag as podman's tables show them (``<none>`` for no tag)."""
    repo = name.partition("@")[0]
    slash, colon = repo.rfind("/"), repo.rfind(":")
    if colon > slash:
        return repo[:colon], repo[colon + 1 :]
    return repo, "<none>"


@dataclass(frozen=True, slots=True)
class Image(Displayable):
    """An image in the store, as of the moment it was read.

    ``id`` is the 64-hex config digest; ``names`` are full references such as
    ``localhost/app:1``; ``parent_id`` is empty when the image has no parent in the store.

    In IPython and Jupyter it shows as a one-line summary and a table of its fields.
    """

    id: str
    names: tuple[str, ...]
    digest: str
    digests: tuple[str, ...]
    created: datetime | None
    size: int
    names_history: tuple[str, ...]
    parent_id: str
    has_children: bool
    read_only: bool
    layers: tuple[str, ...]
    labels: Mapping[str, str] | None = None

    @property
    def short_id(self) -> str:
        """The first 12 characters of the ID, as tables show it."""
        return self.id[:12]

    @property
    def dangling(self) -> bool:
        """No names and no children."""
        return not self.names and not self.has_children

    @property
    def intermediate(self) -> bool:
        """No names, but other images are built on it."""
        return not self.names and self.has_children

    @property
    def repo_digests(self) -> list[str]:
        """``repository@digest`` for each name."""
        return repo_digests(self.names, self.digests)

    def display_text(self) -> str:
        """``Image 4a4875c6b56e localhost/base:1 (11.4 kB, 1 layer, created ...)``."""
        created = self.created.isoformat() if self.created else "unknown"
        parent = f", parent {self.parent_id[:12]}" if self.parent_id else ""
        return (
            f"Image {self.short_id} {' '.join(self.names) or '<none>'} "
            f"({human_size(self.size)}, {plural(len(self.layers), 'layer')}, "
            f"created {created}{parent})"
        )

    def display_html(self) -> str:
        fields = [
            ("ID", self.id),
            ("Names", ", ".join(self.names) or "<none>"),
            ("Digest", self.digest),
            ("Created", self.created.isoformat() if self.created else ""),
            ("Size", f"{human_size(self.size)} ({self.size} bytes)"),
            ("Layers", len(self.layers)),
            ("Parent", self.parent_id),
            ("Labels", ", ".join(f"{k}={v}" for k, v in (self.labels or {}).items())),
        ]
        return html_table(["Field", "Value"], fields, caption=f"Image {self.short_id}")


def images_table(images: Sequence[Image], *, full_ids: bool = False) -> list[list[str]]:
    """podman's ``images`` table: a header row, then a row per tagged name (one row with
    ``<none>`` for an image without names), in the order given.  When an image is read-only
    (an additional store's), podman's ``R/O`` column follows."""
    read_only = any(image.read_only for image in images)
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", *(["R/O"] if read_only else [])]]
    now = datetime.now(UTC)
    # Images share creation times and sizes: each is put in words once (100,000 rows).
    durations: dict[datetime | None, str] = {}
    sizes: dict[int, str] = {}
    for image in images:
        shown_id = "sha256:" + image.id if full_ids else image.short_id
        names = [n for n in image.names if "@" not in n]
        extra = [str(image.read_only).lower()] if read_only else []
        created = durations.get(image.created)
        if created is None:
            created = durations[image.created] = human_duration(image.created, now)
        size = sizes.get(image.size)
        if size is None:
            size = sizes[image.size] = human_size(image.size)
        for repo, tag in [repository_and_tag(n) for n in names] or [("<none>", "<none>")]:
            rows.append([repo, tag, shown_id, created, size, *extra])
    return rows


class ImageList(list[Image], Displayable):
    """A list of images (what :meth:`aiopod.Runtime.images` returns) that shows itself as
    podman's ``images`` table in IPython and as an HTML table in Jupyter."""

    __slots__ = ()

    def display_text(self) -> str:
        return render_table(images_table(self)).rstrip("\n")

    def display_html(self) -> str:
        header, *rows = images_table(self)
        return html_table(header, rows, caption=plural(len(self), "image"))


def image_from_record(record: ImageRecord, tree: LayerTree) -> Image:
    """The public view of a stored record."""
    return Image(
        id=record.id,
        names=record.names,
        digest=record.manifest_digest,
        digests=record.digests,
        created=parse_created(record.created),
        size=record.size,
        names_history=record.names_history,
        parent_id=tree.parent_of(record.id) or "",
        has_children=tree.has_children(record.id),
        read_only=record.read_only,
        layers=record.diff_ids,
        labels=record.labels,
    )


def inspect_document(
    image: Image, config: dict[str, Any], manifest: dict[str, Any], manifest_type: str
) -> dict[str, Any]:
    """``podman image inspect``'s JSON object for *image* (podman 4.3's field names)."""
    labels = (config.get("config") or {}).get("Labels")  # {} stays {}, as podman prints it
    return {
        "Id": image.id,
        "Digest": image.digest,
        "RepoTags": [name for name in image.names if "@" not in name],  # tagged names only
        "RepoDigests": image.repo_digests,
        "Parent": image.parent_id,
        "Comment": (config.get("history") or [{}])[0].get("comment", ""),
        "Created": config.get("created", ""),
        "Config": config.get("config") or {},
        "Version": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Name": "vfs", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Labels": labels,
        "Annotations": manifest.get("annotations") or {},
        "ManifestType": manifest_type,
        "User": (config.get("config") or {}).get("User", ""),
        "History": config.get("history", []),
        "NamesHistory": list(image.names_history),
    }
