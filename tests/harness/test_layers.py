"""The layer rule: a module of the harness never imports one of a layer above its own.

The layers, lowest first, are LAYERS below (README.md, "Layout"). A module may import its own layer and any
layer below; imports inside `if TYPE_CHECKING:` count too, so a type can't smuggle a dependency upwards.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import harness

HARNESS_DIR = Path(harness.__file__).resolve().parent

# Lowest first; each entry is a package (or module) under harness/.
LAYERS = [
    "common",  # errors, untrusted text, YAML locations, output paths, DistEnv, the runner-plugin contract
    "host",  # the machine: probe, fingerprint, cgroups
    "adapters",  # the implementations under test
    "config",  # matrix.yaml into typed cells
    "pytest_plugin",  # runs in pytest and on the ranks
    "bench",  # bandwidth measurement and its verdict
    "results",  # the results directory: reading, merging, judging, comparing
    "cell",  # what runs inside a cell
    "planning",  # which executor runs each cell here
    "presentation",  # terminal, Markdown, annotations
    "running",  # the harness side of a run: orchestration, scheduler, guardian, images, executors
    "ci",  # CI job generation per system
    "commands",  # the `harness` command line
]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "harness" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def imports_of(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("harness.")}


def harness_modules() -> dict[str, Path]:
    modules = {}
    for path in HARNESS_DIR.rglob("*.py"):
        parts = path.relative_to(HARNESS_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def layer_violations() -> list[str]:
    modules = harness_modules()
    violations = []
    for module, path in sorted(modules.items()):
        own = layer_of(module)
        if own is None:
            continue
        # `from harness.x import name` names a module or something in one: keep the module.
        targets = {t if t in modules else t.rpartition(".")[0] for t in imports_of(path, module)}
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(own):
                violations.append(f"{module} ({own}) imports {target} ({theirs})")
    return violations


def test_every_module_is_in_a_layer():
    top_level = {
        p.stem if p.suffix == ".py" else p.name for p in HARNESS_DIR.iterdir() if p.name != "__pycache__"
    }
    stray = top_level - set(LAYERS) - {"__init__", "resources", "__main__"}
    assert not stray, f"harness/ holds {sorted(stray)} outside every layer: put each in one (README: Layout)"


def test_no_layer_imports_one_above_it():
    assert layer_violations() == []


def test_the_rule_sees_an_upward_import(tmp_path):
    # The check itself: an upward import, written as code would write it, is found.
    fake = tmp_path / "x.py"
    fake.write_text("from harness.running.runs import run_plan\nif True:\n    import harness.commands.cli\n")
    found = imports_of(fake, "harness.results.x")
    assert "harness.running.runs" in found and "harness.commands.cli" in found
    assert layer_of("harness.results.x") == "results" and layer_of("harness.running.runs") == "running"


def test_the_architecture_page_names_only_modules_that_exist():
    # docs/architecture.md's table names each layer's modules: a moved or renamed module must move there too.
    page = (HARNESS_DIR.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for line in page.splitlines():
        layer = re.match(r"\| `(harness/[a-z_/]+/)` \|", line)
        if layer:
            missing += [
                layer.group(1) + name
                for name in re.findall(r"`([a-z_]+\.py)`", line)
                if not (HARNESS_DIR.parent / layer.group(1) / name).is_file()
            ]
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"
