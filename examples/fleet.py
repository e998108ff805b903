"""Build on one machine, push to a registry, pull on a fleet.

Run it with ``python examples/fleet.py REGISTRY [--insecure] [--machines N] [WORKDIR]``,
e.g. ``python examples/fleet.py 127.0.0.1:5000 --insecure`` against a local
``docker-registry`` (``--insecure``: plain HTTP or a certificate not to verify).  Every
"machine" is a store of its own under WORKDIR (a temporary directory by default), so it
never touches your default store:

1. the build machine imports ``examples/rootfs`` as a base image and pushes it;
2. a fresh build machine builds an application ``FROM`` the pushed base: the build pulls
   the base (its pull policy is podman's ``missing``) and the result is pushed;
3. the fleet pulls the application concurrently, one store per machine; every machine
   gets the same image ID and manifest digest, which the script checks.

The registry is the only thing the machines share: any OCI registry will do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

import aiopod

sys.path.insert(0, str(Path(__file__).parent))
from quickstart import make_rootfs_tarball


async def publish_base(workdir: Path, registry: str, tls_verify: bool) -> str:
    base = f"{registry}/fleet/base:1"
    async with aiopod.Runtime(root=workdir / "machine-0") as rt:
        await rt.import_image(make_rootfs_tarball(workdir / "rootfs.tar"), base)
        digest = await rt.push(base, tls_verify=tls_verify)
    print(f"pushed {base} ({digest})")
    return base


async def build_and_push_app(workdir: Path, registry: str, base: str, tls_verify: bool) -> str:
    app = f"{registry}/fleet/app:1"
    context = workdir / "context"
    context.mkdir()
    (context / "motd").write_text("built once, pulled everywhere\n")
    (context / "Containerfile").write_text(f"FROM {base}\nCOPY motd /etc/motd\n")
    async with aiopod.Runtime(root=workdir / "builder") as rt:
        image = await rt.build(context, tags=[app], timestamp=0, tls_verify=tls_verify)
        digest = await rt.push(app, tls_verify=tls_verify)
    print(f"built {image.short_id} from {base} (pulled by the build) and pushed {app} ({digest})")
    return app


async def pull_on_fleet(workdir: Path, app: str, machines: int, tls_verify: bool) -> None:
    pulled: dict[int, aiopod.Image] = {}

    async def machine(number: int) -> None:
        async with aiopod.Runtime(root=workdir / f"machine-{number}") as rt:
            pulled[number] = await rt.pull(app, tls_verify=tls_verify)

    async with anyio.create_task_group() as tg:
        for number in range(1, machines + 1):
            tg.start_soon(machine, number)
    for number, image in sorted(pulled.items()):
        print(f"machine-{number}: {image.short_id} {image.digest}")
    if len({(image.id, image.digest) for image in pulled.values()}) != 1:
        raise SystemExit("the machines disagree on the image")
    print(f"{machines} machines run the same image")


async def main(workdir: Path, registry: str, machines: int, tls_verify: bool) -> None:
    base = await publish_base(workdir, registry, tls_verify)
    app = await build_and_push_app(workdir, registry, base, tls_verify)
    await pull_on_fleet(workdir, app, machines, tls_verify)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registry", help="HOST[:PORT] of an OCI registry")
    parser.add_argument("workdir", nargs="?", type=Path, help="where the stores go")
    parser.add_argument("--insecure", action="store_true", help="plain HTTP / no TLS check")
    parser.add_argument("--machines", type=int, default=4)
    args = parser.parse_intermixed_args()
    with tempfile.TemporaryDirectory() as scratch:
        anyio.run(
            main, args.workdir or Path(scratch), args.registry, args.machines, not args.insecure
        )
