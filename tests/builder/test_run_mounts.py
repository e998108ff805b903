"""``RUN --mount``: bind, cache, tmpfs and secret mounts, as buildah 1.28 has them.

Every build starts from the busybox root file system imported into a fresh store under
``tmp_path``.  What buildah does in each case was observed with buildah 1.28.2 (the
module docstring of :mod:`aiopod.builder.run.mounts` lists it, and where aiopod differs on
purpose: ``rw`` never writes into the context, symlinks and ``..`` never leave it, a target
that existed is kept).  ``test_build_differential.py`` builds the same mounts with buildah.

Safety: RUN steps execute as root.  Every path a Dockerfile here names, and every
symlink target, is a path *inside tmp_path* (the ``host`` fixture is a stand-in for the
host), and the tests check that the stand-in and the context are exactly as before.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from build_helpers import BASE, build, context, image_files
from conftest import store_of
from conftest_context import layer_members, make_tree, tree_state
from peers import aiopod, aiopod_ok
from rootless import give_to_nobody, run_as_nobody

from aiopod import Runtime
from aiopod.builder.dockerfile.parser import parse_dockerfile
from aiopod.builder.progress import ProgressRecord, StepCached, StepStarted
from aiopod.builder.run.mounts import (
    BindMount,
    CacheMount,
    SecretMount,
    TmpfsMount,
    cache_mount_dir,
    mount_stage_refs,
    parse_mount,
    parse_run_mounts,
)
from aiopod.errors import BuildError

pytestmark = pytest.mark.anyio

F = TypeVar("F", bound=Callable[..., Any])

_NEEDS_ROOT = (
    pytest.mark.peer("busybox"),
    pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs root (namespaces, mounts)"),
)


def _root_only(func: F) -> F:
    """A build test: busybox and root (RUN makes namespaces and mounts)."""
    for mark in _NEEDS_ROOT:
        func = mark(func)
    return func


async def layers_and_config(rt: Runtime, image_id: str) -> tuple[list[bytes], bytes]:
    """The raw layer tars and the config blob of an image."""
    state = await store_of(rt).snapshot()
    record = state.images[image_id]
    layers = [store_of(rt).blob_path(layer.digest).read_bytes() for layer in record.layers]
    return layers, store_of(rt).blob_path(record.config_digest).read_bytes()


async def added_paths(rt: Runtime, image_id: str) -> set[str]:
    """Every path in the layers the build added (the base image's first layer skipped)."""
    layers, _ = await layers_and_config(rt, image_id)
    return {m.name.rstrip("/") for data in layers[1:] for m in layer_members(data)}


async def history(rt: Runtime, image_id: str) -> list[str]:
    _, config = await layers_and_config(rt, image_id)
    return [h.get("created_by", "") for h in json.loads(config)["history"]]


# -- parsing (no build) -----------------------------------------------------------------------


def test_parse_defaults_and_aliases() -> None:
    assert parse_mount("target=/m") == BindMount("/m")
    assert parse_mount("type=bind,src=d,dst=/m/,rw") == BindMount("/m", "d", None, False)
    assert parse_mount("type=bind,source=d,destination=/m,from=st,readonly=false") == (
        BindMount("/m", "d", "st", False)
    )
    assert parse_mount("type=cache,target=/c") == CacheMount("/c", "/c")
    assert parse_mount("type=cache,target=/c,id=x,sharing=locked,mode=0700,uid=1,gid=2,ro") == (
        CacheMount("/c", "x", "/", None, True, "locked", 0o700, 1, 2)
    )
    assert parse_mount("type=tmpfs,target=/t,size=64m") == TmpfsMount("/t", 64 << 20)
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=4096,tmpfs-mode=755") == (
        TmpfsMount("/t", 4096, 0o755)
    )
    assert parse_mount("type=secret,id=s") == SecretMount("s", "/run/secrets/s")
    assert parse_mount("type=secret,id=s,target=/x,required,mode=0440,uid=1000,gid=50") == (
        SecretMount("s", "/x", True, 0o440, 1000, 50)
    )
    assert parse_mount("type=bind,target=/m,bind-propagation=rprivate,z") == BindMount("/m")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=bind,source=d", "needs a target"),
        ("type=bind,source=d,target=rel", 'invalid container path "rel"'),
        ("type=bind,target=/", "cannot mount over /"),
        ("type=bind,target=/m,bogus=1", "bogus: invalid mount option"),
        ("type=bogus,target=/m", 'invalid mount type "bogus"'),
        ("type=cache,target=/c,sharing=weird", 'unrecognized value "weird"'),
        ("type=cache,target=/c,mode=9", "not a valid number"),
        ("type=secret,target=/x", "needs id=ID"),
        ("type=secret,id=s,required=maybe", "expected true or false"),
        ("type=tmpfs,target=/t,size=lots", "not a size"),
        ("type=ssh", "type=ssh is not supported"),
        ("type=bind,target=/m,source", "source: option requires an argument"),
    ],
)
def test_parse_errors_are_clear(value: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        parse_mount(value)


def test_flags_are_expanded_with_args_and_stage_refs_found() -> None:
    dockerfile = parse_dockerfile(
        "FROM x\nRUN --mount=type=bind,source=$D,target=/m --mount=from=st,target=/s "
        "--mount=type=cache,target=/m true\n"
    )
    instruction = dockerfile.stages[0].instructions[0]
    assert mount_stage_refs(instruction) == ["st"]
    with pytest.raises(BuildError, match="duplicate mount destination"):
        parse_run_mounts(instruction, {"D": "d"})
    ok = parse_dockerfile("FROM x\nRUN --mount=source=$D,target=/m true\n").stages[0]
    assert parse_run_mounts(ok.instructions[0], {"D": "dir"}) == [BindMount("/m", "dir")]


def test_cache_directories_are_private_to_the_store_and_keyed_by_id(tmp_path: Path) -> None:
    one = cache_mount_dir(tmp_path / "aiopod", "../../escape")
    assert one.parent == tmp_path / "aiopod" / "build-cache-mounts"
    assert one != cache_mount_dir(tmp_path / "aiopod", "other")


# -- bind -------------------------------------------------------------------------------------


@_root_only
async def test_bind_from_the_context_is_read_only_and_leaves_no_mount_point(
    rt: Runtime, tmp_path: Path
) -> None:
    """buildah: ``Read-only file system``; the mount point ``/a/b/c`` is in no layer but
    the directories made above it are (buildah's layer has ``a/`` and ``a/b/``)."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "ARG D=d\n"
        "RUN --mount=type=bind,source=$D,target=/a/b/c cat /a/b/c/f > /copied"
        " && (echo x > /a/b/c/x && echo wrote || echo refused) > /result\n"
        "RUN ls -A /a/b > /left\n",
        {"d/f": "from the context\n"},
    )
    before = tree_state(ctx)
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "copied").read_text() == "from the context\n"
    assert (files / "result").read_text() == "refused\n"
    assert (files / "left").read_text() == ""
    assert tree_state(ctx) == before
    paths = await added_paths(rt, image.id)
    assert {"a", "a/b"} <= paths
    assert not any(p == "a/b/c" or p.startswith("a/b/c/") for p in paths)
    created_by = await history(rt, image.id)
    assert created_by[-2] == (
        "|1 D=d /bin/sh -c --mount=type=bind,source=$D,target=/a/b/c cat /a/b/c/f > /copied"
        " && (echo x > /a/b/c/x && echo wrote || echo refused) > /result"
    )


@_root_only
async def test_rw_bind_writes_are_seen_by_the_step_and_then_discarded(
    rt: Runtime, tmp_path: Path
) -> None:
    """buildah 1.28 writes them into the build context; here they never reach it."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "RUN --mount=type=bind,source=d,target=/m,rw echo changed > /m/f && echo new > /m/new"
        " && rm /m/gone && cat /m/f /m/new > /seen && ls -A /m > /listing\n"
        "RUN --mount=type=bind,source=d/f,target=/one,rw echo more >> /one && cat /one > /file\n"
        "RUN --mount=source=d,target=/again cat /again/f > /after"
        " && ls -A /again > /listing-after\n",
        {"d/f": "original\n", "d/gone": "still here\n", "d/": 0o750},
    )
    before = tree_state(ctx)
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "seen").read_text() == "changed\nnew\n"
    assert (files / "listing").read_text() == "f\nnew\n"
    assert (files / "file").read_text() == "original\nmore\n"
    assert (files / "after").read_text() == "original\n"
    assert (files / "listing-after").read_text() == "f\ngone\n"
    assert tree_state(ctx) == before
    assert not {"m", "one", "again"} & await added_paths(rt, image.id)


@_root_only
async def test_bind_from_a_stage_by_name_index_and_an_image(rt: Runtime, tmp_path: Path) -> None:
    """A stage named only by a mount is built first (buildah does too)."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest AS st\n"
        "RUN mkdir /out && echo from-stage > /out/x && ln -s /out/x /out/abs\n"
        "FROM localhost/bb:latest\n"
        "RUN --mount=type=bind,from=st,source=/out,target=/in cat /in/x > /by-name\n"
        "RUN --mount=from=0,source=out/abs,target=/f cat /f > /by-index-through-a-symlink\n"
        f"RUN --mount=from={BASE},source=/etc/passwd,target=/p head -1 /p > /from-image\n",
    )
    image = await build(rt, ctx)
    assert await rt.containers(external=True) == []  # the stage's is removed with the build
    files = await image_files(rt, image.id)
    assert (files / "by-name").read_text() == "from-stage\n"
    assert (files / "by-index-through-a-symlink").read_text() == "from-stage\n"
    assert (files / "from-image").read_text().startswith("root:")


@_root_only
async def test_a_source_outside_the_context_is_refused(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    before = tree_state(host)
    for source in ("../host", "d/../../host/secret", "/../host"):
        ctx = context(
            tmp_path, f"FROM localhost/bb:latest\nRUN --mount=source={source},target=/m true\n"
        )
        with pytest.raises(BuildError, match="is outside the build context"):
            await build(rt, ctx)
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN --mount=source=nosuch,target=/m true\n")
    with pytest.raises(BuildError, match="no such file or directory"):
        await build(rt, ctx)
    assert tree_state(host) == before
    assert await rt.containers(external=True) == []


@_root_only
async def test_hostile_context_symlinks_are_not_followed_out(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    """``leak -> <host>`` (absolute) means ``<context><host>``; ``up -> ../../..`` stops at
    the context's root; a symlink inside a mounted directory resolves inside the step's
    root file system, where the stand-in does not exist (buildah 1.28 followed ``leak`` to
    the host)."""
    before = tree_state(host)
    inner = str(host).lstrip("/")
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "RUN --mount=source=leak,target=/leak cat /leak/secret > /through-leak\n"
        "RUN --mount=source=up/secret,target=/up cat /up > /through-up\n"
        f"RUN --mount=source=d,target=/d,rw (cat /d/esc/secret || echo unreadable) > /inside"
        f" && (echo x > /d/esc/written || true) && (echo y > {host}/dir/keep || true)\n",
        {
            "leak@": str(host),
            "up@": "../../../../../../../..",
            f"{inner}/secret": "decoy in the context\n",
            "secret": "top of the context\n",
            "d/esc@": str(host),
            "d/f": "f\n",
        },
    )
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "through-leak").read_text() == "decoy in the context\n"
    assert (files / "through-up").read_text() == "top of the context\n"
    assert (files / "inside").read_text() == "unreadable\n"
    assert tree_state(host) == before


@_root_only
async def test_a_target_that_exists_keeps_its_contents(rt: Runtime, tmp_path: Path) -> None:
    """buildah 1.28 deletes an existing mount target after the step (a whiteout)."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "RUN mkdir /exists && echo image > /exists/own\n"
        "RUN --mount=source=d,target=/exists ls -A /exists > /during\n"
        "RUN ls -A /exists > /after\n",
        {"d/f": "f\n"},
    )
    image = await build(rt, ctx, layers=True)
    files = await image_files(rt, image.id)
    assert (files / "during").read_text() == "f\n"
    assert (files / "after").read_text() == "own\n"
    layers, _ = await layers_and_config(rt, image.id)
    assert [m.name for m in layer_members(layers[2])] == ["during"]


@_root_only
async def test_a_file_target_symlink_resolves_inside_the_root(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    """An image symlink on the way to a target, or at it, is followed inside the root."""
    before = tree_state(host)
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        f"RUN mkdir -p /real && ln -s /real /via && ln -s {host}/secret /real/link\n"
        "RUN --mount=source=f,target=/via/link cat /via/link > /read"
        f" && ls -A {host} > /during\n"
        f"RUN ls -A {host} > /after\n",
        {"f": "mounted\n"},
    )
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "read").read_text() == "mounted\n"
    assert (files / "during").read_text() == "secret\n"  # <root><host>/secret, made empty
    assert (files / "after").read_text() == ""  # and removed after the step
    assert tree_state(host) == before


# -- cache ------------------------------------------------------------------------------------


@_root_only
async def test_cache_persists_across_builds_and_never_enters_a_layer(
    rt: Runtime, tmp_path: Path
) -> None:
    """buildah: the second build sees the first build's file."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log"
        " && cat /var/cache/app/log > /seen\n",
    )
    first = await build(rt, ctx)
    second = await build(rt, ctx)
    assert (await image_files(rt, first.id)).joinpath("seen").read_text() == "run\n"
    assert (await image_files(rt, second.id)).joinpath("seen").read_text() == "run\nrun\n"
    paths = await added_paths(rt, second.id)
    assert {"var", "var/cache", "seen"} <= paths
    assert not any(p.startswith("var/cache/app") for p in paths)
    cache = cache_mount_dir(store_of(rt).layout.meta, "/var/cache/app")
    assert (cache / "cache" / "log").read_text() == "run\nrun\n"
    assert (await rt.check()).ok


@_root_only
async def test_cache_id_mode_owner_and_read_only(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "RUN --mount=type=cache,id=shared,target=/one,uid=1000,gid=1000,mode=0700"
        " stat -c '%a %u %g' /one > /attrs && echo hi > /one/f\n"
        "RUN --mount=type=cache,id=shared,target=/two,ro cat /two/f > /seen"
        " && (touch /two/x && echo wrote || echo refused) > /result\n",
    )
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "attrs").read_text() == "700 1000 1000\n"
    assert (files / "seen").read_text() == "hi\n"
    assert (files / "result").read_text() == "refused\n"


async def build_two_at_once(rt: Runtime, tmp_path: Path, step: str) -> None:
    """Two builds of *step* at once, in different contexts (so neither is the other's
    cache hit)."""
    one = context(tmp_path / "one", f"FROM localhost/bb:latest\n{step}")
    two = context(tmp_path / "two", f"FROM localhost/bb:latest\nENV OTHER=1\n{step}")
    async with anyio.create_task_group() as tg:
        tg.start_soon(build, rt, one)
        tg.start_soon(build, rt, two)


@_root_only
async def test_locked_cache_steps_never_overlap(rt: Runtime, tmp_path: Path) -> None:
    """Two builds at once: each step takes ``/c/held`` and would fail if the other had it."""
    step = (
        "RUN --mount=type=cache,target=/c,sharing=locked mkdir /c/held && sleep 1"
        " && rmdir /c/held\n"
    )
    await build_two_at_once(rt, tmp_path, step)


@_root_only
async def test_a_private_cache_in_use_gives_a_throwaway_directory(
    rt: Runtime, tmp_path: Path
) -> None:
    step = (
        "RUN --mount=type=cache,target=/c,sharing=private mkdir /c/held && sleep 1"
        " && ls -A /c > /seen\n"
    )
    await build_two_at_once(rt, tmp_path, step)
    kept = cache_mount_dir(store_of(rt).layout.meta, "/c") / "cache"
    assert os.listdir(kept) == ["held"]  # one build's directory was kept, the other not
    assert not list((store_of(rt).layout.tmp).glob("*/cache-mount-*"))


# -- tmpfs ------------------------------------------------------------------------------------


@_root_only
async def test_tmpfs_is_new_and_empty_every_time(rt: Runtime, tmp_path: Path) -> None:
    step = (
        "RUN --mount=type=tmpfs,target=/t,size=1m ls -A /t >> /seen && touch /t/x"
        " && grep ' /t ' /proc/self/mountinfo > /mountinfo\n"
    )
    ctx = context(tmp_path, f"FROM localhost/bb:latest\n{step}{step}")
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "seen").read_text() == ""
    assert "tmpfs" in (files / "mountinfo").read_text()
    assert "size=1024k" in (files / "mountinfo").read_text()
    assert "t" not in await added_paths(rt, image.id)


# -- secret -----------------------------------------------------------------------------------

SECRET = b"TOPSECRET-6f1c2a9e\n"


@_root_only
async def test_secret_is_readable_mode_0400_and_in_no_layer_or_history(
    rt: Runtime, tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(SECRET)
    secret.chmod(0o644)
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\n"
        "RUN --mount=type=secret,id=token stat -c '%a %u %g %s' /run/secrets/token > /attrs"
        " && sha256sum < /run/secrets/token > /digest"
        " && (echo x > /run/secrets/token && echo wrote || echo refused) > /result\n"
        "RUN --mount=type=secret,id=token,target=/etc/tok,mode=0440,uid=1000,gid=50"
        " stat -c '%a %u %g' /etc/tok > /attrs2\n"
        "RUN --mount=type=secret,id=absent (ls /run/secrets/absent || echo none) > /absent\n",
    )
    image = await build(rt, ctx, secrets={"token": secret}, layers=True)
    files = await image_files(rt, image.id)
    assert (files / "attrs").read_text() == f"400 0 0 {len(SECRET)}\n"
    assert (files / "attrs2").read_text() == "440 1000 50\n"
    assert (files / "result").read_text() == "refused\n"
    assert (files / "absent").read_text() == "none\n"
    assert (files / "digest").read_text().split()[0] == hashlib.sha256(SECRET).hexdigest()
    layers, config = await layers_and_config(rt, image.id)
    for blob in (*layers, config):
        assert SECRET.strip() not in blob
    paths = await added_paths(rt, image.id)
    assert "run/secrets" in paths
    assert not {"run/secrets/token", "etc/tok", "run/secrets/absent"} & paths
    assert secret.read_bytes() == SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o644


@_root_only
async def test_a_required_secret_that_was_not_given_fails(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(
        tmp_path, "FROM localhost/bb:latest\nRUN --mount=type=secret,id=s,required=true true\n"
    )
    with pytest.raises(BuildError, match="secret required but no secret with id s found"):
        await build(rt, ctx)
    with pytest.raises(BuildError, match="cannot open"):
        await build(rt, ctx, secrets={"s": tmp_path / "missing-file"})
    assert await rt.containers(external=True) == []


@_root_only
async def test_ssh_mounts_are_refused(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN --mount=type=ssh true\n")
    with pytest.raises(BuildError, match="type=ssh is not supported"):
        await build(rt, ctx)


# -- the layer cache --------------------------------------------------------------------------


@_root_only
async def test_what_is_mounted_is_not_part_of_the_cache_key(rt: Runtime, tmp_path: Path) -> None:
    """buildah 1.28: a changed bind source or secret reuses the cached step; the key is
    the text after RUN, flags included."""
    secret = tmp_path / "s"
    secret.write_text("one\n")
    dockerfile = (
        "FROM localhost/bb:latest\n"
        "RUN --mount=source=d,target=/m cat /m/f > /copied\n"
        "RUN --mount=type=secret,id=s cat /run/secrets/s > /secret-copy\n"
    )
    ctx = context(tmp_path, dockerfile, {"d/f": "one\n"})
    first = await build(rt, ctx, layers=True, secrets={"s": secret})
    (ctx / "d" / "f").write_text("two\n")
    secret.write_text("two\n")
    records: list[ProgressRecord] = []
    again = await build(rt, ctx, layers=True, secrets={"s": secret}, progress=records.append)
    assert again.id == first.id
    cached = [
        isinstance(following, StepCached)
        for record, following in itertools.pairwise(records)
        if isinstance(record, StepStarted) and record.step > 1
    ]
    assert cached == [True, True]
    files = await image_files(rt, again.id)
    assert (files / "copied").read_text() == "one\n"
    # The flag text is the key: another mount is another step.
    (ctx / "Dockerfile").write_text(dockerfile.replace("target=/m cat /m/f", "target=/n cat /n/f"))
    other = await build(rt, ctx, layers=True, secrets={"s": secret})
    assert (await image_files(rt, other.id)).joinpath("copied").read_text() == "two\n"


# -- the command line -------------------------------------------------------------------------


@_root_only
def test_cli_secret_option(store: Path, busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    aiopod_ok("import", busybox_rootfs_tar, BASE, root=store)
    secret = tmp_path / "token"
    secret.write_bytes(SECRET)
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n",
    )
    out = aiopod_ok("build", "--secret", f"id=tok,src={secret}", ctx, root=store).stdout
    assert SECRET.decode() in out
    bad = aiopod("build", "--secret", "id=tok", ctx, root=store)
    assert bad.returncode == 125
    assert "use id=ID,src=FILE" in bad.stderr


# -- without root -----------------------------------------------------------------------------

ROOTLESS_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import anyio
    from aiopod.builder.run.isolation import RunMount, run_isolated

    async def main() -> None:
        base = Path(sys.argv[1])
        source = os.open(base / "ctx", os.O_PATH | os.O_DIRECTORY)
        secret = os.open(base / "secret", os.O_RDONLY)
        mounts = [
            RunMount("bind", "/ro", source),
            RunMount("bind", "/rw", source, readonly=False, discard_writes=True),
            RunMount("tmpfs", "/t", readonly=False),
            RunMount("secret", "/run/secrets/s", secret),
        ]
        script = ("cat /ro/f /run/secrets/s && echo new > /rw/new && ls /rw && touch /t/x"
                  " && ((echo y > /ro/y) 2>/dev/null || echo refused)")
        result = await run_isolated(base / "rootfs", ["sh", "-c", script], env={}, mounts=mounts)
        print(result.exit_code, sorted(result.mount_points))
        print(result.output_tail, end="")

    anyio.run(main)
""")


@pytest.mark.peer("busybox")
@pytest.mark.skipif(os.geteuid() != 0, reason="drops to uid 65534 with setpriv")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_mounts_work_without_root_in_a_user_namespace() -> None:
    """The runner takes the user-namespace path (uid 65534, no capability but
    CAP_DAC_READ_SEARCH): the sources are opened again there, the overlay uses
    ``userxattr`` and the read-only remounts keep the flags the namespace locks.  The
    runner opens the sources by path as that user, so they live in a directory of their
    own under /tmp (pytest's base directory is root's, mode 0700), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="aiopod-rootless-", dir="/tmp"))
    try:
        _rootless_mounts(base)
    finally:
        shutil.rmtree(base)


def _rootless_mounts(tmp_path: Path) -> None:
    from conftest_busybox import make_busybox_rootfs

    make_busybox_rootfs(tmp_path / "rootfs")
    make_tree(tmp_path / "ctx", {"f": "from the context\n"})
    (tmp_path / "secret").write_text("sec\n")
    give_to_nobody(tmp_path)
    before = tree_state(tmp_path / "ctx")
    done = run_as_nobody(ROOTLESS_SCRIPT, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "0 ['ro', 'run/secrets/s', 'rw', 't']",
        "from the context",
        "sec",
        "f",
        "new",
        "refused",
    ]
    assert tree_state(tmp_path / "ctx") == before
