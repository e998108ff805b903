"""The differential scenarios: podman 4.3.1 against ``aiopod --policy podman``.

Each one names the rule of ``docs/design/removal-rules.md`` it proves.  Catalogue roles
(see ``differential.py``): ``bb`` (busybox, imported), ``one``, ``two``, ``three``
(``FROM bb`` + one ``RUN``: children of ``bb``), ``inter`` (untagged intermediate, child
of ``bb``) and ``chain`` (child of ``inter``); ``pair-a``/``pair-b`` stand for the two
catalogue images whose IDs share a prefix (``{ambiguous}``).

Left out on purpose: podman's quirk of A3 (an image deleted while it had children and named
again in the same call is reported a second time, with logrus warnings).
"""

from __future__ import annotations

from differential import Ctr, Img, Scenario

__all__ = ("SCENARIOS",)

# Stores used by several scenarios.
ONE = Img("one", "localhost/one:latest")
O23 = Img("one", "localhost/o2:latest", "localhost/o3:latest")  # one image, two names
OTHER = Img("two", "localhost/other:latest")
DANGLING = Img("two")  # no names, no children
BB = Img("bb", "localhost/bb:latest")
BB_UNTAGGED = Img("bb")
INTER = Img("inter")
CHAIN = Img("chain", "localhost/chain:latest")

C1 = Ctr("c1", "localhost/one:latest")
W1 = Ctr("w1", "localhost/one:latest", external=True)


def rmi(*args: str) -> tuple[str, ...]:
    return ("rmi", *args)


SCENARIOS: tuple[Scenario, ...] = (
    # ---- A. the command layer ---------------------------------------------------------------
    Scenario("rmi-no-argument", "A1", (ONE,), rmi()),
    Scenario("rmi-all-with-a-name", "A1", (ONE,), rmi("-a", "one")),
    Scenario("rmi-o2-o3-other-dedupes", "A3/A4", (O23, OTHER), rmi("o2", "o3", "other")),
    Scenario("rmi-other-other", "A3/G29", (OTHER,), rmi("other", "other")),
    Scenario("rmi-name-then-its-id", "A3/G29", (ONE, OTHER), rmi("one", "{id[one]}")),
    Scenario("rmi-o2-o2-second-reference-deletes", "A3/C18", (O23,), rmi("o2", "o2")),
    Scenario("rmi-other-missing-prints-stdout-exit-1", "A5/A6", (OTHER,), rmi("other", "missing")),
    Scenario("rmi-two-missing-errors-block", "A5/A6", (ONE,), rmi("missing1", "missing2")),
    Scenario(
        "rmi-exit-2-beats-125-beats-1",
        "A6",
        (ONE, Img("two", "localhost/t2:latest", "localhost/t3:latest")),
        rmi("missing", "{id[two]}", "one"),
        containers=(C1,),
    ),
    Scenario(
        "rmi-must-force-and-missing-exit-125",
        "A6",
        (O23,),
        rmi("{id[one]}", "missing"),
    ),
    Scenario("rmi-f-silences-not-known", "A7", (OTHER,), rmi("-f", "other", "missing")),
    Scenario("rmi-f-missing-only", "A7", (ONE,), rmi("-f", "missing")),
    Scenario("rmi-f-keeps-a-malformed-reference-error", "A7/B10", (ONE,), rmi("-f", "Foo", "one")),
    Scenario("rmi-i-skips-missing", "A7", (OTHER,), rmi("-i", "missing", "other")),
    Scenario("rmi-i-keeps-other-errors", "A7", (O23,), rmi("-i", "{id[one]}", "missing")),
    Scenario("image-rm-alias", "A", (ONE,), ("image", "rm", "one")),
    # ---- B. name resolution -----------------------------------------------------------------
    Scenario("rmi-name-one-name-deletes", "B12/C18", (ONE, OTHER), rmi("one")),
    Scenario("rmi-name-two-names-untags", "C19", (O23, OTHER), rmi("o2")),
    Scenario(
        "rmi-digested-name-counts-as-a-name",
        "C17",
        (Img("one", "localhost/one:latest", "localhost/one@{digest[one]}"),),
        rmi("one"),
    ),
    Scenario("rmi-full-id", "B12.5/C18", (ONE, OTHER), rmi("{id[one]}")),
    Scenario("rmi-short-id", "B12.5/C18", (ONE, OTHER), rmi("{short[one]}")),
    Scenario("rmi-unique-prefix", "B12.5/C18", (ONE, OTHER), rmi("{prefix[one]}")),
    Scenario(
        "rmi-ambiguous-prefix-not-known",
        "B12.5",
        (Img("pair-a", "localhost/pa:latest"), Img("pair-b", "localhost/pb:latest")),
        rmi("{ambiguous}"),
    ),
    Scenario("rmi-sha256-id", "B11", (ONE, OTHER), rmi("sha256:{id[one]}")),
    Scenario("rmi-sha256-abc-invalid", "B11", (ONE,), rmi("sha256:abc")),
    Scenario("rmi-sha256-manifest-digest-not-an-id", "B11", (ONE,), rmi("{digest[one]}")),
    Scenario("rmi-uppercase", "B10", (ONE,), rmi("Foo")),
    Scenario("rmi-empty-string", "B10", (ONE,), rmi("")),
    Scenario("rmi-name-at-digest", "B12.6/C18", (ONE, OTHER), rmi("localhost/one@{digest[one]}")),
    Scenario(
        "rmi-name-tag-at-digest-drops-tag",
        "B10",
        (ONE,),
        rmi("localhost/one:latest@{digest[one]}"),
    ),
    Scenario(
        "rmi-nosuchrepo-at-digest-scans-digests",
        "B12.6",
        (ONE, OTHER),
        rmi("localhost/nosuchrepo@{digest[two]}"),
    ),
    Scenario(
        "rmi-digest-of-two-names-tag-not-known",
        "C19",
        (O23,),
        rmi("localhost/o2@{digest[one]}"),
    ),
    Scenario(
        "rmi-f-digest-of-two-names-tag-not-known",
        "C19",
        (O23,),
        rmi("-f", "localhost/o2@{digest[one]}"),
    ),
    Scenario("rmi-fully-qualified-without-tag", "B12", (ONE, OTHER), rmi("localhost/one")),
    Scenario(
        "rmi-fully-qualified-skips-path-suffix",
        "B12",
        (Img("one", "quay.io/x/y:latest"),),
        rmi("quay.io/y"),
    ),
    Scenario(
        "rmi-digested-name-untags-it",
        "B12/C17",
        (Img("one", "localhost/one:latest", "localhost/one@{digest[one]}"),),
        rmi("localhost/one@{digest[one]}"),
    ),
    Scenario("rmi-path-suffix-tag", "B12.7", (Img("one", "quay.io/x/y:2"),), rmi("y:2")),
    Scenario("rmi-path-suffix-latest", "B12.7", (Img("one", "quay.io/x/z:latest"),), rmi("x/z")),
    Scenario("rmi-o5-is-not-o5-v1", "B14", (Img("one", "localhost/o5:v1"),), rmi("o5")),
    Scenario(
        "rmi-localhost-beats-docker-io",
        "B12",
        (Img("one", "docker.io/library/dup:latest"), Img("two", "localhost/dup:latest")),
        rmi("dup"),
    ),
    Scenario(
        "rmi-docker-io-name-printed-normalised",
        "A4/B12.4",
        (Img("one", "docker.io/library/dockerish:1"),),
        rmi("dockerish:1"),
    ),
    Scenario(
        "rmi-name-beats-id-prefix",
        "B12",
        (ONE, Img("two", "localhost/{prefix[one]}:latest")),
        rmi("{prefix[one]}"),
    ),
    Scenario(
        "rmi-containers-storage-transport-removes-every-name",
        "B9",
        (O23,),
        rmi("containers-storage:localhost/o2:latest"),
    ),
    Scenario(
        "rmi-containers-storage-transport-by-id",
        "B9",
        (O23, OTHER),
        rmi("containers-storage:{id[one]}"),
    ),
    Scenario(
        "rmi-containers-storage-transport-missing",
        "B9/B14",
        (ONE,),
        rmi("containers-storage:localhost/missing:latest"),
    ),
    Scenario("rmi-unsupported-transport", "B9", (ONE,), rmi("docker://localhost/one:latest")),
    Scenario(
        "rmi-docker-io-short-path-normalised",
        "B12",
        (Img("one", "docker.io/library/dockerish:latest"),),
        rmi("docker.io/dockerish"),
    ),
    # ---- C. removing one image --------------------------------------------------------------
    Scenario("rmi-id-of-two-names-must-force", "C19", (O23,), rmi("{id[one]}")),
    Scenario(
        "rmi-sha256-id-of-two-names-must-force-by-digest", "C19", (O23,), rmi("sha256:{id[one]}")
    ),
    Scenario("rmi-f-id-of-two-names", "C19", (O23, OTHER), rmi("-f", "{id[one]}")),
    Scenario("rmi-in-use-exit-2", "C20.3", (ONE,), rmi("one"), containers=(C1,)),
    Scenario(
        "rmi-in-use-names-last-container-external",
        "C20.3",
        (ONE,),
        rmi("one"),
        containers=(C1, W1),
    ),
    Scenario(
        "rmi-in-use-names-last-container-runtime",
        "C20.3",
        (ONE,),
        rmi("one"),
        containers=(W1, C1),
    ),
    Scenario(
        "rmi-name-of-two-names-in-use-untags",
        "C19",
        (O23,),
        rmi("o2"),
        containers=(Ctr("c1", "localhost/o2:latest"),),
    ),
    Scenario(
        "rmi-f-removes-runtime-and-external-containers",
        "C20.1",
        (ONE, OTHER),
        rmi("-f", "one"),
        containers=(C1, W1, Ctr("c2", "localhost/other:latest")),
    ),
    Scenario(
        "rmi-f-id-of-two-names-with-containers",
        "C19/C20.1",
        (O23,),
        rmi("-f", "{id[one]}"),
        containers=(Ctr("c1", "localhost/o2:latest"), Ctr("w1", "localhost/o3:latest", True)),
    ),
    Scenario(
        "rmi-f-name-of-two-names-keeps-containers",
        "C19",
        (O23,),
        rmi("-f", "o2"),
        containers=(Ctr("c1", "localhost/o2:latest"),),
    ),
    Scenario(
        "rmi-parent-with-children-by-name-deleted-silently",
        "C20.5",
        (BB, ONE),
        rmi("bb"),
    ),
    Scenario(
        "rmi-parent-then-its-child",
        "C20.4/C20.5",
        (BB, ONE),
        rmi("bb", "one"),
    ),
    Scenario(
        "rmi-child-keeps-a-tagged-parent",
        "C20.6",
        (BB, ONE),
        rmi("one"),
    ),
    Scenario(
        "rmi-f-parent-with-children-and-a-container",
        "C20.1/C20.5",
        (BB, ONE),
        rmi("-f", "bb"),
        containers=(Ctr("c1", "localhost/bb:latest"), Ctr("w1", "localhost/one:latest", True)),
    ),
    Scenario(
        "rmi-untagged-intermediate-by-id-no-output",
        "C20.5",
        (BB, INTER, CHAIN),
        rmi("{id[inter]}"),
    ),
    Scenario(
        "rmi-removes-dangling-parents-recursively",
        "C20.6/G29",
        (BB_UNTAGGED, INTER, CHAIN),
        rmi("chain"),
    ),
    Scenario(
        "rmi-id-of-untagged-chain-removes-dangling-parents",
        "C20.6/G29",
        (BB_UNTAGGED, INTER, Img("chain")),
        rmi("{id[chain]}"),
    ),
    Scenario(
        "rmi-no-prune-keeps-dangling-parent",
        "C20.6",
        (BB_UNTAGGED, INTER, CHAIN),
        rmi("--no-prune", "chain"),
    ),
    # ---- D. rmi -a ----------------------------------------------------------------------------
    Scenario("rmi-a-empty-store", "D22", (), rmi("-a")),
    Scenario(
        "rmi-a-parents-and-children",
        "D22",
        (BB, ONE, INTER, CHAIN, OTHER),
        rmi("-a"),
    ),
    Scenario(
        "rmi-a-child-first-removes-parents-then-meets-them-again",
        "D22/A3/G29",
        (Img("chain"), INTER, BB_UNTAGGED),
        rmi("-a"),
    ),
    Scenario("rmi-a-in-use-exit-2-others-removed", "D22", (ONE, OTHER), rmi("-a"), (C1,)),
    Scenario(
        "rmi-a-f-removes-containers",
        "D22",
        (ONE, OTHER),
        rmi("-a", "-f"),
        containers=(C1, W1),
    ),
    Scenario(
        "rmi-a-f-containers-on-two-images",
        "D22/G29",
        (ONE, OTHER, Img("three", "localhost/three:latest")),
        rmi("-a", "-f"),
        containers=(
            C1,
            Ctr("c2", "localhost/other:latest"),
            Ctr("w2", "localhost/other:latest", True),
        ),
    ),
    Scenario("rmi-a-i-empty-store", "D22", (), rmi("-a", "-i")),
    # ---- E. image prune ---------------------------------------------------------------------
    Scenario(
        "prune-f-siblings-then-their-parent",
        "E24/E25",
        (BB_UNTAGGED, Img("one"), Img("two")),
        ("image", "prune", "-f"),
    ),
    Scenario(
        "prune-f-in-use-child-protects-its-parent",
        "E25",
        (BB_UNTAGGED, INTER, Img("chain")),
        ("image", "prune", "-f"),
        containers=(Ctr("c1", "{id[chain]}"),),
    ),
    Scenario("prune-f-dangling", "E24/E25", (ONE, DANGLING), ("image", "prune", "-f")),
    Scenario(
        "prune-a-f-every-unused-image",
        "E24/E25",
        (ONE, OTHER, Img("three")),
        ("image", "prune", "-a", "-f"),
    ),
    Scenario("prune-nothing-to-prune", "E25", (ONE,), ("image", "prune", "-f")),
    Scenario(
        "prune-in-use-untagged-image-kept",
        "E25",
        (ONE, DANGLING),
        ("image", "prune", "-f"),
        containers=(Ctr("c1", "{id[two]}"),),
    ),
    Scenario(
        "prune-a-deletes-base-while-child-in-use",
        "E25",
        (BB, Img("one", "localhost/child1:latest"), Img("two", "localhost/child2:latest")),
        ("image", "prune", "-a", "-f"),
        containers=(Ctr("c1", "localhost/child1:latest"),),
    ),
    Scenario(
        "prune-f-removes-dangling-chain",
        "E24/E25",
        (BB_UNTAGGED, INTER, Img("chain")),
        ("image", "prune", "-f"),
    ),
    Scenario("prune-prompt-answer-n", "E23", (ONE, DANGLING), ("image", "prune"), input="n\n"),
    Scenario("prune-prompt-answer-y", "E23", (ONE, DANGLING), ("image", "prune"), input="y\n"),
    Scenario(
        "prune-a-prompt-empty-answer",
        "E23",
        (ONE, DANGLING),
        ("image", "prune", "-a"),
        input="\n",
    ),
    # ---- E. image prune --external: images only external containers use go, with them;
    # a runtime container still protects its image (the runs without the flag contrast) ----
    Scenario(
        "prune-external-dangling-image-of-an-external-container-goes-with-it",
        "E/external",
        (ONE, DANGLING),
        ("image", "prune", "-f", "--external"),
        containers=(Ctr("w1", "{id[two]}", external=True),),
    ),
    Scenario(
        "prune-external-without-external-the-external-container-protects-it",
        "E/external",
        (ONE, DANGLING),
        ("image", "prune", "-f"),
        containers=(Ctr("w1", "{id[two]}", external=True),),
    ),
    Scenario(
        "prune-external-all-removes-images-only-external-containers-use",
        "E/external",
        (ONE, OTHER),
        ("image", "prune", "-a", "-f", "--external"),
        containers=(
            Ctr("w1", "localhost/one:latest", external=True),
            Ctr("w2", "localhost/one:latest", external=True),
            Ctr("c1", "localhost/other:latest"),
        ),
    ),
    Scenario(
        "prune-external-all-keeps-an-image-a-runtime-container-uses-too",
        "E/external",
        (ONE,),
        ("image", "prune", "-a", "-f", "--external"),
        containers=(
            Ctr("w1", "localhost/one:latest", external=True),
            Ctr("c1", "localhost/one:latest"),
        ),
    ),
    Scenario(
        "prune-external-a-dangling-parent-goes-with-its-external-container",
        "E/external",
        (BB_UNTAGGED, Img("one")),
        ("image", "prune", "-f", "--external"),
        containers=(Ctr("w1", "{id[bb]}", external=True),),
    ),
    Scenario(
        "prune-external-without-external-a-dangling-parent-in-use-is-an-error",
        "E/external",
        (BB_UNTAGGED, Img("one")),
        ("image", "prune", "-f"),
        containers=(Ctr("w1", "{id[bb]}", external=True),),
    ),
    Scenario(
        "prune-external-a-dangling-parent-a-runtime-container-uses-is-an-error",
        "E/external",
        (BB_UNTAGGED, Img("one")),
        ("image", "prune", "-f", "--external"),
        containers=(Ctr("c1", "{id[bb]}"),),
    ),
    Scenario(
        "prune-external-all-removes-a-base-and-its-child-once-the-child-is-gone",
        "E/external",
        (BB, Img("one", "localhost/child1:latest")),
        ("image", "prune", "-a", "-f", "--external"),
        containers=(Ctr("w1", "localhost/bb:latest", external=True),),
    ),
    Scenario(
        "prune-external-nothing-to-prune",
        "E/external",
        (ONE,),
        ("image", "prune", "-f", "--external"),
        containers=(Ctr("c1", "localhost/one:latest"),),
    ),
    Scenario(
        "prune-external-the-prompt-is-the-same",
        "E/external",
        (ONE, DANGLING),
        ("image", "prune", "--external"),
        containers=(Ctr("w1", "{id[two]}", external=True),),
        input="y\n",
    ),
    Scenario(
        "prune-external-the-prompt-of-all-is-the-same",
        "E/external",
        (ONE, DANGLING),
        ("image", "prune", "-a", "--external"),
        containers=(Ctr("w1", "{id[two]}", external=True),),
        input="n\n",
    ),
    # ---- F. untag / tag ---------------------------------------------------------------------
    Scenario("untag-every-name", "F26", (O23,), ("untag", "o2")),
    Scenario("untag-a-given-name", "F26", (O23,), ("untag", "o2", "o3")),
    Scenario(
        "untag-removes-digested-names-too",
        "F26",
        (Img("one", "localhost/one:latest", "localhost/one@{digest[one]}"),),
        ("untag", "one"),
    ),
    Scenario("untag-unknown-name", "F26", (O23,), ("untag", "o2", "nosuch")),
    Scenario("untag-sha256-name", "F26", (O23,), ("untag", "o2", "sha256:{id[one]}")),
    Scenario("untag-unknown-image-exit-125", "F26", (ONE,), ("untag", "missing")),
    Scenario("tag-new-names", "F27/G28", (ONE,), ("tag", "one", "a", "b:2", "quay.io/x/c")),
    Scenario("tag-moves-a-name-from-another-image", "F27", (ONE, OTHER), ("tag", "one", "other")),
    Scenario(
        "tag-duplicate-is-a-no-op",
        "F27/G28",
        (ONE,),
        ("tag", "one", "one"),
    ),
    Scenario("tag-digest-refused", "F27", (ONE,), ("tag", "one", "localhost/x@{digest[one]}")),
)
