"""Running one removal scenario on real podman and on ``aiopod --policy podman``.

The images come from a *catalogue*: busybox imported into an isolated podman store and
built on with ``buildah bud --isolation chroot --layers --timestamp 0``, then exported
with skopeo into one OCI layout (one ref per catalogue role).  A scenario's store is made
from that layout on both sides, so image IDs *and* manifest digests match:

* podman: ``skopeo copy oci:CATALOGUE:ROLE containers-storage:[vfs@ROOT+RUNROOT]NAME``
  for every name (``@ID`` for an image without names) into a template root, which each
  scenario copies (a c/storage root that podman never opened holds no absolute paths);
  containers are made with ``podman create --name N IMG true`` and ``buildah from``;
* aiopod: an OCI layout holding exactly the scenario's images and names (one descriptor
  per name, none for an image without names) goes through ``aiopod load`` into a template
  store, which each scenario copies; containers are made with ``aiopod create`` and
  ``aiopod from``.

Then the command under test runs on both and :class:`Outcome` records what a user sees:
stdout, stderr, exit code, ``images -a`` (ID and names), the containers left, and the
events the command logged (``events --stream=false --format json --since T`` on both).

Every peer runs on its own root, run root and temporary directory; nothing here touches
the machine's default stores.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peers import (
    REPO_ROOT,
    Arg,
    Podman,
    images_json_by_id,
    require_peer,
    run,
    strip_sha256,
)

__all__ = (
    "Catalogue",
    "Ctr",
    "Facts",
    "Img",
    "Outcome",
    "Scenario",
    "SideRunner",
    "build_catalogue",
    "explain",
    "run_scenario",
)

#: How the catalogue's images are built on the imported busybox base (``localhost/bb``).
#: ``chain`` is a two-step build: with ``--layers`` it leaves the untagged intermediate
#: image ``inter`` (child of ``bb``, parent of ``chain``).
DOCKERFILES: Mapping[str, str] = {
    "one": "FROM localhost/bb:latest\nRUN echo one > /one\n",
    "two": "FROM localhost/bb:latest\nRUN echo two > /two\n",
    "three": "FROM localhost/bb:latest\nRUN echo three > /three\n",
    "chain": "FROM localhost/bb:latest\nRUN echo a > /a\nRUN echo b > /b\n",
}

#: Label-only builds made until two catalogue images share an ID prefix (for the
#: ambiguous-prefix scenario); at most this many.
MAX_VARIANTS = 24

REF_NAME = "org.opencontainers.image.ref.name"

_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
_LOGRUS_TIME = re.compile(r'time="[^"]*"')


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclasses.dataclass(frozen=True)
class Img:
    """A catalogue image placed in a scenario's store under *names* (fully qualified,
    stored in this order; none for an untagged image).  Names may hold placeholders."""

    role: str
    names: tuple[str, ...] = ()

    def __init__(self, role: str, *names: str) -> None:
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "names", names)


@dataclasses.dataclass(frozen=True)
class Ctr:
    """A container made before the command: a runtime one (``create IMAGE true``) or an
    external one (``buildah from`` / ``aiopod from``), named *name*, of image *image* (as
    typed; may hold placeholders).  Containers are made in the order given."""

    name: str
    image: str
    external: bool = False


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One differential scenario: the store, the containers, the command (placeholders:
    ``{id[R]}``, ``{short[R]}``, ``{prefix[R]}``, ``{digest[R]}``, ``{ambiguous}``)."""

    id: str
    rule: str
    images: tuple[Img, ...]
    command: tuple[str, ...]
    containers: tuple[Ctr, ...] = ()
    input: str | None = None
    #: A known difference in code this suite does not own: the scenario is a strict xfail.
    xfail: str | None = None


# --------------------------------------------------------------------------------------------
# The catalogue


@dataclasses.dataclass
class Catalogue:
    """The session's images: an OCI layout with one ref per role, and their facts."""

    layout: Path
    ids: dict[str, str]
    digests: dict[str, str]  # manifest digests, "sha256:<hex>"
    descriptors: dict[str, dict[str, Any]]
    ambiguous_pair: tuple[str, str]

    @property
    def ambiguous(self) -> str:
        """The longest ID prefix the two images of :attr:`ambiguous_pair` share."""
        a, b = (self.ids[r] for r in self.ambiguous_pair)
        return common_prefix(a, b)

    def write_layout(self, dest: Path, images: Sequence[tuple[str, Sequence[str]]]) -> Path:
        """An OCI layout at *dest* with *images* ((role, names) pairs): one descriptor per
        name, in order, and one without a ref name for an image without names."""
        manifests: list[dict[str, Any]] = []
        blobs: set[str] = set()
        for role, names in images:
            base = {k: v for k, v in self.descriptors[role].items() if k != "annotations"}
            if names:
                for name in names:
                    manifests.append({**base, "annotations": {REF_NAME: name}})
            else:
                manifests.append(base)
            blobs.update(self._blobs_of(role))
        (dest / "blobs" / "sha256").mkdir(parents=True)
        for digest in sorted(blobs):
            source = self.layout / "blobs" / "sha256" / digest
            shutil.copyfile(source, dest / "blobs" / "sha256" / digest)
        (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
        return dest

    def _blobs_of(self, role: str) -> list[str]:
        manifest_hex = strip_sha256(self.digests[role])
        manifest = json.loads((self.layout / "blobs" / "sha256" / manifest_hex).read_text())
        return [
            manifest_hex,
            strip_sha256(manifest["config"]["digest"]),
            *(strip_sha256(layer["digest"]) for layer in manifest["layers"]),
        ]


def build_catalogue(base: Path, rootfs_tar: Path) -> Catalogue:
    """Import busybox into a private podman store, build the catalogue with buildah, and
    export every image into one OCI layout with skopeo."""
    require_peer("skopeo")
    builder = Podman.create(base / "builder", events_backend="file")
    try:
        builder("import", rootfs_tar, "localhost/bb:latest")
        context = base / "context"
        context.mkdir()
        for role, text in DOCKERFILES.items():
            (context / f"Dockerfile.{role}").write_text(text)
            builder.build(context, context / f"Dockerfile.{role}", f"localhost/{role}:latest")
        roles = ["bb", *DOCKERFILES]
        ids = {role: builder.image_id(f"localhost/{role}:latest") for role in roles}
        untagged = [i for i, names in builder.images().items() if not names]
        assert len(untagged) == 1, f"expected one intermediate image, got {untagged}"
        ids["inter"] = untagged[0]
        n = 0
        while (pair := _sharing_pair(ids)) is None:
            assert n < MAX_VARIANTS, "no two catalogue images share an ID prefix"
            role = f"variant{n}"
            n += 1
            dockerfile = context / f"Dockerfile.{role}"
            dockerfile.write_text(f"FROM localhost/bb:latest\nLABEL variant={role}\n")
            builder.build(context, dockerfile, f"localhost/{role}:latest")
            ids[role] = builder.image_id(f"localhost/{role}:latest")
        layout = base / "catalogue.oci"
        for role, image_id in ids.items():
            builder.skopeo("copy", builder.storage_ref(image_id), f"oci:{layout}:{role}")
    finally:
        builder.cleanup()
    index = json.loads((layout / "index.json").read_text())
    descriptors = {d["annotations"][REF_NAME]: d for d in index["manifests"]}
    # The aliases pair-a and pair-b: refs of their own, so skopeo can copy them by name.
    for alias, role in zip(("pair-a", "pair-b"), pair, strict=True):
        descriptors[alias] = {**descriptors[role], "annotations": {REF_NAME: alias}}
        ids[alias] = ids[role]
    index["manifests"] = list(descriptors.values())
    (layout / "index.json").write_text(json.dumps(index))
    digests = {role: d["digest"] for role, d in descriptors.items()}
    return Catalogue(layout, ids, digests, descriptors, pair)


def common_prefix(a: str, b: str) -> str:
    """The longest string both *a* and *b* start with."""
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return a[:length]


def _sharing_pair(ids: Mapping[str, str]) -> tuple[str, str] | None:
    """Two roles whose IDs share the longest common prefix (None if none share one)."""
    best: tuple[int, tuple[str, str]] | None = None
    roles = sorted(ids)
    for i, a in enumerate(roles):
        for b in roles[i + 1 :]:
            common = len(common_prefix(ids[a], ids[b]))
            if common and (best is None or common > best[0]):
                best = (common, (a, b))
    return best[1] if best else None


# --------------------------------------------------------------------------------------------
# Placeholders


class Facts:
    """The values a scenario's placeholders stand for, given the images in its store."""

    def __init__(self, catalogue: Catalogue, roles: Sequence[str]) -> None:
        ids = catalogue.ids
        present = [ids[r] for r in dict.fromkeys(roles)]
        self.mapping: dict[str, Any] = {
            "id": dict(ids),
            "short": {r: i[:12] for r, i in ids.items()},
            "digest": dict(catalogue.digests),
            "prefix": {r: _unique_prefix(i, present) for r, i in ids.items()},
            "ambiguous": catalogue.ambiguous,
        }

    def __call__(self, text: str) -> str:
        return text.format_map(self.mapping)


def _unique_prefix(image_id: str, present: Sequence[str], minimum: int = 5) -> str:
    """The shortest prefix (at least *minimum* characters, not all digits) of *image_id*
    that no other present image's ID starts with."""
    for length in range(minimum, 64):
        prefix = image_id[:length]
        if prefix.isdigit():
            continue
        if not any(other != image_id and other.startswith(prefix) for other in present):
            return prefix
    return image_id


# --------------------------------------------------------------------------------------------
# What a run shows


@dataclasses.dataclass
class Outcome:
    """What one side showed, normalised: container IDs become ``<CID:name>`` (``<CID>`` for
    an unknown one) and logrus times ``time="<TIME>"``.  ``events`` is None when the
    command failed (podman writes no events then: removal-rules.md G30)."""

    rc: int
    stdout: str
    stderr: str
    images: dict[str, list[str]]
    containers: list[str]
    events: dict[str, list[dict[str, Any]]] | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """A readable rendering, for a diff of two outcomes."""
        out = [f"rc: {self.rc}", "stdout:", *self.stdout.splitlines(), "stderr:"]
        out += self.stderr.splitlines()
        out += ["images:", *(f"  {i[:12]} {names}" for i, names in sorted(self.images.items()))]
        out += [f"containers: {self.containers}"]
        for kind, events in (self.events or {}).items():
            out += [f"{kind} events:", *("  " + json.dumps(e) for e in events)]
        return out


def explain(podman: Outcome, aiopod: Outcome) -> str:
    """A unified diff from podman's outcome to aiopod's."""
    diff = difflib.unified_diff(podman.lines(), aiopod.lines(), "podman", "aiopod", lineterm="")
    return "aiopod differs from podman:\n" + "\n".join(diff)


def normalise(text: str, containers: Mapping[str, str], image_ids: set[str]) -> str:
    """Container IDs to ``<CID:name>``, other 64-hex IDs that are no image's to ``<CID>``,
    logrus timestamps to ``<TIME>``."""

    def replace(match: re.Match[str]) -> str:
        value = match.group()
        if value in containers:
            return f"<CID:{containers[value]}>"
        return value if value in image_ids else "<CID>"

    return _LOGRUS_TIME.sub('time="<TIME>"', _HEX64.sub(replace, text))


def project_events(
    docs: Sequence[tuple[dict[str, Any], int]], containers: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """The compared part of the events, per type, each type in write order.

    For each event: Type, Status, ID (container IDs by name) and Name; for an image
    ``remove``, whether its Time is earlier than the image event written before it
    (podman stamps it when the removal started but writes it last).  *docs* pairs each
    JSON object with its time in nanoseconds.

    The two types are kept apart because podman interleaves them by timing: libpod writes
    a container event at once, libimage queues image events on a channel it drains every
    100 ms, so a container removed for a later image of ``rmi -a -f`` may be logged
    before the events of an earlier image.  Within each type the order is podman's.
    """
    result: dict[str, list[dict[str, Any]]] = {"container": [], "image": []}
    previous: int | None = None
    for doc, nanos in docs:
        kind = str(doc.get("Type"))
        event_id = doc.get("ID", "")
        if kind == "container":
            event_id = f"<CID:{containers[event_id]}>" if event_id in containers else "<CID>"
        item: dict[str, Any] = {
            "Status": doc.get("Status"),
            "ID": event_id,
            "Name": doc.get("Name", ""),
        }
        if kind == "image":
            if item["Status"] == "remove":
                item["stamped_earlier"] = previous is not None and nanos < previous
            previous = nanos
        result.setdefault(kind, []).append(item)
    return result


def rfc3339_nanos(text: str) -> int:
    """Nanoseconds since the epoch of Go's RFC3339Nano text (any zone)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, f"not an RFC 3339 time: {text!r}"
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    seconds = datetime.fromisoformat(match.group(1) + zone).timestamp()
    fraction = (match.group(2) or "").ljust(9, "0")[:9]
    return int(seconds) * 1_000_000_000 + int(fraction)


# --------------------------------------------------------------------------------------------
# Running a scenario on each side


def aiopod_subprocess_env(pycache: Path) -> dict[str, str]:
    """The environment of an aiopod subprocess: this checkout first on ``PYTHONPATH``, and
    byte code cached under *pycache* (outside the checkout) so start-up is quick."""
    env = dict(os.environ)
    env.pop("AIOPOD_ROOT", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + old if old else "")
    return env


class SideRunner:
    """Makes scenario stores for one side (templates cached per image set) and runs them."""

    def __init__(self, catalogue: Catalogue, workdir: Path, pycache: Path) -> None:
        self.catalogue = catalogue
        self.workdir = workdir
        self.pycache = pycache
        self._templates: dict[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], Path] = {}
        self._count = 0
        # 64-hex values that are not container IDs: image IDs and manifest digests.
        self.image_ids = set(catalogue.ids.values()) | {
            strip_sha256(d) for d in catalogue.digests.values()
        }

    def _new_dir(self, kind: str) -> Path:
        self._count += 1
        path = self.workdir / f"{kind}-{self._count}"
        path.mkdir(parents=True)
        return path

    # -- aiopod -----------------------------------------------------------------------------

    def aiopod(
        self, root: Path, *args: str, input: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        cmd: list[Arg] = [sys.executable, "-m", "aiopod", "--root", root, "--policy", "podman"]
        env = aiopod_subprocess_env(self.pycache)
        return run([*cmd, *args], input=input, env=env, check=check)

    def aiopod_template(self, images: tuple[tuple[str, tuple[str, ...]], ...]) -> Path:
        key = ("aiopod", images)
        if key not in self._templates:
            base = self._new_dir("aiopod-template")
            root = base / "store"
            if images:
                layout = self.catalogue.write_layout(base / "layout", images)
                self.aiopod(root, "load", "-q", "-i", str(layout), check=True)
            else:
                self.aiopod(root, "images", check=True)
            self._templates[key] = root
        return self._templates[key]

    def run_aiopod(self, scenario: Scenario, facts: Facts) -> Outcome:
        images = _placed(scenario, facts)
        root = self._new_dir("aiopod") / "store"
        shutil.copytree(self.aiopod_template(images), root, symlinks=True)
        for ctr in scenario.containers:
            verb = "from" if ctr.external else "create"
            extra = [] if ctr.external else ["true"]
            self.aiopod(root, verb, "--name", ctr.name, facts(ctr.image), *extra, check=True)
        containers = self._aiopod_containers(root) if scenario.containers else {}
        since = _since()
        command = [facts(part) for part in scenario.command]
        proc = self.aiopod(root, *command, input=scenario.input)
        listed = self.aiopod(root, "images", "-a", "--format", "json", check=True)
        listing = json.loads(listed.stdout)
        left = self._aiopod_containers(root) if scenario.containers else {}
        events = None
        if proc.returncode == 0:
            out = self.aiopod(
                root, "events", "--stream=false", "--format", "json", "--since", since, check=True
            ).stdout
            events = _events(out, containers)
        return _outcome(proc, listing, containers, left, events, self.image_ids)

    def _aiopod_containers(self, root: Path) -> dict[str, str]:
        out = self.aiopod(root, "ps", "-a", "--external", "--format", "json", check=True).stdout
        return {row["Id"]: row["Names"][0] for row in json.loads(out)}

    # -- podman -----------------------------------------------------------------------------

    def podman_template(self, images: tuple[tuple[str, tuple[str, ...]], ...]) -> Path:
        key = ("podman", images)
        if key not in self._templates:
            store = Podman.create(self._new_dir("podman-template") / "p", events_backend="file")
            try:
                layout = self.catalogue.layout
                for role, names in images:
                    # Copying into an image that exists puts the new name first
                    # (c/image's storage destination), so the names go in reverse.
                    targets = names[::-1] or ("@" + self.catalogue.ids[role],)
                    for name in targets:
                        store.skopeo("copy", "-q", f"oci:{layout}:{role}", store.storage_ref(name))
            finally:
                store.cleanup()
            self._templates[key] = store.root
        return self._templates[key]

    def run_podman(self, scenario: Scenario, facts: Facts) -> Outcome:
        images = _placed(scenario, facts)
        store = Podman.create(
            self._new_dir("podman") / "p", self.podman_template(images), events_backend="file"
        )
        try:
            for ctr in scenario.containers:
                image = facts(ctr.image)
                if ctr.external:
                    store.buildah("from", "--pull=never", "--name", ctr.name, image)
                else:
                    store("create", "--name", ctr.name, image, "true")
            containers = store.containers() if scenario.containers else {}
            since = _since()
            command = [facts(part) for part in scenario.command]
            proc = store(*command, check=False, input=scenario.input)
            listing = json.loads(store("images", "-a", "--format", "json").stdout)
            left = store.containers() if scenario.containers else {}
            events = None
            if proc.returncode == 0:
                out = store("events", "--stream=false", "--format", "json", "--since", since).stdout
                events = _events(out, containers)
            return _outcome(proc, listing, containers, left, events, self.image_ids)
        finally:
            store.cleanup()


def _since() -> str:
    """Now, for ``events --since`` (after a pause, so earlier events are older)."""
    time.sleep(0.01)
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _events(out: str, containers: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The projected events of ``events --stream=false --format json`` output."""
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    # The first podman command on a fresh run root logs a system "refresh".
    docs = [doc for doc in docs if doc.get("Type") != "system"]
    return project_events([(doc, rfc3339_nanos(doc["Time"])) for doc in docs], containers)


def _placed(scenario: Scenario, facts: Facts) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((img.role, tuple(facts(n) for n in img.names)) for img in scenario.images)


def _outcome(
    proc: subprocess.CompletedProcess[str],
    listing: Sequence[Mapping[str, Any]],
    containers: Mapping[str, str],
    left: Mapping[str, str],
    events: dict[str, list[dict[str, Any]]] | None,
    image_ids: set[str],
) -> Outcome:
    everyone = {**containers, **left}
    return Outcome(
        rc=proc.returncode,
        stdout=normalise(proc.stdout, everyone, image_ids),
        stderr=normalise(proc.stderr, everyone, image_ids),
        images=images_json_by_id(listing),
        containers=sorted(left.values()),
        events=events,
    )


def run_scenario(
    podman_side: SideRunner, aiopod_side: SideRunner, scenario: Scenario, facts: Facts
) -> tuple[Outcome, Outcome]:
    """Run *scenario* on podman and on aiopod (concurrently); return both outcomes."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        on_podman = pool.submit(podman_side.run_podman, scenario, facts)
        on_aiopod = pool.submit(aiopod_side.run_aiopod, scenario, facts)
        return on_podman.result(), on_aiopod.result()
