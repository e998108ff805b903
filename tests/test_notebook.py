"""aiopod.notebook: the live progress display (an IPython display handle updated in
place, plain lines without IPython) and the picture of the store (matplotlib's Agg)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from imagefactory import child_image, make_image, write_docker_archive

import aiopod
import aiopod.notebook
from aiopod import ArchiveRecord, BlobProgress, BlobStarted, Runtime
from aiopod.notebook import REFRESH_INTERVAL, LiveProgress, ProgressView, plot_store

pytestmark = pytest.mark.anyio

BASE = make_image("localhost/base:1", seed="notebook-base")
APP = child_image(BASE, "localhost/app:1", files={"app/big": bytes(range(256)) * 4096})
OTHER = child_image(BASE, "localhost/other:1", files={"other": b"x" * 1000})


class FakeHandle:
    def __init__(self, shown: list[Any]) -> None:
        self.shown = shown

    def update(self, obj: Any) -> None:
        self.shown.append(obj)


class FakeDisplay:
    """``IPython.display.display`` as a live display calls it."""

    def __init__(self) -> None:
        self.calls = 0
        self.shown: list[Any] = []

    def __call__(self, obj: Any, *, display_id: bool) -> FakeHandle:
        assert display_id is True
        self.calls += 1
        self.shown.append(obj)
        return FakeHandle(self.shown)


async def test_a_load_is_drawn_in_one_display_updated_in_place(store: Path, tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "images.tar", [BASE, APP])
    display = FakeDisplay()
    with aiopod.notebook.live_progress(display=display) as progress:
        async with Runtime(store) as rt:
            await rt.load(archive, progress=progress)
    assert display.calls == 1  # one output, then updates of it
    assert len(display.shown) > 1
    final = display.shown[-1]
    assert isinstance(final, ProgressView)
    labels = [bar.label for bar in final.bars]
    assert "Reading images.tar" in labels
    assert sum(label.startswith("Copying blob ") for label in labels) == 2  # two layers
    assert all(bar.state == "done" for bar in final.bars)
    assert final.lines[-2:] == ["Writing manifest to image destination", "Storing signatures"]
    html = final._repr_html_()
    assert "<progress" in html and "Copying blob" in html and "Storing signatures" in html
    text = final.display_text()
    assert "Copying config" in text and "[" + "#" * 30 + "]" in text


def test_byte_counts_are_drawn_at_most_every_interval_and_the_last_on_close() -> None:
    now = [0.0]
    display = FakeDisplay()
    progress = LiveProgress(display=display, clock=lambda: now[0])
    digest = "sha256:" + "a" * 64
    progress(BlobStarted(digest, 1000))
    for done in range(100, 1001, 100):
        now[0] += REFRESH_INTERVAL / 10
        progress(BlobProgress(digest, done, 1000))
    assert len(display.shown) == 1  # the start; the counts came too fast to draw
    progress.close()
    assert len(display.shown) == 2
    assert display.shown[-1].bars[0].done == 1000
    progress.close()  # nothing new: no redraw
    assert len(display.shown) == 2
    now[0] += REFRESH_INTERVAL
    progress(BlobProgress(digest, 1000, 1000))
    assert len(display.shown) == 3


async def test_without_ipython_it_prints_podmans_lines(store: Path, tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "images.tar", [BASE])
    stream = io.StringIO()
    records: list[ArchiveRecord] = []

    def both(record: ArchiveRecord) -> None:
        records.append(record)
        progress(record)

    progress = LiveProgress(stream=stream)  # no IPython runs this test
    async with Runtime(store) as rt:
        await rt.load(archive, progress=both)
    assert stream.getvalue() == "".join(record.text for record in records)
    assert stream.getvalue().startswith("Getting image source signatures\n")


async def test_in_a_real_ipython_it_uses_display_handles(store: Path, tmp_path: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import DisplayHandle

    archive = write_docker_archive(tmp_path / "images.tar", [BASE])
    InteractiveShell.instance()
    try:
        progress = aiopod.notebook.live_progress()
        async with Runtime(store) as rt:
            await rt.load(archive, progress=progress)
        progress.close()
        assert isinstance(progress._handle, DisplayHandle)
    finally:
        InteractiveShell.clear_instance()


def test_importing_the_notebook_helpers_imports_neither_ipython_nor_matplotlib() -> None:
    code = (
        "import sys, json, aiopod.notebook; "
        "print(json.dumps([m for m in sys.modules if m.startswith(('IPython', 'matplotlib'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []


async def test_the_store_is_plotted_with_its_sharing(store: Path, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    archive = write_docker_archive(tmp_path / "images.tar", [BASE, APP, OTHER])
    async with Runtime(store) as rt:
        await rt.load(archive)
        usage = await rt.disk_usage()
    figure = plot_store(usage)
    [axes] = figure.axes
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert sorted(labels) == ["localhost/app:1", "localhost/base:1", "localhost/other:1"]
    bars = {label: [] for label in labels}  # type: dict[str, list[float]]
    for patch in axes.patches:
        row = round(patch.get_y() + patch.get_height() / 2)  # type: ignore[attr-defined]
        bars[labels[row]].append(patch.get_width())  # type: ignore[attr-defined]
    rows = {f"{r.repository}:{r.tag}": r for r in usage.images}
    for label, (shared, unique) in bars.items():
        assert shared == pytest.approx(rows[label].shared_size / 1e6)
        assert unique == pytest.approx(rows[label].unique_size / 1e6)
    assert "3 images" in axes.get_title()
    figure.savefig(tmp_path / "store.png")
    assert (tmp_path / "store.png").read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    from aiopod._usage import DiskUsage

    with pytest.raises(aiopod.MissingExtra, match=r"pip install 'aiopod\[plot\]'") as caught:
        plot_store(DiskUsage(images=(), containers=()))
    assert isinstance(caught.value, ImportError)


async def test_the_readme_notebook_snippet_runs_as_written(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib
    from matplotlib.figure import Figure
    from test_asyncio_embedding import readme_snippet, run_as_a_cell

    matplotlib.use("Agg")
    source = readme_snippet("Pictures, reports and progress", 1)
    assert "live_progress()" in source
    monkeypatch.chdir(tmp_path)
    write_docker_archive(tmp_path / "app.tar", [APP])
    async with Runtime(store) as rt:
        namespace: dict[str, Any] = {"rt": rt}
        await run_as_a_cell(source, namespace)
        assert [i.names for i in await rt.images()] == [("localhost/app:1",)]
    assert isinstance(namespace["figure"], Figure)
