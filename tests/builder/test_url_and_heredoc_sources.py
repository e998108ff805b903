"""Sources that are not files of the build context: ``ADD <url>`` and heredoc documents.

Downloads come from a loopback server over ``<tmp_path>/http`` (the ``http_files``
fixture); nothing here reaches the network.  The bit-for-bit comparison of the history
digests and layers with buildah is in ``test_build_differential.py``; here the behaviour
around them: names, modes, times, errors, the cache, and hostile-input.md B6 (a remote
archive is stored, never extracted).  Heredoc documents follow Docker's rules (buildah
1.28 has none).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from build_helpers import build, context, image_files
from conftest_context import make_tree, tree_state
from httpfiles import HttpFiles

from aiopod import Image, Runtime
from aiopod.errors import BuildError

pytestmark = pytest.mark.anyio

LAST_MODIFIED = 1_683_356_889  # 2023-05-06 07:08:09 UTC


@pytest.fixture
async def rt(store: Path) -> AsyncIterator[Runtime]:
    """A runtime on an empty store (these builds start FROM scratch: no busybox needed)."""
    async with Runtime(store) as runtime:
        yield runtime


def served(files: HttpFiles, name: str, data: bytes, mtime: int = LAST_MODIFIED) -> str:
    """Put ``data`` on the server as ``name``; its URL."""
    path = files.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return f"{files.url}/{name}"


async def created_by(rt: Runtime, image: Image) -> list[str]:
    document = await rt.inspect_image(image.id)
    return [entry.get("created_by", "") for entry in document["History"]]


# -- ADD <url> ---------------------------------------------------------------------------------


async def test_a_download_is_stored_under_its_url_name_with_mode_0600_and_its_date(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    url = served(http_files, "pub/file.txt", b"payload\n")
    image = await build(rt, context(tmp_path, f"FROM scratch\nADD {url} /dl/\n"))
    st = os.lstat(await image_files(rt, image.id) / "dl/file.txt")
    assert (await image_files(rt, image.id) / "dl/file.txt").read_bytes() == b"payload\n"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert int(st.st_mtime) == LAST_MODIFIED
    # buildah's summary: a bare sha256 of the download's tar stream, no "file:" prefix.
    (summary,) = [c for c in await created_by(rt, image) if " ADD " in c]
    assert summary.startswith("/bin/sh -c #(nop) ADD ") and summary.endswith(" in /dl/ ")
    assert len(summary.split()[4]) == 64 and ":" not in summary.split()[4]


async def test_a_destination_that_names_a_file_renames_it_and_flags_apply(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    url = served(http_files, "file.txt", b"payload\n")
    dockerfile = f"FROM scratch\nADD {url} /plain\nADD --chmod=755 --chown=5:6 {url} /opt/tool\n"
    image = await build(rt, context(tmp_path, dockerfile))
    root = await image_files(rt, image.id)
    assert (root / "plain").read_bytes() == b"payload\n"
    st = os.lstat(root / "opt/tool")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 5, 6)
    assert not (root / "file.txt").exists()
    first, second = [c.split()[4] for c in await created_by(rt, image) if " ADD " in c]
    assert first != second  # the name, mode and owner are part of the summary


async def test_b6_a_remote_archive_is_stored_as_a_file_never_extracted(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    """hostile-input.md B6: ``ADD http://host/evil.tar.gz /`` (CVE-2020-10696)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("../escaped", "pwned", "/abs"):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"bad"))
    evil = buffer.getvalue()
    host = make_tree(tmp_path / "host", {"keep": "host file\n"})
    before = tree_state(host)
    url = served(http_files, "evil.tar.gz", evil)
    image = await build(rt, context(tmp_path, f"FROM scratch\nADD {url} /\n"))
    root = await image_files(rt, image.id)
    assert sorted(os.listdir(root)) == ["evil.tar.gz"]
    assert (root / "evil.tar.gz").read_bytes() == evil
    assert not (root.parent / "escaped").exists()
    assert tree_state(host) == before


async def test_redirects_are_followed_and_the_name_comes_from_the_url_written(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    served(http_files, "target.txt", b"moved\n")
    dockerfile = f"FROM scratch\nADD {http_files.url}/redirect/target.txt /r/\n"
    image = await build(rt, context(tmp_path, dockerfile))
    assert (await image_files(rt, image.id) / "r/target.txt").read_bytes() == b"moved\n"
    assert http_files.requests == ["/redirect/target.txt", "/target.txt"]


async def test_without_last_modified_the_file_dates_from_the_epoch(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    served(http_files, "undated.txt", b"no date\n")
    dockerfile = f"FROM scratch\nADD {http_files.url}/undated/undated.txt /u/\n"
    image = await build(rt, context(tmp_path, dockerfile))
    assert os.lstat(await image_files(rt, image.id) / "u/undated.txt").st_mtime == 0


async def test_local_and_remote_sources_go_into_one_directory_in_order(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    url = served(http_files, "remote.txt", b"remote\n")
    ctx = context(tmp_path, f"FROM scratch\nADD a.txt {url} b.txt /mixed\n")
    make_tree(ctx, {"a.txt": "a\n", "b.txt": "b\n"})
    image = await build(rt, ctx)
    root = await image_files(rt, image.id)
    assert sorted(os.listdir(root / "mixed")) == ["a.txt", "b.txt", "remote.txt"]
    (summary,) = [c for c in await created_by(rt, image) if " ADD " in c]
    assert summary.split()[4].startswith("multi:")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status/404", "invalid response status 404"),
        ("/status/500", "invalid response status 500"),
        ("/", "cannot name a file"),
    ],
)
async def test_a_failed_or_unnamed_download_fails_the_build_and_leaves_nothing(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path, path: str, message: str
) -> None:
    ctx = context(tmp_path, f"FROM scratch\nADD {http_files.url}{path} /dir/\n")
    with pytest.raises(BuildError, match=message):
        await build(rt, ctx)
    assert await rt.containers(external=True) == []
    assert await rt.images() == []


async def test_a_url_without_a_name_is_fine_when_the_destination_names_the_file(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    (http_files.root / "index.html").write_bytes(b"<html/>\n")
    image = await build(rt, context(tmp_path, f"FROM scratch\nADD {http_files.url}/ /index\n"))
    assert (await image_files(rt, image.id) / "index").read_bytes() == b"<html/>\n"


async def test_an_unreachable_server_is_a_clear_error(rt: Runtime, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM scratch\nADD http://127.0.0.1:9/x.txt /\n")
    with pytest.raises(BuildError, match=r"reading 'http://127\.0\.0\.1:9/x\.txt'"):
        await build(rt, ctx)
    assert await rt.containers(external=True) == []


async def test_the_layer_cache_reuses_a_download_only_while_it_is_the_same(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    url = served(http_files, "data.txt", b"one\n")
    ctx = context(tmp_path, f"FROM scratch\nADD {url} /data.txt\n")
    first = await build(rt, ctx, layers=True)
    assert (await build(rt, ctx, layers=True)).id == first.id
    served(http_files, "data.txt", b"two\n")
    changed = await build(rt, ctx, layers=True)
    assert changed.id != first.id
    assert (await image_files(rt, changed.id) / "data.txt").read_bytes() == b"two\n"
    assert http_files.requests == ["/data.txt"] * 3


async def test_with_a_timestamp_a_rebuild_gives_the_same_image(
    rt: Runtime, http_files: HttpFiles, tmp_path: Path
) -> None:
    url = served(http_files, "data.txt", b"same\n")
    ctx = context(tmp_path, f"FROM scratch\nADD {url} /data.txt\n")
    first = await build(rt, ctx, timestamp=0)
    assert (await build(rt, ctx, timestamp=0)).id == first.id


# -- heredoc documents --------------------------------------------------------------------------


async def test_copy_heredoc_writes_the_document_with_variables_expanded(
    rt: Runtime, tmp_path: Path
) -> None:
    dockerfile = """\
FROM scratch
ARG WHO=builder
ENV PLACE=here
COPY <<EOF /etc/greeting
hello $WHO from ${PLACE}
'quotes' and "quotes" stay
EOF
COPY <<'EOF' /etc/raw
not $EXPANDED
EOF
"""
    image = await build(rt, context(tmp_path, dockerfile))
    root = await image_files(rt, image.id)
    greeting = root / "etc/greeting"
    assert greeting.read_text() == "hello builder from here\n'quotes' and \"quotes\" stay\n"
    assert (root / "etc/raw").read_text() == "not $EXPANDED\n"
    st = os.lstat(greeting)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 0, 0)
    copy_step = next(c for c in await created_by(rt, image) if "COPY" in c)
    assert copy_step.endswith(" in /etc/greeting ")


async def test_several_heredocs_into_a_directory_are_named_after_their_delimiters(
    rt: Runtime, tmp_path: Path
) -> None:
    dockerfile = (
        "FROM scratch\n"
        "COPY --chmod=600 --chown=7:8 <<one.txt <<-two.txt /docs/\n"
        "first\n"
        "one.txt\n"
        "\t\tsecond, tabs stripped\n"
        "\ttwo.txt\n"
        "ADD <<run.sh /bin/\n"
        "#!/bin/sh\n"
        "run.sh\n"
    )
    image = await build(rt, context(tmp_path, dockerfile))
    root = await image_files(rt, image.id)
    assert sorted(os.listdir(root / "docs")) == ["one.txt", "two.txt"]
    assert (root / "docs/one.txt").read_text() == "first\n"
    assert (root / "docs/two.txt").read_text() == "second, tabs stripped\n"
    st = os.lstat(root / "docs/two.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 7, 8)
    assert (root / "bin/run.sh").read_text() == "#!/bin/sh\n"


async def test_a_heredoc_mixes_with_context_files_and_rebuilds_identically(
    rt: Runtime, tmp_path: Path
) -> None:
    ctx = context(tmp_path, "FROM scratch\nCOPY a.txt <<note.txt /mixed/\nnoted\nnote.txt\n")
    make_tree(ctx, {"a.txt": "a\n"})
    first = await build(rt, ctx, timestamp=0)
    assert sorted(os.listdir(await image_files(rt, first.id) / "mixed")) == ["a.txt", "note.txt"]
    assert (await build(rt, ctx, timestamp=0)).id == first.id
    cached = await build(rt, ctx, layers=True)
    assert (await build(rt, ctx, layers=True)).id == cached.id


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM scratch AS s\nFROM scratch\nCOPY --from=s <<EOF /x\nx\nEOF\n", "cannot be combined"),
        ("FROM scratch\nCOPY <<a/b /x\nx\na/b\n", "cannot name a file"),
    ],
)
async def test_heredocs_that_cannot_be_copied_are_refused(
    rt: Runtime, tmp_path: Path, dockerfile: str, message: str
) -> None:
    with pytest.raises(BuildError, match=message):
        await build(rt, context(tmp_path, dockerfile))
    assert await rt.containers(external=True) == []
