"""``examples/tour.ipynb`` runs in a real Jupyter kernel, as a reader would run it.

nbclient executes the notebook, cell after cell, in an ipykernel started from this
Python (a kernelspec written to a temporary ``JUPYTER_PATH`` names ``sys.executable``),
on the asyncio loop the kernel runs top-level ``await`` on.  Every Jupyter, IPython and
matplotlib directory, ``HOME`` and ``TMPDIR`` point into the test's temporary directory,
so nothing is written to the user's home and the notebook's own temporary directory (its
store, its archive, its build context) is the test's.  Then the outputs are read: the
live progress displays, the removal report, the events the background subscriber
collected and the picture of the store.

Without nbclient or ipykernel (the ``test`` extra installs them) the test skips locally
and fails in CI.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"

pytestmark = pytest.mark.anyio

#: Appended to the executed copy: which Python the kernel runs, and on what loop.
CHECK_CELL = """\
import asyncio
import sys

await asyncio.sleep(0)
print(sys.executable)
print(type(asyncio.get_running_loop()).__module__)
"""


def require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing: pip install -e '.[test]'"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the notebook must run in CI", pytrace=False)
    pytest.skip(reason)


def isolate_jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every directory Jupyter, IPython and matplotlib use into *tmp_path*, and
    register a ``python3`` kernel that runs this interpreter; the notebook's working
    directory."""
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "jupyter" / name.lower()))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # no migration warning
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.delenv("AIOPOD_ROOT", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel sets its inline backend
    kernels = tmp_path / "jupyter" / "path"
    spec = kernels / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))  # searched before the venv's specs
    for directory in ("home", "tmp", "work"):
        (tmp_path / directory).mkdir()
    return tmp_path / "work"


def text_of(output: Any) -> str:
    """What an output shows: a stream's text, or a display's HTML (else its text)."""
    if output["output_type"] == "stream":
        return str(output["text"])
    data = output.get("data", {})
    return str(data.get("text/html") or data.get("text/plain") or "")


async def test_the_tour_runs_in_a_real_kernel_and_shows_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("nbclient", "nbformat", "ipykernel", "matplotlib")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), (
        "examples/tour.ipynb is stored without outputs (clear them before committing)"
    )

    work = isolate_jupyter(tmp_path, monkeypatch)
    check = nbformat.v4.new_code_cell(CHECK_CELL, id="test-check")  # type: ignore[no-untyped-call]
    notebook.cells.append(check)
    client = NotebookClient(
        notebook,
        timeout=60,
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    await client.async_execute()  # raises CellExecutionError at a cell that fails

    cells = {cell.id: cell for cell in notebook.cells if cell.cell_type == "code"}
    for cell in cells.values():
        assert all(o["output_type"] != "error" for o in cell.outputs), cell.id

    executable, loop_module = cells["test-check"].outputs[0]["text"].split()
    assert executable == sys.executable
    assert loop_module.startswith("asyncio.")

    # One live display per call, updated in place (a display handle, not lines on stderr).
    for cell in (cells["load"], cells["build"]):
        assert [o["output_type"] for o in cell.outputs] == ["display_data", "execute_result"]
    [load] = [o for o in cells["load"].outputs if o["output_type"] == "display_data"]
    assert "<progress" in text_of(load) and "Copying blob" in text_of(load)
    assert "Storing signatures" in text_of(load)
    [build] = [o for o in cells["build"].outputs if o["output_type"] == "display_data"]
    assert "STEP 2/2: COPY greeting /greeting" in text_of(build)
    assert "Successfully tagged localhost/app:2" in text_of(build)

    images = text_of(cells["images"].outputs[0])
    assert "localhost/base" in images and "localhost/app" in images

    report = text_of(cells["remove"].outputs[0])
    assert "<td>Untagged</td><td>localhost/app:2</td>" in report
    assert "<td>Untagged</td><td>localhost/app:1</td>" in report
    assert "<td>Deleted</td>" in report and "exit code 0" in report

    printed = [line.split(" ", 1)[1] for line in text_of(cells["events"].outputs[0]).splitlines()]
    assert printed == [
        "untag Untagged localhost/app:2",
        "untag Untagged localhost/app:1",
        "remove Deleted localhost/app:1",
    ]

    table = text_of(cells["table"].outputs[0])
    assert "localhost/base" in table and "localhost/app" not in table

    [plot] = [o for o in cells["plot"].outputs if "image/png" in o.get("data", {})]
    assert base64.b64decode(plot["data"]["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")

    # Its store and files were in its own temporary directory, removed by the last cell;
    # no default store was made.
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "home" / ".local" / "share" / "aiopod").exists()
