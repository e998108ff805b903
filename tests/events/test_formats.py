"""Event shapes (aiopod's, podman 4.3's and dockerd 20.10's, as measured) and filters.

The ``MEASURED_*`` lines below were printed by the real tools on isolated stores
(``podman --root … --runroot … --storage-driver vfs --events-backend file events
--stream=false --format json`` and a private ``dockerd`` on a unix socket).  Python's
datetime keeps microseconds, so the expected times are the measured ones cut to six digits.
"""

from __future__ import annotations

import json
import re
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from peers import Podman, run as run_command

from aiopod import Runtime, UsageError
from aiopod.events import Event, EventFilter, EventKind, EventLog, parse_filters, parse_time
from aiopod.events.filters import parse_duration
from aiopod.events.formats import (
    encode_native,
    event_from_native_json,
    format_docker_text,
    format_go_time,
    format_podman_text,
    format_rfc3339_nano,
    go_json,
    to_docker_json,
    to_native_json,
    to_podman_json,
)
from aiopod.events.model import Actor

IMAGE = "2e607dd71aaed9c7d6e1e8eff74c6a139627fe0fdd6e3305f42f8295c64d2bae"
CONTAINER = "fb663f068b8f6a5d0fb1b9f5e808c22ec9aa82d23cb269b2aa2851a6d85677df"
DOCKER_ID = "sha256:" + IMAGE


def fill(text: str) -> str:
    return (
        text.replace("<IMAGE>", IMAGE).replace("<ID>", DOCKER_ID).replace("<CONTAINER>", CONTAINER)
    )


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MEASURED_PODMAN_JSON = {
    key: fill(text)
    for key, text in {
        "tag": '{"ID":"<IMAGE>","Name":"o2","Status":"tag","Time":"2026-11-28T04:45:54.628500895Z",'
        '"Type":"image","Attributes":null}',
        "untag": '{"ID":"<IMAGE>","Name":"localhost/o2:latest","Status":"untag",'
        '"Time":"2026-11-28T04:45:54.723761377Z","Type":"image","Attributes":null}',
        "remove": '{"ID":"<IMAGE>","Name":"quay.io/x/y:3","Status":"remove",'
        '"Time":"2026-11-28T04:45:54.925222072Z","Type":"image","Attributes":null}',
        "remove-prune": '{"ID":"<IMAGE>","Status":"remove","Time":"2026-11-28T04:47:00.707724924Z",'
        '"Type":"image","Attributes":null}',
        "loadfromarchive": '{"Name":"s.tar","Status":"loadfromarchive",'
        '"Time":"2026-11-28T04:45:54.79771026Z","Type":"image","Attributes":null}',
        "save": '{"ID":"<IMAGE>","Name":"s.tar","Status":"save",'
        '"Time":"2026-11-28T04:45:54.756992603Z","Type":"image","Attributes":null}',
        "build": '{"Name":"<IMAGE>","Status":"build","Time":"2026-11-28T04:48:27.0464794Z",'
        '"Type":"image","Attributes":null}',
        "create": '{"ID":"<CONTAINER>","Image":"localhost/imp1:latest","Name":"c1",'
        '"Status":"create","Time":"2026-11-28T04:46:20.494876682Z","Type":"container",'
        '"Attributes":{"a":"b"}}',
        "remove-container": '{"ID":"<CONTAINER>","Image":"localhost/imp1:latest","Name":"c2",'
        '"Status":"remove","Time":"2026-11-28T04:48:17.650589093Z","Type":"container",'
        '"Attributes":{}}',
    }.items()
}

MEASURED_PODMAN_TEXT = {
    "tag-imp1": f"2026-11-28 04:45:54.58381629 +0000 UTC image tag {IMAGE} imp1",
    "remove-prune": f"2026-11-28 04:47:00.707724924 +0000 UTC image remove {IMAGE} ",
    "loadfromarchive": "2026-11-28 04:45:54.79771026 +0000 UTC image loadfromarchive  s.tar",
    "create": f"2026-11-28 04:46:20.494876682 +0000 UTC container create {CONTAINER} "
    "(image=localhost/imp1:latest, name=c1, a=b)",
    "remove-container": f"2026-11-28 04:48:17.650589093 +0000 UTC container remove {CONTAINER} "
    "(image=localhost/imp1:latest, name=c2)",
}

MEASURED_DOCKER_JSON = {
    key: fill(text)
    for key, text in {
        "tag": '{"status":"tag","id":"<ID>","Type":"image","Action":"tag","Actor":{"ID":"<ID>",'
        '"Attributes":{"name":"o2:latest"}},"scope":"local","time":1795841204,'
        '"timeNano":1795841204307864997}',
        "untag": '{"status":"untag","id":"<ID>","Type":"image","Action":"untag",'
        '"Actor":{"ID":"<ID>","Attributes":{"name":"<ID>"}},"scope":"local","time":1795841204,'
        '"timeNano":1795841204480941758}',
        "delete": '{"status":"delete","id":"<ID>","Type":"image","Action":"delete",'
        '"Actor":{"ID":"<ID>","Attributes":{"name":"<ID>"}},"scope":"local","time":1795841204,'
        '"timeNano":1795841204495656860}',
        "create": '{"status":"create","id":"<CONTAINER>","from":"imp1","Type":"container",'
        '"Action":"create","Actor":{"ID":"<CONTAINER>","Attributes":{"a":"b","image":"imp1",'
        '"name":"c1"}},"scope":"local","time":1795841204,"timeNano":1795841204447914815}',
        "destroy": '{"status":"destroy","id":"<CONTAINER>","from":"imp1","Type":"container",'
        '"Action":"destroy","Actor":{"ID":"<CONTAINER>","Attributes":{"a":"b","image":"imp1","name":"c1"}},'
        '"scope":"local","time":1795841204,"timeNano":1795841204464558034}',
    }.items()
}
MEASURED_DOCKER_TEXT = (
    f"2026-11-28T04:46:44.307864997Z image tag {DOCKER_ID} (name=o2:latest)",
    f"2026-11-28T04:46:44.464558034Z container destroy {CONTAINER} (a=b, image=imp1, name=c1)",
)

_FRACTION = re.compile(r"\.(\d+)")


def micro(text: str) -> str:
    """A measured time string with its fraction cut to microseconds (zeros trimmed)."""
    return _FRACTION.sub(lambda m: ("." + m.group(1)[:6]).rstrip("0").rstrip("."), text, count=1)


def when(go_time: str) -> datetime:
    """The datetime of a measured RFC 3339 time (microseconds)."""
    return datetime.fromisoformat(micro(go_time))


def when_nanos(nanos: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1000)


def podman_doc(key: str) -> dict[str, Any]:
    doc = json.loads(MEASURED_PODMAN_JSON[key])
    doc["Time"] = micro(doc["Time"])
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def utc_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with _zone(monkeypatch, "UTC"):
        yield


class _zone:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.monkeypatch, self.name = monkeypatch, name

    def __enter__(self) -> None:
        self.monkeypatch.setenv("TZ", self.name)
        time.tzset()

    def __exit__(self, *exc: object) -> None:
        self.monkeypatch.undo()
        time.tzset()


# -- aiopod's own shape ------------------------------------------------------------------------


def test_native_json_round_trips() -> None:
    event = Event(
        EventKind.CREATED,
        "container",
        CONTAINER,
        "c1",
        time=datetime(2026, 11, 28, 4, 46, 20, 494876, tzinfo=UTC),
        attributes={"image": "localhost/imp1:latest", "a": "b"},
        seq=7,
    )
    doc = to_native_json(event)
    assert doc == {
        "seq": 7,
        "action": "create",
        "kind": "Created",
        "type": "container",
        "id": CONTAINER,
        "name": "c1",
        "names": [],
        "time": "2026-11-28T04:46:20.494876Z",
        "attributes": {"image": "localhost/imp1:latest", "a": "b"},
    }
    assert event_from_native_json(json.loads(json.dumps(doc))) == event
    bare = Event(EventKind.DELETED, "image", IMAGE, time=datetime(2026, 1, 1, tzinfo=UTC))
    assert to_native_json(bare)["time"] == "2026-01-01T00:00:00Z"
    assert event_from_native_json(to_native_json(bare)) == bare


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "Nope", "type": "image", "id": "x", "time": "2026-01-01T00:00:00Z"},
        {"kind": "Tagged", "type": "volume", "id": "x", "time": "2026-01-01T00:00:00Z"},
        {"kind": "Tagged", "type": "image", "id": "x", "time": "2026-01-01T00:00:00"},
        {"kind": "Tagged", "type": "image", "id": "x", "time": "yesterday"},
    ],
)
def test_a_malformed_native_object_is_a_value_error(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        event_from_native_json(doc)


# -- times -----------------------------------------------------------------------------------


def test_rfc3339_nano_drops_trailing_zeros_and_writes_z_for_utc() -> None:
    moment = datetime(2026, 11, 28, 4, 45, 54, 583810, tzinfo=UTC)
    assert format_rfc3339_nano(moment) == "2026-11-28T04:45:54.58381Z"
    assert format_rfc3339_nano(moment.replace(microsecond=0)) == "2026-11-28T04:45:54Z"
    assert format_rfc3339_nano(moment, digits=9) == "2026-11-28T04:45:54.583810000Z"


def test_podman_writes_times_in_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Measured: TZ=America/New_York podman tag … logged "2026-11-27T23:46:03.648563336-05:00"
    # and printed "2026-11-27 23:46:03.648563336 -0500 EST".
    event = Event(
        EventKind.TAGGED, "image", IMAGE, "tz1", time=when("2026-11-28T04:46:03.648563336Z")
    )
    with _zone(monkeypatch, "America/New_York"):
        assert to_podman_json(event)["Time"] == "2026-11-27T23:46:03.648563-05:00"  # type: ignore[index]
        assert format_go_time(event.time) == "2026-11-27 23:46:03.648563 -0500 EST"
        assert to_native_json(event)["time"] == "2026-11-28T04:46:03.648563Z"  # always UTC
    with _zone(monkeypatch, "UTC"):
        assert to_podman_json(event)["Time"] == "2026-11-28T04:46:03.648563Z"  # type: ignore[index]
        assert format_go_time(event.time) == "2026-11-28 04:46:03.648563 +0000 UTC"


# -- podman ----------------------------------------------------------------------------------


def _podman_cases() -> dict[str, Event]:
    return {
        "tag": Event(
            EventKind.TAGGED, "image", IMAGE, "o2", time=when("2026-11-28T04:45:54.628500895Z")
        ),
        "tag-imp1": Event(
            EventKind.TAGGED, "image", IMAGE, "imp1", time=when("2026-11-28T04:45:54.58381629Z")
        ),
        "untag": Event(
            EventKind.UNTAGGED,
            "image",
            IMAGE,
            "localhost/o2:latest",
            time=when("2026-11-28T04:45:54.723761377Z"),
        ),
        "remove": Event(
            EventKind.REMOVED,
            "image",
            IMAGE,
            "quay.io/x/y:3",
            time=when("2026-11-28T04:45:54.925222072Z"),
        ),
        "remove-prune": Event(
            EventKind.REMOVED, "image", IMAGE, time=when("2026-11-28T04:47:00.707724924Z")
        ),
        "loadfromarchive": Event(
            EventKind.LOADED,
            "image",
            IMAGE,
            "localhost/imp1:latest",
            time=when("2026-11-28T04:45:54.79771026Z"),
            attributes={"path": "s.tar", "source": "archive"},
        ),
        "save": Event(
            EventKind.SAVED,
            "image",
            IMAGE,
            "localhost/imp1:latest",
            time=when("2026-11-28T04:45:54.756992603Z"),
            attributes={"path": "s.tar"},
        ),
        "build": Event(
            EventKind.BUILT,
            "image",
            IMAGE,
            "localhost/built:1",
            time=when("2026-11-28T04:48:27.0464794Z"),
        ),
        "create": Event(
            EventKind.CREATED,
            "container",
            CONTAINER,
            "c1",
            time=when("2026-11-28T04:46:20.494876682Z"),
            attributes={"image": "localhost/imp1:latest", "external": "false", "a": "b"},
        ),
        "remove-container": Event(
            EventKind.REMOVED,
            "container",
            CONTAINER,
            "c2",
            time=when("2026-11-28T04:48:17.650589093Z"),
            attributes={"image": "localhost/imp1:latest", "external": "false"},
        ),
    }


@pytest.mark.parametrize("key", sorted(MEASURED_PODMAN_JSON))
def test_podman_json_is_podmans_shape(key: str, utc_zone: None) -> None:
    doc = to_podman_json(_podman_cases()[key])
    assert doc is not None
    expected = podman_doc(key)
    assert list(doc) == list(expected)  # same keys, same order
    assert doc == expected
    assert go_json(doc) == micro(MEASURED_PODMAN_JSON[key])


@pytest.mark.parametrize("key", sorted(MEASURED_PODMAN_TEXT))
def test_podman_text_is_podmans_line(key: str, utc_zone: None) -> None:
    assert format_podman_text(_podman_cases()[key]) == micro(MEASURED_PODMAN_TEXT[key])


@pytest.mark.parametrize("kind", [EventKind.DELETED, EventKind.PRUNED])
def test_deletions_under_podman_and_prunes_have_no_podman_event(kind: EventKind) -> None:
    event = Event(kind, "image", IMAGE, policy="podman")
    assert to_podman_json(event) is None
    assert format_podman_text(event) is None


def test_a_deletion_under_another_policy_is_podmans_remove(utc_zone: None) -> None:
    moment = when("2026-11-28T04:45:54.58381629Z")
    event = Event(EventKind.DELETED, "image", IMAGE, "localhost/a:1", time=moment, policy="libpod")
    assert to_podman_json(event) == {
        "ID": IMAGE,
        "Name": "localhost/a:1",
        "Status": "remove",
        "Time": "2026-11-28T04:45:54.583816Z",
        "Type": "image",
        "Attributes": None,
    }


def test_an_import_is_podmans_tag_of_the_given_name(utc_zone: None) -> None:
    # Measured: ``podman import rootfs.tar imp1`` logs only a ``tag`` event.
    moment = when("2026-11-28T04:45:54.58381629Z")
    imported = Event(
        EventKind.LOADED, "image", IMAGE, "imp1", time=moment, attributes={"source": "tarball"}
    )
    assert to_podman_json(imported) == {
        "ID": IMAGE,
        "Name": "imp1",
        "Status": "tag",
        "Time": "2026-11-28T04:45:54.583816Z",
        "Type": "image",
        "Attributes": None,
    }
    assert format_podman_text(imported) == micro(MEASURED_PODMAN_TEXT["tag-imp1"])
    unnamed = Event(EventKind.LOADED, "image", IMAGE, attributes={"source": "tarball"})
    assert to_podman_json(unnamed) is None


def test_libpod_text_uses_aiopods_verbs(utc_zone: None) -> None:
    event = Event(EventKind.DELETED, "image", IMAGE, time=when("2026-11-28T04:47:00.707724924Z"))
    line = format_podman_text(event, status="delete")
    assert line == f"2026-11-28 04:47:00.707724 +0000 UTC image delete {IMAGE} "
    assert format_podman_text(_podman_cases()["tag"], truncate=True) == (
        f"2026-11-28 04:45:54.6285 +0000 UTC image tag {IMAGE[:12]} o2"
    )


# -- Docker ----------------------------------------------------------------------------------


def _docker_cases() -> dict[str, Event]:
    # Docker's container ``image`` attribute is the image as the user gave it.
    container = {"image": "imp1", "a": "b", "external": "false"}
    return {
        "tag": Event(
            EventKind.TAGGED,
            "image",
            IMAGE,
            "docker.io/library/o2:latest",
            time=when_nanos(1795841204307864997),
        ),
        "untag": Event(
            EventKind.UNTAGGED,
            "image",
            IMAGE,
            "docker.io/library/o2:latest",
            time=when_nanos(1795841204480941758),
        ),
        "delete": Event(EventKind.DELETED, "image", IMAGE, time=when_nanos(1795841204495656860)),
        "create": Event(
            EventKind.CREATED,
            "container",
            CONTAINER,
            "c1",
            time=when_nanos(1795841204447914815),
            attributes=container,
        ),
        "destroy": Event(
            EventKind.REMOVED,
            "container",
            CONTAINER,
            "c1",
            time=when_nanos(1795841204464558034),
            attributes=container,
        ),
    }


@pytest.mark.parametrize("key", sorted(MEASURED_DOCKER_JSON))
def test_docker_json_is_dockers_shape(key: str) -> None:
    doc = to_docker_json(_docker_cases()[key])
    assert doc is not None
    expected = json.loads(MEASURED_DOCKER_JSON[key])
    expected["timeNano"] = expected["timeNano"] // 1000 * 1000
    assert list(doc) == list(expected)
    assert doc == expected


def test_docker_text_is_the_docker_clis_line(utc_zone: None) -> None:
    cases = _docker_cases()
    expected = [re.sub(r"(\.\d{6})\d{3}", r"\g<1>000", line) for line in MEASURED_DOCKER_TEXT]
    assert [format_docker_text(cases["tag"]), format_docker_text(cases["destroy"])] == expected


def test_docker_has_no_removed_image_event_and_imports_are_import() -> None:
    assert to_docker_json(Event(EventKind.REMOVED, "image", IMAGE, "x")) is None
    imported = Event(EventKind.LOADED, "image", IMAGE, "x", attributes={"source": "tarball"})
    assert to_docker_json(imported)["Action"] == "import"  # type: ignore[index]


def test_docker_familiar_names() -> None:
    def name(full: str) -> str:
        doc = to_docker_json(Event(EventKind.TAGGED, "image", IMAGE, full))
        assert doc is not None
        return str(doc["Actor"]["Attributes"]["name"])

    assert name("docker.io/library/busybox:1") == "busybox:1"
    assert name("docker.io/team/app:2") == "team/app:2"
    assert name("docker.io/library/a/b:1") == "library/a/b:1"
    assert name("quay.io/x/y:3") == "quay.io/x/y:3"
    assert name("localhost/app:latest") == "localhost/app:latest"


# -- JSON and templates ------------------------------------------------------------------------


def test_go_json_escapes_like_go() -> None:
    assert go_json({"a": "<b>&é\u2028"}) == '{"a":"\\u003cb\\u003e\\u0026é\\u2028"}'


# -- filters ---------------------------------------------------------------------------------

T = datetime(2026, 11, 28, 4, 0, 0, tzinfo=UTC)
EVENTS = [
    Event(EventKind.TAGGED, "image", IMAGE, "o2", time=T, seq=1),
    Event(EventKind.UNTAGGED, "image", IMAGE, "localhost/o2:latest", time=T, seq=2),
    Event(EventKind.REMOVED, "image", IMAGE, "quay.io/x/y:3", time=T, seq=3),
    Event(EventKind.DELETED, "image", "f" * 64, time=T, seq=4),
    Event(
        EventKind.CREATED,
        "container",
        CONTAINER,
        "c1",
        time=T,
        attributes={"image": "localhost/o2:latest", "a": "b"},
        seq=5,
    ),
    Event(EventKind.REMOVED, "container", CONTAINER, "c1", time=T, seq=6),
]


def kept(*filters: str) -> list[int]:
    event_filter = parse_filters(filters)
    return [e.seq for e in EVENTS if event_filter.matches(e)]


def test_event_filter_accepts_podman_docker_and_aiopod_spellings() -> None:
    assert kept("event=tag") == [1]
    assert kept("event=untag", "event=tag") == [1, 2]  # OR within a key
    # remove is the canonical action of a deletion (4), whatever policy wrote it; podman's
    # per-reference marker (3) is rmi.
    assert kept("event=remove") == [4, 6]
    assert kept("event=rmi") == [3]
    assert kept("event=remove", "type=container") == [6]  # AND across keys
    assert kept("event=Untagged") == [2]
    assert kept("event=untagged") == [2]
    assert kept("event=delete") == [4]
    assert kept("event=destroy") == [6]
    assert kept("status=create") == [5]
    assert kept("event=TAG") == []  # statuses are case-sensitive, as in podman
    assert kept("event=refresh") == []  # podman statuses aiopod never logs match nothing


def test_image_container_name_and_label_filters() -> None:
    assert kept("type=image") == [1, 2, 3, 4]
    assert kept("type=volume") == []
    assert kept("image=2e607d") == [1, 2, 3]  # an ID prefix; never container events
    assert kept("image=sha256:ffff") == [4]
    assert kept("image=o2") == [1, 2]  # as given, or normalised
    assert kept("image=localhost/o2:latest") == [1, 2]
    assert kept("image=quay.io/x/y:3") == [3]
    assert kept("container=c1") == [5, 6]
    assert kept("container=fb66") == [5, 6]
    assert kept("name=c1", "name=quay.io/x/y:3") == [3, 5, 6]
    assert kept("label=a") == [5]
    assert kept("label=a=b") == [5]
    assert kept("label=a=c") == []


@pytest.mark.parametrize("text", ["nokey", "=v", "bogus=1"])
def test_malformed_filters_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_filters([text])


def test_event_filter_build_takes_collections_or_single_strings() -> None:
    assert EventFilter.build().is_empty
    one = EventFilter.build(kinds="untag", types="image")
    assert [e.seq for e in EVENTS if one(e)] == [2]


NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "since", "expected"),
    [
        (
            "2026-11-28T04:45:54.58381629Z",
            True,
            datetime(2026, 11, 28, 4, 45, 54, 583816, tzinfo=UTC),
        ),
        ("2026-11-28T04:45:54+01:00", True, datetime(2026, 11, 28, 3, 45, 54, tzinfo=UTC)),
        ("2026-11-28T04:45:54", True, datetime(2026, 11, 28, 4, 45, 54, tzinfo=UTC)),
        ("2026-11-28T04:45:54.5", True, datetime(2026, 11, 28, 4, 45, 54, 500000, tzinfo=UTC)),
        ("2026-11-28", True, datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28Z", True, datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28-02:00", True, datetime(2026, 11, 28, 2, tzinfo=UTC)),
        ("1795841204", True, datetime(2026, 11, 28, 4, 46, 44, tzinfo=UTC)),
        ("1795841204.5", True, datetime(2026, 11, 28, 4, 46, 44, 500000, tzinfo=UTC)),
        ("10m", True, NOW - timedelta(minutes=10)),
        ("1h30m", True, NOW - timedelta(hours=1, minutes=30)),
        ("10m", False, NOW + timedelta(minutes=10)),  # podman: --until 10m is in the future
        ("-10m", False, NOW - timedelta(minutes=10)),
        ("1.5s", True, NOW - timedelta(seconds=1.5)),
        ("300ms", True, NOW - timedelta(milliseconds=300)),
        ("0", True, datetime(1970, 1, 1, tzinfo=UTC)),  # a number before a duration
    ],
)
def test_times_are_read_as_podman_reads_them(text: str, since: bool, expected: datetime) -> None:
    assert parse_time(text, since=since, now=NOW) == expected


@pytest.mark.parametrize("text", ["garbage", "10x", "2026-13-01", "1h-5m", "", "m"])
def test_unreadable_times_are_podmans_error(text: str) -> None:
    with pytest.raises(UsageError, match="unable to interpret time value"):
        parse_time(text, since=True, now=NOW)


def test_go_durations() -> None:
    assert parse_duration("0") == timedelta(0)
    assert parse_duration("2h45m30.5s") == timedelta(hours=2, minutes=45, seconds=30.5)
    assert parse_duration("1µs") == timedelta(microseconds=1)
    with pytest.raises(ValueError):
        parse_duration("5")


def test_since_and_until_filter_on_event_time() -> None:
    event_filter = parse_filters([], since="2026-11-28T03:59:59Z", until="2026-11-28T04:00:01Z")
    assert all(event_filter.matches(e) for e in EVENTS)
    later = parse_filters([], since="2026-11-28T04:00:00Z")
    assert not any(later.matches(e) for e in EVENTS)  # strictly after, as podman


# -- against real podman -----------------------------------------------------------------------


def _rootfs_tar(target: Path) -> Path:
    with tarfile.open(target, "w") as tar:
        for path in sorted((EXAMPLES / "rootfs").rglob("*")):
            tar.add(path, arcname=str(path.relative_to(EXAMPLES / "rootfs")), recursive=False)
    return target


def _podman_events(podman: Podman, *args: str) -> list[dict[str, Any]]:
    base = [
        "podman",
        *podman.storage_args(),
        "--tmpdir",
        str(podman.tmpdir),
        "--events-backend",
        "file",
        "--cgroup-manager",
        "cgroupfs",
    ]
    run_command([*base, *args], env=podman.env())
    out = run_command(
        [*base, "events", "--stream=false", "--format", "json"], env=podman.env()
    ).stdout
    return [d for d in map(json.loads, out.splitlines()) if d["Type"] == "image"]


@pytest.mark.peer("podman")
def test_tag_and_untag_events_match_real_podman(podman: Podman, tmp_path: Path) -> None:
    tarball = _rootfs_tar(tmp_path / "rootfs.tar")
    _podman_events(podman, "import", "-q", str(tarball), "imp1")
    _podman_events(podman, "tag", "imp1", "o2")
    theirs = _podman_events(podman, "untag", "imp1", "o2")

    async def ours() -> list[dict[str, Any]]:
        async with Runtime(tmp_path / "store", policy="podman") as rt:
            await rt.import_image(tarball, "imp1")
            await rt.tag("imp1", "o2")
            await rt.untag("imp1", "o2")
        log = EventLog.for_store(tmp_path / "store")
        docs = [to_podman_json(e) for e in log.read()]
        return [d for d in docs if d is not None]

    mine = anyio.run(ours)
    assert [d["Status"] for d in mine] == [d["Status"] for d in theirs] == ["tag", "tag", "untag"]
    assert [list(d) for d in mine] == [list(d) for d in theirs]
    # tag: the name as typed; untag: the normalised name.
    assert [d["Name"] for d in mine[1:]] == [d["Name"] for d in theirs[1:]]
    assert [d["Name"] for d in mine[1:]] == ["o2", "localhost/o2:latest"]
    for doc in mine + theirs:
        assert re.fullmatch(r"[0-9a-f]{64}", doc["ID"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", doc["Time"])
        assert doc["Attributes"] is None


@pytest.mark.parametrize(
    "event",
    [
        Event(EventKind.TAGGED, "image", IMAGE, 'localhost/ünï:"q"\\<&>', seq=3),
        Event(
            EventKind.DELETED,
            "image",
            IMAGE,
            None,
            time=datetime(2026, 1, 1, tzinfo=UTC),
            seq=9,
            started=datetime(2025, 12, 31, 23, 59, 59, 5, tzinfo=UTC),
            names=("a:1", "b\n:2"),
            digest="sha256:" + "d" * 64,
            policy="podman",
            options={"force": "true", "reason": "rmi"},
            actor=Actor(0, 0, 1, None, 'aiopod rmi "x"', "h\u2028"),
            prev="e" * 64,
        ),
        Event(EventKind.CREATED, "container", CONTAINER, "c", attributes={"k\t": "v\u0001"}),
    ],
)
def test_the_log_s_fast_encoding_is_json_dumps_of_the_native_shape(event: Event) -> None:
    expected = json.dumps(to_native_json(event), ensure_ascii=False, separators=(",", ":"))
    assert encode_native(event) == expected
    assert event_from_native_json(json.loads(expected)) == event
