"""``image prune --external`` through the API, under the default (libpod) policy.

podman's ``--external`` lets an image that only external containers (``buildah from``;
``aiopod from``, a build's working containers) use be pruned, and removes those
containers with it, without events; a runtime container still protects its image.  The
command line is compared with podman 4.3.1 in ``test_podman_differential.py`` (the
``prune-external-*`` scenarios of ``scenarios.py``); the default policy prunes alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from imagefactory import load_images, make_image

from aiopod import Runtime


@pytest.mark.anyio
async def test_prune_external_through_the_api(tmp_path: Path) -> None:
    kept, pruned = make_image("localhost/kept:1", seed="kept"), make_image("x:1", seed="x")
    async with Runtime(tmp_path / "store") as rt:
        await load_images(rt, tmp_path, kept, pruned)
        runtime = await rt.create_container("localhost/kept:1", ["true"])
        working = await rt.create_working_container("localhost/kept:1")
        await rt.create_working_container("x:1")
        assert (await rt.prune_images(all=True)).deleted == []
        report = await rt.prune_images(all=True, external=True)
        assert report.deleted == [pruned.id]  # kept: a runtime container uses it
        assert {c.id for c in await rt.containers(external=True)} == {runtime.id, working.id}
        assert [e.type for e in report.events if e.type != "image"] == []  # as podman
        assert (await rt.check()).ok
