"""aiopod build against buildah 1.28: the same Dockerfiles give the same images.

Each scenario is built by ``buildah bud --isolation chroot --timestamp 0`` and by ``aiopod
build --timestamp 0`` on private stores holding the same busybox base, and the results are
compared as ``build_scenarios.explain_differences`` describes: root file systems unpacked
by umoci, the config fields a user sees, and the history the build added (with
``--layers`` the layer structure and the COPY layers' diff_ids too).  Together the
scenarios use every instruction and every flag the builder supports.

Where aiopod does not (yet) do what buildah 1.28 does:

* ``RUN --mount``: a ``rw`` bind never writes into the context (buildah 1.28 does), a
  source never leaves the context through a symlink or ``..`` (buildah follows context
  symlinks on the host and clamps ``..``), a missing source is an error (buildah skips the
  mount with a warning), an existing target keeps its contents (buildah deletes it),
  ``type=ssh`` is refused (buildah ignores it), and tmpfs takes Docker's ``size`` besides
  buildah's ``tmpfs-size``.  The scenarios use what both do alike.
* buildah 1.28 has no heredocs; aiopod follows Docker (``RUN <<EOF``, ``COPY <<EOF``,
  ``ADD <<EOF``), and the scenarios compare with the equivalent Dockerfile without them.
* Without ``--layers`` aiopod commits one layer per RUN/COPY/ADD, buildah one per stage
  (same files; the history's ``empty_layer`` flags differ).
* With ``--layers`` aiopod makes a WORKDIR directory when the instruction runs, owned by
  USER; buildah makes it only when a later step needs it (a COPY makes it root's).
* Stage names are case-insensitive (``AS Build`` / ``--from=build``), as in Docker;
  buildah 1.28 matches them exactly.
* ``ENV X=$ARG`` with another ``--build-arg`` value misses the layer cache (the cached
  config is compared); buildah 1.28 reuses the stale value.
* No ``--format docker``: aiopod writes OCI images and keeps Shell, Healthcheck and
  OnBuild in them (buildah's OCI format drops them); no base-image annotations, no
  ``io.buildah.version`` label, no ``FROM <image>`` history comments.
* RUN leaves the empty ``dev/``, ``proc/`` and ``etc/{hosts,hostname,resolv.conf}`` stubs
  but not buildah's ``sys/`` and ``run/`` (aiopod mounts no /sys).
* ``FROM --platform`` must name the base image's own platform (nothing is pulled).

Matched on purpose although Docker differs: SHELL does not wrap shell-form CMD and
ENTRYPOINT; ``# escape=`` changes line continuation but not word expansion.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from build_scenarios import (
    LOCAL_PLATFORM,
    Built,
    Parent,
    Scenario,
    build_both,
    explain_differences,
)
from httpfiles import HttpFiles
from peers import (
    Podman,
    Tool,
    aiopod_inspect,
    aiopod_ok,
    directory as tar_dir,
    file as tar_file,
    loaded_names,
    strip_sha256,
    symlink as tar_symlink,
    tar_bytes,
)

pytestmark = pytest.mark.peer("podman", "buildah", "skopeo", "umoci", "busybox")

ARCHIVE = tar_bytes(
    [
        tar_dir("pkg"),
        tar_file("pkg/a.txt", b"from the archive\n"),
        tar_file("pkg/run.sh", b"#!/bin/sh\necho run\n", 0o755),
        tar_symlink("pkg/link", "a.txt"),
        tar_dir("pkg/owned", uid=1000, gid=1000),
    ]
)

SOURCES = {
    "a.txt": "alpha\n",
    "b.md": "bravo\n",
    "c.txt": ("charlie\n", 0o600),
    "script.sh": ("#!/bin/sh\necho script\n", 0o755),
    "suid": ("setuid bits are stripped\n", 0o4755),
    "d/x.txt": "x\n",
    "d/sub/y.txt": "y\n",
    "d/link@": "x.txt",
    "d/dangling@": "nowhere",
    "d/exec/": 0o750,
}

SCENARIOS = (
    Scenario(
        "run-shell-and-exec-form",
        """\
FROM localhost/bb:latest
ENV GREETING=hello TARGET="the world"
RUN echo "$GREETING, $TARGET" > /greeting && mkdir -p /out && echo one > /out/1
RUN ["/bin/sh", "-c", "echo exec form $GREETING > /exec.txt"]
RUN ["/bin/echo", "$GREETING not expanded"]
RUN rm /out/1 && echo two > /out/2 && chmod 0640 /out/2 && ln -s /greeting /out/link \\
 && ln /out/2 /out/hard && rm /etc/group && touch /bin/busybox && echo x > /etc/passwd
""",
    ),
    Scenario(
        "arg-before-from",
        """\
ARG BASE=localhost/bb:latest
ARG UNUSED=x
FROM ${BASE} AS first
ARG BASE
RUN echo "base=$BASE unused=$UNUSED" > /seen
""",
    ),
    Scenario(
        "from-platform-local",
        f"""\
FROM --platform={LOCAL_PLATFORM} localhost/bb:latest
RUN echo platform > /platform
""",
    ),
    Scenario(
        "platform-args",
        """\
FROM --platform=$BUILDPLATFORM localhost/bb:latest
ARG TARGETARCH
ARG BUILDPLATFORM
ARG TARGETOS=declared-default
RUN echo "[$TARGETARCH] [$BUILDPLATFORM] [$TARGETOS] [$TARGETPLATFORM]" > /platform
""",
    ),
    Scenario(
        "from-scratch",
        """\
FROM scratch
COPY a.txt /
COPY d/ /d/
COPY script.sh /bin/script
ENV ONLY=scratch
CMD ["/bin/script"]
""",
        SOURCES,
    ),
    Scenario(
        "multi-stage-copy-from-name-and-index",
        """\
FROM localhost/bb:latest AS builder
RUN mkdir -p /out/sub && echo artifact > /out/artifact.txt && echo deep > /out/sub/deep \\
 && chown -R 1000:1000 /out/sub
FROM localhost/bb:latest AS second
RUN echo second > /second.txt
FROM localhost/bb:latest
COPY --from=builder /out/ /app/
COPY --from=1 /second.txt /from-index.txt
COPY --from=localhost/bb:latest /etc/passwd /from-image-passwd
COPY --from=builder /out/artifact.txt /out/sub /several/
""",
    ),
    Scenario(
        "from-earlier-stage-inherits",
        """\
FROM localhost/bb:latest AS base
ENV FROM_BASE=1
WORKDIR /srv
RUN echo base > base.txt
FROM base AS final
ENV FROM_FINAL=2
RUN echo "$FROM_BASE$FROM_FINAL" > final.txt && pwd > pwd.txt
""",
    ),
    Scenario(
        "target-stops-and-skips-unused",
        """\
FROM localhost/bb:latest AS unused
RUN echo unused > /unused
FROM localhost/bb:latest AS wanted
RUN echo wanted > /wanted
FROM wanted AS after
RUN echo after > /after
""",
        args=("--target", "wanted"),
    ),
    Scenario(
        "run-sees-env-args-user-workdir",
        """\
FROM localhost/bb:latest
ARG FIRST=one
ENV E1=env
ARG SECOND
ARG SHADOWED=from-arg
ENV SHADOWED=from-env
RUN echo "$FIRST $SECOND $E1 $SHADOWED" > /tmp/values && pwd > /tmp/pwd-root
USER app
WORKDIR /home/app
RUN id -u > ids && id -g >> ids && echo "$HOME" > home && pwd > pwd && echo mine > mine
USER root
WORKDIR sub/dir
RUN pwd > /tmp/pwd-sub && id -u >> /tmp/pwd-sub
""",
        args=("--build-arg", "SECOND=given", "--build-arg", "UNDECLARED=x"),
    ),
    Scenario(
        "copy-globs-sources-destinations",
        """\
FROM localhost/bb:latest
COPY *.txt /globbed/
COPY a.txt b.md /several
COPY a.txt /renamed.txt
COPY b.md /etc/passwd
COPY d /dir-contents/
COPY d/sub /sub-to-new-dir
COPY ["c.txt", "/json form/"]
WORKDIR /work
COPY a.txt relative.txt
COPY d/x.txt .
COPY suid script.sh ./bin/
""",
        SOURCES,
    ),
    Scenario(
        "copy-chown-and-chmod",
        """\
FROM localhost/bb:latest
COPY --chown=app:app a.txt /owned/by-name
COPY --chown=1000:50 b.md /owned/by-number
COPY --chown=app d/ /owned/dir/
COPY --chmod=0640 c.txt script.sh /modes/
COPY --chmod=0750 --chown=65534:65534 d/ /modes/dir/
""",
        SOURCES,
    ),
    Scenario(
        "add-local-archives-are-extracted",
        """\
FROM localhost/bb:latest
ADD plain.tar /plain/
ADD packed.tar.gz /packed
ADD a.txt /added.txt
COPY plain.tar /copied.tar
ADD --chown=app:app a.txt d /added-owned/
ADD a.txt plain.tar /mixed/
""",
        {
            **SOURCES,
            "plain.tar": ARCHIVE,
            "packed.tar.gz": gzip.compress(ARCHIVE, mtime=0),
        },
    ),
    Scenario(
        "env-both-forms-and-labels",
        """\
FROM localhost/bb:latest
ENV A=1 B="two words" C=$A-expanded
ENV LEGACY form with spaces
ENV PATH=/opt/bin:$PATH
LABEL org.example.a=b "with space"="a value" multi=1 \\
      other=2
LABEL expanded=$B
RUN echo "$A|$B|$C|$LEGACY" > /env.txt
""",
    ),
    Scenario(
        "build-args-override-defaults",
        """\
FROM localhost/bb:latest
ARG VERSION=default
ARG OTHER=other-default
ARG EMPTY
ENV FROM_ARG=$VERSION
RUN echo "$VERSION $OTHER [$EMPTY]" > /args
ARG OTHER=later-default
RUN echo "$OTHER" > /other
""",
        args=("--build-arg", "VERSION=1.2.3"),
    ),
    Scenario(
        "proxy-build-args-need-no-arg",
        """\
FROM localhost/bb:latest
ARG no_proxy
RUN echo "[$HTTP_PROXY] [$no_proxy] [$UNDECLARED]" > /proxy
""",
        args=(
            "--build-arg",
            "HTTP_PROXY=http://proxy.invalid:3128",
            "--build-arg",
            "no_proxy=localhost",
            "--build-arg",
            "UNDECLARED=not seen",
        ),
    ),
    Scenario(
        "workdir-created-owned-by-user",
        """\
FROM localhost/bb:latest
WORKDIR /srv/app
USER app
WORKDIR data
WORKDIR /srv/app/data/more
USER 1000:50
WORKDIR /numeric
""",
    ),
    Scenario(
        "expose-volume-stopsignal",
        """\
FROM localhost/bb:latest
ARG PORT=8080
EXPOSE 80 53/udp $PORT 9000-9002
VOLUME /data
VOLUME ["/json/vol", "/other"]
STOPSIGNAL SIGQUIT
""",
    ),
    Scenario(
        "volume-discards-later-run-changes",
        """\
FROM localhost/bb:latest
RUN mkdir -p /data/keep && echo before > /data/f && echo outside > /outside
VOLUME /data
RUN echo after > /data/f && echo new > /data/g && rm -rf /data/keep && echo changed > /outside
""",
    ),
    Scenario(
        "entrypoint-clears-inherited-cmd",
        """\
FROM localhost/parent:cmd
ENTRYPOINT ["/bin/echo", "entry"]
""",
        parents=(Parent("localhost/parent:cmd", 'FROM localhost/bb:latest\nCMD ["inherited"]\n'),),
    ),
    Scenario(
        "entrypoint-keeps-cmd-of-the-same-stage",
        """\
FROM localhost/parent:cmd
CMD ["mine", "kept"]
ENTRYPOINT echo shell form
""",
        parents=(Parent("localhost/parent:cmd", 'FROM localhost/bb:latest\nCMD ["inherited"]\n'),),
    ),
    Scenario(
        "shell-changes-run-and-cmd",
        """\
FROM localhost/bb:latest
SHELL ["/bin/sh", "-ec"]
RUN echo "shell $0" > /shell.txt
SHELL ["/bin/echo", "via"]
RUN ignored by echo
CMD shell form cmd
ENTRYPOINT shell form entrypoint
""",
        docker_format=True,
    ),
    Scenario(
        "healthcheck-exec-form-with-flags",
        """\
FROM localhost/bb:latest
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m30s --retries=3 \\
  CMD ["/bin/sh", "-c", "test -e /healthy"]
""",
        docker_format=True,
    ),
    Scenario(
        "healthcheck-shell-form",
        """\
FROM localhost/bb:latest
HEALTHCHECK --interval=1h2m3s CMD test -e /healthy || exit 1
STOPSIGNAL 9
""",
        docker_format=True,
    ),
    Scenario(
        "healthcheck-none-disables-the-parents",
        """\
FROM localhost/parent:healthy
HEALTHCHECK NONE
""",
        docker_format=True,
        parents=(
            Parent(
                "localhost/parent:healthy",
                "FROM localhost/bb:latest\nHEALTHCHECK --timeout=3s CMD true\n",
            ),
        ),
    ),
    Scenario(
        "onbuild-runs-in-the-child",
        """\
FROM localhost/parent:onbuild
RUN echo child > /child.txt
""",
        SOURCES,
        docker_format=True,
        parents=(
            Parent(
                "localhost/parent:onbuild",
                """\
FROM localhost/bb:latest
ONBUILD RUN echo "onbuild ran" > /onbuild.txt
ONBUILD COPY a.txt /onbuild-copied/
ONBUILD ENV FROM_TRIGGER=yes
""",
            ),
        ),
    ),
    Scenario(
        "onbuild-of-an-earlier-stage",
        """\
FROM localhost/bb:latest AS parent
ONBUILD RUN echo from-trigger > /trigger
ONBUILD ENV TRIGGERED=1
RUN echo parent > /parent
FROM parent
RUN echo "$TRIGGERED" > /child
""",
        docker_format=True,
    ),
    Scenario(
        "onbuild-stored-in-the-parent",
        """\
FROM localhost/bb:latest
ONBUILD RUN echo trigger
ONBUILD LABEL from.trigger=1
""",
        docker_format=True,
    ),
    Scenario(
        "dockerignore-excludes",
        """\
FROM localhost/bb:latest
COPY . /c/
""",
        {
            **SOURCES,
            ".dockerignore": "*.md\nd/sub\n!d/sub/y.txt\nsecret*\n# comment\n",
            "secret.key": "do not copy\n",
            "sub/secret.key": "copied: patterns are anchored at the root\n",
        },
        dockerfile_in_context=True,
    ),
    Scenario(
        "containerignore-wins-over-dockerignore",
        """\
FROM localhost/bb:latest
COPY . /c/
""",
        {
            "a.txt": "a\n",
            "b.md": "b\n",
            ".dockerignore": "a.txt\n",
            ".containerignore": "*.md\n.dockerignore\n",
        },
    ),
    Scenario(
        "heredoc-run",
        """\
FROM localhost/bb:latest
RUN <<EOT
echo first > /heredoc.txt
echo second >> /heredoc.txt
EOT
""",
        buildah_dockerfile="""\
FROM localhost/bb:latest
RUN echo first > /heredoc.txt && echo second >> /heredoc.txt
""",
        compare_history=False,
    ),
    Scenario(
        "heredoc-copy",
        """\
FROM localhost/bb:latest
ARG WHO=builder
COPY <<EOF /etc/motd
hello $WHO
EOF
COPY --chmod=755 <<run.sh <<'notes.txt' /opt/
#!/bin/sh
echo run
run.sh
$NOT expanded
notes.txt
""",
        buildah_dockerfile="""\
FROM localhost/bb:latest
ARG WHO=builder
RUN echo "hello $WHO" > /etc/motd && chmod 644 /etc/motd && mkdir -p /opt \\
 && printf '#!/bin/sh\\necho run\\n' > /opt/run.sh && printf '$NOT expanded\\n' > /opt/notes.txt \\
 && chmod 755 /opt/run.sh /opt/notes.txt
""",
        compare_history=False,
    ),
    Scenario(
        "escape-directive",
        """\
# escape=`
FROM localhost/bb:latest
ENV WIN=C:\\path\\here Q=a`$b
RUN echo "$WIN" > /win.txt `
 && echo continued >> /win.txt
COPY a.txt `
     /escaped/
""",
        SOURCES,
    ),
    Scenario(
        "layers-one-image-per-step",
        """\
FROM localhost/bb:latest
ARG A=1
ENV E=2
RUN echo "$A$E" > /ae
COPY a.txt d /layered/
LABEL step=label
WORKDIR /wd
RUN echo in-wd > file
ADD plain.tar /x/
USER app
CMD ["sh"]
""",
        {**SOURCES, "plain.tar": ARCHIVE},
        layers=True,
    ),
    Scenario(
        "layers-workdir-folds-into-the-next-layer",
        """\
FROM localhost/bb:latest
WORKDIR /made/by/workdir
COPY a.txt ./
USER app
WORKDIR /second
RUN echo run > here
""",
        SOURCES,
        layers=True,
    ),
    Scenario(
        "run-mount-bind-context-and-stage",
        """\
FROM localhost/bb:latest AS stage
RUN mkdir -p /out/sub && echo from-stage > /out/sub/x
FROM localhost/bb:latest
ARG SRC=d
RUN --mount=type=bind,source=$SRC,target=/mnt/ctx cp -r /mnt/ctx /copied && ls -A /mnt > /mnt-list
RUN --mount=type=bind,from=stage,source=/out,target=/opt/in/stage cat /opt/in/stage/sub/x > /y
RUN --mount=type=bind,source=a.txt,target=/etc/a.txt cat /etc/a.txt > /a-copy
RUN --mount=from=0,target=/st,source=out/sub ls /st > /listed
""",
        SOURCES,
    ),
    Scenario(
        "run-mount-cache-and-tmpfs",
        """\
FROM localhost/bb:latest
RUN --mount=type=cache,target=/var/cache/app echo first > /var/cache/app/f
RUN --mount=type=cache,target=/var/cache/app cp /var/cache/app/f /from-cache
RUN --mount=type=cache,id=owned,target=/home/c,uid=1000,gid=1000,mode=0700 \
    stat -c '%a %u %g' /home/c > /cache-attrs
RUN --mount=type=tmpfs,target=/scratch/t echo tmp > /scratch/t/f && cp /scratch/t/f /kept \
 && stat -c '%a' /scratch/t > /tmpfs-mode
RUN ls -A /var/cache /scratch > /after
""",
    ),
    Scenario(
        "run-mount-secret",
        """\
FROM localhost/bb:latest
RUN --mount=type=secret,id=token cp /run/secrets/token /copied-on-purpose \
 && stat -c '%a %u %g' /run/secrets/token > /attrs
RUN --mount=type=secret,id=token,target=/opt/tok,mode=0440,uid=1000,gid=1000 \
    stat -c '%a %u %g' /opt/tok > /attrs2 && cat /opt/tok > /second-copy
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo absent > /absent
""",
        secrets={"token": "not-so-secret-after-all\n"},
        layers=True,
    ),
    Scenario(
        "layers-multi-stage",
        """\
FROM localhost/bb:latest AS one
RUN echo one > /one
FROM one
COPY --from=one /one /two
RUN rm /one
EXPOSE 1234
""",
        layers=True,
    ),
)


@pytest.fixture
def same_as_buildah(
    podman: Podman, skopeo: Tool, umoci: Tool, store: Path, busybox_rootfs_tar: Path, tmp_path: Path
) -> Callable[[Scenario], None]:
    """Build a scenario with both tools and fail the test on any difference."""

    def check(scenario: Scenario) -> None:
        theirs, mine = build_both(
            scenario,
            podman=podman,
            skopeo=skopeo,
            umoci=umoci,
            store=store,
            base_tar=busybox_rootfs_tar,
            work=tmp_path / "work",
        )
        problems = explain_differences(scenario, theirs, mine)
        if problems:
            pytest.fail(f"aiopod's image differs from buildah's:\n{problems}", pytrace=False)

    return check


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_aiopod_build_matches_buildah(
    scenario: Scenario, same_as_buildah: Callable[[Scenario], None]
) -> None:
    same_as_buildah(scenario)


@pytest.mark.parametrize("layers", [False, True], ids=["one-layer", "layers"])
def test_add_of_urls_matches_buildah(
    layers: bool, http_files: HttpFiles, same_as_buildah: Callable[[Scenario], None]
) -> None:
    """``ADD <url>`` from a loopback server: the same files (mode 0600, never extracted,
    named after the URL or the destination), the same history summaries (a bare digest of
    the download's tar stream) and, with ``--layers``, the same layer diff_ids."""
    (http_files.root / "pub").mkdir()
    (http_files.root / "pub/file.txt").write_bytes(b"payload\n")
    (http_files.root / "r.tar.gz").write_bytes(gzip.compress(ARCHIVE, mtime=0))
    for name in ("pub/file.txt", "r.tar.gz"):
        os.utime(http_files.root / name, (1_683_356_889, 1_683_356_889))
    url = http_files.url
    scenario = Scenario(
        "add-url",
        f"""\
FROM localhost/bb:latest
ADD {url}/pub/file.txt /dl/
ADD {url}/pub/file.txt /renamed
ADD --chmod=644 --chown=app {url}/pub/file.txt /opt/owned
ADD {url}/r.tar.gz /archives/
ADD a.txt {url}/pub/file.txt /mixed/
""",
        SOURCES,
        layers=layers,
    )
    same_as_buildah(scenario)


SAVED = Scenario(
    "saved-and-loaded",
    """\
FROM localhost/bb:latest
ENV MODE=prod
LABEL org.example.version=1.0
WORKDIR /app
RUN echo app > app.txt
USER app
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/app.txt"]
""",
)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_loads_an_aiopod_build_with_the_config_buildah_gives(
    podman: Podman,
    skopeo: Tool,
    umoci: Tool,
    store: Path,
    busybox_rootfs_tar: Path,
    tmp_path: Path,
    fmt: str,
) -> None:
    """aiopod build → aiopod save → podman load: podman shows aiopod's ID and the same
    Config as aiopod's inspect, and as buildah's build of the same Dockerfile."""
    theirs, mine = build_both(
        SAVED,
        podman=podman,
        skopeo=skopeo,
        umoci=umoci,
        store=store,
        base_tar=busybox_rootfs_tar,
        work=tmp_path / "work",
    )
    assert not explain_differences(SAVED, theirs, mine)
    name = "localhost/saved-and-loaded:aiopod"
    [mine_inspect] = aiopod_inspect(store, name)
    archive = tmp_path / "saved.tar"
    aiopod_ok("save", "--format", fmt, "-o", archive, name, root=store)
    assert loaded_names(podman("load", "-i", archive).stdout) == [name]
    loaded = podman.inspect(name)
    assert strip_sha256(loaded["Id"]) == mine_inspect["Id"]
    assert loaded["Config"] == mine_inspect["Config"]
    buildahs = podman.inspect("localhost/saved-and-loaded:buildah")["Config"]
    buildahs["Labels"].pop("io.buildah.version")
    assert loaded["Config"] == buildahs


def test_the_comparison_sees_every_kind_of_difference(tmp_path: Path) -> None:
    """explain_differences is not blind: files, owners, config and history all count."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("same\n")
    (tmp_path / "b" / "f").write_text("same\n")
    (tmp_path / "a" / "dev").mkdir()  # a mount-point stub: tolerated
    config = {
        "config": {"Env": ["A=1"], "Labels": {"io.buildah.version": "1.28.2"}},
        "history": [{"created_by": "base"}, {"created_by": "/bin/sh -c #(nop) ENV A=1"}],
        "rootfs": {"diff_ids": ["sha256:1"]},
    }
    scenario = Scenario("self-test", "")

    def built(root: str, **changes: Any) -> Built:
        doc = json.loads(json.dumps(config))
        doc["config"].update(changes)
        return Built(tmp_path / root, doc, 1, "")

    assert explain_differences(scenario, built("a"), built("b")) == ""
    (tmp_path / "b" / "f").write_text("other\n")
    assert "f: " in explain_differences(scenario, built("a"), built("b"))
    (tmp_path / "b" / "f").write_text("same\n")
    (tmp_path / "b" / "f").chmod(0o600)
    assert "f: " in explain_differences(scenario, built("a"), built("b"))
    (tmp_path / "b" / "f").chmod(0o644)
    assert "config User" in explain_differences(scenario, built("a"), built("b", User="app"))
    assert "config Env" in explain_differences(scenario, built("a"), built("b", Env=["A=2"]))
    other = built("b")
    other.config["history"][1]["created_by"] = "/bin/sh -c #(nop) ENV A=2"
    assert "history created_by" in explain_differences(scenario, built("a"), other)
    layered = Scenario("self-test", "", layers=True)
    copy, other = built("a"), built("b")
    for doc in (copy.config, other.config):
        doc["history"][1] = {"created_by": "/bin/sh -c #(nop) COPY file:1 in / "}
        doc["rootfs"]["diff_ids"].append("sha256:2")
    assert explain_differences(layered, copy, other) == ""
    other.config["rootfs"]["diff_ids"][1] = "sha256:3"
    assert "COPY layer" in explain_differences(layered, copy, other)
