"""Image recipes without an engine: what the content-hash tag covers, and the context the engine gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.common.errors import ConfigurationError
from harness.config.model import ImageSpec
from harness.running.images import HARNESS_CONTEXT_DIR, _assemble_context, recipe_for

DOCKERFILE = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY greeting.txt /opt/greeting.txt\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with its own Dockerfile and build context, a requirements file and a wheelhouse."""
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "image" / "greeting.txt").write_text("hello\n")
    (tmp_path / "image" / "notes.md").write_text("not for the image\n")
    (tmp_path / "image" / ".dockerignore").write_text("# docs stay out\n*.md\n")
    (tmp_path / "extra.txt").write_text("pyyaml>=6\n")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "probe-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    return tmp_path


def spec(**fields) -> ImageSpec:
    defaults = dict(
        dockerfile="image/Dockerfile",
        packages=("expecttest",),
        requirements=("extra.txt",),
        wheelhouse="wheels",
    )
    return ImageSpec(**{**defaults, **fields})


def tag(project: Path, **fields) -> str:
    return recipe_for("cpu", spec(**fields), project).tag


def test_the_tag_covers_packages_requirements_wheels_and_context_files(project: Path):
    before = tag(project)
    assert tag(project) == before  # stable
    assert tag(project, packages=("expecttest", "hypothesis")) != before
    (project / "extra.txt").write_text("pyyaml>=6\nrich\n")
    assert tag(project) != before
    changed = tag(project)
    (project / "wheels" / "other-2.0-py3-none-any.whl").write_bytes(b"x")
    assert tag(project) != changed
    changed = tag(project)
    (project / "image" / "greeting.txt").write_text("hello again\n")
    assert tag(project) != changed


def test_files_the_dockerignore_drops_do_not_change_the_tag(project: Path):
    before = tag(project)
    (project / "image" / "notes.md").write_text("edited\n")
    assert tag(project) == before


def test_the_context_is_the_dockerfiles_directory_plus_what_the_harness_adds(project: Path, tmp_path: Path):
    recipe = recipe_for("cpu", spec(), project)
    context = tmp_path / "context"
    context.mkdir()
    _assemble_context(recipe, None, context)
    files = sorted(str(path.relative_to(context)) for path in context.rglob("*") if path.is_file())
    harness = HARNESS_CONTEXT_DIR
    assert files == [
        f"{harness}/Dockerfile",
        f"{harness}/requirements.txt",
        f"{harness}/wheels/.keep",
        f"{harness}/wheels/probe-1.0-py3-none-any.whl",
        "Dockerfile",
        "greeting.txt",
    ]
    requirements = (context / harness / "requirements.txt").read_text()
    assert requirements.splitlines() == ["expecttest", "# extra.txt", "pyyaml>=6"]


def test_context_names_another_directory(project: Path):
    (project / "shared").mkdir()
    (project / "shared" / "greeting.txt").write_text("from shared\n")
    recipe = recipe_for("cpu", spec(context="shared"), project)
    assert recipe.context_dir == project / "shared"
    assert recipe.tag != tag(project)


def test_the_stock_image_needs_no_dockerfile_and_other_devices_files_stay_out_of_its_tag():
    recipe = recipe_for("cpu", ImageSpec(packages=("expecttest",)))
    assert recipe.dockerfile.name == "cpu.Dockerfile"
    assert recipe.tag != recipe_for("cpu").tag
    assert recipe_for("cpu").tag == recipe_for("cpu", ImageSpec()).tag


def test_missing_image_files_are_configuration_errors(project: Path):
    with pytest.raises(ConfigurationError, match="requirements file .*nope.txt"):
        recipe_for("cpu", spec(requirements=("nope.txt",)), project)
    with pytest.raises(ConfigurationError, match="wheelhouse .*nowheels"):
        recipe_for("cpu", spec(wheelhouse="nowheels"), project)
    with pytest.raises(ConfigurationError, match="build context .*noctx"):
        recipe_for("cpu", spec(context="noctx"), project)


def test_a_host_environment_image_takes_the_interpreter_s_links_and_folders_never_the_driver(
    tmp_path,
) -> None:
    import subprocess
    import sys

    from harness.running.images import host_environment_paths

    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)

    paths = host_environment_paths(str(venv / "bin" / "python3"))

    assert str(venv).lstrip("/") in paths
    # The links from the venv's python to the real file, and the real file, so the interpreter starts there.
    real = Path(sys.executable).resolve()
    assert any(real.as_posix().lstrip("/").startswith(path) for path in paths)
    assert not any(path.startswith(("usr/local/nvidia", "dev", "proc")) for path in paths)
    # Nothing twice: a path inside another would reach the engine twice.
    assert not any(a != b and a.startswith(b + "/") for a in paths for b in paths)
