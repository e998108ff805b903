"""The command line's exit codes: :mod:`aiopod.cli.exit_codes` maps every error class to
podman's status, and the real entry point exits with it (``python -m aiopod``)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from imagefactory import make_image, write_docker_archive
from peers import BUSYBOX_IMAGE, aiopod, aiopod_ok

import aiopod as api
from aiopod import errors
from aiopod.cli.exit_codes import EXIT_CODES, OTHER_ERROR, exit_code_of

APP = make_image("localhost/app:1", seed="exit-codes-app")

#: One error of every class aiopod raises, and the status the command line exits with.
ONE_OF_EACH: list[tuple[api.AiopodError, int]] = [
    (api.AiopodError("x"), 125),
    (api.NotKnownError("x"), 125),
    (api.ImageNotKnown("x"), 1),
    (api.DockerNotFound("x", "No such image: x:latest", forced=False), 1),
    (api.ContainerNotKnown("x"), 1),
    (api.TagNotKnown("localhost/x:latest"), 125),
    (api.NoMatchingPlatform("no image found in image index for architecture arm64"), 125),
    (api.ConflictError("x"), 125),
    (api.ImageInUse("image is in use by a container"), 2),
    (api.ImageConflict("x"), 125),
    (api.DockerConflict("conflict: unable to delete x (must be forced)"), 125),
    (api.NameInUse("x"), 125),
    (api.ContentRemoved(["sha256:" + "0" * 64], "build"), 125),
    (api.InvalidInputError("x"), 125),
    (api.InvalidReference("invalid reference format", text="Bad::ref"), 125),
    (api.DockerInvalidReference("invalid reference format", text="Bad::ref"), 125),
    (api.InvalidArchive("x"), 125),
    (api.DigestMismatch("x"), 125),
    (api.UnsafeLayer("x"), 125),
    (api.LimitExceeded("x"), 125),
    (api.DockerfileError("unknown instruction", line=2), 125),
    (api.ExpansionError("failed to process"), 125),
    (api.UserLookupError('user: unknown user error looking up user "x"', which="uid"), 125),
    (api.AccountFileError("/etc/passwd in the image is not a regular file"), 125),
    (api.UsageError("x"), 125),
    (api.TemplateError("template: events:1: unexpected EOF"), 125),
    (api.StoreError("x"), 125),
    (api.StoreCorrupted("x"), 125),
    (api.StoreLockTimeout("x"), 125),
    (api.StorageFull("/store/aiopod/images.json", "tag"), 125),
    (api.NotAStore("x"), 125),
    (api.ReadOnlyStore("x"), 125),
    (api.BuildError('building at STEP "COPY a /": no such file'), 125),
    (api.BuildError('building at STEP "RUN exit 3": exit status 3', command_status=3), 3),
    (api.RuntimeStopped(), 125),
    (api.BlockingCallInEventLoop("images", "asyncio"), 125),
    (api.MissingExtra("plot", "matplotlib", "plot_store"), 125),
    # podman's pull exits 125 for a manifest the registry does not have.
    (api.ManifestUnknown("r/x:1", "reading manifest 1 in r/x: manifest unknown"), 125),
    (api.NotLoggedIn("r"), 125),
    (api.ConfigurationError("x"), 125),
    (api.ShortNameNotResolved("x"), 125),
    (api.RegistryError("x"), 125),
    (api.RegistryUnreachable("x"), 125),
    (api.TLSVerificationFailed("x"), 125),
    (api.AuthenticationFailed("x"), 125),
    (api.RegistryBlocked("x"), 125),
    (api.RegistryRequestFailed("x", status=500), 125),
    (api.PullFailed("2 errors occurred while pulling:"), 125),
    (api.UnsupportedManifest("x"), 125),
]


def test_the_table_gives_every_error_class_podmans_exit_code() -> None:
    classes = {
        getattr(errors, name)
        for name in errors.__all__
        if issubclass(getattr(errors, name), api.AiopodError)
    }
    assert {type(error) for error, _ in ONE_OF_EACH} == classes
    assert [(type(e).__name__, exit_code_of(e)) for e, _ in ONE_OF_EACH] == [
        (type(e).__name__, code) for e, code in ONE_OF_EACH
    ]
    assert OTHER_ERROR == 125
    assert dict(EXIT_CODES) == {
        api.ManifestUnknown: 125,
        api.ImageNotKnown: 1,
        api.ContainerNotKnown: 1,
        api.ImageInUse: 2,
    }


def test_a_failed_run_exits_with_its_commands_status_whatever_it_is() -> None:
    """``command_status`` is the command's status (a signal's is 128 + N)."""
    for status in (1, 2, 137, 255):
        assert exit_code_of(api.BuildError("x", command_status=status)) == status


# -- through the real command line ----------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store holding APP (loaded through the command line)."""
    store = tmp_path / "store"
    archive = write_docker_archive(tmp_path / "app.tar", [APP])
    aiopod_ok("load", "-i", archive, root=store)
    return store


def test_not_known_exits_1(root: Path) -> None:
    result = aiopod("from", "nope", root=root)
    assert (result.returncode, result.stderr) == (1, "Error: nope: image not known\n")
    result = aiopod("rm", "nope", root=root)  # a removal: its report's status
    assert (result.returncode, result.stderr) == (
        1,
        'Error: no container with name or ID "nope" found: no such container\n',
    )


def test_not_known_exits_125_where_podman_does(root: Path) -> None:
    """podman's ``tag`` and ``image inspect`` exit 125 even for "image not known"."""
    result = aiopod("tag", "nope", "x", root=root)
    assert (result.returncode, result.stderr) == (125, "Error: nope: image not known\n")
    result = aiopod("image", "inspect", "nope", root=root)
    assert result.returncode == 125
    assert result.stderr == "Error: inspecting object: nope: image not known\n"


def test_in_use_exits_2(root: Path) -> None:
    aiopod_ok("create", "--name", "web", "app:1", "true", root=root)
    result = aiopod("rmi", "app:1", root=root)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"Error: could not remove image {APP.id} as it is being used by 1 containers\n"
    )
    assert aiopod_ok("images", "-q", root=root).stdout.strip() == APP.id[:12]


def test_invalid_input_and_conflicts_exit_125(root: Path) -> None:
    result = aiopod("from", "Bad::ref", root=root)
    assert (result.returncode, result.stderr) == (125, "Error: invalid reference format\n")
    aiopod_ok("create", "--name", "web", "app:1", "true", root=root)
    result = aiopod("create", "--name", "web", "app:1", "true", root=root)
    assert result.returncode == 125
    assert result.stderr.startswith("Error: ") and "web" in result.stderr


def test_a_build_exits_with_its_failed_runs_status(
    tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    store = tmp_path / "store"
    aiopod_ok("import", busybox_rootfs_tar, BUSYBOX_IMAGE, root=store)
    cases = {
        "RUN exit 3": 3,  # the command's own status
        "RUN kill -9 $$": 128 + 9,  # killed by a signal, as a shell reports it
        "USER nosuch\nRUN true": 125,  # a step that failed before its command ran
        "ECHO x": 125,  # a malformed Dockerfile
    }
    for steps, code in cases.items():
        ctx = tmp_path / f"ctx-{code}-{len(steps)}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_IMAGE}\n{steps}\n")
        result = aiopod("build", ctx, root=store, timeout=180)
        assert result.returncode == code, (steps, result.stderr)
        assert result.stderr.splitlines()[-1].startswith("Error: "), (steps, result.stderr)


def test_os_errors_of_path_resolution_are_os_errors() -> None:
    """Not aiopod's own errors: the command line reports them as the system's (125)."""
    error = api.TooManySymlinks(errno.ELOOP, "too many levels of symbolic links", "loop")
    assert isinstance(error, OSError) and not isinstance(error, api.AiopodError)
