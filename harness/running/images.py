"""The Docker images cells run in: one recipe per device, content-hash tags, and builds with the log streamed.

An image holds a toolchain only (Python, torch, pytest); the repository is mounted at /repo when a cell runs.
Its tag is `comm-harness/<device>:<hash>`, the hash covering the Dockerfile, the files of its build context,
its build arguments and the extra packages the matrix asks for, so a change to any of them makes a new tag
and an unchanged image is never rebuilt. The harness adds `.comm-harness/` to the context: the extra
packages as a requirements file and the wheelhouse the image installs from.
Where the base image and the Python packages come from (a registry, or for `--offline` a Debian
bootstrap and a host-side wheelhouse) is not part of the recipe: it is recorded in the image's labels.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.common.errors import ConfigurationError, HarnessError
from harness.config.model import ImageSpec

# The stock Dockerfiles, their toolchain requirements and torch-from-base.sh: package data, so a wheel or an
# sdist installed anywhere builds the same images as a checkout. In a checkout it is a link to the top-level
# docker/ folder (the one place they are edited); the wheel and the sdist hold the files themselves.
STOCK_IMAGES_DIR = Path(__file__).resolve().parents[1] / "resources" / "docker"
# What the harness needs in every image beside torch (pytest, pytest-forked, ...): in every wheelhouse.
TOOLCHAIN_REQUIREMENTS = STOCK_IMAGES_DIR / "requirements.txt"
# The directory the harness adds to every build context: Dockerfile, requirements.txt (the matrix's
# packages) and wheels/ (the wheelhouse). The stock Dockerfiles COPY it.
HARNESS_CONTEXT_DIR = ".comm-harness"
OFFLINE_BASE_IMAGE = "comm-harness/base:bookworm-python3"
# Build arguments that say where things come from, not what the image is: excluded from the tag.
# TORCH_FROM=base takes torch from the base image instead of the wheels (image.torch, `--torch`).
SOURCE_BUILD_ARGS = ("BASE_IMAGE", "WHEELHOUSE", "TORCH_FROM")
TORCH_SOURCES = ("wheels", "base")
LABEL_DEVICE = "comm-harness.device"
LABEL_SOURCES = "comm-harness.sources"
LABEL_INSTALL_STAGE = "comm-harness.install-stage-of"
BUILD_LOG_TAIL_LINES = 40
# The engine colours a build step's stderr red; the colour codes are noise in logs and messages.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

Log = Callable[[str], None]


class ImageBuildError(HarnessError):
    """An image could not be built; the message holds the tail of the build log."""


@dataclass(frozen=True)
class DeviceImage:
    """The default recipe of one device's image."""

    device: str
    # A file name in STOCK_IMAGES_DIR.
    dockerfile: str
    python_version: str
    build_args: dict[str, str] = field(default_factory=dict)
    # Whether a Debian bootstrap can stand in for the base image (the xpu image needs Intel's driver).
    offline_base: bool = True
    # PyPI's Linux torch wheel is this device's build (CUDA): where pip's own configuration offers a CPU
    # build instead (a local CPU wheel directory), the offline wheelhouse takes torch from PyPI.
    torch_from_pypi: bool = False


DEVICE_IMAGES: dict[str, DeviceImage] = {
    "cpu": DeviceImage(
        "cpu",
        "cpu.Dockerfile",
        "3.11",
        {"TORCH_VERSION": "2.13.0", "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cpu"},
    ),
    "cuda": DeviceImage(
        "cuda",
        "cuda.Dockerfile",
        "3.11",
        {"TORCH_VERSION": "2.13.0", "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cu130"},
        torch_from_pypi=True,
    ),
    "xpu": DeviceImage(
        "xpu",
        "xpu.Dockerfile",
        "3.12",
        {"TORCH_VERSION": "2.13.0", "TORCH_INDEX_URL": "https://download.pytorch.org/whl/xpu"},
        offline_base=False,
    ),
}


@dataclass(frozen=True)
class ImageRecipe:
    """What one image is made of: a Dockerfile, its build context, build arguments and extra packages."""

    device: str
    dockerfile: Path
    build_args: dict[str, str]
    python_version: str
    offline_base: bool
    context_dir: Path
    packages: tuple[str, ...] = ()
    requirement_files: tuple[Path, ...] = ()
    # The matrix's own wheels, which pip may install from besides the index or the offline wheelhouse.
    wheelhouse: Path | None = None
    torch_from_pypi: bool = False
    # "wheels", or "base": the base image's own torch (cuda only; see docker/torch-from-base.sh).
    torch_from: str = "wheels"

    @functools.cached_property
    def tag(self) -> str:
        """`comm-harness/<device>:<12 hex digits of the recipe's content hash>`."""
        digest = hashlib.sha256()
        digest.update(self.dockerfile.read_bytes())
        for relative in context_files(self.context_dir):
            digest.update(relative.encode() + b"\0" + _file_digest(self.context_dir / relative))
        for key, value in sorted(self.build_args.items()):
            if key not in SOURCE_BUILD_ARGS:
                digest.update(f"{key}={value}\0".encode())
        digest.update(self.extra_requirements().encode())
        if self.wheelhouse is not None:
            digest.update(wheelhouse_digest(self.wheelhouse).encode())
        return f"comm-harness/{self.device}:{digest.hexdigest()[:12]}"

    def extra_requirements(self) -> str:
        """The matrix's packages and requirements files as one requirements file ("" when none)."""
        parts = [f"{package}\n" for package in self.packages]
        for path in self.requirement_files:
            parts.append(f"# {path.name}\n{path.read_text(encoding='utf-8').rstrip()}\n")
        return "".join(parts)


def recipe_for(device: str, spec: ImageSpec | None = None, repo_root: Path | None = None) -> ImageRecipe:
    """`device`'s image recipe, with a matrix cell's `image:` applied (paths relative to `repo_root`, by
    default the working directory)."""
    repo_root = repo_root or Path.cwd()
    if device not in DEVICE_IMAGES:
        raise ConfigurationError(f"no image for device {device!r}; known devices: {', '.join(DEVICE_IMAGES)}")
    default = DEVICE_IMAGES[device]
    spec = spec or ImageSpec()
    dockerfile = repo_root / spec.dockerfile if spec.dockerfile else STOCK_IMAGES_DIR / default.dockerfile
    if not dockerfile.is_file():
        raise ConfigurationError(f"Dockerfile {dockerfile} of the {device} image does not exist")
    context = repo_root / spec.context if spec.context else dockerfile.parent
    if not context.is_dir():
        raise ConfigurationError(f"build context {context} of the {device} image is not a directory")
    requirement_files = tuple(repo_root / name for name in spec.requirements)
    for path in requirement_files:
        if not path.is_file():
            raise ConfigurationError(f"requirements file {path} of the {device} image does not exist")
    wheelhouse = repo_root / spec.wheelhouse if spec.wheelhouse else None
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise ConfigurationError(f"wheelhouse {wheelhouse} of the {device} image is not a directory")
    check_torch_source(device, spec.torch, "image.torch")
    return ImageRecipe(
        device,
        dockerfile,
        {**default.build_args, **spec.build_args},
        default.python_version,
        default.offline_base,
        context,
        packages=spec.packages,
        requirement_files=requirement_files,
        wheelhouse=wheelhouse,
        torch_from_pypi=default.torch_from_pypi,
        torch_from=spec.torch,
    )


def check_torch_source(device: str, torch_from: str, key: str) -> None:
    """Only the cuda image can take torch from its base (its Dockerfile knows how): refuse anything else."""
    if torch_from not in TORCH_SOURCES:
        raise ConfigurationError(f"{key} {torch_from!r}: use one of {', '.join(TORCH_SOURCES)}")
    if torch_from == "base" and device != "cuda":
        raise ConfigurationError(
            f"{key} base: only the cuda image can take torch from its base image (the {device} image "
            "installs its own torch); drop it, or give a Dockerfile of your own"
        )


def context_files(context: Path) -> list[str]:
    """The files of a build context that reach the engine, as its `.dockerignore` leaves them (sorted)."""
    from docker.utils.build import exclude_paths

    ignore = context / ".dockerignore"
    patterns = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    patterns = [line.strip() for line in patterns if line.strip() and not line.lstrip().startswith("#")]
    kept = exclude_paths(str(context), patterns, dockerfile=".dockerignore")
    # The ignore file itself stays out: it has been applied here, and must not drop .comm-harness/ there.
    return sorted(path for path in kept if path != ".dockerignore" and (context / path).is_file())


# (path, size, mtime) -> sha256: a plan asks for every cell's tag; unchanged files are read once.
_FILE_DIGESTS: dict[tuple[str, int, int], bytes] = {}


def _file_digest(path: Path) -> bytes:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        _FILE_DIGESTS[key] = digest.digest()
    return _FILE_DIGESTS[key]


def cache_dir() -> Path:
    """Where wheelhouses and build logs are kept between runs (HARNESS_CACHE_DIR overrides)."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "comm-harness")


def find_image(client: Any, tag: str) -> Any | None:
    """The local image named `tag`, or None."""
    import docker.errors

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def build_command(device: str) -> str:
    """The command a user runs to build `device`'s image, for messages."""
    return f"harness images build {device}" + (" --offline" if DEVICE_IMAGES[device].offline_base else "")


@dataclass
class BuildOutcome:
    tag: str
    built: bool
    seconds: float
    image_id: str


def build_image(
    client: Any,
    recipe: ImageRecipe,
    *,
    base_image: str | None = None,
    wheelhouse: Path | None = None,
    offline: bool = False,
    rebuild: bool = False,
    torch_from: str | None = None,
    log: Log = print,
) -> BuildOutcome:
    """Build `recipe`'s image unless it is present; `offline` makes the base image and wheelhouse locally.

    `torch_from` ("wheels" or "base", default the recipe's) says where torch comes from; like the base image
    and the wheelhouse it is a source, not part of the tag.
    """
    started = time.monotonic()
    tag = recipe.tag
    torch_from = torch_from or recipe.torch_from
    check_torch_source(recipe.device, torch_from, "--torch")
    base_image = base_image or (recipe.build_args.get("BASE_IMAGE") if torch_from == "base" else None)
    present = find_image(client, tag)
    same_sources = present is not None and not _sources_differ(present, base_image, wheelhouse, torch_from)
    if present is not None and not rebuild and same_sources:
        log(f"{tag}: present ({present.short_id}), not rebuilt")
        return BuildOutcome(tag, False, time.monotonic() - started, present.id)

    if torch_from == "base":
        if base_image is None:
            raise ConfigurationError(
                f"torch from the base image needs a base that holds a CUDA torch: pass --base-image IMAGE "
                f"or set image.build_args.BASE_IMAGE for the {recipe.device} device (e.g. an NGC PyTorch "
                "image, or one imported from a GPU host's environment)"
            )
        if offline and wheelhouse is None:
            python_version = base_python_version(client, base_image)
            log(f"{base_image}: python3 is {python_version}; the wheelhouse is for it, without torch")
            wheelhouse = ensure_wheelhouse(
                dataclasses.replace(recipe, python_version=python_version, torch_from="base"), log
            )
    if offline and base_image is None:
        if not recipe.offline_base:
            raise ConfigurationError(
                f"the {recipe.device} image needs a base image with its vendor's GPU driver, which a Debian "
                f"bootstrap cannot provide: pass --base-image IMAGE (an image already on this engine)"
            )
        base_image = ensure_offline_base(client, log)
    if offline and wheelhouse is None:
        wheelhouse = ensure_wheelhouse(dataclasses.replace(recipe, torch_from=torch_from), log)

    build_args = {**recipe.build_args, "IMAGE_TAG": tag, "TORCH_FROM": torch_from}
    if base_image:
        build_args["BASE_IMAGE"] = base_image
    if wheelhouse:
        build_args["WHEELHOUSE"] = "1"
    sources = _sources_label(base_image, wheelhouse, torch_from)
    log(f"{tag}: building from {recipe.dockerfile} ({sources})")
    with tempfile.TemporaryDirectory(prefix="comm-harness-build-") as context:
        _assemble_context(recipe, wheelhouse, Path(context))
        image_id = _stream_build(
            client,
            Path(context),
            tag,
            build_args,
            {LABEL_DEVICE: recipe.device, LABEL_SOURCES: sources},
            recipe.device,
            log,
        )
    _remove_leftovers(client, tag, replaced=present.id if present is not None else None, kept=image_id)
    return BuildOutcome(tag, True, time.monotonic() - started, image_id)


def _remove_leftovers(client: Any, tag: str, replaced: str | None, kept: str) -> None:
    """Remove what a build leaves untagged: its install stage and the image the tag named before."""
    import docker.errors
    import requests

    stages = client.images.list(filters={"dangling": True, "label": f"{LABEL_INSTALL_STAGE}={tag}"})
    leftovers = [image.id for image in stages]
    if replaced and replaced != kept:
        leftovers.append(replaced)
    for image_id in leftovers:
        try:
            client.images.remove(image_id)
        except docker.errors.APIError:
            pass  # still used by a container or another image: the engine keeps it, and so do we
        except requests.exceptions.RequestException:
            # Deleting the CUDA image's 8 GB install stage can outlast the client's HTTP timeout; the
            # engine finishes it anyway, and the image the user asked for is built.
            pass


def _sources_label(base_image: str | None, wheelhouse: Path | None, torch_from: str = "wheels") -> str:
    base = f"base={base_image or 'default'}"
    label = base + (f" wheelhouse={wheelhouse_digest(wheelhouse)}" if wheelhouse else " wheelhouse=none")
    return label + (" torch=base" if torch_from == "base" else "")


def _sources_differ(image: Any, base_image: str | None, wheelhouse: Path | None, torch_from: str) -> bool:
    """True when the user named a base image, wheelhouse or torch source other than the present image's."""
    recorded = dict(part.split("=", 1) for part in image.labels.get(LABEL_SOURCES, "").split() if "=" in part)
    if base_image is not None and recorded.get("base") != base_image:
        return True
    if recorded.get("torch", "wheels") != torch_from:
        return True
    return wheelhouse is not None and recorded.get("wheelhouse") != wheelhouse_digest(wheelhouse)


def base_python_version(client: Any, base_image: str) -> str:
    """The "3.12" of `base_image`'s python3, read by running it (no network, removed after)."""
    import docker.errors

    script = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        output = client.containers.run(
            base_image, ["python3", "-c", script], network_mode="none", remove=True, entrypoint=[]
        )
    except docker.errors.ImageNotFound:
        raise ConfigurationError(
            f"base image {base_image} is not on this engine: load or import it first (`docker images`)"
        ) from None
    except docker.errors.APIError as error:
        raise ImageBuildError(f"base image {base_image}: running its python3 failed: {error}") from None
    version = output.decode(errors="replace").strip()
    if not re.fullmatch(r"3\.\d+", version):
        raise ImageBuildError(f"base image {base_image}: python3 printed {version[:80]!r}, not a version")
    return version


def _assemble_context(recipe: ImageRecipe, wheelhouse: Path | None, context: Path) -> None:
    """The recipe's build context (its `.dockerignore` applied) and `.comm-harness/`: the Dockerfile, the
    matrix's packages as requirements.txt, and wheels/ (empty when installing from an index)."""
    for relative in context_files(recipe.context_dir):
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(recipe.context_dir / relative, context / relative)
    harness = context / HARNESS_CONTEXT_DIR
    wheels = harness / "wheels"
    wheels.mkdir(parents=True)
    shutil.copy2(recipe.dockerfile, harness / "Dockerfile")
    (harness / "requirements.txt").write_text(recipe.extra_requirements(), encoding="utf-8")
    (wheels / ".keep").touch()
    for source in (wheelhouse, recipe.wheelhouse):
        for wheel in _wheels_in(source) if source else ():
            if not (wheels / wheel.name).exists():
                _link_or_copy(wheel, wheels / wheel.name)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem: hard links cannot cross it
        shutil.copy2(source, target)


def _stream_build(
    client: Any,
    context: Path,
    tag: str,
    build_args: dict[str, str],
    labels: dict[str, str],
    device: str,
    log: Log,
) -> str:
    """Run the build through the low-level API, passing each log line to `log` as it comes."""
    import docker.errors

    tail: deque[str] = deque(maxlen=BUILD_LOG_TAIL_LINES)
    log_path = cache_dir() / "logs" / f"build-{device}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    image_id = ""
    with log_path.open("w") as log_file:
        try:
            stream = client.api.build(
                path=str(context),
                dockerfile=f"{HARNESS_CONTEXT_DIR}/Dockerfile",
                tag=tag,
                buildargs=build_args,
                labels=labels,
                decode=True,
                rm=True,
                forcerm=True,
                pull=False,
            )
            for chunk in stream:
                text = ANSI_ESCAPE.sub("", chunk.get("stream") or chunk.get("status") or "")
                if "error" in chunk:
                    text = f"ERROR: {chunk['error']}"
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        log_file.write(line + "\n")
                        log(line)
                if "error" in chunk:
                    raise ImageBuildError(_build_failure(tag, device, tail, log_path))
                image_id = chunk.get("aux", {}).get("ID", image_id)
        except docker.errors.DockerException as error:
            tail.append(str(error))
            raise ImageBuildError(_build_failure(tag, device, tail, log_path)) from None
    built = find_image(client, tag)
    if built is None:
        raise ImageBuildError(_build_failure(tag, device, tail, log_path))
    return image_id or built.id


def _build_failure(tag: str, device: str, tail: Iterable[str], log_path: Path) -> str:
    tail = list(tail)
    lines = "\n".join(f"  | {line}" for line in tail)
    fix = f"Fix the cause and run `{build_command(device)}` again."
    if any(marker in line for line in tail for marker in NO_REGISTRY_MARKERS):
        fix = (
            "No image registry or package index is reachable from here: build without one, "
            f"`harness images build {device} --offline` (or `harness run --offline`)."
        )
    return f"building {tag} failed; the last lines of its log ({log_path}):\n{lines}\n{fix}"


# What Docker and pip say when the network or the registry is not there.
NO_REGISTRY_MARKERS = (
    "no such host",
    "Temporary failure in name resolution",
    "pull access denied",
    "dial tcp",
    "Could not resolve host",
    "Failed to establish a new connection",
)


def _wheels_in(wheelhouse: Path) -> list[Path]:
    return sorted(wheelhouse.glob("*.whl"))


def wheelhouse_digest(wheelhouse: Path) -> str:
    """12 hex digits identifying a wheelhouse's listing (names and sizes)."""
    wheels = _wheels_in(wheelhouse)
    if not wheels:
        raise ConfigurationError(f"wheelhouse {wheelhouse} holds no .whl files")
    listing = "".join(f"{wheel.name}:{wheel.stat().st_size}\n" for wheel in wheels)
    return hashlib.sha256(listing.encode()).hexdigest()[:12]


def wheelhouse_requirements(recipe: ImageRecipe) -> list[str]:
    """What the wheelhouse must hold: torch at the recipe's version (unless the base brings it), pip (a base
    may lack one), the harness's toolchain, the extras."""
    if recipe.torch_from == "base":
        requirements = ["pip"]
    else:
        requirements = [f"torch=={recipe.build_args['TORCH_VERSION']}"]
    requirements += ["-r", str(TOOLCHAIN_REQUIREMENTS)]
    requirements += list(recipe.packages)
    for path in recipe.requirement_files:
        requirements += ["-r", str(path)]
    return requirements


def ensure_wheelhouse(recipe: ImageRecipe, log: Log = print) -> Path:
    """A host-side wheelhouse for `recipe`, downloaded once with pip and cached by its requirement set."""
    key_parts = [
        recipe.device,
        recipe.python_version,
        recipe.build_args["TORCH_VERSION"],
        TOOLCHAIN_REQUIREMENTS.read_text(encoding="utf-8"),
        recipe.extra_requirements(),
        wheelhouse_digest(recipe.wheelhouse) if recipe.wheelhouse else "",
        recipe.torch_from,
    ]
    key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:12]
    target = cache_dir() / "wheelhouse" / f"{recipe.device}-py{recipe.python_version}-{key}"
    complete = target / ".complete"
    if complete.exists():
        log(f"wheelhouse {target}: cached")
        return target
    target.mkdir(parents=True, exist_ok=True)
    # pip's own configuration (index, mirror, find-links) says where wheels come from; for cuda and xpu
    # point PIP_EXTRA_INDEX_URL at the torch index. The Dockerfile checks the torch build it gets.
    find_links = ["--find-links", str(recipe.wheelhouse)] if recipe.wheelhouse else []
    _pip_download(recipe, target, [*find_links, *wheelhouse_requirements(recipe)], log)
    if recipe.torch_from_pypi and recipe.torch_from != "base":
        _replace_cpu_torch_with_pypis(recipe, target, log)
    complete.write_text(wheelhouse_digest(target) + "\n")
    return target


def _pip_download(recipe: ImageRecipe, target: Path, arguments: list[str], log: Log) -> None:
    command = [
        sys.executable, "-m", "pip", "download", "--only-binary=:all:",
        "--python-version", recipe.python_version, "-d", str(target), *arguments,
    ]  # fmt: skip
    log(f"wheelhouse {target}: {' '.join(command[1:])}")
    _run_logged(command, log, what="downloading the wheelhouse")


def _replace_cpu_torch_with_pypis(recipe: ImageRecipe, target: Path, log: Log) -> None:
    """Swap a CPU torch wheel (local version `+cpu`) that pip's configuration chose for PyPI's build."""
    cpu_wheels = sorted(target.glob("torch-*+cpu-*.whl"))
    if not cpu_wheels:
        return
    log(
        f"wheelhouse {target}: pip's configuration gave {cpu_wheels[0].name}, a CPU build; the "
        f"{recipe.device} image takes PyPI's torch (a {recipe.device} build), ignoring pip's configuration"
    )
    for wheel in cpu_wheels:
        wheel.unlink()
    torch = f"torch=={recipe.build_args['TORCH_VERSION']}"
    _pip_download(recipe, target, ["--isolated", torch], log)


def ensure_offline_base(client: Any, log: Log = print) -> str:
    """The offline base image (minbase Debian bookworm with python3), made by debootstrap when missing."""
    if find_image(client, OFFLINE_BASE_IMAGE) is not None:
        log(f"{OFFLINE_BASE_IMAGE}: present")
        return OFFLINE_BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise ConfigurationError(
            f"{OFFLINE_BASE_IMAGE} is missing and debootstrap is not installed: run "
            f"`apt-get install debootstrap` (or .ci/docker-engine.sh), or pass --base-image IMAGE"
        )
    if os.geteuid() != 0:
        raise ConfigurationError(
            f"{OFFLINE_BASE_IMAGE} is missing and making it with debootstrap needs root; "
            f"run this build as root once, or pass --base-image IMAGE"
        )
    work = cache_dir() / "base-build"
    shutil.rmtree(work, ignore_errors=True)
    rootfs, tarball = work / "rootfs", work / "rootfs.tar"
    work.mkdir(parents=True)
    try:
        command = [
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip",
            "bookworm", str(rootfs),
        ]  # fmt: skip
        if os.environ.get("HARNESS_DEBIAN_MIRROR"):
            command.append(os.environ["HARNESS_DEBIAN_MIRROR"])
        log(f"{OFFLINE_BASE_IMAGE}: missing; {' '.join(command)}")
        _run_logged(command, log, what="bootstrapping the Debian base image")
        # The downloaded .debs and package lists are a third of the tree and of no use in the image.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        _run_logged(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], log, what="tar")
        repository, tag = OFFLINE_BASE_IMAGE.split(":")
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=tag,
            changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["bash"]'],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if find_image(client, OFFLINE_BASE_IMAGE) is None:
        raise ImageBuildError(f"importing the bootstrapped tree as {OFFLINE_BASE_IMAGE} left no image")
    log(f"{OFFLINE_BASE_IMAGE}: imported")
    return OFFLINE_BASE_IMAGE


# What a base image made from this host's Python environment holds besides the environment itself: the
# system's programs and libraries the interpreter, torch and a Dockerfile's RUN lines need. Never the GPU
# driver (/usr/local/nvidia, /dev): a cell's container gets the host's at run time (image.gpus).
HOST_BASE_SYSTEM_PATHS = (
    "bin", "sbin", "lib", "lib64", "usr/bin", "usr/sbin", "usr/lib64", "usr/share/zoneinfo",
    "etc/ld.so.conf", "etc/ld.so.conf.d", "etc/passwd", "etc/group", "etc/nsswitch.conf",
)  # fmt: skip


def host_environment_paths(python: str = sys.executable) -> list[str]:
    """Paths (relative to /) that make an image of `python`'s environment: its prefix (a venv included), the
    interpreter and standard library it is made from, and the system's programs and shared libraries."""
    probe = (
        "import json, os, sys, sysconfig\n"
        # Every link from the interpreter to the real file: a venv's python -> pyenv's python -> python3.11.
        "links, path = [], sys.executable\n"
        "while os.path.islink(path) and len(links) < 40:\n"
        "    links.append(path); path = os.path.join(os.path.dirname(path), os.readlink(path))\n"
        "print(json.dumps({"
        "'prefix': sys.prefix, 'base': os.path.realpath(sys.executable), 'links': links, "
        "'stdlib': sysconfig.get_path('stdlib'), 'platstdlib': sysconfig.get_path('platstdlib'), "
        "'multiarch': sysconfig.get_config_var('MULTIARCH') or '', "
        # A venv made with --system-site-packages reads its base's too: every package folder on sys.path.
        "'site': [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))]}))"
    )
    import json

    facts = json.loads(
        subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    paths = set(HOST_BASE_SYSTEM_PATHS)
    if facts["multiarch"]:
        paths.add(f"usr/lib/{facts['multiarch']}")
    for key in ("prefix", "base", "stdlib", "platstdlib"):
        paths.add(facts[key].lstrip("/"))
    paths.update(folder.lstrip("/") for folder in facts["site"])
    paths.update(os.path.normpath(link).lstrip("/") for link in facts["links"])
    # The shared libraries the interpreter links to (a libpython beside a pyenv or conda interpreter).
    linked = subprocess.run(["ldd", facts["base"]], capture_output=True, text=True, check=False).stdout
    paths.update(match.lstrip("/") for match in re.findall(r"=> (/\S+)", linked))
    driver = ("usr/local/nvidia", "dev", "proc", "sys")
    kept = sorted(
        path for path in paths if path and os.path.lexists("/" + path) and not path.startswith(driver)
    )
    # A path inside another kept one would reach the engine twice ("duplicates of file paths not supported").
    return [path for path in kept if not any(path.startswith(other + "/") for other in kept)]


def import_host_environment(client: Any, tag: str, python: str = sys.executable, log: Log = print) -> str:
    """Make image `tag` from `python`'s environment on this host (no registry, no download): a base for
    `image.torch: base` on a GPU host whose Python already holds a CUDA torch. Returns the image id."""
    import json

    paths = host_environment_paths(python)
    prefix = json.loads(
        subprocess.run(
            [python, "-c", "import json, sys; print(json.dumps(sys.prefix))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    log(f"{tag}: importing {python}'s environment ({prefix}) and {len(paths)} system paths")
    tar = subprocess.Popen(
        # /tmp and /var/tmp as empty folders (their mode kept, 1777): pytest and tempfile need one.
        [
            "tar",
            "-C",
            "/",
            "--numeric-owner",
            "--ignore-failed-read",
            "-cf",
            "-",
            "--no-recursion",
            *[folder for folder in ("tmp", "var/tmp") if os.path.isdir("/" + folder)],
            "--recursion",
            *paths,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    import requests

    try:
        client.api.import_image_from_stream(
            tar.stdout,
            repository=repository,
            tag=version,
            changes=[
                f"ENV PATH={prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"LABEL comm-harness.host-environment={prefix}",
            ],
        )
    except requests.exceptions.RequestException as error:
        raise ImageBuildError(f"importing {prefix} as {tag} failed: {error}") from None
    finally:
        tar.stdout.close()
        tar.wait()
    image = find_image(client, tag)
    if image is None:
        raise ImageBuildError(f"importing {prefix} as {tag} left no image (tar exit {tar.returncode})")
    log(f"{tag}: imported ({image.attrs.get('Size', 0) / 2**30:.1f} GiB)")
    return image.id


def _run_logged(command: list[str], log: Log, what: str) -> None:
    """Run `command`, passing its output to `log` line by line; a failure raises with the output's tail."""
    tail: deque[str] = deque(maxlen=BUILD_LOG_TAIL_LINES)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        tail.append(line.rstrip())
        log(line.rstrip())
    if process.wait() != 0:
        lines = "\n".join(f"  | {line}" for line in tail)
        raise ImageBuildError(f"{what} failed (exit {process.returncode}): {' '.join(command)}\n{lines}")
