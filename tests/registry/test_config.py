"""registries.conf: which files are read and how they merge, and the candidates a pull
tries, checked against the names podman 4.3 tries ("Trying to pull ...") and the
registries it asks (mirrors first), with fake registries that know no image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from peers import Podman

from aiopod import ConfigurationError, InvalidReference, RegistryBlocked, ShortNameNotResolved
from aiopod.transports.registry.config import (
    load_registries_conf,
    push_target,
    resolve_pull,
)
from registry.fake_registry import FakeRegistry, serve_registry

DIGEST = "sha256:" + "ab" * 32


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(text: str, conf_path: Path) -> list[str]:
    """The candidates for *text* under *conf_path* alone (no drop-ins)."""
    empty = conf_path.parent / "none"
    conf = load_registries_conf(conf_path, home=empty, system_dir=empty)
    return [str(c.reference) for c in resolve_pull(text, conf).candidates]


# --------------------------------------------------------------------------------------------
# against podman


def podman_tries(podman: Podman, conf: Path, reference: str) -> tuple[list[str], str]:
    env = {**podman.env(), "CONTAINERS_REGISTRIES_CONF": str(conf)}
    from peers import run

    proc = run(["podman", *podman.storage_args(), "pull", reference], check=False, env=env)
    assert proc.returncode == 125, proc
    return re.findall(r"Trying to pull (\S+)\.\.\.", proc.stderr), proc.stderr


@pytest.mark.peer("podman")
@pytest.mark.parametrize(
    "reference",
    ["app", "app:1", "team/app", f"app@{DIGEST}", f"app:1@{DIGEST}", "myalias", "myalias:2"],
)
def test_short_names_resolve_to_the_names_podman_tries(
    tmp_path: Path, podman: Podman, fake: FakeRegistry, other_host: FakeRegistry, reference: str
) -> None:
    conf = write(
        tmp_path / "registries.conf",
        f'unqualified-search-registries = ["{fake.address}", "{other_host.address}"]\n'
        f'[[registry]]\nlocation = "{fake.address}"\ninsecure = true\n'
        f'[[registry]]\nlocation = "{other_host.address}"\ninsecure = true\n'
        f'[aliases]\n"myalias" = "{fake.address}/aliased/app"\n',
    )
    tried, stderr = podman_tries(podman, conf, reference)
    plan = resolve_pull(reference, load_registries_conf(conf, home=tmp_path))
    assert [str(c.reference) for c in plan.candidates] == tried
    if plan.search_origin is not None:
        resolving = f'Resolving "{plan.short_name}" using unqualified-search registries ({conf})'
        assert resolving in stderr
    if plan.alias_origin is not None:
        assert f'Resolved "{plan.short_name}" as an alias ({conf})' in stderr
    assert all(s.insecure for c in plan.candidates for s in c.sources)


@pytest.mark.peer("podman")
def test_a_blocked_registry_fails_as_podman_says(
    tmp_path: Path, podman: Podman, fake: FakeRegistry
) -> None:
    conf = write(
        tmp_path / "registries.conf",
        f'[[registry]]\nlocation = "{fake.address}"\nblocked = true\n',
    )
    _, stderr = podman_tries(podman, conf, f"{fake.address}/team/app")
    [candidate] = resolve_pull(f"{fake.address}/team/app", load_registries_conf(conf)).candidates
    assert isinstance(candidate.blocked, RegistryBlocked)
    message = f"initializing source docker://{fake.address}/team/app:latest: {candidate.blocked}"
    assert f"Error: {message}\n" in stderr
    assert fake.requests == []


@pytest.mark.peer("podman")
@pytest.mark.parametrize("by_digest", [False, True])
def test_mirrors_are_tried_first_as_podman_does(
    tmp_path: Path, podman: Podman, fake: FakeRegistry, other_host: FakeRegistry, by_digest: bool
) -> None:
    with serve_registry("127.0.0.1") as digest_mirror:
        conf = write(
            tmp_path / "registries.conf",
            f'[[registry]]\nprefix = "example.test/team"\nlocation = "{fake.address}/moved"\n'
            "insecure = true\n"
            f'[[registry.mirror]]\nlocation = "{other_host.address}/mirrored"\ninsecure = true\n'
            f'[[registry.mirror]]\nlocation = "{digest_mirror.address}/by-digest"\n'
            'insecure = true\npull-from-mirror = "digest-only"\n',
        )
        reference = f"example.test/team/app{'@' + DIGEST if by_digest else ':1'}"
        podman_tries(podman, conf, reference)
        asked = [
            f"{registry.address}{request.path}"
            for registry in (other_host, digest_mirror, fake)
            for request in registry.requests
            if "/manifests/" in request.path
        ]
    [candidate] = resolve_pull(reference, load_registries_conf(conf)).candidates
    refs = [s.reference for s in candidate.sources]
    expected = [f"{r.domain}/v2/{r.path}/manifests/{r.digest or r.tag}" for r in refs]
    assert sorted(asked) == sorted(expected)
    assert [s.mirror for s in candidate.sources] == [True] * (len(expected) - 1) + [False]
    assert str(candidate.sources[-1].reference).startswith(f"{fake.address}/moved/app")


# --------------------------------------------------------------------------------------------
# the files


def test_drop_ins_update_the_main_file_in_name_order(tmp_path: Path) -> None:
    main = write(
        tmp_path / "registries.conf",
        'unqualified-search-registries = ["a.test"]\n'
        '[[registry]]\nlocation = "a.test"\ninsecure = true\n',
    )
    drop_ins = tmp_path / "registries.conf.d"
    write(drop_ins / "20-b.conf", '[[registry]]\nlocation = "a.test"\nblocked = true\n')
    write(drop_ins / "10-a.conf", 'unqualified-search-registries = ["b.test", "c.test"]\n')
    write(drop_ins / "30-ignored.txt", "not toml [")
    conf = load_registries_conf(main, home=tmp_path / "home", system_dir=drop_ins)
    assert conf.search_registries == ("b.test", "c.test")
    assert conf.search_origin == str(drop_ins / "10-a.conf")
    [entry] = conf.registries
    assert entry.blocked and not entry.insecure  # the later entry replaced the whole entry


def test_the_user_file_replaces_the_system_file_and_its_drop_ins(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(home / ".config/containers/registries.conf", 'unqualified-search-registries = ["u.test"]')
    system_dir = tmp_path / "system.d"
    write(system_dir / "a.conf", 'unqualified-search-registries = ["s.test"]')
    conf = load_registries_conf(home=home, environ={}, system_dir=system_dir)
    assert conf.search_registries == ("u.test",)
    env = {"CONTAINERS_REGISTRIES_CONF": str(write(tmp_path / "env.conf", ""))}
    conf = load_registries_conf(home=home, environ=env, system_dir=system_dir)
    assert conf.search_registries == ("s.test",)
    assert conf.path == env["CONTAINERS_REGISTRIES_CONF"]


def test_the_old_format_is_read(tmp_path: Path) -> None:
    conf = load_registries_conf(
        write(
            tmp_path / "v1.conf",
            '[registries.search]\nregistries = ["s.test"]\n'
            '[registries.insecure]\nregistries = ["i.test"]\n'
            '[registries.block]\nregistries = ["b.test"]\n',
        ),
        home=tmp_path,
    )
    assert conf.search_registries == ("s.test",)
    assert conf.find("i.test/x") is not None and conf.find("i.test/x").insecure  # type: ignore[union-attr]
    assert resolve_pull("b.test/x", conf).candidates[0].blocked is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[registry]]\nlocation = 'https://a.test'\n", "URI schemes are not supported"),
        ("[[registry]]\nprefix = 'a.test/x'\n", "invalid prefix"),
        ("unqualified-search-registries = 'a'\n", "not a list of strings"),
        ("[registries.search]\nregistries=['a']\n[[registry]]\nlocation='b'\n", "mixing"),
        (
            "[[registry]]\nlocation = 'a.test'\n[[registry]]\nlocation = 'a.test'\n",
            "more than once",
        ),
        ("not [toml", "loading registries configuration"),
    ],
)
def test_a_malformed_file_is_a_configuration_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.conf", text)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        load_registries_conf(path, home=tmp_path)
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------------------------
# resolving


def test_fully_qualified_and_docker_references_are_one_candidate(tmp_path: Path) -> None:
    conf = write(tmp_path / "r.conf", 'unqualified-search-registries = ["s.test"]')
    assert names("quay.io/x/y", conf) == ["quay.io/x/y:latest"]
    assert names("docker://busybox", conf) == ["docker.io/library/busybox:latest"]
    assert names("docker.io/busybox:1", conf) == ["docker.io/library/busybox:1"]
    assert names(f"localhost/app:1@{DIGEST}", conf) == [f"localhost/app@{DIGEST}"]
    assert names("busybox", conf) == ["s.test/busybox:latest"]


def test_a_short_name_without_search_registries_fails_as_podman(tmp_path: Path) -> None:
    conf = write(tmp_path / "empty.conf", "")
    with pytest.raises(ShortNameNotResolved) as caught:
        names("nothere", conf)
    assert str(caught.value) == (
        'short-name "nothere" did not resolve to an alias and no unqualified-search '
        f'registries are defined in "{conf}"'
    )


def test_other_transports_and_malformed_names_are_refused(tmp_path: Path) -> None:
    conf = write(tmp_path / "r.conf", "")
    for text in ("oci:/tmp/x", "Bad::name", "docker://A"):
        with pytest.raises(InvalidReference):
            names(text, conf)


def test_a_push_goes_to_the_name_itself_with_the_registrys_settings(tmp_path: Path) -> None:
    conf = load_registries_conf(
        write(
            tmp_path / "r.conf",
            '[[registry]]\nprefix = "a.test"\nlocation = "elsewhere.test"\ninsecure = true\n'
            '[[registry.mirror]]\nlocation = "m.test"\n',
        ),
        home=tmp_path,
    )
    target = push_target("a.test/team/app", conf)
    assert str(target.reference) == "a.test/team/app:latest"
    assert target.insecure and target.blocked is None
