"""A hypothesis state machine over the API, with "crash and reopen" as one of its rules.

The machine keeps a model (image ID → names, container ID → image ID) next to a runtime
on a store of its own (in a temporary directory; the runtime runs in an anyio blocking
portal).  Loads, tags, untags and container creations and removals are predicted exactly;
``rmi`` (with and without ``force``) and ``image prune`` update the model from their
report, which must be coherent (nothing deleted that a remaining container uses).

"Crash and reopen" closes the runtime, runs ``tag`` or ``untag`` in a CLI process that
SIGKILLs itself at a named crash point (``AIOPOD_CRASH``) and reopens the store: the
change is the state exactly when the crash came after the metadata database committed
(the commit's ``commit:state`` point and later), or when the operation never passes the
point.

After every step: the store's images, names and containers equal the model, ``check``
finds nothing, and the event log's chain verifies and replays to the model
(``store_model``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio.from_thread
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from peers import aiopod_env
from store_model import StoreView, read_view, verify_store_async
from stress_ops import IMAGES, POOL, prepare

from aiopod import Runtime
from aiopod.errors import TagNotKnown
from aiopod.storage.crashpoints import AFTER_COMMIT_POINT, CRASH_POINTS

#: Crash points after which a commit's change is the state (the metadata database committed).
AFTER_METADATA = AFTER_COMMIT_POINT
#: Points a commit that changes only names passes (no blob added or freed).
NAMES_ONLY = {
    "commit:journal",
    "commit:committed",
    "commit:state",
    "commit:metadata",
    "commit:index",
}

#: Image IDs (the images themselves print as pages of tar bytes).
images = st.sampled_from([image.id for image in IMAGES])
SHIPPED = {image.id: image.names for image in IMAGES}
names = st.sampled_from(POOL)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="aiopod-machine-"))
        self.root = self.dir / "store"
        self.archives = {image_id: path for image_id, path in prepare(self.dir / "work").items()}
        self.images: dict[str, set[str]] = {}
        self.containers: dict[str, str] = {}
        self.container_names: dict[str, str] = {}
        self.stack = contextlib.ExitStack()
        self.portal = self.stack.enter_context(anyio.from_thread.start_blocking_portal())
        self.rt = self._open()

    def _open(self) -> Runtime:
        rt = Runtime(self.root)
        self.portal.call(rt.open)
        return rt

    def teardown(self) -> None:
        try:
            self.portal.call(self.rt.aclose)
        finally:
            self.stack.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self.portal.call(lambda: func(*args, **kwargs))

    # -- the model -------------------------------------------------------------------

    def _give(self, image_id: str, name: str) -> None:
        for owned in self.images.values():
            owned.discard(name)
        self.images[image_id].add(name)

    def _view(self) -> StoreView:
        return StoreView(
            {i: frozenset(n) for i, n in self.images.items()},
            {c: (self.container_names[c], i) for c, i in self.containers.items()},
        )

    # -- rules -----------------------------------------------------------------------

    @rule(image_id=images)
    def load(self, image_id: str) -> None:
        self.call(self.rt.load, self.archives[image_id])
        self.images.setdefault(image_id, set())
        for name in SHIPPED[image_id]:
            self._give(image_id, name)

    @precondition(lambda self: self.images)
    @rule(data=st.data(), name=names)
    def tag(self, data: st.DataObject, name: str) -> None:
        image_id = data.draw(st.sampled_from(sorted(self.images)))
        self.call(self.rt.tag, image_id, name)
        self._give(image_id, name)

    @precondition(lambda self: self.images)
    @rule(data=st.data(), name=names)
    def untag(self, data: st.DataObject, name: str) -> None:
        image_id = data.draw(st.sampled_from(sorted(self.images)))
        try:
            self.call(self.rt.untag, image_id, name)
        except TagNotKnown:
            assert name not in self.images[image_id]
        else:
            self.images[image_id].discard(name)

    @precondition(lambda self: self.images)
    @rule(data=st.data(), working=st.booleans())
    def create(self, data: st.DataObject, working: bool) -> None:
        image_id = data.draw(st.sampled_from(sorted(self.images)))
        if working:
            container = self.call(self.rt.create_working_container, image_id)
        else:
            container = self.call(self.rt.create_container, image_id, ["true"])
        self.containers[container.id] = image_id
        self.container_names[container.id] = container.name

    @precondition(lambda self: self.containers)
    @rule(data=st.data())
    def remove_container(self, data: st.DataObject) -> None:
        container_id = data.draw(st.sampled_from(sorted(self.containers)))
        report = self.call(self.rt.remove_containers, [container_id])
        assert report.removed_containers == [container_id], report
        del self.containers[container_id]

    @rule(reference=st.one_of(names, images), force=st.booleans())
    def rmi(self, reference: str, force: bool) -> None:
        report = self.call(self.rt.remove_images, [reference], force=force)
        self._apply(report)

    @rule(all=st.booleans())
    def prune(self, all: bool) -> None:
        self._apply(self.call(self.rt.prune_images, all=all))

    def _apply(self, report: Any) -> None:
        for container_id in report.removed_containers:
            self.containers.pop(container_id)
        for name in report.untagged:
            for owned in self.images.values():
                owned.discard(name)
        for image_id in report.deleted:
            assert image_id not in self.containers.values(), (image_id, self.containers)
            self.images.pop(image_id, None)

    @precondition(lambda self: self.images)
    @rule(data=st.data(), name=names, point=st.sampled_from(CRASH_POINTS), untag=st.booleans())
    def crash_and_reopen(self, data: st.DataObject, name: str, point: str, untag: bool) -> None:
        image_id = data.draw(st.sampled_from(sorted(self.images)))
        if untag and name not in self.images[image_id]:
            return  # an error changes nothing: not a crash test
        self.portal.call(self.rt.aclose)
        env = aiopod_env()
        env["AIOPOD_CRASH"] = point
        args = ["untag" if untag else "tag", image_id, name]
        process = subprocess.run(
            [sys.executable, "-m", "aiopod", "--root", str(self.root), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        changes = untag or name not in self.images[image_id]
        if process.returncode == 0:
            assert not (changes and point in NAMES_ONLY), (point, process.stderr)
        else:
            assert process.returncode == -signal.SIGKILL, process.stderr
        self.rt = self._open()  # recovery runs
        if process.returncode == 0 or point in AFTER_METADATA:
            if untag:
                self.images[image_id].discard(name)
            else:
                self._give(image_id, name)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def store_is_the_model(self) -> None:
        assert self.call(read_view, self.root) == self._view()

    @invariant()
    def check_and_replay_agree(self) -> None:
        verified = self.call(verify_store_async, self.root)
        assert verified.view == self._view()
        assert verified.leftovers == ()


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=int(os.environ.get("AIOPOD_MACHINE_EXAMPLES", "25")),
    stateful_step_count=25,
    deadline=None,
)
