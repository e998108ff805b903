"""Helpers for the tests that build through :meth:`aiopod.Runtime.build` (import them
explicitly; the fixtures ``rt`` and ``host`` are in ``tests/conftest.py``).

* :data:`BASE` is the busybox image the ``rt`` fixture imports.
* :func:`context` lays out a build context with its Dockerfile.
* :func:`build` builds with a time limit; :func:`image_files` unpacks an image's root file
  system as a working container's, to look at what a build made.

Nothing here touches a path outside the directories the tests pass in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
from conftest import store_of
from conftest_context import make_tree
from peers import BUSYBOX_IMAGE

from aiopod import Image, Runtime

__all__ = ("BASE", "build", "context", "image_files")

BASE = BUSYBOX_IMAGE


def context(tmp_path: Path, dockerfile: str, files: Mapping[str, Any] | None = None) -> Path:
    """A build context ``<tmp_path>/ctx`` with ``Dockerfile`` and ``files`` (make_tree)."""
    ctx = make_tree(tmp_path / "ctx", dict(files or {}))
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


async def build(rt: Runtime, ctx: Path, **options: Any) -> Image:
    """``rt.build(ctx, **options)``, failing the test after 120 s."""
    with anyio.fail_after(120):
        return await rt.build(ctx, **options)


async def image_files(rt: Runtime, reference: str) -> Path:
    """The root file system of *reference*, unpacked as a working container's."""
    container = await rt.create_working_container(reference)
    return store_of(rt).container_dir(container.id) / "rootfs"
