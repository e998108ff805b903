"""The stat-keyed cache of COPY/ADD source digests (:mod:`aiopod.builder.sources.digest_cache`).

A digest served from the cache must always be the one a fresh computation gives: the
tests compute both, for files, directories and every digest option, after the changes a
cache keyed on metadata could miss (same size with the old mtime restored, chmod, the
context's user names), and check that a damaged cache file never fails a digest.

Files are created under ``tmp_path`` only; symlinks point inside the test's context.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from conftest import store_of
from conftest_context import make_tree

from aiopod import Runtime
from aiopod.builder.sources import account_names, content_digest, digest_cache
from aiopod.builder.sources.content_digest import sources_digest
from aiopod.builder.sources.context import resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.digest_cache import DigestCache, activated, active, cache_path
from aiopod.builder.sources.ignore import IgnoreRules

NO_RULES = IgnoreRules()
#: The racy window of these tests (the default is 2 s); :func:`settle` outlasts it.
WINDOW_NS = 50_000_000

TREE: dict[str, Any] = {
    "a.txt": "alpha\n",
    "b.bin": (b"\x00\x01" * 3000, 0o755),
    "sub/c.txt": "gamma\n",
    "sub/deep/d.txt": ("delta\n", 0o600),
    "sub/empty/": 0o755,
    "sub/link@": "c.txt",
    "setid": ("s\n", 0o4755),
}


def settle() -> None:
    """Outlast the racy window and the file system's timestamp tick."""
    time.sleep(0.15)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "ctx", TREE)
    os.link(root / "sub" / "c.txt", root / "sub" / "hard.txt")
    settle()
    return root


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    meta = tmp_path / "store" / "aiopod"
    meta.mkdir(parents=True)
    return cache_path(meta)


def new_cache(path: Path, ctx: Path | None = None, **kwargs: Any) -> DigestCache:
    kwargs.setdefault("racy_window_ns", WINDOW_NS)
    return DigestCache(path, context=ctx, **kwargs)


def digest(
    ctx: Path,
    sources: list[str],
    cache: DigestCache | None = None,
    *,
    dest: str = "/dst/",
    **options: Any,
) -> str:
    """The summary of ``COPY sources dest``, resolved afresh (as every build does)."""
    entries = resolve_sources(ctx, sources, NO_RULES)
    plan = copy_plan(entries, dest, "/", dest_is_dir_hint=False, nsources=len(sources))
    return sources_digest(entries, plan, cache=cache, **options)


@pytest.fixture
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every entry whose files are read for a digest."""
    read: list[str] = []
    original = content_digest._entry_digest

    def counting(entry: Any, *args: Any) -> str:
        read.append(entry.relpath)
        return original(entry, *args)

    monkeypatch.setattr(content_digest, "_entry_digest", counting)
    yield read


VARIANTS: list[tuple[list[str], str, dict[str, Any]]] = [
    (["."], "/dst/", {}),
    (["a.txt"], "/dst/", {}),
    (["a.txt"], "/renamed.txt", {}),
    (["sub"], "/dst/", {}),
    (["a.txt", "sub", "b.bin"], "/dst/", {}),
    (["*.txt", "setid"], "/dst/", {}),
    (["."], "/dst/", {"chown": (1000, 1001)}),
    (["sub"], "/dst/", {"chmod": 0o640}),
    (["b.bin"], "/dst/", {"chown": (5, 6), "chmod": 0o4711}),
    (["."], "/dst/", {"preserve_ownership": True, "strip_setid": False}),
]


@pytest.mark.parametrize(("sources", "dest", "options"), VARIANTS)
def test_a_hit_gives_the_digest_a_fresh_computation_gives(
    ctx: Path,
    cache_file: Path,
    no_hashing: list[str],
    sources: list[str],
    dest: str,
    options: dict[str, Any],
) -> None:
    fresh = digest(ctx, sources, dest=dest, **options)
    cache = new_cache(cache_file, ctx)
    assert digest(ctx, sources, cache, dest=dest, **options) == fresh  # computed, recorded
    assert cache.misses > 0 and cache.hits == 0
    assert cache_file.exists()
    no_hashing.clear()
    assert digest(ctx, sources, cache, dest=dest, **options) == fresh
    assert no_hashing == [] and cache.misses == cache.hits
    # Another process (a new cache object) reads the file.
    again = new_cache(cache_file, ctx)
    assert digest(ctx, sources, again, dest=dest, **options) == fresh
    assert no_hashing == [] and again.misses == 0


def test_options_and_names_are_part_of_the_key(ctx: Path, cache_file: Path) -> None:
    """Each variant gets its own entry: none serves another's digest."""
    cache = new_cache(cache_file, ctx)
    fresh = {i: digest(ctx, s, dest=d, **o) for i, (s, d, o) in enumerate(VARIANTS)}
    for i, (sources, dest, options) in enumerate(VARIANTS):
        assert digest(ctx, sources, cache, dest=dest, **options) == fresh[i]
    for i, (sources, dest, options) in enumerate(reversed(VARIANTS)):
        assert digest(ctx, sources, cache, dest=dest, **options) == fresh[len(VARIANTS) - 1 - i]
    assert len({fresh[i] for i in (0, 6, 9)}) == 3  # the options do change the digest


def rewrite(path: Path, text: str) -> None:
    """Replace the content of *path* by *text* of the same size, keeping its mtime."""
    old = path.stat()
    assert len(text.encode()) == old.st_size
    path.write_text(text)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert path.stat().st_mtime_ns == old.st_mtime_ns


def test_a_same_size_change_with_the_old_mtime_restored_is_seen(
    ctx: Path, cache_file: Path
) -> None:
    cache = new_cache(cache_file, ctx)
    before = digest(ctx, ["."], cache)
    target = ctx / "sub" / "deep" / "d.txt"
    old = target.stat()
    target.write_text("DELTA\n")  # the same size
    os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert target.stat().st_mtime_ns == old.st_mtime_ns
    assert target.stat().st_size == old.st_size
    assert target.stat().st_ctime_ns != old.st_ctime_ns  # what gives the change away
    after = digest(ctx, ["."], cache)
    assert after != before
    assert after == digest(ctx, ["."])
    # The same for a single-file source.
    one = digest(ctx, ["a.txt"], cache)
    old = (ctx / "a.txt").stat()
    settle()
    (ctx / "a.txt").write_text("ALPHA\n")
    os.utime(ctx / "a.txt", ns=(old.st_atime_ns, old.st_mtime_ns))
    assert digest(ctx, ["a.txt"], cache) == digest(ctx, ["a.txt"]) != one


def test_a_chmod_is_seen(ctx: Path, cache_file: Path) -> None:
    cache = new_cache(cache_file, ctx)
    before = digest(ctx, ["."], cache)
    (ctx / "sub" / "c.txt").chmod(0o600)
    after = digest(ctx, ["."], cache)
    assert after != before
    assert after == digest(ctx, ["."])


def test_added_removed_and_relinked_files_are_seen(ctx: Path, cache_file: Path) -> None:
    cache = new_cache(cache_file, ctx)
    seen: list[str] = []

    def check() -> None:
        got = digest(ctx, ["."], cache)
        assert got == digest(ctx, ["."])
        seen.append(got)

    check()
    (ctx / "sub" / "new.txt").write_text("new\n")
    check()
    (ctx / "sub" / "new.txt").unlink()
    (ctx / "sub" / "link").unlink()
    (ctx / "sub" / "link").symlink_to("deep/d.txt")  # inside the context
    check()
    (ctx / "sub" / "hard.txt").unlink()
    check()
    assert len(set(seen)) == 4


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_the_contexts_user_names_are_part_of_the_key(ctx: Path, cache_file: Path) -> None:
    """The digest names owners from the context's etc/passwd and etc/group."""
    make_tree(ctx, {"etc/passwd": "alice:x:1000:1000::/:/bin/sh\n", "etc/group": "team:x:1000:\n"})
    os.chown(ctx / "a.txt", 1000, 1000)
    settle()
    cache = new_cache(cache_file, ctx)
    before = digest(ctx, ["a.txt"], cache, preserve_ownership=True)
    old = (ctx / "etc" / "passwd").stat()
    (ctx / "etc" / "passwd").write_text("bobby:x:1000:1000::/:/bin/sh\n")  # the same size
    os.utime(ctx / "etc" / "passwd", ns=(old.st_atime_ns, old.st_mtime_ns))
    after = digest(ctx, ["a.txt"], cache, preserve_ownership=True)
    assert after == digest(ctx, ["a.txt"], preserve_ownership=True) != before


def test_a_hit_asks_no_names(ctx: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key holds what the owners' names depend on, not the names: a hit starts no
    name-lookup process (a rebuild of an unchanged context spawns nothing)."""
    cache = new_cache(cache_file, ctx)
    first = digest(ctx, ["."], cache)
    asked: list[Path] = []
    real = account_names.lookup_account_names

    def counting(root: Path, uids: Any, gids: Any) -> Any:
        asked.append(root)
        return real(root, uids, gids)

    monkeypatch.setattr(content_digest, "lookup_account_names", counting)
    assert digest(ctx, ["."], new_cache(cache_file, ctx)) == first
    assert asked == []
    assert digest(ctx, ["."]) == first  # without a cache it asks
    assert asked == [ctx]


def test_racy_entries_are_not_recorded(tmp_path: Path, cache_file: Path) -> None:
    ctx = make_tree(tmp_path / "fresh", {"f": "x\n"}, mtime=None)
    cache = DigestCache(cache_file, context=ctx)  # the default window, 2 s
    fresh = digest(ctx, ["f"])
    assert digest(ctx, ["f"], cache) == fresh
    assert not cache_file.exists()
    # An old mtime does not help: the ctime is new.
    os.utime(ctx / "f", (1, 1))
    assert digest(ctx, ["f"], cache) == fresh
    assert not cache_file.exists()
    # A future mtime is racy too.
    later = new_cache(cache_file, ctx)
    settle()
    os.utime(ctx / "f", (time.time() + 3600, time.time() + 3600))
    settle()
    assert digest(ctx, ["f"], later) == fresh
    assert not cache_file.exists()
    # Two seconds on, the entry is recorded.
    clock = DigestCache(cache_file, context=ctx, clock=lambda: time.time_ns() + 7200 * 10**9)
    assert digest(ctx, ["f"], clock) == fresh
    assert cache_file.exists()


def test_a_corrupt_or_unreadable_cache_file_is_ignored(ctx: Path, cache_file: Path) -> None:
    fresh = digest(ctx, ["."])
    for content in (
        b"\x00garbage",
        b"[1, 2]",
        b'{"format": 1, "entries": []}',
        b'{"format": 99, "entries": {}}',
        json.dumps(
            {
                "format": 1,
                "entries": {"0" * 64: ["x", 1, "y"], "a" * 64: ["b" * 64, "c" * 64, True]},
            }
        ).encode(),
        b'{"format": 1, "entries": {',
    ):
        cache_file.write_bytes(content)
        cache = new_cache(cache_file, ctx)
        assert digest(ctx, ["."], cache) == fresh
        doc = json.loads(cache_file.read_bytes())  # replaced by a valid one
        assert doc["format"] == 1 and len(doc["entries"]) == 1
        assert digest(ctx, ["."], new_cache(cache_file, ctx)) == fresh
    # An entry whose fingerprint is not this one is not served.
    doc = json.loads(cache_file.read_bytes())
    [(slot, (_stats, _hex, when))] = doc["entries"].items()
    doc["entries"] = {slot: ["d" * 64, "e" * 64, when]}
    cache_file.write_text(json.dumps(doc))
    assert digest(ctx, ["."], new_cache(cache_file, ctx)) == fresh
    # Unreadable (a directory) and unwritable: ignored both ways.
    cache_file.unlink()
    cache_file.mkdir()
    cache = new_cache(cache_file, ctx)
    assert digest(ctx, ["."], cache) == fresh
    assert digest(ctx, ["."], cache) == fresh  # served from memory
    assert cache_file.is_dir()


def test_an_oversized_cache_file_is_ignored(
    ctx: Path, cache_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = new_cache(cache_file, ctx)
    fresh = digest(ctx, ["."], cache)
    monkeypatch.setattr(digest_cache, "MAX_FILE_BYTES", cache_file.stat().st_size - 1)
    again = new_cache(cache_file, ctx)
    assert digest(ctx, ["."], again) == fresh
    assert again.hits == 0


def test_the_cache_is_bounded_and_evicts_the_oldest(tmp_path: Path, cache_file: Path) -> None:
    ctx = make_tree(tmp_path / "many", {f"f{i}": f"{i}\n" for i in range(6)})
    settle()
    cache = new_cache(cache_file, ctx, max_entries=3)
    for i in range(6):
        digest(ctx, [f"f{i}"], cache)
    assert len(json.loads(cache_file.read_bytes())["entries"]) == 3
    again = new_cache(cache_file, ctx, max_entries=3)
    for i in (3, 4, 5):
        digest(ctx, [f"f{i}"], again)
    assert again.hits == 3 and again.misses == 0
    digest(ctx, ["f0"], again)
    assert again.misses == 1
    # A changed entry replaces its old digest in its slot instead of adding one.
    (ctx / "f5").write_text("changed\n")
    settle()
    digest(ctx, ["f5"], again)
    assert len(json.loads(cache_file.read_bytes())["entries"]) == 3


def test_entries_of_other_directories_are_not_cached(tmp_path: Path, cache_file: Path) -> None:
    ctx = make_tree(tmp_path / "ctx", {"f": "x\n"})
    other = make_tree(tmp_path / "other", {"f": "x\n"})
    settle()
    cache = new_cache(cache_file, ctx)
    digest(other, ["f"], cache)
    assert not cache_file.exists() and cache.misses == 0
    digest(ctx, ["f"], cache)
    assert cache_file.exists()


def test_no_lookups_records_but_never_serves(
    ctx: Path, cache_file: Path, no_hashing: list[str]
) -> None:
    digest(ctx, ["a.txt"], new_cache(cache_file, ctx))
    no_hashing.clear()
    cache = new_cache(cache_file, ctx, lookups=False)
    digest(ctx, ["a.txt"], cache)
    assert no_hashing == ["a.txt"] and cache.hits == 0


@pytest.mark.anyio
async def test_the_active_cache_reaches_worker_threads(ctx: Path, cache_file: Path) -> None:
    cache = new_cache(cache_file, ctx)
    assert active() is None
    with activated(cache):
        await anyio.to_thread.run_sync(lambda: digest(ctx, ["a.txt"]))
        assert active() is cache
    assert active() is None
    assert cache.misses == 1 and await anyio.Path(cache_file).exists()


# -- a build --------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.skipif(os.geteuid() != 0, reason="builds apply layers as root")
async def test_a_layers_rebuild_misses_after_a_change_and_hits_when_nothing_changed(
    store: Path, tmp_path: Path, no_hashing: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digest_cache, "RACY_WINDOW_NS", WINDOW_NS)
    ctx = make_tree(
        tmp_path / "ctx",
        {"Dockerfile": "FROM scratch\nCOPY . /data/\n", "dir/f.txt": "one\n", "g.txt": "g\n"},
    )
    await anyio.sleep(0.15)  # settle
    async with Runtime(store) as rt:

        async def build() -> str:
            with anyio.fail_after(60):
                return (await rt.build(ctx, layers=True, tags=["localhost/dc:1"])).id

        async def data(image_id: str) -> str:
            container = await rt.create_working_container(image_id)
            path = store_of(rt).container_dir(container.id) / "rootfs" / "data" / "dir" / "f.txt"
            return await anyio.to_thread.run_sync(path.read_text)

        first = await build()
        assert no_hashing == ["."]
        assert await anyio.Path(cache_path(store_of(rt).layout.meta)).exists()
        no_hashing.clear()
        assert await build() == first  # the layer cache's hit, without reading the sources
        assert no_hashing == []

        await anyio.to_thread.run_sync(rewrite, ctx / "dir" / "f.txt", "two\n")
        await anyio.sleep(0.15)  # settle
        changed = await build()
        assert changed != first  # the layer cache missed
        assert no_hashing == ["."]
        assert await data(changed) == "two\n"
        no_hashing.clear()
        assert await build() == changed  # nothing changed: a hit again
        assert no_hashing == []
        assert await data(changed) == "two\n"
        assert {i.id for i in await rt.images(all=True)} >= {first, changed}
