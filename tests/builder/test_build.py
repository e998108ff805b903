"""Building Dockerfiles into the store: ``Runtime.build`` and ``aiopod build``.

Every build starts from the busybox root file system imported into a fresh store under
``tmp_path``.  The hostile cases of hostile-input.md table B are proved at the build
level here (B1-B5, B8; B6 in ``test_url_and_heredoc_sources.py``); B7, B9, B10 and B11
are properties of RUN's isolation and are proved in ``test_isolation.py``.

Safety: RUN steps execute as root in a chroot.  Every path a Dockerfile here writes to,
and every symlink target, is a path *inside tmp_path* (the ``host`` fixture is a
stand-in for the host), so that even if isolation or confinement were broken nothing
outside tmp_path could be touched; the tests then check that the stand-in is exactly as
before.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from build_helpers import BASE, build, context, image_files
from conftest_context import make_tree, tree_state
from peers import (
    aiopod,
    aiopod_images,
    aiopod_ok,
    file as tar_file,
    processes_mentioning,
    symlink as tar_symlink,
    tar_bytes,
)

from aiopod import Runtime
from aiopod._platforms import local_architecture
from aiopod.builder.progress import (
    OUTPUT_BACKLOG,
    BuildFinished,
    ImageCommitted,
    OutputDropped,
    ProgressRecord,
    StepCached,
    StepCommitted,
    StepOutput,
    StepStarted,
)
from aiopod.errors import BuildError, DockerfileError
from aiopod.events.model import Event, EventKind

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.peer("busybox"),
    pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs root (namespaces, chroot)"),
]

LOCAL_ARCH = local_architecture()


class Progress:
    """Collects the records a build reports and tells which steps came from the cache."""

    def __init__(self) -> None:
        self.records: list[ProgressRecord] = []

    def __call__(self, record: ProgressRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "".join(record.text for record in self.records)

    def cached(self) -> dict[str, bool]:
        """{instruction: whether that step was a ``StepCached``} for every step after FROM."""
        result: dict[str, bool] = {}
        for record, following in zip(self.records, [*self.records[1:], None], strict=True):
            if isinstance(record, StepStarted) and record.step > 1:
                result[record.instruction] = isinstance(following, StepCached)
        return result


# -- the command line ---------------------------------------------------------------------------


def test_cli_prints_steps_run_output_commit_and_the_image_id(
    store: Path, busybox_rootfs_tar: Path, tmp_path: Path
) -> None:
    aiopod_ok("import", busybox_rootfs_tar, BASE, root=store)
    ctx = context(tmp_path, 'FROM localhost/bb:latest\nRUN echo built-by-run\nCMD ["sh"]\n')
    out = aiopod_ok("build", "-t", "localhost/app:1", "-t", "app:2", ctx, root=store).stdout
    image_id = out.splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{64}", image_id), out
    assert out.splitlines() == [
        "STEP 1/3: FROM localhost/bb:latest",
        "STEP 2/3: RUN echo built-by-run",
        "built-by-run",
        'STEP 3/3: CMD ["sh"]',
        "COMMIT localhost/app:1",
        f"--> {image_id[:11]}",
        "Successfully tagged localhost/app:1",
        "Successfully tagged localhost/app:2",
        image_id,
    ]
    assert aiopod_images(store)[image_id] == ["localhost/app:1", "localhost/app:2"]


def test_cli_quiet_prints_only_the_id_and_stages_are_numbered(
    store: Path, busybox_rootfs_tar: Path, tmp_path: Path
) -> None:
    aiopod_ok("import", busybox_rootfs_tar, BASE, root=store)
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest AS one\nRUN echo one > /one\n"
        "FROM localhost/bb:latest\nCOPY --from=one /one /copied\n",
    )
    quiet = aiopod_ok("build", "-q", "-t", "two", ctx, root=store).stdout
    assert re.fullmatch(r"[0-9a-f]{64}\n", quiet)
    loud = aiopod_ok("build", "-t", "two", ctx, root=store).stdout.splitlines()
    assert [line for line in loud if "STEP" in line] == [  # numbered in each stage
        "[1/2] STEP 1/2: FROM localhost/bb:latest AS one",
        "[1/2] STEP 2/2: RUN echo one > /one",
        "[2/2] STEP 1/2: FROM localhost/bb:latest",
        "[2/2] STEP 2/2: COPY --from=one /one /copied",
    ]


@pytest.mark.parametrize(
    ("dockerfile", "line", "message"),
    [
        ("FROM localhost/bb:latest\nBOGUS x\n", 2, 'unknown instruction: "BOGUS"'),
        ("FROM localhost/bb:latest\nRUN true\nENV ${X:?required}=1\n", 3, "X: required"),
        ("FROM localhost/bb:latest\nHEALTHCHECK --retries=0 CMD true\n", 2, "--retries"),
        ("FROM localhost/bb:latest\n\nSTOPSIGNAL NOSUCHSIGNAL\n", 3, "invalid signal"),
    ],
)
def test_cli_malformed_dockerfile_is_error_125_with_file_and_line(
    store: Path, busybox_rootfs_tar: Path, tmp_path: Path, dockerfile: str, line: int, message: str
) -> None:
    aiopod_ok("import", busybox_rootfs_tar, BASE, root=store)
    ctx = context(tmp_path, "FROM scratch\n")
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text(dockerfile)
    proc = aiopod("build", "-f", bad, "-t", "never", ctx, root=store)
    assert proc.returncode == 125, proc
    [error] = proc.stderr.splitlines()
    assert error.startswith(f"Error: {bad}:{line}: "), proc.stderr
    assert message in error
    assert "Traceback" not in proc.stderr
    assert "localhost/never" not in aiopod_ok("images", root=store).stdout


async def test_api_malformed_dockerfile_raises_dockerfile_error(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN true\nCOPY onlyone\n")
    with pytest.raises(DockerfileError, match=rf"^{re.escape(str(ctx))}/Dockerfile:3: ") as caught:
        await build(rt, ctx)
    assert caught.value.line == 3


# -- progress records ----------------------------------------------------------------------------


async def test_api_progress_records_of_a_build_and_of_its_cached_rebuild(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nRUN echo out; echo err >&2\nENV E=1\n",
    )
    progress = Progress()
    image = await build(rt, ctx, layers=True, tags=["app:1"], progress=progress)
    [started, run_step, _] = [r for r in progress.records if isinstance(r, StepStarted)]
    assert (started.stage, started.stages, started.step, started.steps) == (1, 1, 1, 3)
    assert started.instruction == "FROM localhost/bb:latest"
    assert (run_step.step, run_step.instruction) == (2, "RUN echo out; echo err >&2")
    output = [r for r in progress.records if isinstance(r, StepOutput)]
    assert {(r.stream, r.text) for r in output} == {("stdout", "out\n"), ("stderr", "err\n")}
    [intermediate] = [r for r in progress.records if isinstance(r, StepCommitted)]
    assert progress.records[-2:] == [
        ImageCommitted(image.id, "app:1", 1, 1),
        BuildFinished(image.id, ("localhost/app:1",)),
    ]
    assert progress.records[-2].text == f"COMMIT app:1\n--> {image.id[:11]}\n"
    # The rebuild: every step from the cache; no name given, so no COMMIT (as podman).
    progress = Progress()
    again = await build(rt, ctx, layers=True, progress=progress)
    assert again.id == image.id
    assert [type(r) for r in progress.records] == [
        StepStarted,
        StepStarted,
        StepCached,
        StepCommitted,
        StepStarted,
        StepCached,
        StepCommitted,
        BuildFinished,
    ]
    assert progress.records[2:4] == [StepCached(intermediate.image_id), intermediate]
    assert progress.records[-1] == BuildFinished(image.id, ())


async def test_api_progress_stream_is_closed_and_never_stalls_a_run(
    rt: Runtime, tmp_path: Path
) -> None:
    """A consumer that stops reading while a RUN writes 3 MiB: the RUN is not held up
    (output beyond the backlog is dropped and counted), every other record arrives, and
    the stream ends with the build."""
    size = 3 * 1024 * 1024
    ctx = context(tmp_path, f"FROM localhost/bb:latest\nRUN head -c {size} /dev/zero\nENV E=1\n")
    send, receive = anyio.create_memory_object_stream[ProgressRecord](4)
    records: list[ProgressRecord] = []

    async def consume() -> None:
        async with receive:
            async for record in receive:
                records.append(record)
                if isinstance(record, StepStarted) and record.instruction.startswith("RUN"):
                    await anyio.sleep(3)  # the RUN runs and ends meanwhile

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        image = await build(rt, ctx, progress=send, tags=["big"])
    output = sum(len(r.data) for r in records if isinstance(r, StepOutput))
    dropped = sum(r.size for r in records if isinstance(r, OutputDropped))
    assert output + dropped == size
    assert dropped >= size - OUTPUT_BACKLOG - 4 * 65536
    assert [r.instruction for r in records if isinstance(r, StepStarted)] == [
        "FROM localhost/bb:latest",
        f"RUN head -c {size} /dev/zero",
        "ENV E=1",
    ]
    assert records[-1] == BuildFinished(image.id, ("localhost/big:latest",))


async def test_api_progress_stream_closed_by_the_consumer_does_not_stop_the_build(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN echo one\nRUN echo two\n")
    send, receive = anyio.create_memory_object_stream[ProgressRecord](0)

    async def consume_one() -> None:
        with receive:
            await receive.receive()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume_one)
        image = await build(rt, ctx, progress=send, tags=["done"])
    assert image.names == ("localhost/done:latest",)
    with pytest.raises(anyio.ClosedResourceError):
        send.send_nowait(StepOutput(b"x"))  # the build closed it


async def test_api_a_failing_build_still_delivers_its_output_and_closes_the_stream(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN echo last words; exit 4\n")
    send, receive = anyio.create_memory_object_stream[ProgressRecord](1)
    records: list[ProgressRecord] = []

    async def consume() -> None:
        async with receive:
            async for record in receive:
                records.append(record)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with pytest.raises(BuildError, match="exit status 4"):
            await build(rt, ctx, progress=send)
    assert [r.text for r in records if isinstance(r, StepOutput)] == ["last words\n"]


# -- what a build makes --------------------------------------------------------------------------


async def test_api_build_returns_the_tagged_image_with_its_config(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(
        tmp_path,
        'FROM localhost/bb:latest\nENV A=1\nRUN echo $A > /a\nUSER app\nCMD ["sh"]\n',
    )
    image = await build(rt, ctx, tags=["app"])
    assert image.names == ("localhost/app:latest",)
    config = (await rt.inspect_image("app"))["Config"]
    assert config["Env"][-1] == "A=1"
    assert (config["User"], config["Cmd"]) == ("app", ["sh"])
    assert (await image_files(rt, "app")).joinpath("a").read_text() == "1\n"


async def test_timestamp_zero_gives_the_same_image_id_in_another_store(
    rt: Runtime, tmp_path: Path
) -> None:
    """--timestamp 0 makes a build reproducible: a second store with the same base image
    (saved and loaded) builds the same image ID, RUN and COPY layers included."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nRUN echo run > /run.txt && mkdir /d\nCOPY a.txt /d/\n",
        {"a.txt": "copied\n"},
    )
    first = await build(rt, ctx, timestamp=0)
    assert first.created is not None and first.created.timestamp() == 0
    archive = tmp_path / "base.tar"
    await rt.save(archive, [BASE])
    async with Runtime(tmp_path / "other-store") as other:
        await other.load(archive)
        assert (await build(other, ctx, timestamp=0)).id == first.id
    assert (await build(rt, ctx, timestamp=0)).id == first.id
    # The control: without --timestamp the creation time makes every build different.
    assert (await build(rt, ctx)).id != (await build(rt, ctx)).id


LAYERED = """\
FROM localhost/bb:latest
ARG A=1
ENV E=$A
COPY a.txt /a.txt
RUN sleep 1 && echo "$E" > /e
LABEL l=1
WORKDIR /w
USER app
CMD ["sh"]
"""


async def test_layers_rebuild_takes_every_step_from_the_cache(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(tmp_path, LAYERED, {"a.txt": "a\n"})
    start = time.monotonic()
    first = await build(rt, ctx, layers=True, tags=["layered"])
    cold = time.monotonic() - start
    progress = Progress()
    start = time.monotonic()
    second = await build(rt, ctx, layers=True, tags=["layered"], progress=progress)
    warm = time.monotonic() - start
    steps = progress.cached()
    assert len(steps) == 8 and all(steps.values()), progress.text
    assert second.id == first.id
    assert warm < cold / 2, (warm, cold)  # the RUN (a one-second sleep) did not run again
    # --no-cache builds every step again.
    progress = Progress()
    await build(rt, ctx, layers=True, no_cache=True, progress=progress)
    assert not any(progress.cached().values())


async def test_layers_reuse_steps_an_earlier_stage_of_the_same_build_committed(
    rt: Runtime, tmp_path: Path
) -> None:
    """The layer cache follows the store while the build commits: a stage identical to an
    earlier one takes its steps from the images the earlier one just made."""
    stage = "FROM localhost/bb:latest AS {}\nRUN echo same > /same\nENV SAME=1\n"
    last = "COPY --from=one /same /copied\n"
    ctx = context(tmp_path, stage.format("one") + stage.format("two") + last)
    progress = Progress()
    await build(rt, ctx, layers=True, progress=progress)
    records = [*progress.records, None]
    cached = [
        (record.stage, isinstance(following, StepCached))
        for record, following in itertools.pairwise(records)
        if isinstance(record, StepStarted) and record.step > 1
    ]
    assert cached == [(1, False), (1, False), (2, True), (2, True), (2, False)], progress.text


async def test_a_changed_build_arg_misses_from_the_first_run_that_has_it_in_scope(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nRUN echo before > /before\nARG V=1\nENV KEEP=1\n"
        "RUN echo $V > /v\nRUN echo after > /after\n",
    )
    await build(rt, ctx, layers=True, build_args={"V": "one"})
    progress = Progress()
    image = await build(rt, ctx, layers=True, build_args={"V": "two"}, progress=progress)
    assert progress.cached() == {
        "RUN echo before > /before": True,
        "ARG V=1": True,
        "ENV KEEP=1": True,
        "RUN echo $V > /v": False,
        "RUN echo after > /after": False,
    }
    assert (await image_files(rt, image.id)).joinpath("v").read_text() == "two\n"
    progress = Progress()
    await build(rt, ctx, layers=True, build_args={"V": "one"}, progress=progress)
    assert all(progress.cached().values())


async def test_env_from_a_changed_build_arg_is_not_served_from_the_cache(
    rt: Runtime, tmp_path: Path
) -> None:
    """The history text ``ENV E=$V`` is the same for every value; the cached image's
    config is not, so aiopod misses (buildah 1.28 would reuse the stale value)."""
    ctx = context(tmp_path, "FROM localhost/bb:latest\nARG V\nENV E=$V\n")
    await build(rt, ctx, layers=True, build_args={"V": "one"})
    progress = Progress()
    image = await build(rt, ctx, layers=True, build_args={"V": "two"}, progress=progress)
    assert progress.cached() == {"ARG V": True, "ENV E=$V": False}
    assert "E=two" in (await rt.inspect_image(image.id))["Config"]["Env"]


async def test_the_cache_is_only_for_the_same_base_image(
    rt: Runtime, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """A second import of the same tarball has the same layer but its own history: steps
    built on the first are not reused on it, and the result is its child."""
    other = await rt.import_image(busybox_rootfs_tar, "localhost/bb2:latest")
    assert other.id != (await rt.get_image(BASE)).id
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN echo x > /x\n")
    await build(rt, ctx, layers=True)
    (ctx / "Dockerfile").write_text("FROM localhost/bb2:latest\nRUN echo x > /x\n")
    progress = Progress()
    image = await build(rt, ctx, layers=True, progress=progress)
    assert progress.cached() == {"RUN echo x > /x": False}
    assert image.parent_id == other.id


async def test_copy_cache_follows_content_and_mode_not_mtime(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nCOPY src/ /src/\nRUN cat /src/f > /copy\n",
        {"src/f": "one\n", "src/g": "g\n"},
    )

    async def steps() -> dict[str, bool]:
        progress = Progress()
        await build(rt, ctx, layers=True, progress=progress)
        return progress.cached()

    await build(rt, ctx, layers=True)
    os.utime(ctx / "src" / "f", (1, 1))
    assert await steps() == {"COPY src/ /src/": True, "RUN cat /src/f > /copy": True}
    (ctx / "src" / "f").write_text("two\n")
    assert await steps() == {"COPY src/ /src/": False, "RUN cat /src/f > /copy": False}
    (ctx / "src" / "g").chmod(0o600)
    assert await steps() == {"COPY src/ /src/": False, "RUN cat /src/f > /copy": False}
    assert await steps() == {"COPY src/ /src/": True, "RUN cat /src/f > /copy": True}


async def test_intermediate_images_are_a_chain_of_parents_and_children(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(tmp_path, LAYERED, {"a.txt": "a\n"})
    final = await build(rt, ctx, layers=True, tags=["layered"])
    base = await rt.get_image(BASE)
    everything = {image.id: image for image in await rt.images(all=True)}
    chain = []
    current = everything[final.id]
    while current.parent_id:
        current = everything[current.parent_id]
        chain.append(current)
    assert chain[-1].id == base.id
    intermediates = chain[:-1]
    assert len(intermediates) == 7  # one image per step after FROM; the last is the result
    assert all(i.intermediate and not i.names for i in intermediates)
    assert set(everything) == {final.id, base.id, *(i.id for i in intermediates)}
    assert {i.id for i in await rt.images()} == {final.id, base.id}


@pytest.mark.parametrize("policy", ["podman", "libpod"])
async def test_rmi_of_a_layered_build_follows_the_rules_about_children(
    rt: Runtime, tmp_path: Path, policy: Any
) -> None:
    """podman deletes the image and then every parent left dangling, up to the named base;
    libpod deletes only the image, and refuses an intermediate that has children."""
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN echo 1 > /1\nRUN echo 2 > /2\n")
    final = await build(rt, ctx, layers=True, tags=["layered"])
    base = await rt.get_image(BASE)
    middle = (await rt.get_image(final.id)).parent_id
    assert middle and (await rt.get_image(middle)).parent_id == base.id
    if policy == "libpod":
        refused = await rt.remove_images([middle], policy="libpod")
        assert "dependent child images" in str(refused.errors[0])
    report = await rt.remove_images(["layered"], policy=policy)
    assert report.exit_code == 0, report.errors
    left = {image.id for image in await rt.images(all=True)}
    if policy == "podman":
        assert report.deleted == [final.id, middle]
        assert left == {base.id}
    else:
        assert report.deleted == [final.id]
        assert left == {base.id, middle}
        assert (await rt.get_image(middle)).dangling
    assert (await rt.check()).ok


async def test_stage_images_are_removed_after_a_build_without_layers(
    rt: Runtime, tmp_path: Path
) -> None:
    """As in buildah: without --layers only the result is left (the images of the stages
    it was built from or copied from are removed); with --layers they stay, as cache."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest AS b\nRUN echo b > /b\nFROM b AS c\nRUN echo c > /c\n"
        "RUN echo c2 > /c2\nFROM localhost/bb:latest\nCOPY --from=c /c /c\nCOPY --from=b /b /\n",
    )
    base = await rt.get_image(BASE)
    image = await build(rt, ctx, tags=["result"])
    assert {i.id for i in await rt.images(all=True)} == {base.id, image.id}
    layered = await build(rt, ctx, tags=["layered"], layers=True)
    # b's RUN, c's two RUNs, the final stage's two COPYs (the second is the result).
    assert len(await rt.images(all=True)) == 2 + 5
    assert layered.id in {i.id for i in await rt.images()}
    assert (await rt.check()).ok


async def test_every_committed_image_has_a_built_event(rt: Runtime, tmp_path: Path) -> None:
    dockerfile = "FROM localhost/bb:latest AS one\nRUN echo 1 > /1\nFROM one\nENV B=2\n"
    ctx = context(tmp_path, dockerfile)

    async def built_events(**options: Any) -> tuple[Any, list[tuple[str, str | None]]]:
        async with rt.events.subscribe(kinds=[EventKind.BUILT]) as events:
            image = await build(rt, ctx, **options)
            seen = []
            while events.pending:
                event = events.receive_nowait()
                assert isinstance(event, Event), event
                seen.append((event.id, event.name))
        return image, seen

    # Without --layers: the stage used as a base (removed after the build), the result.
    plain, seen = await built_events(tags=["plain"])
    assert [name for _, name in seen] == [None, "localhost/plain:latest"]
    assert seen[1][0] == plain.id
    # With --layers: one image per step (RUN of stage one, ENV of the last stage); the
    # last step's image is the result.
    layered, seen = await built_events(tags=["layered"], layers=True, no_cache=True)
    assert [name for _, name in seen] == [None, None, "localhost/layered:latest"]
    assert seen[1][0] == seen[2][0] == layered.id
    assert {i for i, _ in seen} <= {image.id for image in await rt.images(all=True)}


# -- working containers and failures -------------------------------------------------------------


async def test_working_containers_exist_only_while_the_build_runs(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest AS first\nRUN true\n"
        "FROM localhost/bb:latest\nCOPY --from=first /etc/passwd /p\nRUN sleep 0.5\n",
    )
    last_run = anyio.Event()

    def progress(record: ProgressRecord) -> None:
        if isinstance(record, StepStarted) and record.instruction == "RUN sleep 0.5":
            last_run.set()

    seen: list[Any] = []

    async def look() -> None:
        await last_run.wait()
        seen.extend(await rt.containers(external=True))

    async with anyio.create_task_group() as tg:
        tg.start_soon(look)
        image = await build(rt, ctx, progress=progress, tags=["built"])
    # Stage "first", the final stage, and the one COPY --from unpacked.
    assert len(seen) == 3
    assert all(c.external and c.state == "storage" for c in seen)
    assert await rt.containers(external=True) == []
    assert image.names == ("localhost/built:latest",)
    assert (await rt.check()).ok


async def test_a_from_source_is_unpacked_once_per_build(rt: Runtime, tmp_path: Path) -> None:
    """Two ``COPY --from`` of a stage and a ``RUN --mount from=`` of it share one working
    container: the stage's image is unpacked once, whatever reads it."""
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest AS first\nRUN echo one > /one\n"
        "FROM localhost/bb:latest\nCOPY --from=first /one /a\nCOPY --from=first /one /b\n"
        "RUN --mount=type=bind,from=first,source=/one,target=/m cat /m > /c\n"
        "RUN sleep 0.5\n",
    )
    last_run = anyio.Event()

    def progress(record: ProgressRecord) -> None:
        if isinstance(record, StepStarted) and record.instruction == "RUN sleep 0.5":
            last_run.set()

    seen: list[Any] = []

    async def look() -> None:
        await last_run.wait()
        seen.extend(await rt.containers(external=True))

    async with anyio.create_task_group() as tg:
        tg.start_soon(look)
        await build(rt, ctx, progress=progress, tags=["shared"])
    # Stage "first", the final stage, and stage "first"'s image once for all three readers.
    base = await rt.get_image(BASE)
    assert len(seen) == 3
    assert sorted(c.image_id == base.id for c in seen) == [False, True, True]
    files = await image_files(rt, "shared")
    assert [(files / name).read_text() for name in ("a", "b", "c")] == ["one\n"] * 3
    assert (await rt.check()).ok


async def test_a_failing_run_names_step_command_exit_code_and_output(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nRUN echo fine\nRUN echo about to fail; echo oops >&2; exit 3\n",
    )
    with pytest.raises(BuildError) as caught:
        await build(rt, ctx, tags=["never"])
    message = str(caught.value)
    assert 'building at STEP "RUN echo about to fail; echo oops >&2; exit 3"' in message
    assert "exit status 3" in message
    assert "about to fail\noops" in message
    assert caught.value.command_status == 3  # what the command line exits with, as podman
    assert caught.value.message == message.partition("\n")[0]
    assert await rt.containers(external=True) == []
    assert {i.id for i in await rt.images(all=True)} == {(await rt.get_image(BASE)).id}
    assert (await rt.check()).ok


def test_cli_failing_run_exits_with_the_commands_status(
    store: Path, busybox_rootfs_tar: Path, tmp_path: Path
) -> None:
    aiopod_ok("import", busybox_rootfs_tar, BASE, root=store)
    ctx = context(tmp_path, "FROM localhost/bb:latest\nRUN echo failing-output; exit 7\n")
    proc = aiopod("build", ctx, root=store)
    assert proc.returncode == 7  # the command's exit status, as podman
    assert proc.stdout.splitlines()[-1] == "failing-output"  # shown as it ran ...
    assert proc.stderr == (  # ... so not repeated in the error
        'Error: building at STEP "RUN echo failing-output; exit 7": while running runtime: '
        "exit status 7\n"
    )
    assert aiopod_ok("ps", "--external", "-q", root=store).stdout == ""


async def test_a_cancelled_build_kills_run_and_leaves_nothing_behind(
    rt: Runtime, tmp_path: Path
) -> None:
    seconds = 600_000 + os.getpid() % 100_000  # a sleep of its own, to find it by
    marker = f"aiopod-cancel-{os.getpid()}"
    ctx = context(
        tmp_path,
        f"FROM localhost/bb:latest\nRUN echo running; sleep {seconds}; echo {marker}\n",
    )
    running = anyio.Event()

    def progress(record: ProgressRecord) -> None:
        if isinstance(record, StepOutput) and "running" in record.text.splitlines():
            running.set()

    async with anyio.create_task_group() as tg:

        async def cancel_when_running() -> None:
            await running.wait()
            for _ in range(500):  # the shell, then (soon after "running") its sleep
                if len(processes_mentioning(marker, f"sleep\0{seconds}")) == 2:
                    break
                await anyio.sleep(0.02)
            else:
                pytest.fail("the RUN's shell and sleep never both ran")
            assert len(await rt.containers(external=True)) == 1
            tg.cancel_scope.cancel()

        tg.start_soon(cancel_when_running)
        with anyio.fail_after(60):
            await rt.build(ctx, progress=progress, tags=["never"])
    assert processes_mentioning(marker, f"sleep\0{seconds}") == []
    assert await rt.containers(external=True) == []
    assert [i.names for i in await rt.images(all=True)] == [(BASE,)]
    assert (await rt.check()).ok


async def test_unknown_base_image_and_target_are_clear_errors(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM localhost/nosuch:1\nRUN true\n")
    with pytest.raises(BuildError, match="'localhost/nosuch:1' is not in the store"):
        await build(rt, ctx, pull="never")
    # podman's default policy (missing) tries to pull it: the failure names the step.
    with pytest.raises(BuildError, match='"FROM localhost/nosuch:1": pulling localhost/nosuch:1'):
        await build(rt, ctx)
    ctx = context(tmp_path / "t", "FROM localhost/bb:latest AS only\n")
    with pytest.raises(BuildError, match='the target "other" was not found'):
        await build(rt, ctx, target="other")
    assert await rt.containers(external=True) == []


@pytest.mark.parametrize(
    ("instruction", "message"),
    [
        ("RUN --mount=type=ssh true", "type=ssh is not supported"),
        ("RUN --network=none true", "RUN --network is not supported"),
        ("COPY --link a.txt /x", "COPY --link is not supported"),
        ("COPY --exclude=*.md . /x", "COPY --exclude is not supported"),
        ("ADD --checksum=sha256:0 a.txt /x", "ADD --checksum is not supported"),
    ],
)
async def test_features_not_implemented_are_errors_not_ignored(
    rt: Runtime, tmp_path: Path, instruction: str, message: str
) -> None:
    ctx = context(tmp_path, f"FROM localhost/bb:latest\n{instruction}\n", {"a.txt": "a"})
    with pytest.raises(BuildError, match=message):
        await build(rt, ctx)
    assert await rt.containers(external=True) == []


async def test_run_heredocs_take_every_form_docker_gives_them(rt: Runtime, tmp_path: Path) -> None:
    """``RUN <<EOF`` alone runs the document with the shell (``<<-`` strips tabs); one
    that starts with ``#!`` runs with its interpreter from ``/dev/pipes`` (nothing of it
    in the image); documents after a command are read by the shell, several of them too."""
    dockerfile = (
        "FROM localhost/bb:latest\n"
        "RUN <<-EOF\n"
        "\techo plain > /plain\n"
        "\tEOF\n"
        "RUN <<script\n"
        "#!/bin/sh -e\n"
        'echo "$0" > /script\n'
        "script\n"
        "RUN cat <<one > /one && cat <<'two' > /two\n"
        "first $HOSTNAME_UNSET-x\n"
        "one\n"
        "second $NOT_EXPANDED\n"
        "two\n"
    )
    image = await build(rt, context(tmp_path, dockerfile))
    files = await image_files(rt, image.id)
    assert (files / "plain").read_text() == "plain\n"
    assert (files / "script").read_text() == "/dev/pipes/script\n"
    assert (files / "one").read_text() == "first -x\n"
    assert (files / "two").read_text() == "second $NOT_EXPANDED\n"
    assert not (files / "dev/pipes").exists()


async def test_from_platform_must_be_the_base_images(rt: Runtime, tmp_path: Path) -> None:
    other = "linux/arm64" if LOCAL_ARCH != "arm64" else "linux/amd64"
    ctx = context(tmp_path, f"FROM --platform={other} localhost/bb:latest\nRUN true\n")
    with pytest.raises(BuildError, match=f"the image is linux/{LOCAL_ARCH}, not {other}"):
        await build(rt, ctx)
    (ctx / "Dockerfile").write_text(f"FROM --platform=linux/{LOCAL_ARCH} localhost/bb:latest\n")
    await build(rt, ctx)


# -- hostile inputs (hostile-input.md table B) ---------------------------------------------------


async def test_b1_sources_outside_the_context_are_refused(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    before = tree_state(host)
    escape = "../host/secret"  # from <tmp_path>/ctx
    ctx = context(tmp_path, f"FROM localhost/bb:latest\nCOPY {escape} /x\n")
    with pytest.raises(BuildError, match="possible escaping context directory"):
        await build(rt, ctx)
    # An absolute source is relative to the context: not there, so not found ...
    (ctx / "Dockerfile").write_text(f"FROM localhost/bb:latest\nADD {host}/secret /x\n")
    with pytest.raises(BuildError, match="no such file or directory"):
        await build(rt, ctx)
    # ... and the context's own file when it is.
    make_tree(ctx, {f"{str(host).lstrip('/')}/secret": "context file\n"})
    image = await build(rt, ctx)
    assert (await image_files(rt, image.id)).joinpath("x").read_text() == "context file\n"
    assert tree_state(host) == before


async def test_b2_context_symlinks_resolve_inside_the_context(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    before = tree_state(host)
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nCOPY leak/secret /from-absolute\n"
        "COPY up/secret /from-relative\nCOPY leak /dir/\n",
        {
            "leak@": str(host),  # an absolute link: the context is its root
            "up@": "../../../../../../../..",  # .. stops at the context's root
            f"{str(host).lstrip('/')}/secret": "decoy in the context\n",
            "secret": "top of the context\n",
        },
    )
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert (files / "from-absolute").read_text() == "decoy in the context\n"
    assert (files / "from-relative").read_text() == "top of the context\n"
    assert sorted(os.listdir(files / "dir")) == ["secret"]
    assert (files / "dir" / "secret").read_text() == "decoy in the context\n"
    assert tree_state(host) == before


async def test_b3_copy_from_a_stage_resolves_its_symlinks_inside_the_stage(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    """The stage has ``<tmp>/rootlink -> /``: ``COPY --from`` through it reads the stage's
    own ``<host>/secret``, never the stand-in's."""
    before = tree_state(host)
    rootlink = tmp_path / "rootlink"
    ctx = context(
        tmp_path,
        f"FROM localhost/bb:latest AS stage\n"
        f"RUN mkdir -p {host} && echo stage file > {host}/secret && ln -s / {rootlink}\n"
        f"FROM localhost/bb:latest\nCOPY --from=stage {rootlink}{host}/secret /x\n",
    )
    image = await build(rt, ctx)
    assert (await image_files(rt, image.id)).joinpath("x").read_text() == "stage file\n"
    assert tree_state(host) == before
    assert not rootlink.exists()


async def test_b4_destinations_stay_in_the_root_file_system(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    """``COPY f /../../../..<host>/pwned`` climbs no higher than the image's root, and
    ``COPY f <tmp>/link/`` with the image's ``<tmp>/link -> <host>/dir`` writes into the
    image's ``<host>/dir`` (the link resolved with the image's root as ``/``)."""
    before = tree_state(host)
    link = tmp_path / "link"
    ctx = context(
        tmp_path,
        f"FROM localhost/bb:latest\nRUN mkdir -p {tmp_path} && ln -s {host}/dir {link}\n"
        f"COPY f /../../../..{host}/pwned\nCOPY f {link}/\n",
        {"f": "copied\n"},
    )
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    inside = files / str(host).lstrip("/")
    assert (inside / "pwned").read_text() == "copied\n"
    assert (inside / "dir" / "f").read_text() == "copied\n"
    assert os.readlink(files / str(link).lstrip("/")) == f"{host}/dir"
    assert tree_state(host) == before
    assert not link.exists()


def _evil_tar(*entries: Any) -> bytes:
    return tar_bytes(entries)


async def test_b5_hostile_archives_are_refused_or_confined(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    before = tree_state(host)
    escaping = _evil_tar(tar_file("../../evil", b"escaped\n"))
    through_link = _evil_tar(
        tar_symlink("x", f"{host}/dir"), tar_file("x/file", b"through the link\n")
    )
    ctx = context(
        tmp_path,
        "FROM localhost/bb:latest\nADD escaping.tar /\n",
        {"escaping.tar": escaping, "link.tar": through_link},
    )
    with pytest.raises(BuildError, match=r"'\.\./\.\./evil'.* climbs out of the root"):
        await build(rt, ctx)
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
    (ctx / "Dockerfile").write_text("FROM localhost/bb:latest\nADD link.tar /\n")
    image = await build(rt, ctx)
    files = await image_files(rt, image.id)
    assert os.readlink(files / "x") == f"{host}/dir"
    inside = files / str(host).lstrip("/") / "dir" / "file"
    assert inside.read_text() == "through the link\n"
    assert tree_state(host) == before
    assert (await rt.check()).ok


async def test_b8_a_run_leaving_a_swapping_process_cannot_redirect_the_next_copy(
    rt: Runtime, tmp_path: Path, host: Path
) -> None:
    """A RUN starts a loop that keeps turning /dst into a symlink to the host stand-in and
    back; the loop dies with the RUN, and the COPY after it lands inside the image."""
    before = tree_state(host)
    marker = f"aiopod-b8-{os.getpid()}"
    dst = tmp_path / "dst"  # the same path inside the image: harmless even if run on the host
    ctx = context(
        tmp_path,
        f"FROM localhost/bb:latest\n"
        f"RUN mkdir -p {dst} && (while :; do : {marker}; rm -rf {dst}; "
        f"ln -s {host}/dir {dst}; rm -f {dst}; mkdir {dst}; done) >/dev/null 2>&1 &\n"
        f"COPY f {dst}/\n",
        {"f": "copied\n"},
    )
    image = await build(rt, ctx)
    assert processes_mentioning(marker) == []
    files = await image_files(rt, image.id)
    landed = [p for p in files.rglob("f") if p.is_file() and p.read_text() == "copied\n"]
    assert landed and all(files in p.parents for p in landed)
    assert tree_state(host) == before
    assert not (dst / "f").exists() and not dst.exists()


async def test_without_a_file_option_containerfile_wins_over_dockerfile(
    rt: Runtime, tmp_path: Path
) -> None:
    """podman's order: ``Containerfile``, else ``Dockerfile``."""
    ctx = context(tmp_path, "FROM scratch\nENV FROM=dockerfile\n")
    assert "FROM=dockerfile" in (await rt.inspect_image((await build(rt, ctx)).id))["Config"]["Env"]
    (ctx / "Containerfile").write_text("FROM scratch\nENV FROM=containerfile\n")
    image = await build(rt, ctx)
    assert "FROM=containerfile" in (await rt.inspect_image(image.id))["Config"]["Env"]
