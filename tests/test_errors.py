"""The errors as a caller meets them: one tree in :mod:`aiopod.errors`, every class
reachable from :mod:`aiopod`, each group under the standard exception a caller would
catch, and the public API made of public names only."""

from __future__ import annotations

import errno
import importlib
import inspect
import pkgutil
from pathlib import Path

import anyio
import pytest
from imagefactory import load_images, make_image
from peers import BUSYBOX_IMAGE

import aiopod
import aiopod.errors

pytestmark = pytest.mark.anyio

APP = make_image("localhost/app:1", seed="errors-app")

#: Where each public error sits: its group, and the standard exception it is also.
PLACES: dict[str, tuple[type[Exception], ...]] = {
    "AiopodError": (Exception,),
    "NotKnownError": (aiopod.AiopodError, LookupError),
    "ImageNotKnown": (aiopod.NotKnownError, LookupError),
    "DockerNotFound": (aiopod.ImageNotKnown, LookupError),
    "ContainerNotKnown": (aiopod.NotKnownError, LookupError),
    "TagNotKnown": (aiopod.NotKnownError, LookupError),
    "NoMatchingPlatform": (aiopod.NotKnownError, LookupError),
    "ManifestUnknown": (aiopod.ImageNotKnown, LookupError),
    "NotLoggedIn": (aiopod.NotKnownError, LookupError),
    "ConflictError": (aiopod.AiopodError,),
    "ImageInUse": (aiopod.ConflictError,),
    "ImageConflict": (aiopod.ConflictError,),
    "DockerConflict": (aiopod.ImageConflict,),
    "NameInUse": (aiopod.ConflictError,),
    "ContentRemoved": (aiopod.ConflictError,),
    "InvalidInputError": (aiopod.AiopodError, ValueError),
    "InvalidReference": (aiopod.InvalidInputError, ValueError),
    "DockerInvalidReference": (aiopod.InvalidReference, ValueError),
    "InvalidArchive": (aiopod.InvalidInputError, ValueError),
    "DigestMismatch": (aiopod.InvalidInputError, ValueError),
    "UnsafeLayer": (aiopod.InvalidInputError, ValueError),
    "LimitExceeded": (aiopod.InvalidInputError, ValueError),
    "DockerfileError": (aiopod.InvalidInputError, ValueError),
    "ExpansionError": (aiopod.InvalidInputError, ValueError),
    "UserLookupError": (aiopod.InvalidInputError, ValueError),
    "AccountFileError": (aiopod.InvalidInputError, ValueError),
    "UsageError": (aiopod.InvalidInputError, ValueError),
    "TemplateError": (aiopod.UsageError,),
    "ConfigurationError": (aiopod.InvalidInputError, ValueError),
    "ShortNameNotResolved": (aiopod.InvalidInputError, ValueError),
    "RegistryError": (aiopod.AiopodError,),
    "RegistryUnreachable": (aiopod.RegistryError, ConnectionError),
    "TLSVerificationFailed": (aiopod.RegistryUnreachable, ConnectionError),
    "AuthenticationFailed": (aiopod.RegistryError, PermissionError),
    "RegistryBlocked": (aiopod.RegistryError,),
    "PullFailed": (aiopod.RegistryError,),
    "RegistryRequestFailed": (aiopod.RegistryError,),
    "UnsupportedManifest": (aiopod.RegistryError,),
    "StoreError": (aiopod.AiopodError,),
    "StoreCorrupted": (aiopod.StoreError,),
    "StoreLockTimeout": (aiopod.StoreError, TimeoutError),
    "StorageFull": (aiopod.StoreError, OSError),
    "CommitUnfinished": (UserWarning,),
    "NotAStore": (aiopod.StoreError,),
    "ReadOnlyStore": (aiopod.StoreError, PermissionError),
    "BuildError": (aiopod.AiopodError,),
    "RuntimeStopped": (aiopod.AiopodError,),
    "BlockingCallInEventLoop": (aiopod.AiopodError, RuntimeError),
    "MissingExtra": (aiopod.AiopodError, ImportError),
    "TooManySymlinks": (OSError,),
    "PathTooDeep": (OSError,),
}


def test_every_error_is_in_the_tree_where_the_docstring_draws_it() -> None:
    assert set(aiopod.errors.__all__) == set(PLACES)
    tree = aiopod.errors.__doc__ or ""
    for name, bases in PLACES.items():
        cls = getattr(aiopod, name)
        assert cls is getattr(aiopod.errors, name), name
        assert name in aiopod.__all__, name
        assert f"── {name} " in tree, f"{name} is not drawn in aiopod.errors"
        for base in bases:
            assert issubclass(cls, base), (name, base)
        assert cls.__doc__, name


def test_groups_do_not_overlap_and_only_the_os_errors_are_outside_aiopod_error() -> None:
    groups = (
        aiopod.NotKnownError,
        aiopod.ConflictError,
        aiopod.InvalidInputError,
        aiopod.StoreError,
        aiopod.RegistryError,
        aiopod.BuildError,
        aiopod.RuntimeStopped,
        aiopod.BlockingCallInEventLoop,
        aiopod.MissingExtra,
    )
    for name in PLACES:
        cls = getattr(aiopod, name)
        if name in ("TooManySymlinks", "PathTooDeep", "CommitUnfinished"):
            assert not issubclass(cls, aiopod.AiopodError)
            continue
        assert issubclass(cls, aiopod.AiopodError), name
        if cls not in (aiopod.AiopodError, *groups):
            assert sum(issubclass(cls, group) for group in groups) == 1, name


def test_no_error_carries_an_exit_code() -> None:
    for name in PLACES:
        assert not hasattr(getattr(aiopod, name), "exit_code"), name


def _aiopod_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(aiopod.__path__, "aiopod.")
        if not info.name.endswith("__main__")
    ]


def test_every_public_exception_class_of_aiopod_is_defined_in_aiopod_errors() -> None:
    """Anywhere else an exception class is private to its module (a leading underscore);
    the one exception is the command line's click error, which click reports itself."""
    elsewhere = []
    for module_name in _aiopod_modules():
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module_name
                and module_name != "aiopod.errors"
                and not name.startswith("_")
            ):
                elsewhere.append(f"{module_name}.{name}")
    assert len(_aiopod_modules()) > 80  # the walk found the package's modules
    assert elsewhere == ["aiopod.cli.usage.CommandLineError"]


def test_the_public_api_is_public_names_only() -> None:
    """``aiopod.__all__`` names exist, and none is a private name, nor an object that is
    private where it is defined (a private module is fine: ``aiopod._runtime.Runtime``)."""
    assert len(set(aiopod.__all__)) == len(aiopod.__all__)
    for name in aiopod.__all__:
        assert not name.startswith("_"), name
        value = getattr(aiopod, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            # Defined under the same, public name, in aiopod.
            assert value.__name__ == name, (name, value.__name__)
            assert value.__module__.startswith("aiopod"), (name, value.__module__)
            assert getattr(importlib.import_module(value.__module__), name) is value
        else:  # a type alias (Policy, Step, ProgressRecord, ...): public where it is made
            module = vars(aiopod)["_LAZY"][name]
            assert getattr(importlib.import_module(module), name) is value, name


def test_the_api_returns_and_takes_exported_types() -> None:
    """What the runtime's calls return and what its reports hold are names of aiopod."""
    for name in (
        "Runtime",
        "Image",
        "Container",
        "RemovalReport",
        "Plan",
        "Untag",
        "RemoveContainer",
        "DeleteImage",
        "ImageProcessed",
        "CheckReport",
        "Event",
        "EventKind",
        "EventBus",
        "EventFilter",
        "EventLog",
        "Subscription",
        "Lagged",
        "ProgressRecord",
        "ProgressTarget",
        "StepStarted",
        "BuildFinished",
        "ImageList",
        "ImageTree",
        "TreeLayer",
        "ImageHistory",
        "DiskUsage",
        "ImageUsage",
        "UsageSummary",
        "Info",
        "SystemPruneReport",
        "ArchiveRecord",
        "ArchiveRead",
        "ArchiveProgressTarget",
        "CheckProgress",
        "CheckProgressTarget",
    ):
        assert name in aiopod.__all__, name


async def test_lookup_error_catches_an_image_that_is_not_there(store: Path) -> None:
    async with aiopod.Runtime(store) as rt:
        try:
            await rt.get_image("nope")
        except LookupError as exc:
            caught: Exception = exc
        else:
            raise AssertionError("no error")
    assert isinstance(caught, aiopod.ImageNotKnown)
    assert str(caught) == "nope: image not known"


async def test_value_error_catches_a_malformed_reference_and_a_usage_error(store: Path) -> None:
    async with aiopod.Runtime(store) as rt:
        with pytest.raises(ValueError, match="invalid reference format") as malformed:
            await rt.get_image("Bad::ref")
        with pytest.raises(ValueError, match="at least one name is needed") as usage:
            await rt.tag("nope")
    assert isinstance(malformed.value, aiopod.InvalidReference)
    assert malformed.value.text == "Bad::ref"
    assert isinstance(usage.value, aiopod.UsageError)


async def test_conflict_error_catches_a_name_in_use(store: Path, tmp_path: Path) -> None:
    async with aiopod.Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        await rt.create_container("app:1", ["true"], name="web")
        with pytest.raises(aiopod.ConflictError) as caught:
            await rt.create_container("app:1", ["true"], name="web")
    assert isinstance(caught.value, aiopod.NameInUse)


async def test_remove_image_takes_the_keywords_of_remove_images(
    store: Path, tmp_path: Path
) -> None:
    one = inspect.signature(aiopod.Runtime.remove_image).parameters
    many = inspect.signature(aiopod.Runtime.remove_images).parameters
    keywords = {n: p for n, p in one.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == {n: many[n] for n in keywords}  # same names, types and defaults
    assert set(many) - set(one) == {"references", "all"}  # one reference, so no "all"
    async with aiopod.Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        container = await rt.create_container("app:1", ["true"])
        dry = await rt.remove_image("app:1", force=True, dry_run=True)
        assert (dry.dry_run, dry.deleted, dry.removed_containers) == (
            True,
            [APP.id],
            [container.id],
        )
        refused = await rt.remove_image("app:1", policy="docker")
        assert refused.exit_code == 1
        assert [type(e) for e in refused.errors] == [aiopod.DockerConflict]
        report = await rt.remove_image("app:1", force=True)
        assert (report.deleted, report.exit_code) == ([APP.id], 0)
        assert await rt.containers(external=True) == []


async def test_a_user_the_image_lacks_fails_the_build_step_caused_by_the_lookup(
    rt: aiopod.Runtime, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX_IMAGE}\nUSER nosuch\nRUN true\n")
    with pytest.raises(aiopod.BuildError) as caught, anyio.fail_after(120):
        await rt.build(tmp_path)
    assert caught.value.message == (
        'building at STEP "RUN true": determining run uid: '
        'user: unknown user error looking up user "nosuch"'
    )
    assert caught.value.command_status is None
    cause = caught.value.__cause__
    assert isinstance(cause, aiopod.UserLookupError) and isinstance(cause, ValueError)
    assert cause.which == "uid"


def test_a_store_lock_timeout_is_a_timeout_error() -> None:
    error = aiopod.StoreLockTimeout("timed out waiting for the store lock")
    assert isinstance(error, TimeoutError) and isinstance(error, aiopod.StoreError)
    assert str(error) == error.message == "timed out waiting for the store lock"


def test_os_errors_of_path_resolution_keep_their_errno() -> None:
    loop = aiopod.TooManySymlinks(errno.ELOOP, "too many levels of symbolic links", "a")
    assert (loop.errno, loop.strerror, loop.filename) == (
        errno.ELOOP,
        "too many levels of symbolic links",
        "a",
    )
    deep = aiopod.PathTooDeep(errno.ENAMETOOLONG, "path is too deep", "b")
    assert deep.errno == errno.ENAMETOOLONG
