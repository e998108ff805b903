"""OCI and Docker media types, and which layer media type fits which compression."""

from __future__ import annotations

from typing import Final

__all__ = (
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LAYER_TAR",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "LAYER_COMPRESSION",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_TAR",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "oci_layer_type",
)

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR: Final = "application/vnd.docker.image.rootfs.diff.tar"

MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

#: The compression each accepted layer media type promises.
LAYER_COMPRESSION: Final = {
    OCI_LAYER_TAR: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_TAR: "none",
}

_OCI_BY_COMPRESSION: Final = {"none": OCI_LAYER_TAR, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def oci_layer_type(compression: str) -> str | None:
    """The OCI layer media type for a blob with *compression*, or None if there is none."""
    return _OCI_BY_COMPRESSION.get(compression)
