"""Properties of the inputs a user hands aiopod, beyond the parsers' own properties.

``tests/test_reference.py``, ``tests/builder/test_parser.py`` and
``tests/test_archive_properties.py`` check the reference parser, the Dockerfile parser
and the archive readers on their own.  Here the same inputs go in where a user gives
them, and only documented errors (:class:`~aiopod.errors.AiopodError`) may come out:

* a Dockerfile's *bytes* (any encoding, NULs, a byte-order mark) through
  ``read_dockerfile`` and the parser;
* every metadata instruction of a parsed Dockerfile applied to an image config (the
  values of HEALTHCHECK, STOPSIGNAL, USER, EXPOSE, ... are the user's text);
* any text as the reference or name of the runtime's ``tag``, ``untag``, ``get_image``,
  ``inspect_image``, ``remove_images``, ``create_working_container`` and
  ``remove_containers``, on a store holding images and a container (these resolve
  references against the store, past the parser).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import pytest
from hypothesis import example, given, settings, strategies as st
from imagefactory import make_image, write_docker_archive

from aiopod import Runtime
from aiopod.builder.dockerfile.files import read_dockerfile
from aiopod.builder.dockerfile.instructions import apply_metadata
from aiopod.builder.dockerfile.parser import parse_dockerfile
from aiopod.builder.image_config import ImageConfig
from aiopod.errors import AiopodError

_KEYWORDS = [
    "FROM",
    "ENV",
    "LABEL",
    "CMD",
    "ENTRYPOINT",
    "USER",
    "WORKDIR",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
    "MAINTAINER",
    "ARG",
]
_VALUES = st.sampled_from(
    [
        "",
        "x",
        "--interval=5s CMD true",
        "--interval=-1s CMD true",
        "--retries=x CMD true",
        "--timeout=1e999s CMD x",
        "NONE",
        "CMD",
        "SIGKILL",
        "RTMIN+3",
        "999999999999999999999",
        '["a", "b"]',
        '["a", 1]',
        "[",
        "a=b c=d",
        "a=",
        "=b",
        "80/tcp 53/udp",
        "65536/xyz",
        "${X:-y}",
        "${X:?unset}",
        "$(",
        "\\",
        "'unterminated",
    ]
) | st.text(max_size=20)


@given(st.binary(max_size=300))
@example(b"\xff\xfeF\x00R\x00O\x00M\x00")  # UTF-16 with its byte-order mark
@example(b"\xef\xbb\xbfFROM scratch\n")  # UTF-8 with its byte-order mark
@example(b"FROM scratch\nLABEL a=\xe9\n")  # Latin-1
@example(b"FROM scratch\x00\n")
def test_a_dockerfile_of_any_bytes_fails_only_as_documented(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        context = Path(directory)
        (context / "Dockerfile").write_bytes(data)
        with contextlib.suppress(AiopodError):
            _, text = read_dockerfile(context, None)
            parse_dockerfile(text)


@given(st.lists(st.tuples(st.sampled_from(_KEYWORDS), _VALUES), min_size=1, max_size=6))
def test_metadata_instructions_of_any_values_fail_only_as_documented(
    lines: list[tuple[str, str]],
) -> None:
    text = "FROM scratch\n" + "\n".join(f"{keyword} {value}" for keyword, value in lines)
    with contextlib.suppress(AiopodError):
        dockerfile = parse_dockerfile(text)
        config = ImageConfig()
        for instruction in dockerfile.instructions():
            if instruction.keyword in {"FROM", "ARG", "ONBUILD"}:
                continue
            apply_metadata(config, instruction, {"X": "1"}, cmd_set_in_stage=False)


ONE = make_image("localhost/one:1", "localhost/one:2", seed="one")

_TEXT = st.text(max_size=40) | st.sampled_from(
    [
        "one",
        "one:1",
        "localhost/one:1",
        "docker.io/library/one",
        "one@sha256:" + "0" * 64,
        "sha256:" + ONE.id,
        ONE.id[:12],
        ONE.id[:3],
        ONE.id.upper(),
        "containers-storage:one",
        "oci:/tmp:x",
        "localhost/one:1@sha256:" + "f" * 64,
        "-",
        "",
        " ",
        "a" * 300,
    ]
)


@pytest.fixture(scope="module")
def portal_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Runtime]]:
    root = tmp_path_factory.mktemp("references")
    archive = write_docker_archive(root / "one.tar", [ONE])
    with anyio.from_thread.start_blocking_portal() as portal:
        rt = Runtime(root / "store")
        portal.call(rt.open)
        portal.call(rt.load, archive)
        portal.call(rt.create_working_container, ONE.id)
        try:
            yield portal, rt
        finally:
            portal.call(rt.aclose)


@settings(max_examples=150)
@given(reference=_TEXT, name=_TEXT)
def _lookups_fail_only_as_documented(
    portal: anyio.from_thread.BlockingPortal, rt: Runtime, reference: str, name: str
) -> None:
    calls = [
        lambda: rt.get_image(reference),
        lambda: rt.inspect_image(reference),
        lambda: rt.tag(reference, name),
        lambda: rt.untag(reference, name),
        lambda: rt.remove_images([reference], dry_run=True),
        lambda: rt.remove_images([reference], force=True, dry_run=True),
        lambda: rt.remove_containers([reference]),
        lambda: rt.image_tree(reference),
        lambda: rt.history(reference),
    ]
    for call in calls:
        with contextlib.suppress(AiopodError):
            portal.call(call)


def test_any_reference_or_name_through_the_api_fails_only_as_documented(
    portal_rt: tuple[anyio.from_thread.BlockingPortal, Runtime],
) -> None:
    portal, rt = portal_rt
    _lookups_fail_only_as_documented(portal, rt)


def test_a_dockerfile_that_is_not_utf8_is_read_with_replacement_characters(
    tmp_path: Path,
) -> None:
    """Found by the bytes property: ``read_text`` raised ``UnicodeDecodeError``."""
    (tmp_path / "Dockerfile").write_bytes(b"FROM scratch\nLABEL a=\xe9\n")
    _, text = read_dockerfile(tmp_path, None)
    assert text == "FROM scratch\nLABEL a=\ufffd\n"
