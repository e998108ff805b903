"""Differential tests of removal: every scenario of ``scenarios.py`` runs on podman 4.3.1
and on ``aiopod --policy podman`` from the same images (same IDs, same digests), and
what a user sees must be identical: stdout, stderr, exit code, the ``images -a`` set
(IDs and names), the containers left and, for runs that exit 0, the events the command
logged (Type, Status, ID, Name, in order, and the ``remove`` event's early time stamp).

See ``differential.py`` for how the stores are made and ``docs/design/removal-rules.md``
for the rules the scenarios cover (the ``rule`` of each scenario).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from differential import (
    Catalogue,
    Facts,
    Scenario,
    SideRunner,
    build_catalogue,
    explain,
    run_scenario,
)
from scenarios import SCENARIOS

pytestmark = pytest.mark.peer("podman", "buildah", "skopeo", "busybox")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Catalogue:
    """The session's images, built once by podman and buildah (see ``differential.py``)."""
    return build_catalogue(tmp_path_factory.mktemp("catalogue"), busybox_rootfs_tar)


@pytest.fixture(scope="module")
def sides(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[tuple[SideRunner, SideRunner]]:
    """The podman and the aiopod runner (each caches its template stores)."""
    base = tmp_path_factory.mktemp("differential")
    pycache = base / "pycache"
    yield (
        SideRunner(catalogue, base / "podman", pycache),
        SideRunner(catalogue, base / "aiopod", pycache),
    )


def test_the_scenarios_cover_every_rule_group() -> None:
    groups = {s.rule[0] for s in SCENARIOS}
    assert groups >= set("ABCDEF")
    assert len(SCENARIOS) >= 40
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def _param(scenario: Scenario) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=scenario.xfail)] if scenario.xfail else []
    return pytest.param(scenario, id=scenario.id, marks=marks)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_aiopod_matches_podman(
    scenario: Scenario, catalogue: Catalogue, sides: tuple[SideRunner, SideRunner]
) -> None:
    facts = Facts(catalogue, [img.role for img in scenario.images])
    on_podman, on_aiopod = run_scenario(*sides, scenario, facts)
    assert on_aiopod.as_dict() == on_podman.as_dict(), explain(on_podman, on_aiopod)
