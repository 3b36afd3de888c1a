"""Load matrix.yaml, validate it (schema and cross-checks, every problem at once) and expand it into cells.

Expansion order, as in GitHub Actions' matrices: devices x world sizes x axes, then `exclude` rules drop
cells, then each `include` entry either updates the cells it matches or, matching none, adds one cell.
Settings resolve defaults < device < include entry; `env` maps are merged in that order.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import functools
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness.adapters.base import all2all_backend_names
from harness.adapters.registry import (
    DEFAULT_COMMUNICATOR,
    BrokenAdapterError,
    UnknownCommunicatorError,
    load_adapter,
)
from harness.common.errors import ConfigurationError
from harness.common.yaml_locations import (
    KeyPath,
    duplicate_keys,
    format_key_path,
    line_of,
    parse_yaml_with_nodes,
)
from harness.config.model import BACKEND_OF_DEVICE, Cell, ImageSpec, QuarantineEntry, SlurmSpec
from harness.config.quarantine import issue_problem, pattern_problem

# Settings a cell inherits from `defaults`, its device and its include entries.
CELL_SETTINGS = (
    "tests",
    "pytest_args",
    "markers",
    "keyword",
    "timeout",
    "test_timeout",
    "env",
    "required",
    "check_collectives",
    "cores",
    "retries",
)
BUILTIN_DEFAULTS: dict[str, Any] = {
    "tests": ["tests"],
    "pytest_args": ["--forked"],
    "markers": None,
    "keyword": None,
    "timeout": 1800,
    "test_timeout": 120,
    "env": {},
    # Every cell is required unless the matrix says otherwise: `--strict` then means "everything in this
    # matrix must run to a verdict"; a cell for hardware you may lack says `required: false`.
    "required": True,
    "check_collectives": False,
    "cores": None,
    "retries": 0,
}


@dataclass(frozen=True)
class Matrix:
    """A validated matrix: its cells in file order and the directory their paths are relative to."""

    path: Path
    root: Path
    cells: tuple[Cell, ...]
    axes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The bandwidth floors file (`bench: {floors: ...}`), resolved against `root`; None when not named.
    floors: Path | None = None
    # The project directory (`project:`, default `root`): what a container mounts at /repo; it holds `root`.
    project: Path | None = None
    # Where generated CI installs the harness from (`harness:`), as written; None: the default (see
    # harness/ci/cell_jobs.py harness_requirement).
    harness: str | None = None

    @property
    def project_root(self) -> Path:
        return self.project or self.root

    @property
    def ids(self) -> list[str]:
        return [cell.id for cell in self.cells]

    def select(self, patterns: Iterable[str]) -> list[Cell]:
        """The cells whose id matches any glob in `patterns` (all cells when there are none)."""
        return select_cells(self.cells, patterns)


@dataclass
class _Problems:
    """Problems found so far, each rendered as 'file:line: key.path: message'."""

    path: Path
    root_node: yaml.Node | None
    entries: list[tuple[int, str]] = field(default_factory=list)

    def add(self, key_path: KeyPath, message: str, *, key: bool = False, line: int | None = None) -> None:
        line = line if line is not None else line_of(self.root_node, key_path, key=key)
        self.entries.append((line, f"{self.path}:{line}: {format_key_path(key_path)}: {message}"))

    def raise_if_any(self) -> None:
        if not self.entries:
            return
        lines = [text for _, text in sorted(self.entries, key=lambda entry: entry[0])]
        count = len(lines)
        raise ConfigurationError(
            f"{self.path}: {count} problem{'s' if count > 1 else ''} in the matrix:\n  "
            + "\n  ".join(lines)
            + "\nFix them (the schema is harness/resources/matrix.schema.json) and run again."
        )


def load_matrix(path: str | Path) -> Matrix:
    """Read, validate and expand a matrix file; raises ConfigurationError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: matrix file not found; pass the path of a matrix.yaml.") from None
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read the matrix file: {error.strerror}") from None
    data, root_node = parse_yaml_with_nodes(text, path)
    problems = _Problems(path, root_node)
    if data is None:
        problems.add([], "the file is empty; it needs at least `version: 1` and `devices:`", line=1)
        problems.raise_if_any()
    for key_path, line, first_line in duplicate_keys(root_node):
        problems.add(
            key_path, f"key written twice (first on line {first_line}); YAML keeps only the last", line=line
        )
    schema_ok = _check_schema(data, problems)
    root = path.resolve().parent
    _check_files(data, root, problems)
    project = _project_of(data, root, problems)
    cells: list[Cell] = []
    axes: dict[str, tuple[str, ...]] = {}
    _check_backends(data, problems)
    if schema_ok:
        axes = {name: tuple(str(v) for v in values) for name, values in (data.get("axes") or {}).items()}
        quarantine = _quarantine(data.get("quarantine") or [], problems)
        cells = [dataclasses.replace(cell, quarantine=quarantine) for cell in _expand(data, axes, problems)]
        _check_all2all_backends(cells, axes, problems)
    problems.raise_if_any()
    floors = (data.get("bench") or {}).get("floors")
    return Matrix(
        path=path,
        root=root,
        cells=tuple(cells),
        axes=axes,
        floors=root / floors if floors else None,
        project=project,
        harness=data.get("harness"),
    )


def _quarantine(entries: list[dict[str, str]], problems: _Problems) -> tuple[QuarantineEntry, ...]:
    """The `quarantine:` entries (schema-checked), their patterns and links checked, each named once."""
    found: list[QuarantineEntry] = []
    first_line: dict[str, int] = {}
    for index, entry in enumerate(entries):
        line = line_of(problems.root_node, ["quarantine", index])
        if problem := pattern_problem(entry["test"]):
            problems.add(["quarantine", index, "test"], problem)
        if problem := issue_problem(entry["issue"]):
            problems.add(["quarantine", index, "issue"], problem)
        if not entry["reason"].strip():
            problems.add(["quarantine", index, "reason"], "is blank; say why the test is quarantined")
        if entry["test"] in first_line:
            message = f"{entry['test']!r} is quarantined twice (first at line {first_line[entry['test']]})"
            problems.add(["quarantine", index, "test"], message + "; keep one entry")
        first_line.setdefault(entry["test"], line)
        source = f"{problems.path.name}:{line}"
        found.append(QuarantineEntry(entry["test"], entry["reason"].strip(), entry["issue"], source))
    return tuple(found)


def _project_of(data: Any, root: Path, problems: _Problems) -> Path | None:
    """The `project:` directory, resolved; a problem when it is missing or does not hold the matrix."""
    name = data.get("project") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        return None
    project = (root / name).resolve()
    if not project.is_dir():
        problems.add(["project"], f"project directory '{name}' does not exist (relative to {root})")
        return None
    if not root.is_relative_to(project):
        problems.add(
            ["project"], f"project directory '{name}' ({project}) does not hold the matrix's directory {root}"
        )
        return None
    if project in (Path(project.anchor), Path.home().resolve()):
        # Containers see the project (read-only) and their tests are untrusted: never a whole disk or home.
        problems.add(
            ["project"],
            f"project directory '{name}' is {project}: containers would see all of it; name the repository",
        )
        return None
    return project


def select_cells(cells: Iterable[Cell], patterns: Iterable[str]) -> list[Cell]:
    """Cells whose id matches any of the fnmatch `patterns`; a pattern matching nothing is an error."""
    cells = list(cells)
    patterns = list(patterns)
    if not patterns:
        return cells
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(c.id, p) for c in cells)]
    if unmatched:
        valid = "\n  ".join(cell.id for cell in cells)
        names = ", ".join(repr(p) for p in unmatched)
        raise ConfigurationError(f"--cell {names} matches no cell of the matrix. Valid ids:\n  {valid}")
    return [cell for cell in cells if any(fnmatch.fnmatchcase(cell.id, p) for p in patterns)]


def _load_schema() -> dict[str, Any]:
    text = resources.files("harness").joinpath("resources/matrix.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def ci_placement_keys() -> tuple[str, ...]:
    """The device keys that say where generated CI runs a device's cells (`runs_on`, `buildkite`, ...): those
    the schema marks `x-ci-placement`, so that a CI system is added in the schema and its harness/ci module
    alone; the core passes them on as `Cell.ci_placement` without reading them."""
    device = _load_schema()["$defs"]["device"]["properties"]
    return tuple(name for name, node in device.items() if node.get("x-ci-placement"))


# How alike a wrong name and a known one must be (difflib's ratio) for "did you mean": one wrong letter of
# three ('gpu' for 'xpu', 'tpu') is 0.67 and names another thing; a dropped or doubled letter is 0.8 and up.
SUGGESTION_CUTOFF = 0.75


def did_you_mean_text(name: str, choices: Iterable[str]) -> str:
    """" (did you mean 'tests'?)" for a close known name, or a known name the wrong one begins (a key cut
    short); '' when none is close enough to be what was meant."""
    choices = [str(choice) for choice in choices]
    hint = difflib.get_close_matches(name, choices, n=1, cutoff=SUGGESTION_CUTOFF)
    if not hint and len(name) >= 3:
        hint = [choice for choice in choices if choice.startswith(name)][:1]
    return f" (did you mean '{hint[0]}'?)" if hint else ""


def _check_schema(data: Any, problems: _Problems) -> bool:
    validator = jsonschema.Draft202012Validator(_load_schema())
    errors = list(validator.iter_errors(data))
    for error in errors:
        _report_schema_error(error, problems)
    return not errors


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _report_schema_error(error: jsonschema.ValidationError, problems: _Problems) -> None:
    path = list(error.absolute_path)
    value = error.instance
    kind = error.validator
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for name in sorted(set(value) - set(allowed)):
            did_you_mean = did_you_mean_text(str(name), allowed)
            what = "device" if path == ["devices"] else "key"
            message = f"unknown {what} '{name}'{did_you_mean}; allowed: {', '.join(allowed)}"
            problems.add([*path, name], message, key=True)
    elif kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        problems.add(path, f"expected {expected}, got {_json_type(value)} ({value!r})")
    elif kind == "minimum" or kind == "exclusiveMinimum":
        bound = "at least" if kind == "minimum" else "greater than"
        problems.add(path, f"{value!r} is too small: must be {bound} {error.validator_value}")
    elif kind == "enum":
        if path and path[-1] == "device" or (len(path) == 2 and path[0] == "devices"):
            what = "device"
        else:
            what = "value"
        choices = ", ".join(str(choice) for choice in error.validator_value)
        problems.add(path, f"unknown {what} {value!r}; choose one of: {choices}")
    elif kind == "const":
        problems.add(path, f"{value!r} is not supported; use {error.validator_value!r}")
    elif kind == "required":
        missing = [name for name in error.validator_value if name not in (value or {})]
        problems.add(path, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    elif kind == "uniqueItems":
        problems.add(path, f"duplicate entries in {value!r}")
    elif kind in ("minItems", "minProperties", "minLength"):
        problems.add(path, "must not be empty")
    elif kind == "pattern":
        if error.absolute_schema_path and "propertyNames" in error.absolute_schema_path:
            message = f"invalid name {value!r}: must match {error.validator_value}"
            problems.add([*path, value], message, key=True)
        else:
            problems.add(path, f"{value!r} must match {error.validator_value} (letters, digits, '_' and '.')")
    else:
        problems.add(path, error.message)


def _check_backends(data: Any, problems: _Problems) -> None:
    devices = data.get("devices") if isinstance(data, dict) else None
    for device, config in (devices if isinstance(devices, dict) else {}).items():
        backend = config.get("backend") if isinstance(config, dict) else None
        if (
            device in BACKEND_OF_DEVICE
            and backend in BACKEND_OF_DEVICE.values()
            and backend != BACKEND_OF_DEVICE[device]
        ):
            problems.add(
                ["devices", device, "backend"],
                f"device {device} uses backend {BACKEND_OF_DEVICE[device]}, not {backend}; "
                f"remove the key or set it to {BACKEND_OF_DEVICE[device]}",
            )


def _check_files(data: Any, root: Path, problems: _Problems) -> None:
    """Test paths and Dockerfiles must exist, relative to the matrix file's directory."""
    if not isinstance(data, dict):
        return
    places: list[tuple[list[str | int], Any]] = [(["defaults"], data.get("defaults"))]
    devices = data.get("devices")
    if isinstance(devices, dict):
        places += [(["devices", name], config) for name, config in devices.items()]
    include = data.get("include")
    if isinstance(include, list):
        places += [(["include", index], entry) for index, entry in enumerate(include)]
    bench = data.get("bench")
    floors = bench.get("floors") if isinstance(bench, dict) else None
    if isinstance(floors, str) and floors and not (root / floors).is_file():
        problems.add(["bench", "floors"], f"floors file '{floors}' does not exist (relative to {root})")
    for key_path, settings in places:
        if not isinstance(settings, dict):
            continue
        tests = settings.get("tests")
        if isinstance(tests, list):
            for index, test in enumerate(tests):
                if isinstance(test, str) and test and not (root / test.split("::")[0]).exists():
                    problems.add(
                        [*key_path, "tests", index], f"test path '{test}' does not exist (relative to {root})"
                    )
        image = settings.get("image")
        if isinstance(image, dict):
            _check_image_files(image, [*key_path, "image"], root, problems)


def _check_image_files(
    image: dict[str, Any], key_path: list[str | int], root: Path, problems: _Problems
) -> None:
    """The Dockerfile, build context, requirements files and wheelhouse an `image:` names must exist."""
    kinds = {"dockerfile": ("Dockerfile", Path.is_file), "context": ("build context", Path.is_dir)}
    kinds["wheelhouse"] = ("wheelhouse", Path.is_dir)
    for key, (what, exists) in kinds.items():
        value = image.get(key)
        if isinstance(value, str) and value and not exists(root / value):
            problems.add([*key_path, key], f"{what} '{value}' does not exist (relative to {root})")
    requirements = image.get("requirements")
    for index, name in enumerate(requirements if isinstance(requirements, list) else []):
        if isinstance(name, str) and name and not (root / name).is_file():
            problems.add(
                [*key_path, "requirements", index],
                f"requirements file '{name}' does not exist (relative to {root})",
            )


def _merge_settings(*layers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for name in CELL_SETTINGS:
            if name not in layer:
                continue
            if name == "env":
                merged["env"] = {**merged.get("env", {}), **layer["env"]}
            else:
                merged[name] = layer[name]
    return merged


def _matches(rule: dict[str, Any], draft: _Draft) -> bool:
    coordinates: dict[str, Any] = {
        "device": draft.device,
        "world_size": draft.world_size,
        "nodes": draft.nodes,
        **draft.params,
    }
    return all(
        name in coordinates and coordinates[name] == value
        for name, value in rule.items()
        if name not in CELL_SETTINGS
    )


@dataclass
class _Draft:
    """A cell before its settings are frozen: coordinates, settings layers and where it was declared."""

    device: str
    world_size: int
    params: dict[str, str]
    settings: dict[str, Any]
    line: int
    key_path: list[str | int]
    nodes: int = 1

    @property
    def id(self) -> str:
        suffix = "".join(f"-{value}" for value in self.params.values())
        # Single-node ids stay as they were: records and `--cell` patterns written before nodes existed hold.
        nodes = f"-n{self.nodes}" if self.nodes > 1 else ""
        return f"{self.device}-{BACKEND_OF_DEVICE[self.device]}-ws{self.world_size}{suffix}{nodes}"


def _expand(data: dict[str, Any], axes: dict[str, tuple[str, ...]], problems: _Problems) -> list[Cell]:
    defaults = data.get("defaults") or {}
    devices: dict[str, dict[str, Any]] = data["devices"]
    drafts: list[_Draft] = []
    for device, config in devices.items():
        line = line_of(problems.root_node, ["devices", device], key=True)
        for world_size, nodes in itertools.product(config["world_sizes"], config.get("nodes") or [1]):
            for values in itertools.product(*axes.values()):
                params = dict(zip(axes, values, strict=True))
                drafts.append(
                    _Draft(
                        device,
                        world_size,
                        params,
                        _merge_settings(defaults, config),
                        line,
                        ["devices", device],
                        nodes,
                    )
                )

    for index, rule in enumerate(data.get("exclude") or []):
        _check_axis_keys(rule, axes, ["exclude", index], problems)
        kept = [d for d in drafts if not _matches(rule, d)]
        if len(kept) == len(drafts):
            problems.add(["exclude", index], "this rule matches no cell; fix its keys or remove it")
        drafts = kept

    expanded = len(drafts)
    for index, entry in enumerate(data.get("include") or []):
        _check_axis_keys(entry, axes, ["include", index], problems)
        device = entry["device"]
        if device not in devices:
            problems.add(
                ["include", index, "device"],
                f"device {device} is not declared under `devices:`; declare it there first",
            )
            continue
        targets = [d for d in drafts[:expanded] if _matches(entry, d)]
        for draft in targets:
            draft.settings = _merge_settings(draft.settings, entry)
        if not targets:
            params = {name: str(entry[name]) for name in axes if name in entry}
            line = line_of(problems.root_node, ["include", index])
            settings = _merge_settings(defaults, devices[device], entry)
            nodes = entry.get("nodes", 1)
            drafts.append(
                _Draft(device, entry["world_size"], params, settings, line, ["include", index], nodes)
            )

    # With axes, one bad (world size, nodes) pair yields several drafts: report it once.
    for draft in {(d.device, d.world_size, d.nodes, tuple(d.key_path)): d for d in drafts}.values():
        _check_nodes_divide(draft, problems)

    first_line: dict[str, int] = {}
    for draft in drafts:
        if draft.id in first_line:
            message = (
                f"cell id '{draft.id}' is produced twice (first at line {first_line[draft.id]}); "
                "make the entries differ or remove one"
            )
            problems.add(draft.key_path, message, line=draft.line)
        first_line.setdefault(draft.id, draft.line)
    if not drafts:
        problems.add(["devices"], "the matrix has no cells after exclude rules; nothing would run")
    for draft in drafts:
        _check_axis_references(draft, devices[draft.device], problems)
    return [_freeze(draft, devices[draft.device], problems.path) for draft in drafts]


# `${{ matrix.NAME }}` in an image's build_args or a cell's env: the cell's value of axis NAME (as GitHub
# Actions writes it), so that one axis value (a vLLM version) selects the image and the run together.
_AXIS_REFERENCE = re.compile(r"\$\{\{\s*matrix\.([A-Za-z0-9_-]+)\s*\}\}")


def _with_axis_values(value: str, params: dict[str, str]) -> str:
    return _AXIS_REFERENCE.sub(lambda found: params.get(found.group(1), found.group(0)), value)


def _check_axis_references(draft: _Draft, device_config: dict[str, Any], problems: _Problems) -> None:
    """Every `${{ matrix.NAME }}` names an axis this cell has a value of."""
    settings = {**BUILTIN_DEFAULTS, **draft.settings}
    image = device_config.get("image") or {}
    places = [(["image", "build_args", key], value) for key, value in (image.get("build_args") or {}).items()]
    places += [(["env", key], value) for key, value in settings["env"].items()]
    for key_path, value in places:
        for found in _AXIS_REFERENCE.finditer(str(value)):
            if found.group(1) not in draft.params:
                declared = ", ".join(draft.params) or "none"
                problems.add(
                    [*draft.key_path, *key_path],
                    f"cell {draft.id}: {found.group(0)} names no axis of this cell (its axes: {declared}); "
                    f"declare it under `axes:`",
                    line=draft.line,
                )


def communicator_of(cell: Cell) -> str:
    """The implementation under test in `cell`: its `communicator` axis value, a `--dist-communicator` of its
    pytest_args (which comes after it on the cell's command line, so it wins), else comm-harness's own."""
    name = cell.params.get("communicator", DEFAULT_COMMUNICATOR)
    args = list(cell.pytest_args)
    for index, arg in enumerate(args):
        if arg == "--dist-communicator" and index + 1 < len(args):
            name = args[index + 1]
        elif arg.startswith("--dist-communicator="):
            name = arg.partition("=")[2]
    return name


def _backend_names_of(communicator: str) -> tuple[str, ...] | None:
    """What the adapter of `communicator` says its all2all backend names are; None when it cannot say or
    does not load here (an engine's adapter may be installed only in the cells' image)."""
    try:
        return all2all_backend_names(load_adapter(communicator))
    except (UnknownCommunicatorError, BrokenAdapterError):
        return None


def _check_all2all_backends(
    cells: list[Cell], axes: dict[str, tuple[str, ...]], problems: _Problems
) -> None:
    """A cell's all2all_backend is one its implementation's adapter knows: a typo would fail every
    communicator test. Each implementation is asked about its own cells only."""
    values = axes.get("all2all_backend")
    if not values:
        return
    known: dict[str, tuple[str, ...] | None] = {}
    wrong: dict[tuple[str, str], list[str]] = {}
    for cell in cells:
        value = cell.params.get("all2all_backend")
        communicator = communicator_of(cell)
        if communicator not in known:
            known[communicator] = _backend_names_of(communicator)
        names = known[communicator]
        # A value outside the axis (an include entry's) is reported by _check_axis_keys already.
        if value in values and names is not None and value not in names:
            wrong.setdefault((value, communicator), []).append(cell.id)
    for (value, communicator), ids in wrong.items():
        names = known[communicator] or ()
        did_you_mean = did_you_mean_text(value, names)
        problems.add(
            ["axes", "all2all_backend", values.index(value)],
            f"{value!r} is not an all2all backend of {communicator}{did_you_mean} (cells {', '.join(ids)}); "
            f"known: {', '.join(names)}",
        )


def _check_axis_keys(
    entry: dict[str, Any], axes: dict[str, tuple[str, ...]], key_path: list[str | int], problems: _Problems
) -> None:
    known = {"device", "world_size", "nodes", *CELL_SETTINGS}
    for name, value in entry.items():
        if name in known:
            continue
        if name not in axes:
            choices = sorted(known | set(axes))
            did_you_mean = did_you_mean_text(name, choices)
            declared = ", ".join(axes) or "none"
            problems.add(
                [*key_path, name],
                f"'{name}' is neither a cell setting nor a declared axis"
                f"{did_you_mean}; axes declared: {declared}",
                key=True,
            )
        elif str(value) not in axes[name]:
            values = ", ".join(axes[name])
            fix = "" if key_path[0] == "exclude" else f"; declare it under `axes: {name}:` to add such cells"
            problems.add([*key_path, name], f"{value!r} is not a value of axis {name} ({values}){fix}")


def _check_nodes_divide(draft: _Draft, problems: _Problems) -> None:
    """Every node of a cell runs the same number of ranks: its world size must divide by its node count."""
    if draft.world_size % draft.nodes == 0:
        return
    where = [*draft.key_path, "nodes"]
    problems.add(
        where,
        f"cell {draft.id}: world size {draft.world_size} does not split evenly over {draft.nodes} nodes; "
        f"use a world size that is a multiple of {draft.nodes}, or drop the cell with "
        f"`exclude: [{{device: {draft.device}, world_size: {draft.world_size}, nodes: {draft.nodes}}}]`",
    )


def _freeze(draft: _Draft, device_config: dict[str, Any], path: Path) -> Cell:
    settings = {**BUILTIN_DEFAULTS, **draft.settings}
    image_config = device_config.get("image")
    image = None
    # `image: {}` is the stock image with its defaults, as `image: {shm_size: 1g}` is; only no `image:`
    # at all keeps the device's cells out of Docker.
    if image_config is not None:
        image = ImageSpec(
            dockerfile=image_config.get("dockerfile"),
            build_args={
                k: _with_axis_values(str(v), draft.params)
                for k, v in (image_config.get("build_args") or {}).items()
            },
            shm_size=image_config.get("shm_size", "1g"),
            network_host=image_config.get("network_host", False),
            memory=image_config.get("memory"),
            pids_limit=image_config.get("pids_limit", 4096),
            context=image_config.get("context"),
            packages=tuple(image_config.get("packages") or ()),
            requirements=tuple(image_config.get("requirements") or ()),
            wheelhouse=image_config.get("wheelhouse"),
            gpus=image_config.get("gpus", "auto"),
            driver_dir=image_config.get("driver_dir"),
            torch=image_config.get("torch", "wheels"),
        )
    return Cell(
        id=draft.id,
        device=draft.device,  # type: ignore[arg-type]
        backend=BACKEND_OF_DEVICE[draft.device],
        world_size=draft.world_size,
        nodes=draft.nodes,
        tests=tuple(settings["tests"]),
        pytest_args=tuple(settings["pytest_args"]),
        markers=settings["markers"],
        keyword=settings["keyword"],
        params=dict(draft.params),
        env={name: _with_axis_values(str(value), draft.params) for name, value in settings["env"].items()},
        timeout_s=float(settings["timeout"]),
        test_timeout_s=float(settings["test_timeout"]),
        required=bool(settings["required"]),
        check_collectives=bool(settings["check_collectives"]),
        cores=settings["cores"],
        retries=int(settings["retries"]),
        image=image,
        ci_placement={
            key: copy.deepcopy(device_config[key]) for key in ci_placement_keys() if key in device_config
        },
        executor=device_config.get("executor", ""),
        slurm=SlurmSpec.from_json(device_config["slurm"]) if "slurm" in device_config else None,
        source=f"{path.name}:{draft.line}",
    )
