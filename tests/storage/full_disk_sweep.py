"""The full-disk sweep: every store-changing operation at every free-space level.

Run as root inside a private mount namespace (``unshare -m --propagation private``; the
test ``test_full_disk.py`` does so): it mounts a small tmpfs at ``--mount``, builds a
template store once, and for each operation and each level of free space from 0 pages
upwards (until the operation has succeeded cleanly on four levels in a row) it

1. copies the template store onto the tmpfs and fills the tmpfs until exactly that many
   pages are free;
2. runs the operation (through the API, and for tag, untag and rmi also through the
   command line) and notes what it reported: success (exit 0), a full disk (exit 125 /
   :class:`aiopod.StorageFull`, or a raw ``ENOSPC`` on an older aiopod), or anything else;
3. while the disk is still full, lists the images (API and CLI) -- this must work;
4. frees the space, reopens the store and compares: a success must have made the change
   (and logged its event), a full disk must have left the store exactly as it was
   (images, containers, blobs, container directories, event log); ``system check`` must
   pass.

It writes a JSON report (per operation: levels, runs, wrong outcomes with details) to
``--report``; it runs against whatever ``aiopod`` is importable, so the same sweep
measures an older tree (``PYTHONPATH=/old/tree``).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from imagefactory import make_image, write_docker_archive

import aiopod
from aiopod.storage.layout import StoreLayout
from aiopod.storage.store import read_metadata

PAGE = os.sysconf("SC_PAGE_SIZE")
TMPFS_SIZE = 16 << 20
MAX_LEVELS = 96  # pages; more than any operation here needs

#: Many names, so that the metadata and index.json span several pages each (a commit that
#: fits its metadata may then not fit its index: the window where outcomes used to lie).
APP = make_image(
    "localhost/app:1",
    "localhost/app:2",
    *(f"localhost/app-name-{i}:tag-{i}" for i in range(120)),
    seed="sweep-app",
)
VICTIM = make_image(
    "localhost/victim:1", seed="sweep-victim", layers=[{"big": os.urandom(64 << 10)}]
)
#: Used by the container "held": removed by ``rmi -f`` (container and image) or ``rm``.
HELD = make_image("localhost/held:1", seed="sweep-held", layers=[{"held": os.urandom(32 << 10)}])
NEW = make_image("localhost/new:1", seed="sweep-new", layers=[{"etc/new": b"n" * 6000}])


@dataclass
class Run:
    """One operation at one level."""

    op: str
    via: str
    level: int
    reported: str  # "ok", "full" or "other: ..."
    done: bool
    unchanged: bool
    images_on_full_disk: str  # "ok" or the failure
    check_ok: bool
    warned: bool = False

    @property
    def wrong(self) -> list[str]:
        problems = []
        if self.reported == "ok" and not self.done:
            problems.append("reported success but the change is not in the store")
        if self.reported == "full" and not self.unchanged:
            problems.append("reported a full disk but the store changed")
        if self.reported not in ("ok", "full"):
            problems.append(f"reported neither success nor a full disk: {self.reported}")
        if self.images_on_full_disk != "ok":
            problems.append(f"images failed on the full disk: {self.images_on_full_disk}")
        if not self.check_ok:
            problems.append("system check failed after freeing space")
        return problems


@dataclass
class OpReport:
    op: str
    via: str
    levels: int = 0
    runs: int = 0
    wrong: int = 0
    successes: int = 0
    full: int = 0
    warnings: int = 0
    details: list[str] = field(default_factory=list)


# -- the tmpfs -------------------------------------------------------------------------------


def free_pages(mount: Path) -> int:
    st = os.statvfs(mount)
    return st.f_bavail * st.f_frsize // PAGE


def fill(mount: Path, level: int) -> None:
    """Leave exactly *level* free pages on the tmpfs (a filler file takes the rest)."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        take = free_pages(mount) - level
        if take > 0:
            os.posix_fallocate(fd, 0, take * PAGE)
        got = free_pages(mount)
        while got > level:  # the filler's own metadata, rounding
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size + PAGE)
            got = free_pages(mount)
    finally:
        os.close(fd)
    if free_pages(mount) != level:
        raise RuntimeError(f"could not leave {level} pages free (got {free_pages(mount)})")


def release(mount: Path) -> None:
    (mount / "filler").unlink(missing_ok=True)


def clone(template: Path, store: Path) -> None:
    """Copy the template store; its reserve is allocated again (a copy may be sparse)."""
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(template, store, symlinks=True)
    reserve = store / "aiopod" / "reserve"
    if reserve.exists():
        size = reserve.stat().st_size
        reserve.unlink()
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)


# -- the store's state -----------------------------------------------------------------------


def event_lines(store: Path) -> int:
    """The events in the log, but those of a build's working containers (they come and
    go with a build whether or not it commits an image)."""
    path = store / "aiopod" / "events.jsonl"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    count = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        event = json.loads(line)
        working = event.get("type") == "container" and (
            event.get("attributes", {}).get("external") == "true"
        )
        count += not working
    return count


def fingerprint(store: Path) -> dict[str, Any]:
    """What must not change when an operation fails (read without aiopod)."""
    state = read_metadata(StoreLayout(store))
    blobs = sorted(p.name for p in (store / "blobs" / "sha256").iterdir())
    containers_dir = store / "aiopod" / "containers"
    dirs = sorted(p.name for p in containers_dir.iterdir()) if containers_dir.is_dir() else []
    return {
        "images": sorted((r.id, r.names) for r in state.images.values()),
        "containers": sorted((c.id, c.name) for c in state.containers.values()),
        "blobs": blobs,
        "container_dirs": dirs,
        "events": event_lines(store),
    }


def names_of(fp: dict[str, Any]) -> set[str]:
    return {name for _, names in fp["images"] for name in names}


# -- the operations --------------------------------------------------------------------------


Call = Callable[["aiopod.Runtime"], Awaitable[Any]]


def api_ops(work: Path) -> dict[str, tuple[Call, Callable[[dict[str, Any]], bool]]]:
    archive = work / "new.tar"
    ctx = work / "ctx"

    async def tag(rt: aiopod.Runtime) -> None:
        await rt.tag("localhost/app:1", "localhost/app:new")

    async def untag(rt: aiopod.Runtime) -> None:
        await rt.untag("localhost/app:1", "localhost/app:2")

    async def rmi(rt: aiopod.Runtime) -> None:
        report = await rt.remove_images(["localhost/victim:1"])
        if report.exit_code != 0:
            raise report.errors[0] if report.errors else RuntimeError(report)

    async def rmi_force(rt: aiopod.Runtime) -> None:
        report = await rt.remove_images(["localhost/held:1"], force=True)
        if report.exit_code != 0:
            raise report.errors[0] if report.errors else RuntimeError(report)

    async def rm(rt: aiopod.Runtime) -> None:
        report = await rt.remove_containers(["held"])
        if report.exit_code != 0:
            raise report.errors[0] if report.errors else RuntimeError(report)

    def no_held(fp: dict[str, Any]) -> bool:
        return not any(name == "held" for _, name in fp["containers"])

    async def load(rt: aiopod.Runtime) -> None:
        await rt.load(archive)

    async def create(rt: aiopod.Runtime) -> None:
        await rt.create_container("localhost/app:1", name="sweep")

    async def build(rt: aiopod.Runtime) -> None:
        await rt.build(ctx, tags=["localhost/built:1"])

    return {
        "tag": (tag, lambda fp: "localhost/app:new" in names_of(fp)),
        "untag": (untag, lambda fp: "localhost/app:2" not in names_of(fp)),
        "rmi": (rmi, lambda fp: "localhost/victim:1" not in names_of(fp)),
        "rmi-f": (rmi_force, lambda fp: no_held(fp) and "localhost/held:1" not in names_of(fp)),
        "rm": (rm, no_held),
        "load": (load, lambda fp: "localhost/new:1" in names_of(fp)),
        "create": (create, lambda fp: any(name == "sweep" for _, name in fp["containers"])),
        "build": (build, lambda fp: "localhost/built:1" in names_of(fp)),
    }


CLI_OPS: dict[str, list[str]] = {
    "tag": ["tag", "localhost/app:1", "localhost/app:new"],
    "untag": ["untag", "localhost/app:1", "localhost/app:2"],
    "rmi": ["rmi", "localhost/victim:1"],
    "rmi-f": ["rmi", "-f", "localhost/held:1"],
    "rm": ["rm", "held"],
}


def classify(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return classify(exc.exceptions[0])
    full_class = getattr(aiopod, "StorageFull", None)
    if full_class is not None and isinstance(exc, full_class):
        return "full"
    if full_class is None and isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "full"  # an aiopod without StorageFull: the raw error is its report
    return f"other: {type(exc).__name__}: {exc}"


def run_api(store: Path, call: Call) -> tuple[str, bool]:
    """Run *call* on a fresh runtime; (what it reported, whether it warned)."""

    async def main() -> None:
        async with aiopod.Runtime(store) as rt:
            await call(rt)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            anyio.run(main)
        except Exception as exc:
            return classify(exc), bool(caught)
    return "ok", bool(caught)


def cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopod", "--root", str(store), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=store.parent,  # not the source tree: ``-m`` puts the working directory first
    )


def run_cli(store: Path, args: list[str]) -> tuple[str, bool]:
    proc = cli(store, *args)
    warned = "WARNING" in proc.stderr
    if proc.returncode == 0:
        return "ok", warned
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    if proc.returncode == 125 and len(lines) == 1 and "no space left" in lines[0].lower():
        return "full", warned
    return f"other: exit {proc.returncode}: {proc.stderr.strip()[-300:]}", warned


def images_on_full_disk(store: Path, via: str) -> str:
    if via == "cli":
        proc = cli(store, "images")
        return "ok" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()}"

    async def main() -> None:
        async with aiopod.Runtime(store) as rt:
            await rt.images()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            anyio.run(main)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
    return "ok"


def check_after(store: Path) -> bool:
    async def main() -> bool:
        async with aiopod.Runtime(store) as rt:
            report = await rt.check()
            return bool(report.ok)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return anyio.run(main)
        except Exception:
            return False


# -- the sweep -------------------------------------------------------------------------------


def make_template(work: Path) -> Path:
    template = work / "template"

    async def main() -> None:
        async with aiopod.Runtime(template) as rt:
            await rt.load(write_docker_archive(work / "base.tar", [APP, VICTIM, HELD]))
            await rt.create_container("localhost/held:1", name="held")

    anyio.run(main)
    write_docker_archive(work / "new.tar", [NEW])
    ctx = work / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/app:1\nCOPY file /file\n")
    (ctx / "file").write_bytes(b"f" * 9000)
    return template


def sweep(
    mount: Path,
    template: Path,
    op: str,
    via: str,
    run: Callable[[Path], tuple[str, bool]],
    done: Callable[[dict[str, Any]], bool],
) -> OpReport:
    report = OpReport(op, via)
    store = mount / "store"
    before = fingerprint(template)
    clean_in_a_row = 0
    for level in range(MAX_LEVELS):
        clone(template, store)
        fill(mount, level)
        reported, warned = run(store)
        listed = images_on_full_disk(store, via)
        release(mount)
        after_open_ok = check_after(store)  # reopens with room: recovery finishes
        after = fingerprint(store)
        unchanged = after == before
        changed_parts = sorted(k for k in after if after[k] != before[k])
        result = Run(
            op,
            via,
            level,
            reported,
            done(after) and after["events"] > before["events"],
            unchanged,
            listed,
            after_open_ok,
            warned,
        )
        report.levels += 1
        report.runs += 1
        report.successes += reported == "ok"
        report.full += reported == "full"
        report.warnings += warned
        if result.wrong:
            report.wrong += 1
            report.details.append(
                json.dumps({**asdict(result), "wrong": result.wrong, "changed": changed_parts})
            )
        clean_in_a_row = clean_in_a_row + 1 if reported == "ok" and not warned else 0
        if clean_in_a_row >= 4:
            break
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mount", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--ops", default="tag,untag,rmi,rmi-f,rm,load,create,build")
    parser.add_argument("--cli-ops", default="tag,untag,rmi,rmi-f,rm")
    args = parser.parse_args()
    mount: Path = args.mount
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount)],
        check=True,
    )
    started = time.monotonic()
    template = make_template(args.work)
    ops = api_ops(args.work)
    reports: list[OpReport] = []
    for op in filter(None, args.ops.split(",")):
        call, done = ops[op]
        reports.append(
            sweep(mount, template, op, "api", lambda s, c=call: run_api(s, c), done)  # type: ignore[misc]
        )
    for op in filter(None, args.cli_ops.split(",")):
        _, done = ops[op]
        argv = CLI_OPS[op]
        reports.append(
            sweep(mount, template, op, "cli", lambda s, a=argv: run_cli(s, a), done)  # type: ignore[misc]
        )
    # rmi frees space on a full disk
    store = mount / "store"
    clone(template, store)
    fill(mount, 0)
    freed = run_cli(store, CLI_OPS["rmi"])
    free_after = free_pages(mount)
    release(mount)
    doc = {
        "seconds": round(time.monotonic() - started, 1),
        "ops": [asdict(r) for r in reports],
        "rmi_on_full_disk": {"reported": freed[0], "free_pages_after": free_after},
    }
    args.report.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
