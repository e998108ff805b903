"""How the runtime, images, image lists, removal and check reports and image trees show
themselves: ``repr`` for the runtime, IPython's pretty printer (``_repr_pretty_``) and
Jupyter's HTML (``_repr_html_``) for all of them, with no IPython installed."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import store_of
from imagefactory import child_image, make_image, write_oci_archive
from peers import aiopod_ok
from test_asyncio_embedding import readme_snippet, run_as_a_cell

import aiopod
from aiopod import Runtime

pytestmark = pytest.mark.anyio

BASE = make_image("localhost/base:1", seed="display-base")
APP = child_image(BASE, "localhost/app:1", files={"app": b"<b>&</b>\n"})


class Printer:
    """What IPython's ``RepresentationPrinter`` offers ``_repr_pretty_``: ``text``."""

    def __init__(self) -> None:
        self.output = ""

    def text(self, obj: str) -> None:
        self.output += obj


def pretty(obj: object, *, cycle: bool = False) -> str:
    printer = Printer()
    obj._repr_pretty_(printer, cycle)  # type: ignore[attr-defined]
    return printer.output


class Cells(HTMLParser):
    """The text of every ``<th>``/``<td>`` cell and ``<caption>`` of an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._open = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("td", "th", "caption"):
            self._open = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[-1] += data


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_oci_archive(tmp_path / "images.tar", [BASE, APP])


async def test_the_runtime_shows_its_root_images_and_size(store: Path, archive: Path) -> None:
    rt = Runtime(store)
    assert repr(rt) == f"<aiopod.Runtime root={str(store)!r} not open>"
    async with rt:
        assert repr(rt) == f"<aiopod.Runtime root={str(store)!r} open: 0 images, 0 B>"
        await rt.load(archive)
        manifests = sum(store_of(rt).blob_path(i.digest).stat().st_size for i in await rt.images())
        # Shared layers once: BASE's layer, APP's own layer, both configs and manifests.
        size = sum(map(len, APP.layers)) + len(BASE.config) + len(APP.config) + manifests
        assert size < 100_000
        shown = f"{size / 1000:.3g} kB"
        assert repr(rt) == f"<aiopod.Runtime root={str(store)!r} open: 2 images, {shown}>"
        text = pretty(rt)
        html = rt._repr_html_()
    assert repr(rt) == f"<aiopod.Runtime root={str(store)!r} closed>"
    header, *rows = text.splitlines()[1:]
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert [row.split()[:3] for row in rows] == [
        ["localhost/base", "1", BASE.id[:12]],
        ["localhost/app", "1", APP.id[:12]],
    ]
    cells = Cells(html).cells
    assert cells[:6] == ["2 images", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert html.startswith(f"<p>&lt;aiopod.Runtime root={str(store)!r}".replace("'", "&#x27;"))


async def test_an_image_list_is_podmans_images_table(store: Path, archive: Path) -> None:
    async with Runtime(store) as rt:
        await rt.load(archive)
        images = await rt.images()
    assert isinstance(images, aiopod.ImageList) and isinstance(images, list)
    assert images == list(images) and [i.id for i in images] == [BASE.id, APP.id]
    # Same creation time, so the command's newest-first order is the storage order.
    assert pretty(images) + "\n" == aiopod_ok("images", root=store).stdout
    cells = Cells(images._repr_html_()).cells
    assert cells[6:9] == ["localhost/base", "1", BASE.id[:12]]


async def test_an_image_shows_a_summary_and_its_fields(store: Path, archive: Path) -> None:
    async with Runtime(store) as rt:
        [_, app] = await rt.load(archive)
    assert pretty(app) == (
        f"Image {APP.id[:12]} localhost/app:1 ({app.size / 1000:.3g} kB, 2 layers, "
        f"created 2000-01-01T00:00:00+00:00, parent {BASE.id[:12]})"
    )
    assert pretty(app, cycle=True) == "<Image ...>"
    cells = dict(zip(*[iter(Cells(app._repr_html_()).cells[3:])] * 2, strict=True))
    assert cells["ID"] == APP.id and cells["Names"] == "localhost/app:1"
    assert cells["Size"] == f"{app.size / 1000:.3g} kB ({app.size} bytes)"
    assert cells["Parent"] == BASE.id and cells["Layers"] == "2"


async def test_a_removal_report_shows_rmis_lines(store: Path, archive: Path) -> None:
    async with Runtime(store) as rt:
        await rt.load(archive)
        await rt.create_container("base:1", ["true"])
        refused = await rt.remove_images(["base:1", "nope"])
        done = await rt.remove_images(["app:1"])
    assert pretty(refused).splitlines()[0] == (
        "RemovalReport: 0 untagged, 0 deleted, 0 containers removed, 2 errors; exit code 2"
    )
    assert [line.split(":")[0] for line in pretty(refused).splitlines()[1:]] == ["Error", "Error"]
    assert pretty(done).splitlines() == [
        "RemovalReport: 1 untagged, 1 deleted, 0 containers removed, 0 errors; exit code 0",
        "Untagged: localhost/app:1",
        f"Deleted: {APP.id}",
    ]
    cells = Cells(done._repr_html_()).cells
    assert cells[0].startswith("RemovalReport: 1 untagged")
    assert cells[3:] == ["Untagged", "localhost/app:1", "Deleted", APP.id]


async def test_a_check_report_shows_its_problems(store: Path, archive: Path) -> None:
    async with Runtime(store) as rt:
        [base, _] = await rt.load(archive)
        assert pretty(await rt.check()) == "CheckReport: the store is consistent"
        store_of(rt).blob_path(base.digest).write_bytes(b"{}")
        report = await rt.check()
    lines = pretty(report).splitlines()
    assert lines[0] == f"CheckReport: {len(report.problems)} problem" + (
        "s" if len(report.problems) > 1 else ""
    )
    assert lines[1:] == [f"problem: {p}" for p in report.problems]
    assert Cells(report._repr_html_()).cells[3:5] == ["problem", report.problems[0]]


async def test_an_image_tree_shows_podmans_drawing_escaped_in_html(
    store: Path, archive: Path
) -> None:
    async with Runtime(store) as rt:
        await rt.load(archive)
        tree = await rt.image_tree("base:1", what_requires=True)
    assert pretty(tree) == str(tree)
    # A base layer goes on in line: the layer on it is drawn beside it.
    assert [line[:16] for line in str(tree).splitlines()[-2:]] == [
        "├── ID: " + BASE.diff_ids[0][7:15],
        "└── ID: " + tree.dependents.children[0].id[:8],  # type: ignore[union-attr]
    ]
    html = tree._repr_html_()
    assert html.startswith("<pre>Image ID: ") and "[localhost/base:1]" in html
    assert "<" not in html[5:-6]


async def test_the_readme_pictures_snippet_runs_as_written_in_a_running_loop(
    store: Path,
    tmp_path: Path,
    archive: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = readme_snippet("Pictures, reports and progress")
    monkeypatch.chdir(tmp_path)
    async with Runtime(store) as rt:
        await rt.load(archive)
        namespace: dict[str, object] = {"rt": rt}  # what the README's earlier cells defined
        await run_as_a_cell(source, namespace)
        assert await rt.images() == []  # the prune at its end
    out = capsys.readouterr().out
    assert out.startswith(f"Image ID: {APP.id[:12]}\n")
    assert f"{APP.id} " in out and "Copying config sha256:" in out
    report = namespace["report"]
    assert isinstance(report, aiopod.SystemPruneReport)
    assert sorted(report.images.deleted) == sorted([APP.id, BASE.id])
