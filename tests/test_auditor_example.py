"""``examples/auditor.py``: the demo runs, and ``audit`` records events, gaps and stops."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from peers import aiopod_env

from aiopod import Event, EventBus, EventKind

EXAMPLE = Path(__file__).parent.parent / "examples" / "auditor.py"

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def auditor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("auditor_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def tagged(seq: int) -> Event:
    return Event(EventKind.TAGGED, "image", "a" * 64, f"localhost/app:{seq}", time=WHEN, seq=seq)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_audit_appends_every_event_until_the_bus_closes(
    auditor: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier":"line"}\n')
    bus = EventBus()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(auditor.audit, bus, path)
            bus.publish([tagged(1), tagged(2)])
            await anyio.wait_all_tasks_blocked()
            bus.publish([tagged(3)])
            bus.close()  # the auditor writes what it holds, then returns
    audited = lines(path)
    assert audited[0] == {"earlier": "line"}  # appended, not overwritten
    assert [d["seq"] for d in audited[1:]] == [1, 2, 3]
    assert audited[1]["kind"] == "Tagged"
    assert audited[1]["name"] == "localhost/app:1"


async def test_audit_records_a_gap_as_a_lagged_line(auditor: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    bus = EventBus()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: auditor.audit(bus, path, buffer=3, task_status=task_status)
            )
            bus.publish([tagged(i) for i in range(1, 11)])
            bus.close()
    assert lines(path) == [{"lagged": 7}] + [
        json.loads(auditor.audit_line(tagged(i))) for i in (8, 9, 10)
    ]


async def test_audit_runs_until_cancelled(auditor: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    bus = EventBus()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(auditor.audit, bus, path)
            bus.publish([tagged(1)])
            await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
    assert [d["seq"] for d in lines(path)] == [1]
    assert bus.subscriber_count == 0  # the subscription was closed


def test_the_demo_audits_a_runtime(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=aiopod_env(),  # this checkout's aiopod, not an installed one
    )
    full = lines(tmp_path / "audit.jsonl")
    assert [d["kind"] for d in full] == [
        "Loaded",
        "Tagged",
        "Tagged",
        "Tagged",
        "Untagged",
        "Untagged",
        "Untagged",
        "Untagged",
        "Loaded",
    ]
    assert [d["seq"] for d in full] == list(range(1, 10))
    small = lines(tmp_path / "audit-small-buffer.jsonl")
    assert any("lagged" in d for d in small)
    # What the small buffer kept plus what it says it missed accounts for every event.
    kept = sum(1 for d in small if "seq" in d)
    missed = sum(int(d["lagged"]) for d in small if "lagged" in d)  # type: ignore[call-overload]
    assert kept + missed == 9
    assert "--- audit.jsonl" in result.stdout
    assert '"kind":"Untagged"' in result.stdout
