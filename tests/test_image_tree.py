"""``image tree`` and ``Runtime.image_tree``: podman 4.3's drawing of an image's layers and
of the layers built on them, compared byte for byte with podman on the same images.

The store holds a family loaded from oci-archives (whose manifests podman keeps as they
are, so that sizes compare too): ``base`` with two children ``one`` and ``two``; ``one``
with two children ``g1`` and ``g2`` (a larger layer); ``h`` on ``g2``; ``one`` has a
second tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imagefactory import FakeImage, child_image, make_image, write_oci_archive
from twins import Twins

import aiopod as api
from aiopod.sync import Runtime as SyncRuntime

BASE = make_image("localhost/base:1", seed="tree-base")
ONE = child_image(BASE, "localhost/one:1", files={"one": b"1\n"})
TWO = child_image(BASE, "localhost/two:1", files={"two": b"2\n"})
G1 = child_image(ONE, "localhost/g1:1", files={"g": b"g\n"})
G2 = child_image(ONE, "localhost/g2:1", files={"g2": b"g2\n" * 40000})
H = child_image(G2, "localhost/h:1", files={"h": b"h\n"})
FAMILY: list[FakeImage] = [BASE, ONE, TWO, G1, G2, H]


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Twins]:
    """podman and aiopod stores with FAMILY, ``one`` tagged twice."""
    twins = Twins(tmp_path, FAMILY)
    twins.both("tag", "one:1", "one:2")
    yield twins
    twins.cleanup()


@pytest.mark.peer("podman")
@pytest.mark.parametrize(
    "args",
    [
        ["base:1"],
        ["one:1"],  # two tags on its top layer
        ["h:1"],  # four layers
        ["--whatrequires", "base:1"],  # a base layer: what is on it goes on in line
        ["--whatrequires", "one:1"],  # a layer with a sibling: a branch
        ["--whatrequires", "g2:1"],
        ["--whatrequires", "h:1"],  # nothing on it
        [H.id[:12]],
        ["nope"],
        [],
        ["a", "b"],
    ],
)
def test_image_tree_is_podmans(twins: Twins, args: list[str]) -> None:
    expected, got = twins.run("image", "tree", *args)
    assert got == expected


@pytest.mark.peer("podman")
@pytest.mark.parametrize("command", [["images"], ["image", "ls"], ["image", "list", "-a"]])
def test_image_ls_and_list_are_podmans_images(twins: Twins, command: list[str]) -> None:
    """The same table, sizes included (podman counts the manifest twice)."""
    expected, got = twins.run(*command)
    assert got == expected


def test_the_tree_object_holds_the_layers_and_what_is_built_on_them(tmp_path: Path) -> None:
    archive = write_oci_archive(tmp_path / "family.tar", FAMILY)
    with SyncRuntime(tmp_path / "store") as rt:
        rt.load(archive)
        tree = rt.image_tree("one:1")
        also_tree = rt.image_tree(ONE.id, what_requires=True)
    assert isinstance(tree, api.ImageTree) and tree.image.id == ONE.id
    assert tree.tags == ("localhost/one:1",)
    assert [layer.size for layer in tree.layers] == [len(layer) for layer in ONE.layers]
    base_layer, one_layer = tree.layers
    assert base_layer.id == BASE.diff_ids[0].removeprefix("sha256:")  # podman's layer IDs
    assert (base_layer.images, base_layer.tags) == ((BASE.id,), ("localhost/base:1",))
    assert tree.dependents is not None and tree.dependents.id == one_layer.id
    built_on = {layer.id: layer.images for layer in tree.dependents.walk()}
    assert list(built_on.values()) == [(ONE.id,), (G1.id,), (G2.id,), (H.id,)]
    assert tree.top_has_siblings  # TWO's layer shares its parent
    assert not tree.what_requires and also_tree.what_requires
    assert str(tree).splitlines()[-1].startswith("└── ID: " + one_layer.id[:12])
    h_layer = next(layer.id for layer in tree.dependents.walk() if layer.images == (H.id,))
    # one's layer, then g1's and g2's in a branch below it, h's below g2's
    assert str(also_tree).splitlines()[-1] == (
        f"        └── ID: {h_layer[:12]} Size: 10.24kB Top Layer of: [localhost/h:1]"
    )
