"""The images, archives and operations the stress and kill tests share.

Every image ships names from one small pool, so loads, tags and builds of different
processes keep taking names from each other; ``CHILD`` shares ``BASE``'s layer.
"""

from __future__ import annotations

import random
from pathlib import Path

from imagefactory import child_image, make_image, write_docker_archive

from aiopod import Runtime

POOL = tuple(f"localhost/p{i}:latest" for i in range(6))

BASE = make_image(POOL[0], seed="base")
CHILD = child_image(BASE, POOL[1], POOL[2], files={"usr/child": b"child"})
OTHER = make_image(POOL[2], POOL[3], seed="other")
LONE = make_image(POOL[4], seed="lone")
DANGLING = make_image(seed="dangling")  # no names

IMAGES = (BASE, CHILD, OTHER, LONE, DANGLING)

DOCKERFILE = "FROM {base}\nLABEL stress={label}\n"


def prepare(workdir: Path) -> dict[str, Path]:
    """One docker-archive per image in *workdir* (and a build context); their paths."""
    workdir.mkdir(parents=True, exist_ok=True)
    archives = {
        image.id: write_docker_archive(workdir / f"{i}.tar", [image])
        for i, image in enumerate(IMAGES)
    }
    (workdir / "context").mkdir(exist_ok=True)
    return archives


def archives_in(workdir: Path) -> list[Path]:
    return sorted(workdir.glob("*.tar"))


async def build(rt: Runtime, workdir: Path, base: str, label: str, tag: str) -> None:
    context = workdir / "context"
    dockerfile = context / f"Dockerfile.{label}"
    dockerfile.write_text(DOCKERFILE.format(base=base, label=label))
    await rt.build(context, dockerfile=dockerfile, tags=[tag], pull="never")


async def random_operation(rt: Runtime, rng: random.Random, workdir: Path, step: str) -> str:
    """Run one operation drawn from *rng*; its name (errors are the caller's)."""
    name = rng.choice(POOL)
    other = rng.choice(POOL)
    images = await rt.images(all=True)
    some_id = rng.choice(images).id if images else "0" * 64
    reference = rng.choice([name, some_id])
    operation = rng.choices(
        ["load", "tag", "untag", "untag-all", "rmi", "rmi-f", "create", "rm", "build", "prune"],
        weights=[5, 5, 3, 1, 3, 2, 3, 3, 1, 1],
    )[0]
    if operation == "load":
        await rt.load(rng.choice(archives_in(workdir)))
    elif operation == "tag":
        await rt.tag(reference, other)
    elif operation == "untag":
        await rt.untag(reference, other)
    elif operation == "untag-all":
        await rt.untag(reference)
    elif operation == "rmi":
        await rt.remove_images([reference])
    elif operation == "rmi-f":
        await rt.remove_images([reference], force=True)
    elif operation == "create":
        if rng.random() < 0.5:
            await rt.create_working_container(reference)
        else:
            await rt.create_container(reference, ["true"])
    elif operation == "rm":
        containers = await rt.containers(external=True)
        if containers:
            await rt.remove_containers([rng.choice(containers).id])
    elif operation == "build":
        await build(rt, workdir, reference, step, other)
    else:
        await rt.prune_images()
    return operation
