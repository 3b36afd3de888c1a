"""`harness images build|list`: the Docker images cells run in, one per device (and per matrix `image:`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.commands import make_console
from harness.common.errors import ConfigurationError
from harness.common.untrusted_text import print_line
from harness.config.matrix import load_matrix
from harness.config.model import ImageSpec
from harness.running.containers import engine_client
from harness.running.images import DEVICE_IMAGES, ImageRecipe, build_image, find_image, recipe_for

DEFAULT_MATRIX = Path("matrix.yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `images` subcommand with its `build` and `list` actions."""
    parser = subparsers.add_parser("images", help="build or list the Docker images cells run in")
    actions = parser.add_subparsers(dest="images_action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="build device images (skipped when the tag is present)")
    build.add_argument(
        "devices",
        nargs="*",
        metavar="DEVICE",
        help="cpu, cuda or xpu (default: cpu, and the GPU kinds this host has)",
    )
    build.add_argument("--base-image", metavar="IMAGE", help="build FROM this image instead of the default")
    build.add_argument(
        "--wheelhouse", type=Path, metavar="DIR", help="install Python packages from these wheels only"
    )
    build.add_argument(
        "--offline",
        action="store_true",
        help="no registry: make the base image with debootstrap and the wheelhouse with pip on this host",
    )
    build.add_argument(
        "--torch",
        choices=("wheels", "base"),
        default=None,
        help="cuda: where torch comes from: wheels (torch's CUDA wheels), or base (the --base-image's own "
        "CUDA torch, e.g. an NGC PyTorch image); default: the matrix's image.torch, else wheels",
    )
    build.add_argument("--rebuild", action="store_true", help="build even when the tag is present")
    _add_matrix_argument(build)
    build.set_defaults(handler=handle_build)

    host = actions.add_parser(
        "import-host",
        help="make a base image from this host's Python environment (for image.torch: base on a GPU host)",
    )
    host.add_argument("tag", metavar="TAG", help="the image to make, e.g. comm-harness/host-torch:local")
    host.add_argument(
        "--python",
        default=sys.executable,
        metavar="PATH",
        help="the interpreter whose environment to take (default: the one running the harness)",
    )
    host.set_defaults(handler=handle_import_host)

    listing = actions.add_parser("list", help="each device's image tag and whether it is present")
    _add_matrix_argument(listing)
    listing.set_defaults(handler=handle_list)


def _add_matrix_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--matrix",
        type=Path,
        metavar="FILE",
        help="take each device's `image:` from this matrix (default: ./matrix.yaml when it exists)",
    )


def recipes(devices: list[str], matrix_path: Path | None) -> list[ImageRecipe]:
    """The recipes of `devices`' images: every distinct `image:` the matrix gives them, else the default."""
    if matrix_path is None and DEFAULT_MATRIX.is_file():
        matrix_path = DEFAULT_MATRIX
    specs: dict[str, list[ImageSpec]] = {device: [] for device in devices}
    root = Path.cwd()
    if matrix_path is not None:
        matrix = load_matrix(matrix_path)
        root = matrix.root
        for cell in matrix.cells:
            if cell.device in specs and cell.image and cell.image not in specs[cell.device]:
                specs[cell.device].append(cell.image)
    found: dict[str, ImageRecipe] = {}
    for device in devices:
        for spec in specs[device] or [None]:
            recipe = recipe_for(device, spec, root) if spec else recipe_for(device)
            found.setdefault(recipe.tag, recipe)
    return list(found.values())


def default_devices() -> list[str]:
    """cpu, and cuda or xpu where this host has such GPUs."""
    from harness.host.fingerprint import query_nvidia_gpus
    from harness.host.probe import find_intel_render_nodes

    devices = ["cpu"]
    if query_nvidia_gpus()[0]:
        devices.append("cuda")
    if find_intel_render_nodes():
        devices.append("xpu")
    return devices


def handle_build(args: argparse.Namespace) -> int:
    """Build each requested image (its log streamed), skipping present tags; exit 0 when all exist."""
    unknown = sorted(set(args.devices) - set(DEVICE_IMAGES))
    if unknown:
        raise ConfigurationError(
            f"unknown device {', '.join(unknown)}; choose from {', '.join(sorted(DEVICE_IMAGES))}"
        )
    if args.wheelhouse is not None and not args.wheelhouse.is_dir():
        raise ConfigurationError(f"--wheelhouse {args.wheelhouse}: no such directory")
    console = make_console()
    with engine_client() as client:
        for recipe in recipes(args.devices or default_devices(), args.matrix):
            outcome = build_image(
                client,
                recipe,
                base_image=args.base_image,
                wheelhouse=args.wheelhouse.resolve() if args.wheelhouse else None,
                offline=args.offline,
                rebuild=args.rebuild,
                torch_from=args.torch,
                log=lambda line: print_line(console, line),
            )
            verb = "built" if outcome.built else "present"
            console.print(f"[bold]{recipe.device}[/]: {outcome.tag} {verb} ({outcome.seconds:.1f} s)")
    return 0


def handle_import_host(args: argparse.Namespace) -> int:
    """Import this host's Python environment (its torch included) as a base image; no registry needed."""
    from harness.running.images import import_host_environment

    console = make_console()
    started = time.monotonic()
    # Gigabytes streamed in one request, answered when the engine has unpacked them: no 60 s HTTP timeout.
    with engine_client(timeout_s=3600) as client:
        import_host_environment(client, args.tag, args.python, log=lambda line: print_line(console, line))
    console.print(
        f"{args.tag}: made in {time.monotonic() - started:.0f} s; build on it with "
        f"`harness images build cuda --torch base --base-image {args.tag}`",
        markup=False,
    )
    return 0


def handle_list(args: argparse.Namespace) -> int:
    """Print each device's image: tag, present or not, and how to build a missing one."""
    table = Table(title="comm-harness images")
    for column in ("device", "tag", "present", "image id", "size", "built from"):
        table.add_column(column)
    with engine_client() as client:
        for recipe in recipes(sorted(DEVICE_IMAGES), args.matrix):
            image = find_image(client, recipe.tag)
            table.add_row(recipe.device, recipe.tag, *_image_columns(image, recipe.device))
    make_console().print(table)
    return 0


def _image_columns(image: Any, device: str) -> tuple[str, str, str, str]:
    from harness.running.images import LABEL_SOURCES, build_command

    if image is None:
        return "[yellow]no[/]", "", "", f"`{build_command(device)}` builds it"
    size = f"{image.attrs.get('Size', 0) / 1e9:.2f} GB"
    return "yes", image.short_id.removeprefix("sha256:"), size, image.labels.get(LABEL_SOURCES, "")
