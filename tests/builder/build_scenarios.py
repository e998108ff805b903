"""Differential builds: one Dockerfile built by ``buildah bud`` and by ``aiopod build``.

A :class:`Scenario` is a Dockerfile, the build context it needs (a :func:`make_tree` spec)
and the flags of the build.  :func:`build_both` builds it on two private stores that start
from the same busybox root file system (``podman import`` on the buildah side, ``aiopod
import`` on aiopod's; the base image IDs differ because podman stamps the creation time):

* buildah: ``buildah bud --isolation chroot --timestamp 0 --pull=never`` (``--layers`` and
  ``--format docker`` when the scenario asks), then ``skopeo copy containers-storage:[vfs@
  ROOT+RUNROOT]NAME oci:DIR:NAME`` and ``umoci unpack``;
* aiopod: ``aiopod build --timestamp 0`` (``--layers``), then ``umoci unpack --image
  STORE:NAME`` (the store is an OCI layout).

:func:`explain_differences` compares what a user of the image sees, tolerating buildah
1.28's artifacts (observed with ``buildah bud``):

* the root file systems (paths, types, permission bits, owners, contents, symlink
  targets; whiteouts applied by umoci), without the mount-point stubs buildah's RUN
  leaves (``dev/``, ``proc/``, ``sys/``, ``run/``, ``etc/hosts``, ``etc/hostname``,
  ``etc/resolv.conf``: empty) on either side;
* the config fields Env, Cmd, Entrypoint, WorkingDir, User, Labels (without
  ``io.buildah.version``), ExposedPorts, Volumes, StopSignal, and with ``--format docker``
  also Shell, Healthcheck and OnBuild (the OCI format drops them);
* the history the build added (after the base image's own entries): the ``created_by``
  sequence always (so COPY/ADD content summaries must be buildah's digests), and with
  ``--layers`` the ``empty_layer`` flags, the number of layers, and every COPY layer's
  diff_id (with ``--timestamp 0`` they are bit for bit buildah's).  Without ``--layers``
  buildah commits one layer per stage, aiopod one per RUN/COPY/ADD, so only the content
  is compared then.

Everything runs on private roots under the test's directory; buildah's run root is a
short directory under /tmp (podman limits its length) removed by the ``podman`` fixture.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conftest_context import make_tree
from peers import (
    BUSYBOX_IMAGE,
    Podman,
    Tool,
    aiopod_ok,
    diff_trees,
    strip_sha256,
    tree_snapshot,
)

__all__ = (
    "BASE",
    "LOCAL_PLATFORM",
    "Built",
    "Parent",
    "Scenario",
    "aiopod_config",
    "build_both",
    "explain_differences",
)

#: The busybox base both sides import.
BASE = BUSYBOX_IMAGE

#: ``--platform`` value of this machine (FROM --platform for the local platform only).
LOCAL_PLATFORM = "linux/" + {"x86_64": "amd64", "aarch64": "arm64"}.get(
    platform.machine(), platform.machine()
)

#: The PATH buildah adds to Env when the base image has none.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: What buildah's first RUN leaves behind in a layer (empty directories and files).
MOUNT_STUBS = ("dev", "proc", "sys", "run", "etc/hosts", "etc/hostname", "etc/resolv.conf")

#: The config fields compared in every scenario; DOCKER_ONLY only with ``--format docker``.
CONFIG_FIELDS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
)
DOCKER_ONLY = ("Shell", "Healthcheck", "OnBuild")


@dataclasses.dataclass(frozen=True)
class Parent:
    """An image built (on both sides, same context) before the scenario's Dockerfile."""

    name: str
    dockerfile: str


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One Dockerfile to build with both tools.

    ``buildah_dockerfile`` replaces the Dockerfile on buildah's side only, for a feature
    buildah 1.28 lacks (heredocs): an equivalent Dockerfile without it.  ``args`` are
    flags both builders take (``--build-arg``, ``--target``).  ``docker_format`` builds
    with ``--format docker`` on buildah's side (parents too) and compares the Docker-only
    config fields.  ``dockerfile_in_context`` writes the Dockerfile into the context (as
    ``Dockerfile``) instead of next to it.  ``compare_history`` is false when the two
    Dockerfiles differ (heredocs).  ``secrets`` (``{id: contents}``) are written to files
    outside the context and given to both builders as ``--secret id=ID,src=FILE``.
    """

    name: str
    dockerfile: str
    context: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    args: tuple[str, ...] = ()
    layers: bool = False
    docker_format: bool = False
    parents: tuple[Parent, ...] = ()
    buildah_dockerfile: str | None = None
    dockerfile_in_context: bool = False
    compare_history: bool = True
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass
class Built:
    """One side's result: the unpacked root file system and the image config document."""

    rootfs: Path
    config: dict[str, Any]
    base_history: int
    output: str

    @property
    def history(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.config.get("history") or []
        return entries[self.base_history :]

    @property
    def diff_ids(self) -> list[str]:
        ids: list[str] = self.config["rootfs"]["diff_ids"]
        return ids

    def step_layers(self) -> list[str | None]:
        """For each entry of :attr:`history`, the diff_id of its layer (None: empty)."""
        entries = self.config.get("history") or []
        index = sum(1 for h in entries[: self.base_history] if not h.get("empty_layer"))
        out: list[str | None] = []
        for entry in self.history:
            if entry.get("empty_layer"):
                out.append(None)
            else:
                out.append(self.diff_ids[index])
                index += 1
        return out

    def tree(self) -> dict[str, tuple[Any, ...]]:
        """The root file system without mount-point stubs (empty dirs and files)."""
        tree = tree_snapshot(self.rootfs, with_mtime=False)
        for stub in MOUNT_STUBS:
            entry = tree.get(stub)
            if entry is None:
                continue
            empty_dir = entry[0] == "dir" and not any(p.startswith(stub + "/") for p in tree)
            empty_file = entry[0] == "file" and entry[1] == 0
            if empty_dir or empty_file:
                del tree[stub]
        return tree


# -- the two sides ------------------------------------------------------------------------------


def _layout_image(layout: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and config of ``name`` in an OCI layout (the aiopod store)."""
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    for desc in index["manifests"]:
        if (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name") == name:
            manifest = json.loads((blobs / strip_sha256(desc["digest"])).read_bytes())
            config = json.loads((blobs / strip_sha256(manifest["config"]["digest"])).read_bytes())
            return manifest, config
    raise AssertionError(f"{name} is not in {layout}/index.json")


def aiopod_config(store: Path, name: str) -> dict[str, Any]:
    """The config document of image ``name`` in the aiopod store."""
    return _layout_image(store, name)[1]


def _buildah_config(podman: Podman, name: str, docker_format: bool) -> dict[str, Any]:
    doc = json.loads(podman.buildah("inspect", "--type", "image", name).stdout)
    config: dict[str, Any] = doc["Docker"] if docker_format else doc["OCIv1"]
    return config


def _secret_args(scenario: Scenario, work: Path) -> list[str]:
    """``--secret id=ID,src=FILE`` for each of the scenario's secrets (files under *work*)."""
    args: list[str] = []
    for secret_id, contents in scenario.secrets.items():
        path = work / "secrets" / secret_id
        path.parent.mkdir(exist_ok=True)
        path.write_text(contents)
        args += ["--secret", f"id={secret_id},src={path}"]
    return args


def _write_dockerfile(base: Path, context: Path, name: str, text: str, in_context: bool) -> Path:
    path = context / "Dockerfile" if in_context else base / f"{name}.Dockerfile"
    path.write_text(text)
    return path


def buildah_side(
    scenario: Scenario,
    podman: Podman,
    skopeo: Tool,
    umoci: Tool,
    base_tar: Path,
    work: Path,
) -> Built:
    """Import the base into podman's store, build the parents and the scenario with
    ``buildah bud``, copy the result out with skopeo and unpack it with umoci."""
    work.mkdir(parents=True)
    context = make_tree(work / "context", scenario.context)
    podman("import", base_tar, BASE)
    base_history = len(_buildah_config(podman, BASE, False).get("history") or [])
    common = ["--isolation", "chroot", "--timestamp", "0", "--pull=never"]
    if scenario.layers:
        common.append("--layers")
    if scenario.docker_format:
        common += ["--format", "docker"]
    for parent in scenario.parents:
        df = _write_dockerfile(work, context, "parent", parent.dockerfile, False)
        podman.buildah("bud", *common, "-f", df, "-t", parent.name, context)
    text = scenario.buildah_dockerfile or scenario.dockerfile
    df = _write_dockerfile(work, context, "scenario", text, scenario.dockerfile_in_context)
    name = f"localhost/{scenario.name}:buildah"
    args = [*scenario.args, *_secret_args(scenario, work)]
    proc = podman.buildah("bud", *common, *args, "-f", df, "-t", name, context)
    layout = work / "oci"
    skopeo("copy", "-q", podman.storage_ref(name), f"oci:{layout}:{name}")
    umoci("unpack", "--image", f"{layout}:{name}", work / "bundle")
    config = _buildah_config(podman, name, scenario.docker_format)
    return Built(work / "bundle" / "rootfs", config, base_history, proc.stdout + proc.stderr)


def aiopod_side(scenario: Scenario, store: Path, umoci: Tool, base_tar: Path, work: Path) -> Built:
    """Import the base into an aiopod store, build the parents and the scenario with
    ``aiopod build --timestamp 0`` and unpack the result with umoci from the store."""
    work.mkdir(parents=True)
    context = make_tree(work / "context", scenario.context)
    aiopod_ok("import", base_tar, BASE, root=store)
    base_history = len(aiopod_config(store, BASE).get("history") or [])
    common = ["--timestamp", "0"] + (["--layers"] if scenario.layers else [])
    for parent in scenario.parents:
        df = _write_dockerfile(work, context, "parent", parent.dockerfile, False)
        aiopod_ok("build", *common, "-f", df, "-t", parent.name, context, root=store)
    df = _write_dockerfile(
        work, context, "scenario", scenario.dockerfile, scenario.dockerfile_in_context
    )
    name = f"localhost/{scenario.name}:aiopod"
    args = [*scenario.args, *_secret_args(scenario, work)]
    proc = aiopod_ok("build", *common, *args, "-f", df, "-t", name, context, root=store)
    umoci("unpack", "--image", f"{store}:{name}", work / "bundle")
    return Built(
        work / "bundle" / "rootfs",
        aiopod_config(store, name),
        base_history,
        proc.stdout + proc.stderr,
    )


def build_both(
    scenario: Scenario,
    *,
    podman: Podman,
    skopeo: Tool,
    umoci: Tool,
    store: Path,
    base_tar: Path,
    work: Path,
) -> tuple[Built, Built]:
    """Build ``scenario`` with buildah and with aiopod (concurrently); (buildah, aiopod)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = pool.submit(
            buildah_side, scenario, podman, skopeo, umoci, base_tar, work / "buildah"
        )
        mine = pool.submit(aiopod_side, scenario, store, umoci, base_tar, work / "aiopod")
        return theirs.result(), mine.result()


# -- comparing ----------------------------------------------------------------------------------


def _runtime_config(built: Built, fields: Sequence[str]) -> dict[str, Any]:
    config = built.config.get("config") or {}
    out: dict[str, Any] = {}
    for key in fields:
        value = config.get(key)
        if key == "Labels" and value:
            value = {k: v for k, v in value.items() if k != "io.buildah.version"}
        if value:  # absent, null and empty are the same to a user of the image
            out[key] = value
    return out


def explain_differences(scenario: Scenario, theirs: Built, mine: Built) -> str:
    """Every difference between buildah's result and aiopod's (empty: none)."""
    problems: list[str] = []
    their_tree, my_tree = theirs.tree(), mine.tree()
    if their_tree != my_tree:
        problems.append(
            "root file system (path: aiopod != buildah):\n" + diff_trees(my_tree, their_tree)
        )
    fields = CONFIG_FIELDS + (DOCKER_ONLY if scenario.docker_format else ())
    their_config, my_config = _runtime_config(theirs, fields), _runtime_config(mine, fields)
    my_env = {e.partition("=")[0] for e in my_config.get("Env", [])}
    if "PATH" not in my_env and DEFAULT_PATH in their_config.get("Env", []):
        # buildah adds its default PATH when the base image has no Env.
        their_config["Env"] = [e for e in their_config["Env"] if e != DEFAULT_PATH]
    for key in fields:
        if their_config.get(key) != my_config.get(key):
            problems.append(
                f"config {key}: aiopod {my_config.get(key)!r} != buildah {their_config.get(key)!r}"
            )
    their_by = [h.get("created_by", "") for h in theirs.history]
    my_by = [h.get("created_by", "") for h in mine.history]
    if scenario.compare_history and their_by != my_by:
        problems.append(
            "history created_by:\n  aiopod:  "
            + "\n           ".join(my_by)
            + "\n  buildah: "
            + "\n           ".join(their_by)
        )
    if scenario.layers:
        their_empty = [bool(h.get("empty_layer")) for h in theirs.history]
        my_empty = [bool(h.get("empty_layer")) for h in mine.history]
        if their_empty != my_empty:
            problems.append(f"history empty_layer: aiopod {my_empty} != buildah {their_empty}")
        if len(theirs.diff_ids) != len(mine.diff_ids):
            problems.append(
                f"layer count: aiopod {len(mine.diff_ids)} != buildah {len(theirs.diff_ids)}"
            )
        else:
            for by, their_layer, my_layer in zip(
                their_by, theirs.step_layers(), mine.step_layers(), strict=True
            ):
                if "#(nop) COPY " in by and their_layer != my_layer:
                    problems.append(f"COPY layer of {by!r}: aiopod {my_layer} != {their_layer}")
    if problems:
        problems.append(f"--- aiopod output ---\n{mine.output[-2000:]}")
    return "\n".join(problems)
