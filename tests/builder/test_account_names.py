"""The user and group names in ``COPY``'s content summary follow the host as buildah's do.

buildah's ``dir:<hex>``/``file:<hex>`` hashes tar headers that name each file's owner, and
those names come from the host's name service as much as from the context (see
:mod:`aiopod.builder.sources.account_names`).  An earlier aiopod modelled them on one machine and
disagreed with buildah on every other.  These tests change the host under both tools, in
a private mount namespace where the host's ``/etc/nsswitch.conf`` and ``/etc/passwd`` are
replaced by the test's own files, and require aiopod's summary to be buildah's in each.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from peers import require_peer

from aiopod.builder.sources.account_names import lookup_account_names

PROBE = Path(__file__).with_name("account_names_probe.py")

#: Files of each context and their owners (uid, gid).  65534 is the id some name
#: services make up a name for; 4242 is one no file names.
OWNERS = {"a": (0, 0), "b": (65534, 65534), "c": (4242, 4242), "d": (1, 4), "sub/e": (0, 4)}
#: What ``etc/passwd`` and ``etc/group`` of the "named" context say.
CONTEXT_PASSWD = "toor:x:0:0::/root:/bin/sh\nctxuser:x:1:1::/:/bin/sh\nctxnum:x:4242:1::/:/bin/sh\n"
CONTEXT_GROUP = "wheel:x:0:\nctxgroup:x:4:\n"
SOURCES = ["a", "b", "c", "d", "sub", "."]


def _context(path: Path, *, named: bool) -> Path:
    for name, (uid, gid) in OWNERS.items():
        file = path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"{name}\n")
        os.chown(file, uid, gid)
    if named:
        (path / "etc").mkdir()
        (path / "etc/passwd").write_text(CONTEXT_PASSWD)
        (path / "etc/group").write_text(CONTEXT_GROUP)
    return path


def _host_passwd(path: Path, root_name: str) -> Path:
    """The host's ``/etc/passwd`` with uid 0 called *root_name*."""
    lines = [
        line
        for line in Path("/etc/passwd").read_text().splitlines()
        if line.split(":")[2:3] != ["0"]
    ]
    path.write_text(f"{root_name}:x:0:0:root:/root:/bin/sh\n" + "\n".join(lines) + "\n")
    return path


def _probe(tmp_path: Path, binds: dict[str, Path]) -> dict[str, dict[str, list[str]]]:
    """Both tools' summaries of every source of both contexts, with *binds* over the host's
    files (in a private mount namespace)."""
    work = tmp_path / "work"
    work.mkdir()
    contexts = {
        str(_context(tmp_path / "bare", named=False)): SOURCES,
        str(_context(tmp_path / "named", named=True)): SOURCES,
    }
    spec = work / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "work": str(work),
                "binds": {target: str(source) for target, source in binds.items()},
                "contexts": contexts,
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, str(PROBE), str(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, dict[str, list[str]]] = json.loads(proc.stdout)
    return result


def _assert_same_as_buildah(result: dict[str, dict[str, list[str]]]) -> None:
    for ctx, both in result.items():
        expected = [
            f"/bin/sh -c #(nop) COPY {d} in /dest{i}/ " for i, d in enumerate(both["aiopod"])
        ]
        assert both["buildah"] == expected, ctx


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces)")


@needs_root
@pytest.mark.peer("buildah")
def test_names_as_buildah_on_this_host(tmp_path: Path) -> None:
    require_peer("buildah")
    _assert_same_as_buildah(_probe(tmp_path, {}))


@needs_root
@pytest.mark.peer("buildah")
def test_names_follow_the_hosts_name_service_as_buildah(tmp_path: Path) -> None:
    """A host whose name service is ``files`` only and whose uid 0 is called ``admin``,
    then the same with uid 0 called ``root``: the summaries of root-owned files change
    with the host, and aiopod's change as buildah's."""
    require_peer("buildah")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
    admin = _host_passwd(tmp_path / "passwd-admin", "admin")
    root = _host_passwd(tmp_path / "passwd-root", "root")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    as_admin = _probe(tmp_path / "a", {"/etc/nsswitch.conf": nsswitch, "/etc/passwd": admin})
    as_root = _probe(tmp_path / "b", {"/etc/nsswitch.conf": nsswitch, "/etc/passwd": root})
    _assert_same_as_buildah(as_admin)
    _assert_same_as_buildah(as_root)
    # The host made a difference: file a (uid 0) is named after the host's uid 0.
    bare_a = str(tmp_path / "a" / "bare"), str(tmp_path / "b" / "bare")
    assert as_admin[bare_a[0]]["aiopod"][0] != as_root[bare_a[1]]["aiopod"][0]


@needs_root
def test_context_files_name_other_ids(tmp_path: Path) -> None:
    """The caller's own uid is named as on the host (buildah's ``user.Current()``); other
    ids by the root's own files, inside it."""
    ctx = _context(tmp_path / "named", named=True)
    names = lookup_account_names(ctx, [1, 4242, 0], [0, 4, 4343])
    assert names.user(0) == pwd.getpwuid(0).pw_name  # not "toor"
    assert names.user(1) == "ctxuser"
    assert names.user(4242) == "ctxnum"
    assert names.group(4) == "ctxgroup"
    assert names.group(0) == "wheel"
    assert names.group(4343) == ""


def test_nothing_to_name_starts_no_process(tmp_path: Path) -> None:
    names = lookup_account_names(tmp_path, [], [])
    assert (names.users, names.groups) == ({}, {})
