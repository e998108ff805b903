"""``registries.conf`` as podman reads it, and where a reference is pulled from.

The files (containers/image's ``sysregistriesv2``, as podman 4.3 uses it):

* the main file: ``$CONTAINERS_REGISTRIES_CONF`` when set; else
  ``~/.config/containers/registries.conf`` when it exists (and then the system's
  drop-in directory is not read); else ``/etc/containers/registries.conf``.  A main file
  that does not exist is an empty configuration;
* then the drop-ins, ``*.conf`` files in name order: ``/etc/containers/registries.conf.d``
  (unless the user's main file is used), then ``~/.config/containers/registries.conf.d``.

Each later file updates what the earlier ones said: a ``[[registry]]`` replaces the entry
with the same ``prefix``; ``unqualified-search-registries`` replaces the list when the
file sets it; ``[aliases]`` replace aliases of the same name.  Both formats are read: the
current one (``unqualified-search-registries``, ``[[registry]]`` with ``location``,
``prefix``, ``insecure``, ``blocked``, ``mirror-by-digest-only`` and
``[[registry.mirror]]`` with ``location``, ``insecure``, ``pull-from-mirror``; short-name
``[aliases]``) and the old one (``[registries.search]``, ``[registries.insecure]``,
``[registries.block]``, each a ``registries`` list); one file mixing them is an error.

:func:`resolve_pull` turns what a user typed into the places a pull tries, in order;
:func:`push_target` says how to reach the registry a push writes to.

Reading the files is blocking file I/O: :func:`read_registries_conf` does it in a worker
thread (it may be cancelled while it waits; the thread's work is only reads), and
:func:`load_registries_conf` is the same work for callers already in a thread.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread

from aiopod._reference import (
    DEFAULT_TAG,
    Reference,
    normalize_docker,
    parse_reference,
    split_transport,
)
from aiopod.errors import (
    ConfigurationError,
    InvalidReference,
    RegistryBlocked,
    ShortNameNotResolved,
)
from aiopod.transports.registry.conffiles import read_config_file

__all__ = (
    "SYSTEM_REGISTRIES_CONF",
    "SYSTEM_REGISTRIES_CONF_DIR",
    "Mirror",
    "PullCandidate",
    "PullPlan",
    "PullSource",
    "PushTarget",
    "RegistriesConf",
    "RegistryEntry",
    "load_registries_conf",
    "push_target",
    "read_registries_conf",
    "resolve_pull",
)

SYSTEM_REGISTRIES_CONF = Path("/etc/containers/registries.conf")
SYSTEM_REGISTRIES_CONF_DIR = Path("/etc/containers/registries.conf.d")
_USER_CONF = Path(".config/containers/registries.conf")
_USER_CONF_DIR = Path(".config/containers/registries.conf.d")

#: The largest configuration file read (a registries.conf is a few kilobytes).
MAX_CONF_SIZE = 1 << 20

PullFromMirror = Literal["all", "digest-only", "tag-only"]


@dataclass(frozen=True, slots=True)
class Mirror:
    """A ``[[registry.mirror]]``: where else the registry's images may be pulled from."""

    location: str
    insecure: bool = False
    pull_from_mirror: PullFromMirror = "all"


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A ``[[registry]]``: the references under ``prefix`` live at ``location``."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Mirror, ...] = ()

    def matches(self, name: str) -> int:
        """How many characters of *name* (``host/path[:tag][@digest]``) the prefix
        matches, or -1: the prefix must end at a ``/``, ``:`` or ``@`` of the name (or at
        its end); ``*.example.com`` matches every host under ``example.com``."""
        prefix = self.prefix
        if prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return len(host) if host.endswith(prefix[1:]) else -1
        if not name.startswith(prefix):
            return -1
        if len(name) == len(prefix) or name[len(prefix)] in "/:@":
            return len(prefix)
        return -1


@dataclass(frozen=True, slots=True)
class RegistriesConf:
    """The merged configuration, and where it came from (podman names these files in its
    messages): ``path`` the main file, ``dir_path`` the drop-in directory podman names,
    ``search_origin`` the file that set the search registries."""

    search_registries: tuple[str, ...] = ()
    registries: tuple[RegistryEntry, ...] = ()
    aliases: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    path: str = str(SYSTEM_REGISTRIES_CONF)
    dir_path: str = str(SYSTEM_REGISTRIES_CONF_DIR)
    search_origin: str = ""

    def find(self, name: str) -> RegistryEntry | None:
        """The entry whose prefix matches *name* longest, or ``None``."""
        best: RegistryEntry | None = None
        best_length = -1
        for entry in self.registries:
            length = entry.matches(name)
            if length > best_length:
                best, best_length = entry, length
        return best

    def blocked_error(self, entry: RegistryEntry) -> RegistryBlocked:
        """podman's error for a pull or push that meets a blocked registry."""
        return RegistryBlocked(
            f"registry {entry.prefix} is blocked in {self.path} or {self.dir_path}"
        )


@dataclass(frozen=True, slots=True)
class PullSource:
    """One place to pull from: ``reference`` (``host/path:tag`` or ``@digest``) on a
    registry reached with or without TLS verification (``insecure``: plain HTTP allowed,
    then HTTPS without verification); ``mirror`` for a ``[[registry.mirror]]``."""

    reference: Reference
    insecure: bool = False
    mirror: bool = False


@dataclass(frozen=True, slots=True)
class PullCandidate:
    """A name the pull tries (podman prints ``Trying to pull NAME...``) and its sources,
    mirrors first.  ``blocked`` is the error to raise instead when the registry is
    blocked (podman reports it when it tries the candidate)."""

    reference: Reference
    sources: tuple[PullSource, ...]
    blocked: RegistryBlocked | None = None


@dataclass(frozen=True, slots=True)
class PullPlan:
    """Where a pull looks, in order.  ``search_origin`` is set when a short name was
    expanded with the search registries (podman prints ``Resolving "NAME" using
    unqualified-search registries (FILE)``), ``alias_origin`` when a short-name alias
    resolved it (``Resolved "NAME" as an alias (FILE)``); ``short_name`` is then the
    NAME of those lines (the short name without its tag or digest)."""

    candidates: tuple[PullCandidate, ...]
    search_origin: str | None = None
    alias_origin: str | None = None
    short_name: str | None = None


@dataclass(frozen=True, slots=True)
class PushTarget:
    """Where a push writes: ``reference`` (normalised, with a tag or digest), and whether
    the registry is ``insecure``; ``blocked`` as for :class:`PullCandidate`."""

    reference: Reference
    insecure: bool = False
    blocked: RegistryBlocked | None = None


# --------------------------------------------------------------------------- reading


def _parse_location(value: object, file: Path, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"loading registries configuration {file}: {what} is not a string")
    location = value.rstrip("/")
    if location.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"loading registries configuration {file}: invalid location '{value}': "
            "URI schemes are not supported"
        )
    return location


def _bool(table: Mapping[str, Any], key: str, file: Path) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"loading registries configuration {file}: {key} is not a boolean")
    return value


def _strings(value: object, file: Path, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(
            f"loading registries configuration {file}: {what} is not a list of strings"
        )
    return tuple(value)


def _mirror(table: object, file: Path) -> Mirror:
    if not isinstance(table, dict):
        raise ConfigurationError(
            f"loading registries configuration {file}: a mirror is not a table"
        )
    location = _parse_location(table.get("location", ""), file, "mirror location")
    if not location:
        raise ConfigurationError(
            f"loading registries configuration {file}: invalid location: cannot be empty"
        )
    modes: dict[object, PullFromMirror] = {
        "": "all",
        "all": "all",
        "digest-only": "digest-only",
        "tag-only": "tag-only",
    }
    mode = table.get("pull-from-mirror", "")
    if mode not in modes:
        raise ConfigurationError(
            f"loading registries configuration {file}: unsupported pull-from-mirror {mode!r}"
        )
    return Mirror(location, _bool(table, "insecure", file), modes[mode])


def _registry(table: object, file: Path) -> RegistryEntry:
    if not isinstance(table, dict):
        raise ConfigurationError(
            f"loading registries configuration {file}: a [[registry]] is not a table"
        )
    location = _parse_location(table.get("location", ""), file, "location")
    prefix = _parse_location(table.get("prefix", ""), file, "prefix") or location
    if not prefix:
        raise ConfigurationError(
            f"loading registries configuration {file}: invalid location: cannot be empty"
        )
    if not location and not prefix.startswith("*."):
        raise ConfigurationError(
            f"loading registries configuration {file}: invalid prefix '{prefix}' for empty "
            "location, should be in the format: *.example.com"
        )
    mirrors = table.get("mirror", [])
    if not isinstance(mirrors, list):
        raise ConfigurationError(f"loading registries configuration {file}: mirror is not a list")
    return RegistryEntry(
        prefix=prefix,
        location=location,
        insecure=_bool(table, "insecure", file),
        blocked=_bool(table, "blocked", file),
        mirror_by_digest_only=_bool(table, "mirror-by-digest-only", file),
        mirrors=tuple(_mirror(m, file) for m in mirrors),
    )


@dataclass(slots=True)
class _Parsed:
    search: tuple[str, ...] | None = None
    registries: list[RegistryEntry] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)


def _parse_v1(v1: object, file: Path) -> _Parsed:
    if not isinstance(v1, dict):
        raise ConfigurationError(
            f"loading registries configuration {file}: [registries] is not a table"
        )
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("search", "insecure", "block"):
        table = v1.get(key, {})
        if not isinstance(table, dict):
            raise ConfigurationError(
                f"loading registries configuration {file}: [registries.{key}] is not a table"
            )
        lists[key] = _strings(table.get("registries", []), file, f"registries.{key}")
    parsed = _Parsed(search=lists["search"] or None)
    entries: dict[str, RegistryEntry] = {}
    for key in ("insecure", "block"):
        for location in lists[key]:
            location = _parse_location(location, file, f"registries.{key}")
            entry = entries.get(location, RegistryEntry(location, location))
            if key == "insecure":
                entries[location] = replace(entry, insecure=True)
            else:
                entries[location] = replace(entry, blocked=True)
    parsed.registries = list(entries.values())
    return parsed


def _parse_file(file: Path, data: bytes) -> _Parsed:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"loading registries configuration {file}: {exc}") from None
    v1 = document.get("registries")
    v2_keys = {"registry", "unqualified-search-registries", "aliases"} & document.keys()
    if v1 is not None and v2_keys:
        raise ConfigurationError(
            f"loading registries configuration {file}: mixing sysregistry v1/v2 is not supported"
        )
    if v1 is not None:
        return _parse_v1(v1, file)
    parsed = _Parsed()
    if "unqualified-search-registries" in document:
        parsed.search = _strings(
            document["unqualified-search-registries"], file, "unqualified-search-registries"
        )
    registries = document.get("registry", [])
    if not isinstance(registries, list):
        raise ConfigurationError(f"loading registries configuration {file}: registry is not a list")
    seen: set[str] = set()
    for table in registries:
        entry = _registry(table, file)
        if entry.prefix in seen:
            raise ConfigurationError(
                f"loading registries configuration {file}: registry with prefix "
                f"{entry.prefix!r} defined more than once"
            )
        seen.add(entry.prefix)
        parsed.registries.append(entry)
    aliases = document.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ConfigurationError(
            f"loading registries configuration {file}: [aliases] must map names to strings"
        )
    parsed.aliases = dict(aliases)
    return parsed


def _read(file: Path) -> bytes | None:
    return read_config_file(file, MAX_CONF_SIZE, f"loading registries configuration {file}")


def _drop_ins(directory: Path) -> list[Path]:
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.name.endswith(".conf"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise ConfigurationError(
            f"loading registries configuration {directory}: {exc.strerror or exc}"
        ) from None
    return [directory / name for name in names]


def load_registries_conf(
    path: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    system_dir: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF_DIR,
) -> RegistriesConf:
    """Read and merge the configuration, as podman does (blocking; see the module).

    *path* chooses the main file (else ``$CONTAINERS_REGISTRIES_CONF``, the user's file,
    the system's); *home* is the user's home (default ``$HOME``); *system_dir* the system
    drop-in directory.

    :raises ~aiopod.errors.ConfigurationError: a file is malformed or cannot be read.
    """
    env = os.environ if environ is None else environ
    home_dir = Path(home if home is not None else env.get("HOME") or Path.home())
    user_conf = home_dir / _USER_CONF
    dirs: list[Path]
    if path is None:
        path = env.get("CONTAINERS_REGISTRIES_CONF") or None
    if path is not None:
        main, dirs = Path(path), [Path(system_dir), home_dir / _USER_CONF_DIR]
    elif user_conf.exists():
        main, dirs = user_conf, [home_dir / _USER_CONF_DIR]
    else:
        main, dirs = SYSTEM_REGISTRIES_CONF, [Path(system_dir), home_dir / _USER_CONF_DIR]
    search: tuple[str, ...] = ()
    search_origin = ""
    registries: dict[str, RegistryEntry] = {}
    aliases: dict[str, tuple[str, str]] = {}
    files = [main, *(f for d in dirs for f in _drop_ins(d))]
    for file in files:
        data = _read(file)
        if data is None:
            continue
        parsed = _parse_file(file, data)
        if parsed.search is not None:
            search, search_origin = parsed.search, str(file)
        for entry in parsed.registries:
            registries[entry.prefix] = entry
        for name, value in parsed.aliases.items():
            aliases[name] = (value, str(file))
    return RegistriesConf(
        search_registries=search,
        registries=tuple(registries[p] for p in sorted(registries)),
        aliases=aliases,
        path=str(main),
        dir_path=str(dirs[-1]),
        search_origin=search_origin,
    )


async def read_registries_conf(
    path: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    system_dir: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF_DIR,
) -> RegistriesConf:
    """:func:`load_registries_conf` in a worker thread (cancellable; reads only)."""
    return await anyio.to_thread.run_sync(
        lambda: load_registries_conf(path, home=home, environ=environ, system_dir=system_dir),
        abandon_on_cancel=True,
    )


# --------------------------------------------------------------------------- resolving


def _sources(conf: RegistriesConf, ref: Reference) -> PullCandidate:
    entry = conf.find(str(ref))
    if entry is None:
        return PullCandidate(ref, (PullSource(ref),))
    if entry.blocked:
        return PullCandidate(ref, (), conf.blocked_error(entry))
    digested = ref.digest is not None
    sources: list[PullSource] = []
    for mirror in entry.mirrors:
        if entry.mirror_by_digest_only and not digested:
            continue
        if mirror.pull_from_mirror == ("tag-only" if digested else "digest-only"):
            continue
        sources.append(PullSource(_rewrite(ref, entry, mirror.location), mirror.insecure, True))
    sources.append(PullSource(_rewrite(ref, entry, entry.location), entry.insecure))
    return PullCandidate(ref, tuple(sources))


def _rewrite(ref: Reference, entry: RegistryEntry, location: str) -> Reference:
    text = str(ref)
    if not location:
        return ref
    rewritten = location + text[entry.matches(text) :]
    try:
        return parse_reference(rewritten)
    except InvalidReference as exc:
        raise ConfigurationError(
            f"rewriting reference {text} with location {location!r} of registry "
            f"{entry.prefix!r}: {exc}"
        ) from None


def _without_tag_if_digested(ref: Reference) -> Reference:
    return ref.with_tag(None) if ref.tag is not None and ref.digest is not None else ref


def resolve_pull(text: str, conf: RegistriesConf) -> PullPlan:
    """The candidates a pull of *text* tries, in order, as podman's.

    *text* is a name (``alpine``, ``alpine:3``, ``quay.io/x/y@sha256:...``) or a
    ``docker://`` reference.  A tag next to a digest is dropped (the digest decides).
    ``docker://`` and fully qualified names are one candidate (Docker-normalised:
    ``docker.io/library/alpine:latest``); a short name is resolved by a short-name alias
    if one matches, else expanded with each ``unqualified-search-registries`` entry in
    order (no prompt).  Each candidate lists its mirrors, then the registry itself.

    :raises ~aiopod.errors.InvalidReference: *text* is malformed, or names another
        transport.
    :raises ~aiopod.errors.ShortNameNotResolved: a short name, and no search registries.
    :raises ~aiopod.errors.ConfigurationError: a location makes an invalid reference.
    """
    split = split_transport(text)
    if split is not None:
        transport, rest = split
        if transport != "docker":
            raise InvalidReference(
                f'unsupported transport "{transport}" for pulling from a registry', text=text
            )
        ref = _without_tag_if_digested(normalize_docker(rest[2:]))
        return PullPlan((_sources(conf, ref),))
    if text.startswith("docker://"):
        raise InvalidReference(f"invalid reference format: {text}", text=text)
    parsed = _without_tag_if_digested(parse_reference(text))
    if parsed.fully_qualified:
        ref = _without_tag_if_digested(normalize_docker(str(parsed)))
        return PullPlan((_sources(conf, ref),))
    alias = conf.aliases.get(parsed.name)
    if alias is not None:
        value, origin = alias
        target = normalize_docker(value)
        ref = target.with_tag(parsed.tag or (None if parsed.digest else DEFAULT_TAG))
        ref = ref.with_digest(parsed.digest)
        return PullPlan((_sources(conf, ref),), alias_origin=origin, short_name=parsed.name)
    if not conf.search_registries:
        raise ShortNameNotResolved(
            f'short-name "{text}" did not resolve to an alias and no unqualified-search '
            f'registries are defined in "{conf.path}"'
        )
    candidates = []
    for registry in conf.search_registries:
        ref = _without_tag_if_digested(normalize_docker(f"{registry}/{parsed}"))
        candidates.append(_sources(conf, ref))
    origin = conf.search_origin or conf.path
    return PullPlan(tuple(candidates), search_origin=origin, short_name=parsed.name)


def _not_a_destination(text: str) -> InvalidReference:
    """podman's error for a push destination that is neither ``TRANSPORT:REFERENCE`` nor
    a name: what it says of *text* as a transport reference."""
    transport, colon, _ = text.partition(":")
    if not colon:
        reason = "expected colon-separated transport:reference"
    else:
        reason = f'unknown transport "{transport}"'
    return InvalidReference(f'Invalid image name "{text}", {reason}', text=text)


def push_target(text: str, conf: RegistriesConf) -> PushTarget:
    """Where a push to *text* (a name or ``docker://`` reference) writes: the name
    Docker-normalised (``:latest`` when it has no tag or digest) and the registry's
    ``insecure`` and ``blocked`` settings.  As in podman, a push goes to the name itself:
    neither a ``location`` nor mirrors rewrite it (they are for pulls).

    :raises ~aiopod.errors.InvalidReference: *text* is malformed or another transport.
    """
    split = split_transport(text)
    if split is not None and split[0] != "docker":
        raise InvalidReference(
            f'unsupported transport "{split[0]}" for pushing to a registry', text=text
        )
    if text.startswith("docker://"):
        ref = normalize_docker(text.removeprefix("docker://"))
    else:
        try:
            ref = normalize_docker(text)
        except InvalidReference:
            raise _not_a_destination(text) from None
    entry = conf.find(str(ref))
    if entry is None:
        return PushTarget(ref)
    blocked = conf.blocked_error(entry) if entry.blocked else None
    return PushTarget(ref, entry.insecure, blocked)
