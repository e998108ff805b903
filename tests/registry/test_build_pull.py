"""Builds pull what their ``FROM``, ``COPY --from`` and ``RUN --mount=from=`` name, under
podman's pull policy.

The images come from the ``published`` repositories (an OCI layout and docker-registry).
The runtime's repository seam is watched, so each scenario sees whether the build went to
the source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import (
    Podman,
    aiopod,
    aiopod_inspect,
    directory,
    file,
    synthetic_image,
    write_oci_layout,
)

from aiopod import BuildError, EventKind, Runtime
from registry.store_fixtures import Publish, fixture_published, watch  # noqa: F401

pytestmark = pytest.mark.anyio


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    base = synthetic_image(
        ["v1"], [[directory("etc"), file("etc/motd", b"from the base\n")]], cmd=["cat"]
    )
    return write_oci_layout(tmp_path / "layout", [base])


def context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "local.txt").write_text("local\n")
    return ctx


async def test_a_missing_base_is_pulled_by_default(
    layout: Path, tmp_path: Path, published: Publish
) -> None:
    reference = published(layout, "v1")
    ctx = context(tmp_path, f"FROM {reference}\nCOPY local.txt /local.txt\n")
    async with Runtime(tmp_path / "store") as rt:
        built = await rt.build(ctx, tags=["localhost/built:1"])
        [base] = [image for image in await rt.images() if image.id != built.id]
        assert built.layers[:1] == base.layers and len(built.layers) == 2
        pulled = [e for e in rt.event_log.read() if e.kind == EventKind.PULLED]
        assert [(e.id, e.name) for e in pulled] == [(base.id, reference)]


async def test_policy_missing_does_not_pull_a_base_the_store_has(
    layout: Path, tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Runtime(tmp_path / "store") as rt:
        pulled = await rt.pull(published(layout, "v1"))
        counting = watch(rt, monkeypatch)
        ctx = context(tmp_path, f"FROM {pulled.names[0]}\nCOPY local.txt /\n")
        await rt.build(ctx)
        assert counting.manifests == []


async def test_policy_always_contacts_the_source_every_time_but_transfers_once(
    layout: Path, tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context(tmp_path, f"FROM {published(layout, 'v1')}\nCOPY local.txt /\n")
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        await rt.build(ctx, pull="always")
        opened = list(counting.opened)
        await rt.build(ctx, pull="always")
        assert len(counting.manifests) == 2
        assert counting.opened == opened  # the second pull found every blob in the store


async def test_policy_never_fails_for_a_missing_base(layout: Path, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM localhost/absent:1\n")
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(BuildError, match="is not in the store"):
            await rt.build(ctx, pull="never")
        with pytest.raises(BuildError, match="is not in the store"):
            await rt.build(context(tmp_path, f"FROM oci:{layout}:v1\n"), pull="never")


async def test_copy_from_an_image_pulls_it(
    layout: Path, tmp_path: Path, published: Publish
) -> None:
    ctx = context(
        tmp_path, f"FROM scratch\nCOPY --from={published(layout, 'v1')} /etc/motd /motd\n"
    )
    async with Runtime(tmp_path / "store") as rt:
        built = await rt.build(ctx)
        assert len(built.layers) == 1
        assert len(await rt.images()) == 2  # the build's and the one it pulled


async def test_a_failed_pull_fails_the_build_with_the_step(tmp_path: Path) -> None:
    ctx = context(tmp_path, f"FROM oci:{tmp_path / 'nowhere'}:v1\n")
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(BuildError, match=r'^building at STEP "FROM oci:.*": pulling oci:'):
            await rt.build(ctx)


def test_the_command_line_takes_podmans_pull_flags(
    layout: Path, tmp_path: Path, store: Path
) -> None:
    ctx = context(tmp_path, f"FROM oci:{layout}:v1\nCOPY local.txt /\n")
    never = aiopod("build", "--pull-never", ctx, root=store)
    assert never.returncode == 125
    assert never.stderr.startswith('Error: building at STEP "FROM oci:')
    for flags in (["--pull"], ["--pull=always"], ["--pull-always"], ["--pull=missing"], []):
        result = aiopod("build", *flags, ctx, root=store)
        assert result.returncode == 0, result.stderr
        assert "Copying config" in result.stderr  # every one of these pulls (oci: is never local)
    bad = aiopod("build", "--pull=sometimes", ctx, root=store)
    assert bad.returncode == 125 and "unsupported pull policy" in bad.stderr


@pytest.mark.peer("podman", "busybox", "docker-registry")
def test_a_build_pulls_from_a_registry_with_podmans_lines(
    tmp_path: Path, store: Path, registry: str, podman: Podman, busybox_rootfs_tar: Path
) -> None:
    base = f"{registry}/build-pull-{tmp_path.name}/busybox:1".lower()
    podman("import", "-q", busybox_rootfs_tar, base)
    podman("push", "-q", "--tls-verify=false", base)
    podman("rmi", base)
    ctx = context(
        tmp_path,
        f"FROM {base}\n"
        f"RUN --mount=type=bind,from={base},target=/m cp /m/etc/passwd /copied\n"
        f"COPY --from={base} /etc/group /group\n",
    )
    flags = ["--tls-verify=false", "--layers", "--timestamp", "0"]
    theirs = podman("build", *flags, "--isolation", "chroot", ctx)
    ours = aiopod("build", *flags, ctx, root=store)
    assert ours.returncode == 0, ours.stderr

    def steps(stdout: str) -> list[str]:
        return [line for line in stdout.splitlines() if not line.startswith("-->")][:-1]

    assert steps(ours.stdout) == steps(theirs.stdout)
    assert ours.stderr == theirs.stderr  # one pull, in podman's words, for all three uses
    assert ours.stderr.startswith(f"Trying to pull {base}...\n")
    built = aiopod_inspect(store, ours.stdout.split()[-1])[0]
    pulled = aiopod_inspect(store, base)[0]
    assert built["RootFS"]["Layers"][:1] == pulled["RootFS"]["Layers"]
