"""The ``docker`` removal policy: ``aiopod --policy docker rmi`` against ``docker rmi``.

Differential: the same docker-archive (images built in Python with ``imagefactory``, with
``Parent`` links in ``manifest.json`` so that docker knows the parent chain, as aiopod's
layer tree does) is loaded into the ``dockerd`` fixture's engine and into a fresh aiopod
store; containers are made on both sides (``docker create IMG true`` / ``aiopod create
IMG`` or ``aiopod from IMG``); then every ``rmi`` of a case runs on both, and after each
one stdout, stderr and the exit code must be equal, and so must the images left
(``docker images -a`` against ``aiopod images -a``: IDs and names).

Normalisation: container IDs differ between the two (both sides' IDs become ``<cN>``);
nothing else.  Image names are registry-qualified (``example.com/...``), which both
sides store and print alike (docker's ``docker.io/library/`` short names against
aiopod's ``localhost/`` are not compared here).  docker's ``-f`` keeps the containers of
an image it deletes while aiopod removes them: containers are not compared, and the
layers such a container keeps in docker are known to aiopod only in the same call (a case
that forces an image with a container away deletes its parent in that same call).

Then unit tests of the planner on simulated states (no peer needed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from imagefactory import FakeImage, child_image, load_images, make_image, write_docker_archive
from peers import Docker, aiopod, aiopod_images, aiopod_ok

from aiopod import Runtime
from aiopod.errors import UsageError
from aiopod.removal.docker import familiar_name, not_found_name, plan_docker
from aiopod.removal.plan import DeleteImage, RemovalOptions, RemoveContainer, Untag, exit_code_for
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.records import HistoryEntry, ImageRecord, LayerRecord, StoreState, chain_ids

# ------------------------------------------------------------------------------ the images

BASE = make_image(
    "example.com/base:1",
    "example.com/base:2",
    seed="dk-base",
    layers=[{"etc/a": b"dk-a"}, {"etc/b": b"dk-b"}],
)
MID = child_image(BASE, "example.com/mid:1", files={"etc/mid": b"dk-mid"})
TOP = child_image(MID, "example.com/top:1", "other.io/top:latest", files={"etc/top": b"dk-top"})
LONE = make_image("example.com/lone:1", seed="dk-lone")
HIDDEN = make_image(seed="dk-hidden", layers=[{"etc/h": b"dk-h"}])  # no name, a parent
LEAF = child_image(HIDDEN, "example.com/leaf:1", files={"etc/leaf": b"dk-leaf"})
EMPTY = child_image(LEAF, "example.com/empty:1")  # an empty layer: LEAF's layers exactly

IMAGES = (BASE, MID, TOP, LONE, HIDDEN, LEAF, EMPTY)
PARENTS = {MID.id: BASE.id, TOP.id: MID.id, LEAF.id: HIDDEN.id, EMPTY.id: LEAF.id}
IDS = {image.id for image in IMAGES}
assert MID.id[0] == LONE.id[0] and BASE.id[0] not in {i.id[0] for i in IMAGES if i != BASE}


def write_archive(path: Path) -> Path:
    """The archive of every image, with docker's ``Parent`` links."""

    def link_parents(manifest: list[dict[str, Any]]) -> None:
        for entry in manifest:
            parent = PARENTS.get(entry["Config"].removesuffix(".json"))
            if parent is not None:
                entry["Parent"] = "sha256:" + parent

    return write_docker_archive(path, IMAGES, manifest_hook=link_parents)


# ------------------------------------------------------------------------------ the sides


@dataclass
class Result:
    """What one ``rmi`` printed and returned (container IDs normalised)."""

    stdout: list[str]
    stderr: list[str]
    code: int


def _normalised(text: str, containers: dict[str, str]) -> list[str]:
    for full, label in containers.items():
        text = text.replace(full, label).replace(full[:12], label)
    return text.splitlines()


@dataclass
class DockerSide:
    docker: Docker
    containers: dict[str, str] = field(default_factory=dict)

    def setup(self, archive: Path) -> None:
        self.cleanup()
        self.docker("load", "-i", archive)

    def cleanup(self) -> None:
        if self.containers:
            self.docker("rm", "-f", *self.containers, check=False)
            self.containers.clear()
        for image in reversed(IMAGES):  # children first
            self.docker("rmi", "-f", image.id, check=False)

    def create(self, image: str, storage: bool) -> None:
        del storage  # docker has one kind of container
        out = self.docker("create", image, "true").stdout.strip()
        self.containers[out] = f"<c{len(self.containers) + 1}>"

    def rmi(self, args: Sequence[str]) -> Result:
        proc = self.docker("rmi", *args, check=False)
        return Result(
            _normalised(proc.stdout, self.containers),
            _normalised(proc.stderr, self.containers),
            proc.returncode,
        )

    def images(self) -> dict[str, list[str]]:
        out = self.docker(
            "images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"
        ).stdout
        found: dict[str, list[str]] = {}
        for line in out.splitlines():
            image_id, name = line.split(" ", 1)
            image_id = image_id.removeprefix("sha256:")
            if image_id in IDS:
                names = found.setdefault(image_id, [])
                if name != "<none>:<none>":
                    names.append(name)
        return {i: sorted(n) for i, n in found.items()}


@dataclass
class AiopodSide:
    root: Path
    containers: dict[str, str] = field(default_factory=dict)

    def setup(self, archive: Path) -> None:
        aiopod_ok("load", "-i", archive, root=self.root)

    def create(self, image: str, storage: bool) -> None:
        aiopod_ok(*(["from", image] if storage else ["create", image]), root=self.root)
        listed = aiopod_ok("ps", "-a", "--external", "-q", "--no-trunc", root=self.root).stdout
        for container_id in listed.split():
            self.containers.setdefault(container_id, f"<c{len(self.containers) + 1}>")

    def rmi(self, args: Sequence[str]) -> Result:
        proc = aiopod("--policy", "docker", "rmi", *args, root=self.root)
        return Result(
            _normalised(proc.stdout, self.containers),
            _normalised(proc.stderr, self.containers),
            proc.returncode,
        )

    def images(self) -> dict[str, list[str]]:
        return aiopod_images(self.root)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("docker-policy") / "images.tar")


@pytest.fixture
def sides(
    dockerd: Docker, archive: Path, tmp_path: Path
) -> Iterator[tuple[DockerSide, AiopodSide]]:
    """Both sides with every image loaded (docker's copies of them loaded afresh)."""
    docker = DockerSide(dockerd)
    ours = AiopodSide(tmp_path / "store")
    docker.setup(archive)
    ours.setup(archive)
    assert ours.images() == docker.images()
    try:
        yield docker, ours
    finally:
        docker.cleanup()


def short(image: FakeImage, length: int = 12) -> str:
    return image.id[:length]


#: (case, containers to make first: (image, storage-only in aiopod), rmi argument lists)
CASES: list[tuple[str, list[tuple[str, bool]], list[list[str]]]] = [
    ("untag one of two names", [], [["example.com/base:1"]]),
    ("untag both names of a parent", [], [["example.com/base:1", "example.com/base:2"]]),
    ("the last name of an image with a child", [], [["example.com/mid:1"]]),
    ("the last name: delete, prune the parent", [], [["example.com/leaf:1"]]),
    ("empty layer child then its parent", [], [["example.com/empty:1"], ["example.com/leaf:1"]]),
    ("no prune", [], [["--no-prune", "example.com/empty:1", "example.com/leaf:1"]]),
    ("by ID, one name", [], [[short(LONE)], [short(LONE)]]),
    ("by full ID", [], [["sha256:" + LONE.id]]),
    ("by sha256: and an ID prefix", [], [["sha256:" + short(MID, 6)], ["sha256:" + short(LEAF)]]),
    ("by ID, several repositories", [], [[short(TOP)], ["-f", short(TOP, 5)]]),
    ("by ID, two tags of one repository", [], [[short(BASE)]]),
    ("by ID, a dangling parent with a child", [], [[short(HIDDEN)], ["-f", short(HIDDEN)]]),
    ("children cannot be forced", [], [["-f", short(MID)], ["-f", short(BASE)]]),
    (
        "chain removed top down by name",
        [],
        [["other.io/top:latest", "example.com/top:1", "example.com/mid:1"]],
    ),
    ("top down, no prune", [], [["--no-prune", "-f", short(TOP)], ["example.com/mid:1"]]),
    (
        "a stopped container blocks a name",
        [("example.com/lone:1", False)],
        [["example.com/lone:1"], [short(LONE)], ["-f", "example.com/lone:1"]],
    ),
    (
        "a storage container blocks an ID",
        [("example.com/lone:1", True)],
        [[short(LONE)], ["-f", short(LONE)]],
    ),
    (
        "a container does not block one of several names",
        [("example.com/base:1", False)],
        [["example.com/base:2"], ["example.com/base:1"]],
    ),
    (
        "a container on a parent stops the pruning quietly",
        [(short(HIDDEN), False)],
        [["example.com/empty:1", "example.com/leaf:1"]],
    ),
    (
        "forced away with a container on it: its layers stay",
        [("example.com/top:1", False)],
        [["-f", short(TOP), "example.com/mid:1"]],
    ),
    (
        "unknown names",
        [],
        [
            ["nope"],
            ["example.com/nope:2", "-f"],
            ["-f", "nope", "example.com/lone:1", "nope2"],
            ["0" * 64],
            ["sha256:" + "0" * 64],
            ["sha256:" + "0" * 6],
            ["Nope", "example.com/Nope:1"],
            ["-f", "nope", short(BASE)],
            [MID.id[0]],  # an ambiguous prefix (MID and LONE start alike)
            # A unique prefix: long enough to stay unique in an engine that holds other
            # tests' images too (CI shares one dockerd; docker searches all its images).
            [short(BASE, 6)],
            ["mid:1", "lone", "containers-storage:example.com/lone:1", "a/Nope"],
        ],
    ),
    (
        "several arguments, an error among them",
        [],
        [["example.com/lone:1", short(MID), "example.com/lone:1", "example.com/empty:1"]],
    ),
]


@pytest.mark.peer("docker")
@pytest.mark.parametrize(
    ("containers", "commands"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rmi_as_docker_does(
    sides: tuple[DockerSide, AiopodSide],
    containers: list[tuple[str, bool]],
    commands: list[list[str]],
) -> None:
    docker, ours = sides
    for image, storage in containers:
        docker.create(image, storage)
        ours.create(image, storage)
    for args in commands:
        expected = docker.rmi(args)
        got = ours.rmi(args)
        assert got == expected, f"rmi {' '.join(args)}"
        assert ours.images() == docker.images(), f"after rmi {' '.join(args)}"


SHORT = make_image("short:1", "me/short:2", seed="dk-short")


@pytest.mark.peer("docker")
def test_short_names_untag_as_docker_shows_them(dockerd: Docker, tmp_path: Path) -> None:
    """Names without a registry: docker's ``docker.io/library/short:1`` is aiopod's
    ``localhost/short:1``; both are typed and printed ``short:1``."""
    archive = write_docker_archive(tmp_path / "short.tar", [SHORT])
    store = tmp_path / "store"
    dockerd("rmi", "-f", SHORT.id, check=False)
    dockerd("load", "-i", archive)
    aiopod_ok("load", "-i", archive, root=store)
    try:
        for args in (
            ["short:1", "short:1"],
            ["docker.io/library/short:1", "short", "docker.io/me/short:2"],
            ["me/short", SHORT.id[:12]],
            ["-f", SHORT.id[:12]],
        ):
            expected = dockerd("rmi", *args, check=False)
            got = aiopod("--policy", "docker", "rmi", *args, root=store)
            assert (got.stdout, got.stderr, got.returncode) == (
                expected.stdout,
                expected.stderr,
                expected.returncode,
            ), args
    finally:
        dockerd("rmi", "-f", SHORT.id, check=False)
    assert aiopod_images(store) == {}


def test_docker_rmi_all_and_prune_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    for args in (["rmi", "-a"], ["rmi", "-i", "x"], ["image", "prune", "-f"], ["rmi"]):
        proc = aiopod("--policy", "docker", *args, root=root)
        assert proc.returncode == 125, (args, proc.stderr)
        assert proc.stderr.startswith("Error: "), proc.stderr


# ------------------------------------------------------------------------------ unit tests


def _state(*images: FakeImage, containers: Sequence[tuple[str, str]] = ()) -> StoreState:
    """A simulated store holding *images* and storage containers (ID, image ID)."""
    records = [
        ImageRecord(
            id=image.id,
            manifest_digest="sha256:" + "1" * 64,
            manifest_media_type="application/vnd.oci.image.manifest.v1+json",
            manifest_size=1,
            config_size=1,
            layers=tuple(LayerRecord(d, "tar", 1, d, 1) for d in image.diff_ids),
            history=tuple(HistoryEntry.from_config(h) for h in image.history),
        ).with_names(image.names)
        for image in images
    ]
    return StoreState.from_records(
        records, [ContainerRecord(c, c[:8], i, "") for c, i in containers]
    )


def _lines(state: StoreState, *args: str, force: bool = False, no_prune: bool = False) -> list[str]:
    """The stdout lines and errors ``docker rmi`` would print (the CLI's rendering)."""
    plan = plan_docker(state, args, RemovalOptions(force=force, no_prune=no_prune))
    lines: list[str] = []
    for step in plan.steps:
        if isinstance(step, Untag):
            lines.append(f"Untagged: {familiar_name(step.name)}")
        elif isinstance(step, DeleteImage):
            lines.append(f"Deleted: sha256:{step.image_id}")
            lines.extend(f"Deleted: {c}" for c in step.released_layers)
        elif isinstance(step, RemoveContainer):
            lines.append(f"(container {step.container_id})")
    return lines + [f"Error: {e.message}" for e in plan.errors]


CTR = "c" * 64


def test_planner_untags_a_name_and_keeps_the_image() -> None:
    assert _lines(_state(BASE), "example.com/base:1") == ["Untagged: example.com/base:1"]


def test_planner_deletes_with_the_last_name_and_prunes_the_parent() -> None:
    state = _state(HIDDEN, LEAF)
    leaf_chain = chain_ids(LEAF.diff_ids)
    assert _lines(state, "example.com/leaf:1") == [
        "Untagged: example.com/leaf:1",
        f"Deleted: sha256:{LEAF.id}",
        f"Deleted: {leaf_chain[1]}",
        f"Deleted: sha256:{HIDDEN.id}",
        f"Deleted: {leaf_chain[0]}",
    ]
    assert _lines(state, "example.com/leaf:1", no_prune=True)[:3] == [
        "Untagged: example.com/leaf:1",
        f"Deleted: sha256:{LEAF.id}",
        f"Deleted: {leaf_chain[1]}",
    ]
    assert len(_lines(state, "example.com/leaf:1", no_prune=True)) == 3


def test_planner_conflicts_hard_and_soft() -> None:
    state = _state(BASE, MID, TOP)
    assert _lines(state, BASE.id[:6], force=True) == [
        f"Error: conflict: unable to delete {BASE.id[:12]} (cannot be forced) - "
        "image has dependent child images"
    ]
    assert _lines(state, TOP.id[:6]) == [
        f"Error: conflict: unable to delete {TOP.id[:12]} (must be forced) - "
        "image is referenced in multiple repositories"
    ]
    assert _lines(state, TOP.id[:6], force=True)[:3] == [
        "Untagged: example.com/top:1",
        "Untagged: other.io/top:latest",
        f"Deleted: sha256:{TOP.id}",
    ]


def test_planner_containers_are_stopped_containers() -> None:
    state = _state(LONE, containers=[(CTR, LONE.id)])
    assert _lines(state, "example.com/lone:1") == [
        'Error: conflict: unable to remove repository reference "example.com/lone:1" '
        f"(must force) - container {CTR[:12]} is using its referenced image {LONE.id[:12]}"
    ]
    assert _lines(state, LONE.id[:4]) == [
        f"Error: conflict: unable to delete {LONE.id[:12]} (must be forced) - "
        f"image is being used by stopped container {CTR[:12]}"
    ]
    # Forced: the container goes too (docker would keep it), its layer is not reported.
    assert _lines(state, "example.com/lone:1", force=True) == [
        "Untagged: example.com/lone:1",
        f"(container {CTR})",
        f"Deleted: sha256:{LONE.id}",
    ]


def test_planner_not_found_and_exit_codes() -> None:
    state = _state(LONE)
    plan = plan_docker(state, ["nope", "sha256:" + "0" * 64], RemovalOptions())
    assert [e.message for e in plan.errors] == [
        "No such image: nope:latest",
        "No such image: sha256:" + "0" * 64,
    ]
    assert exit_code_for(plan) == 1
    forced = plan_docker(state, ["nope"], RemovalOptions(force=True))
    assert [e.message for e in forced.errors] == ["No such image: nope:latest"]
    assert exit_code_for(forced) == 0
    mixed = plan_docker(state, ["nope", "x" * 3 + "/../"], RemovalOptions(force=True))
    assert exit_code_for(mixed) != 0


def test_planner_same_name_twice_fails_the_second_time() -> None:
    assert _lines(_state(LONE), "example.com/lone:1", "example.com/lone:1")[-1] == (
        "Error: No such image: example.com/lone:1"
    )


def test_planner_is_pure_and_refuses_all() -> None:
    state = _state(LONE)
    before = (dict(state.images), dict(state.by_name))
    plan_docker(state, ["example.com/lone:1"], RemovalOptions(force=True))
    assert (dict(state.images), dict(state.by_name)) == before
    with pytest.raises(UsageError):
        plan_docker(state, [], RemovalOptions(all=True))
    with pytest.raises(UsageError):
        plan_docker(state, [], RemovalOptions())


def test_names() -> None:
    assert familiar_name("docker.io/library/x:1") == "x:1"
    assert familiar_name("docker.io/me/x:1") == "me/x:1"
    assert familiar_name("example.com/x:1") == "example.com/x:1"
    assert familiar_name("localhost/x:1") == "x:1"
    assert familiar_name("localhost/me/x:1") == "me/x:1"
    assert not_found_name("localhost/x") == "localhost/x:latest"
    assert not_found_name("x") == "x:latest"
    assert not_found_name("a/b:2") == "a/b:2"


@pytest.mark.anyio
async def test_runtime_docker_policy_report_and_dry_run(tmp_path: Path) -> None:
    """``Runtime(policy="docker")``: the report, a dry run that changes nothing, and the
    containers ``-f`` takes away."""
    async with Runtime(tmp_path / "store", policy="docker") as rt:
        await load_images(rt, tmp_path, HIDDEN, LEAF, LONE)
        container = await rt.create_container("example.com/lone:1")
        dry = await rt.remove_images(["example.com/leaf:1"], dry_run=True)
        assert dry.dry_run and dry.untagged == ["example.com/leaf:1"]
        assert dry.deleted == [LEAF.id, HIDDEN.id]
        assert {i.id for i in await rt.images(all=True)} == {HIDDEN.id, LEAF.id, LONE.id}
        report = await rt.remove_images(["example.com/leaf:1", "nope", LONE.id[:8]])
        assert report.deleted == [LEAF.id, HIDDEN.id]
        assert [e.message for e in report.errors] == [
            "No such image: nope:latest",
            f"conflict: unable to delete {LONE.id[:12]} (must be forced) - "
            f"image is being used by stopped container {container.id[:12]}",
        ]
        assert report.exit_code == 1
        forced = await rt.remove_images([LONE.id[:8]], force=True)
        assert forced.removed_containers == [container.id]
        assert forced.exit_code == 0
        assert await rt.images(all=True) == []
        assert await rt.containers(external=True) == []
        with pytest.raises(UsageError):
            await rt.remove_images(all=True)


def test_image_rm_is_rmi_under_the_docker_policy(tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "lone.tar", [LONE])
    root = tmp_path / "store"
    aiopod_ok("load", "-i", archive, root=root)
    proc = aiopod("--policy", "docker", "image", "rm", "nope", "example.com/lone:1", root=root)
    chain = chain_ids(LONE.diff_ids)
    assert proc.stdout.splitlines() == [
        "Untagged: example.com/lone:1",
        f"Deleted: sha256:{LONE.id}",
        f"Deleted: {chain[0]}",
    ]
    assert proc.stderr == "Error response from daemon: No such image: nope:latest\n"
    assert proc.returncode == 1
