"""The runtime's image API: finding images as podman does, names, the layer tree, errors.

Lookup follows removal-rules.md B12 and names F26-F27 (tag / untag); the layer tree
follows C21.  Images are built in Python (``imagefactory``), no peer is needed.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import store_of
from imagefactory import FakeImage, child_image, load_images, make_image

import aiopod
from aiopod import (
    ImageNotKnown,
    InvalidReference,
    Runtime,
    RuntimeStopped,
    TagNotKnown,
)
from aiopod.cli.exit_codes import exit_code_of

pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]  # the core API, on both


LOCAL_DUP = make_image("localhost/dup:1", seed="local-dup")
DOCKER_DUP = make_image("docker.io/library/dup:1", seed="docker-dup")
QUAY_Y = make_image("quay.io/x/y:2", seed="quay-y")
QUAY_Z = make_image("quay.io/x/z:latest", seed="quay-z")
APP = make_image("localhost/app:1", seed="app")


def two_images_sharing_an_id_prefix() -> tuple[FakeImage, FakeImage, str]:
    """The first two seeds whose image IDs start alike, and their common prefix."""
    seen: dict[str, FakeImage] = {}
    for n in itertools.count():
        image = make_image(f"localhost/p{n}:1", seed=f"prefix-{n}")
        other = seen.setdefault(image.id[:2], image)
        if other is not image:
            pairs = zip(image.id, other.id, strict=True)
            common = next(i for i, (a, b) in enumerate(pairs) if a != b)
            return other, image, image.id[:common]
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------ lookup


async def test_a_short_name_is_found_under_localhost_before_docker_io_library(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, DOCKER_DUP, LOCAL_DUP)
        assert (await rt.get_image("dup:1")).id == LOCAL_DUP.id
        await rt.untag(LOCAL_DUP.id)
        assert (await rt.get_image("dup:1")).id == DOCKER_DUP.id
        assert (await rt.get_image("library/dup:1")).id == DOCKER_DUP.id


async def test_a_name_without_a_tag_means_latest(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        await rt.tag(APP.id, "app")
        assert (await rt.get_image("app")).id == APP.id
        assert (await rt.get_image("localhost/app")).id == APP.id
        with pytest.raises(ImageNotKnown, match=r"^app:2: image not known$"):
            await rt.get_image("app:2")


async def test_a_full_id_and_a_unique_id_prefix_find_the_image(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP, QUAY_Y)
        assert (await rt.get_image(APP.id)).id == APP.id
        assert (await rt.get_image(APP.id[:12])).id == APP.id
        assert (await rt.get_image(QUAY_Y.id[:3])).id == QUAY_Y.id


async def test_an_ambiguous_id_prefix_is_not_known(store: Path, tmp_path: Path) -> None:
    first, second, prefix = two_images_sharing_an_id_prefix()
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, first, second)
        with pytest.raises(ImageNotKnown, match=f"^{prefix}: image not known$") as excinfo:
            await rt.get_image(prefix)
        assert exit_code_of(excinfo.value) == 1
        assert (await rt.get_image(first.id[: len(prefix) + 1])).id == first.id


async def test_a_name_wins_over_an_id_prefix(store: Path, tmp_path: Path) -> None:
    """B12: with a tag ``localhost/<hex>`` present, ``<hex>`` means that tag."""
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP, QUAY_Y)
        prefix = QUAY_Y.id[:8]
        await rt.tag(APP.id, prefix)
        assert (await rt.get_image(prefix)).id == APP.id


async def test_sha256_id_finds_the_image(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        assert (await rt.get_image("sha256:" + APP.id)).id == APP.id
        missing = "sha256:" + "0" * 64
        with pytest.raises(ImageNotKnown, match=f"^{missing}: image not known$"):
            await rt.get_image(missing)


@pytest.mark.parametrize("text", ["sha256:abc", "sha256:" + "A" * 64, "sha256:" + "a" * 65])
async def test_sha256_with_a_malformed_id_is_podmans_invalid_format(
    store: Path, tmp_path: Path, text: str
) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        with pytest.raises(InvalidReference) as excinfo:
            await rt.get_image(text)
    assert str(excinfo.value) == f"{text}: invalid format: no 64-byte hexadecimal value"
    assert exit_code_of(excinfo.value) == 125


async def test_a_digest_finds_the_image_whatever_the_repository(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        [app, _] = await load_images(rt, tmp_path, APP, QUAY_Y)
        assert (await rt.get_image(f"localhost/nosuchrepo@{app.digest}")).id == APP.id
        assert (await rt.get_image(f"anything@{app.digest}")).id == APP.id
        assert (await rt.get_image(f"quay.io/x/y:2@{app.digest}")).id == APP.id
        unknown = "sha256:" + "1" * 64
        with pytest.raises(ImageNotKnown):
            await rt.get_image(f"app@{unknown}")


async def test_a_bare_manifest_digest_is_not_an_image_id(store: Path, tmp_path: Path) -> None:
    """B11: ``sha256:<manifest digest>`` is looked up as an ID, not as a digest."""
    async with Runtime(store) as rt:
        [app] = await load_images(rt, tmp_path, APP)
        with pytest.raises(ImageNotKnown):
            await rt.get_image(app.digest)


async def test_a_short_name_matches_a_tag_by_its_path_suffix(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, QUAY_Y, QUAY_Z)
        assert (await rt.get_image("y:2")).id == QUAY_Y.id
        assert (await rt.get_image("x/y:2")).id == QUAY_Y.id
        assert (await rt.get_image("x/z")).id == QUAY_Z.id
        for miss in ("y", "y:3", "localhost/y:2", "w/y:2"):
            with pytest.raises(ImageNotKnown, match=f"^{miss}: image not known$"):
                await rt.get_image(miss)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "repository name must have at least one component"),
        ("App:1", "repository name must be lowercase"),
        ("a b", "invalid reference format"),
    ],
)
async def test_a_malformed_reference_is_an_invalid_reference(
    store: Path, text: str, message: str
) -> None:
    async with Runtime(store) as rt:
        with pytest.raises(InvalidReference, match=message):
            await rt.get_image(text)


# ------------------------------------------------------------------------------ tag / untag


async def test_tag_normalises_names_like_podman(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        image = await rt.tag(APP.id, "a", "b:2", "quay.io/c/d", "docker.io/e:3")
    assert image.names == (
        "localhost/app:1",
        "localhost/a:latest",
        "localhost/b:2",
        "quay.io/c/d:latest",
        "docker.io/library/e:3",
    )


@pytest.mark.parametrize("name", ["app@sha256:" + "a" * 64, "sha256:" + "a" * 64, "sha256:"])
async def test_tag_with_a_digest_is_refused(store: Path, tmp_path: Path, name: str) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        with pytest.raises(InvalidReference, match="tag by digest not supported") as excinfo:
            await rt.tag(APP.id, name)
        assert exit_code_of(excinfo.value) == 125
        assert (await rt.get_image(APP.id)).names == ("localhost/app:1",)


async def test_tag_without_a_name_is_a_usage_error(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        with pytest.raises(aiopod.UsageError):
            await rt.tag(APP.id)


async def test_tag_of_a_name_the_image_has_changes_nothing(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        files = ("aiopod/metadata.db", "index.json", "aiopod/store.lock")
        before = {name: (store / name).read_bytes() for name in files}
        image = await rt.tag(APP.id, "app:1", "localhost/app:1")
        assert image.names == ("localhost/app:1",)
        # Not even a new change token: nothing was committed.
        assert {name: (store / name).read_bytes() for name in files} == before


async def test_tag_of_an_unknown_image_is_not_known(store: Path) -> None:
    async with Runtime(store) as rt:
        with pytest.raises(ImageNotKnown, match=r"^nosuch: image not known$"):
            await rt.tag("nosuch", "x")


async def test_untag_of_a_name_the_image_does_not_have_is_tag_not_known(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP, QUAY_Y)
        with pytest.raises(TagNotKnown) as excinfo:
            await rt.untag(APP.id, "app:1", "nope")
        assert str(excinfo.value) == "localhost/nope:latest: tag not known"
        assert exit_code_of(excinfo.value) == 125
        # A name of another image is not this image's either; nothing was removed.
        with pytest.raises(TagNotKnown, match=r"^quay\.io/x/y:2: tag not known$"):
            await rt.untag(APP.id, "quay.io/x/y:2")
        assert (await rt.get_image(APP.id)).names == ("localhost/app:1",)


async def test_untag_by_digest_is_refused(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        with pytest.raises(InvalidReference, match="untag by digest not supported"):
            await rt.untag(APP.id, "sha256:" + APP.id)


async def test_untag_without_names_removes_every_name_and_keeps_the_image(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        await rt.tag(APP.id, "app:2", "quay.io/a/b:c")
        image = await rt.untag("app:2")
        assert image.names == ()
        assert image.dangling
        assert [i.id for i in await rt.images()] == [APP.id]
        again = await rt.untag(APP.id)  # nothing left to remove: still fine
        assert again.names == ()


async def test_untag_keeps_the_other_names(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        await rt.tag(APP.id, "app:2", "app:3")
        image = await rt.untag(APP.id, "app:2", "localhost/app:1")
        assert image.names == ("localhost/app:3",)


# ------------------------------------------------------------------------------ errors


def test_error_messages_are_podmans() -> None:
    assert str(ImageNotKnown("x")) == "x: image not known"
    assert TagNotKnown("localhost/x:latest").message == "localhost/x:latest: tag not known"


async def test_a_closed_runtime_refuses_every_call(store: Path, tmp_path: Path) -> None:
    rt = Runtime(store)
    async with rt:
        await load_images(rt, tmp_path, APP)
    with pytest.raises(RuntimeStopped):
        await rt.images()
    with pytest.raises(RuntimeStopped):
        await rt.tag(APP.id, "x")
    with pytest.raises(RuntimeStopped):
        await rt.open()


# ------------------------------------------------------------------------------ images


async def test_an_image_describes_what_was_loaded(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
    assert image.id == APP.id
    assert image.short_id == APP.id[:12]
    assert image.layers == APP.diff_ids
    assert image.created == datetime(2000, 1, 1, tzinfo=UTC)
    # podman's count: layers, config, and the manifest twice (under two keys in its store)
    manifest_size = store_of(rt).blob_path(image.digest).stat().st_size
    layers = sum(len(layer) for layer in APP.layers)
    assert image.size == layers + len(APP.config) + 2 * manifest_size
    assert image.digests == (image.digest,)
    assert image.repo_digests == [f"localhost/app@{image.digest}"]
    assert not image.read_only


async def test_inspect_image_is_podmans_document(store: Path, tmp_path: Path) -> None:
    labelled = make_image("localhost/lab:1", seed="lab", labels={"a": "b"})
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, labelled)
        doc = await rt.inspect_image("lab:1")
    assert doc["Id"] == labelled.id
    assert doc["Digest"] == image.digest
    assert doc["RepoTags"] == ["localhost/lab:1"]
    assert doc["RootFS"] == {"Type": "layers", "Layers": list(labelled.diff_ids)}
    assert doc["Labels"] == {"a": "b"}
    assert doc["Config"]["Cmd"] == ["sh"]
    assert doc["Architecture"] == "amd64" and doc["Os"] == "linux"
    assert doc["History"] == labelled.history
    assert doc["NamesHistory"] == ["localhost/lab:1"]
    json.dumps(doc)  # serialisable as is


# ------------------------------------------------------------------------------ layer tree

BASE = make_image("localhost/base:1", seed="tree-base")
MIDDLE = child_image(BASE, files={"usr/middle": b"m"}, created_by="RUN middle")
TOP = child_image(MIDDLE, "localhost/top:1", files={"usr/top": b"t"}, created_by="RUN top")


async def test_parent_and_children_follow_layers_and_history(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, BASE, MIDDLE, TOP)
        base, middle, top = [await rt.get_image(i.id) for i in (BASE, MIDDLE, TOP)]
    assert (base.parent_id, middle.parent_id, top.parent_id) == ("", BASE.id, MIDDLE.id)
    assert (base.has_children, middle.has_children, top.has_children) == (True, True, False)


async def test_intermediate_images_are_hidden_unless_all(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, BASE, MIDDLE, TOP)
        shown = [i.id for i in await rt.images()]
        everything = await rt.images(all=True)
    assert shown == [BASE.id, TOP.id]
    assert [i.id for i in everything] == [BASE.id, MIDDLE.id, TOP.id]
    middle = everything[1]
    assert middle.intermediate and not middle.dangling


async def test_an_untagged_leaf_is_dangling_and_listed(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, BASE, MIDDLE, TOP)
        await rt.untag(TOP.id)
        top = await rt.get_image(TOP.id)
        assert top.dangling and not top.intermediate
        assert [i.id for i in await rt.images()] == [BASE.id, TOP.id]
        assert (await rt.get_image(MIDDLE.id)).intermediate


async def test_a_child_needs_exactly_one_more_history_entry(store: Path, tmp_path: Path) -> None:
    grandchild_without_middle = child_image(MIDDLE, "localhost/gc:1", created_by="RUN gc")
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, BASE, grandchild_without_middle)
        base = await rt.get_image(BASE.id)
        grandchild = await rt.get_image(grandchild_without_middle.id)
    assert grandchild.parent_id == ""
    assert not base.has_children


async def test_a_child_needs_the_same_history_as_its_parent(store: Path, tmp_path: Path) -> None:
    other_history = make_image(
        "localhost/other:1",
        layers=[*BASE.layers, MIDDLE.layers[-1]],
        history=[{"created": "2001-01-01T00:00:00Z", "created_by": "something else"}] * 2,
    )
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, BASE, other_history)
        assert (await rt.get_image(other_history.id)).parent_id == ""
        assert not (await rt.get_image(BASE.id)).has_children


async def test_an_empty_layer_step_makes_a_child_with_the_same_layers(
    store: Path, tmp_path: Path
) -> None:
    config_only = child_image(BASE, "localhost/env:1", created_by="ENV A=1")
    assert config_only.diff_ids == BASE.diff_ids
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, BASE, config_only)
        assert (await rt.get_image(config_only.id)).parent_id == BASE.id
        assert not (await rt.get_image(config_only.id)).has_children
