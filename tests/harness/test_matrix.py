"""matrix.yaml: loading, every kind of problem reported at once with file:line, expansion and cell ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runs import REPO_ROOT

from harness.adapters.base import TargetPlatform
from harness.adapters.registry import BUILTIN_ADAPTERS
from harness.cell.runner import build_pytest_command
from harness.common.errors import ConfigurationError
from harness.config.matrix import did_you_mean_text, load_matrix, select_cells

GOOD = """
version: 1
defaults:
  tests: [tests/test_tiny.py]
  timeout: 300
  env: {SHARED: "1"}
devices:
  cpu:
    world_sizes: [1, 2]
    image: {dockerfile: docker/cpu.Dockerfile, shm_size: 2g, build_args: {TORCH_VERSION: 2.13.0}}
    runs_on: [ubuntu-latest]
    env: {OMP_NUM_THREADS: 1}
    required: true
  cuda:
    backend: nccl
    world_sizes: [2, 4]
    test_timeout: 30
    check_collectives: true
    required: false
axes:
  flavour: [plain, spicy]
exclude:
  - {device: cuda, world_size: 4, flavour: spicy}
include:
  - {device: cuda, world_size: 2, required: true, env: {EXTRA: x}}
  - {device: cpu, world_size: 3, flavour: plain, keyword: all_reduce}
"""


def problems_of(path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_matrix(path)
    return str(caught.value)


def test_expands_devices_world_sizes_and_axes_with_readable_ids(project):
    matrix = load_matrix(project(GOOD))
    assert matrix.ids == [
        "cpu-gloo-ws1-plain",
        "cpu-gloo-ws1-spicy",
        "cpu-gloo-ws2-plain",
        "cpu-gloo-ws2-spicy",
        "cuda-nccl-ws2-plain",
        "cuda-nccl-ws2-spicy",
        "cuda-nccl-ws4-plain",
        "cpu-gloo-ws3-plain",
    ]


def test_settings_resolve_defaults_then_device_then_include(project):
    cells = {cell.id: cell for cell in load_matrix(project(GOOD)).cells}
    cpu = cells["cpu-gloo-ws2-spicy"]
    assert cpu.backend == "gloo" and cpu.world_size == 2 and cpu.params == {"flavour": "spicy"}
    assert cpu.env == {"SHARED": "1", "OMP_NUM_THREADS": "1"}
    assert cpu.timeout_s == 300 and cpu.test_timeout_s == 120 and cpu.required
    assert cpu.tests == ("tests/test_tiny.py",) and cpu.pytest_args == ("--forked",)
    assert (
        cpu.image is not None
        and cpu.image.shm_size == "2g"
        and cpu.image.build_args == {"TORCH_VERSION": "2.13.0"}
    )
    # CI placement is the device's CI keys as written, for harness/ci/<system>.py to read; none: empty.
    assert cpu.ci_placement == {"runs_on": ["ubuntu-latest"]}
    assert cells["cuda-nccl-ws2-plain"].ci_placement == {}
    # The include entry without an axis value updates both flavours of cuda ws2, and only them.
    assert cells["cuda-nccl-ws2-plain"].required and cells["cuda-nccl-ws2-spicy"].env["EXTRA"] == "x"
    assert not cells["cuda-nccl-ws4-plain"].required and cells["cuda-nccl-ws4-plain"].test_timeout_s == 30
    added = cells["cpu-gloo-ws3-plain"]
    assert added.keyword == "all_reduce" and added.source.startswith("matrix.yaml:")


def test_cells_are_required_unless_the_matrix_says_otherwise(project):
    # `--strict` means "everything in this matrix must run": a user's matrix needs no `required: true`.
    plain = GOOD.replace("    required: false\n", "").replace("    required: true\n", "")
    cells = load_matrix(project(plain)).cells
    assert cells and all(cell.required for cell in cells)


def test_an_empty_image_is_the_stock_image_and_no_image_keeps_cells_out_of_docker(project):
    matrix = "version: 1\ndefaults: {tests: [tests/test_tiny.py]}\ndevices:\n  cpu: {world_sizes: [1]%s}\n"
    empty = load_matrix(project(matrix % ", image: {}", name="empty.yaml")).cells[0].image
    stock = load_matrix(project(matrix % ", image: {shm_size: 1g}", name="stock.yaml")).cells[0].image
    assert empty is not None and empty == stock
    assert load_matrix(project(matrix % "", name="none.yaml")).cells[0].image is None


def test_check_collectives_reaches_the_plugin_of_the_cells_that_ask(project, tmp_path):
    cells = {cell.id: cell for cell in load_matrix(project(GOOD)).cells}
    checked, unchecked = cells["cuda-nccl-ws4-plain"], cells["cpu-gloo-ws2-plain"]
    assert checked.check_collectives and not unchecked.check_collectives
    assert "--dist-check-collectives" in build_pytest_command(checked, tmp_path, load_plugin=True)
    assert "--dist-check-collectives" not in build_pytest_command(unchecked, tmp_path, load_plugin=True)


def test_cell_json_round_trips(project):
    from harness.config.model import Cell

    for cell in load_matrix(project(GOOD)).cells:
        assert Cell.from_json(cell.to_json()) == cell


IMAGE_WITH_PACKAGES = """
version: 1
defaults:
  tests: [tests/test_tiny.py]
devices:
  cpu:
    world_sizes: [2]
    cores: 4
    image:
      packages: [expecttest, "hypothesis>=6"]
      requirements: [{requirements}]
      wheelhouse: {wheelhouse}
      context: {context}
"""


def test_image_packages_paths_and_cores_are_read_relative_to_the_matrix(project, tmp_path):
    (tmp_path / "extra.txt").write_text("pyyaml\n")
    (tmp_path / "wheels").mkdir()
    matrix = load_matrix(
        project(IMAGE_WITH_PACKAGES.format(requirements="extra.txt", wheelhouse="wheels", context="docker"))
    )
    (cell,) = matrix.cells
    assert cell.cores == 4
    assert cell.image is not None and cell.image.dockerfile is None  # the device's own Dockerfile
    assert cell.image.packages == ("expecttest", "hypothesis>=6")
    assert (cell.image.requirements, cell.image.wheelhouse, cell.image.context) == (
        ("extra.txt",),
        "wheels",
        "docker",
    )
    from harness.config.model import Cell

    assert Cell.from_json(cell.to_json()) == cell


def test_missing_image_files_are_reported_with_their_keys(project):
    message = problems_of(
        project(IMAGE_WITH_PACKAGES.format(requirements="nope.txt", wheelhouse="nowheels", context="noctx"))
    )
    assert "devices.cpu.image.requirements[0]: requirements file 'nope.txt' does not exist" in message
    assert "devices.cpu.image.wheelhouse: wheelhouse 'nowheels' does not exist" in message
    assert "devices.cpu.image.context: build context 'noctx' does not exist" in message


def test_cores_must_be_a_positive_integer(project):
    message = problems_of(project(GOOD.replace("test_timeout: 30", "test_timeout: 30\n    cores: 0")))
    assert "devices.cuda.cores: 0 is too small: must be at least 1" in message


def test_default_matrix_of_the_repository_validates():
    matrix = load_matrix(REPO_ROOT / "matrix.yaml")
    by_device = {}
    for cell in matrix.cells:
        by_device.setdefault(cell.device, []).append((cell.world_size, cell.nodes))
    assert by_device == {
        "cpu": [(1, 1), (2, 1), (3, 1), (4, 1), (4, 2)],
        "cuda": [(1, 1), (2, 1), (4, 1), (8, 1), (2, 2)],
        "xpu": [(1, 1), (2, 1), (4, 1)],
    }
    assert "cpu-gloo-ws4" in matrix.ids and "cuda-nccl-ws8" in matrix.ids and "xpu-xccl-ws1" in matrix.ids
    for cell in matrix.cells:
        assert cell.tests == ("tests/communicators",)
        if cell.device == "cuda":
            assert cell.env["NCCL_NVLS_ENABLE"] == "0"
            assert cell.env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
            assert cell.env["NVSHMEM_DISABLE_NVLS"] == "1"
    assert matrix.floors == REPO_ROOT / "floors.yaml"


def test_bench_floors_file_must_exist_and_keys_are_checked(project):
    assert load_matrix(project(GOOD)).floors is None
    message = problems_of(project(GOOD + "bench:\n  floors: nowhere.yaml\n  floor: typo.yaml\n"))
    assert "bench.floors: floors file 'nowhere.yaml' does not exist" in message
    assert "bench" in message and "floor" in message


def test_yaml_syntax_error_names_file_line_and_column(project):
    path = project("version: 1\ndevices:\n  cpu: {world_sizes: [1, 2}\n")
    message = problems_of(path)
    assert f"{path}:3:" in message and "YAML syntax error" in message


def test_every_problem_is_reported_at_once_with_its_line(project):
    path = project(
        """
        version: 1
        defaults:
          test: [tests]
        devices:
          cpu:
            world_sizes: [0, 2]
            image: {dockerfile: docker/missing.Dockerfile}
          tpu:
            world_sizes: [1]
          cuda:
            backend: gloo
            world_sizes: [1]
            timeout: soon
            tests: [tests/test_tiny.py, tests/nowhere]
        """
    )
    message = problems_of(path)
    expected = [
        (3, "defaults.test: unknown key 'test' (did you mean 'tests'?)"),
        (6, "devices.cpu.world_sizes[0]: 0 is too small: must be at least 1"),
        (7, "devices.cpu.image.dockerfile: Dockerfile 'docker/missing.Dockerfile' does not exist"),
        # One letter of three differs: 'xpu' is another device, not a typo of 'tpu'; no suggestion.
        (8, "devices.tpu: unknown device 'tpu'; allowed: cpu, cuda, xpu"),
        (11, "devices.cuda.backend: device cuda uses backend nccl, not gloo"),
        (13, "devices.cuda.timeout: expected number, got string ('soon')"),
        (14, "devices.cuda.tests[1]: test path 'tests/nowhere' does not exist"),
    ]
    for line, text in expected:
        assert f"{path}:{line}: {text}" in message, message
    assert "7 problems" in message


def test_did_you_mean_only_for_a_name_close_enough_to_be_meant():
    assert did_you_mean_text("gpu", ["cpu", "cuda", "xpu"]) == ""
    assert did_you_mean_text("world_size", ["world_sizes", "backend"]) == " (did you mean 'world_sizes'?)"
    assert did_you_mean_text("cdua", ["cpu", "cuda", "xpu"]) == " (did you mean 'cuda'?)"
    assert did_you_mean_text("cuad", ["cpu", "cuda", "xpu"]) == " (did you mean 'cuda'?)"
    assert did_you_mean_text("test_time", ["test_timeout", "timeout"]) == " (did you mean 'test_timeout'?)"


def test_backend_must_match_the_device(project):
    path = project(
        """
        version: 1
        defaults: {tests: [tests]}
        devices:
          cuda: {backend: gloo, world_sizes: [1]}
        """
    )
    assert f"{path}:4: devices.cuda.backend: device cuda uses backend nccl, not gloo" in problems_of(path)


def test_unknown_backend_name_is_listed_with_the_choices(project):
    path = project(
        """
        version: 1
        defaults: {tests: [tests]}
        devices:
          xpu: {backend: ccl, world_sizes: [1]}
        """
    )
    assert "devices.xpu.backend: unknown value 'ccl'; choose one of: gloo, nccl, xccl" in problems_of(path)


class TwoBackendAdapter:
    """An engine's adapter that names its own all2all backends (what `backend_names()` is asked)."""

    name = "twobackends"
    description = "an engine with backends 'ring' and 'tree'"
    known_gaps = ()

    def platforms(self, device):
        return (TargetPlatform(device),)

    def preload(self):
        pass

    def create(self, env, platform, all2all_backend, group=None):
        raise AssertionError("loading a matrix creates no communicator")

    def version(self):
        return None

    def backend_names(self):
        return ("ring", "tree")


TWO_BACKENDS = TwoBackendAdapter()
ALL2ALL_MATRIX = """
version: 1
defaults: {{tests: [tests]}}
axes:
  communicator: [{communicator}]
  all2all_backend: [{backends}]
devices:
  cpu: {{world_sizes: [2]}}
"""


def test_each_cells_all2all_backend_is_checked_by_its_own_implementations_adapter(project, monkeypatch):
    monkeypatch.setitem(BUILTIN_ADAPTERS, "twobackends", f"{__name__}:TWO_BACKENDS")
    # 'ring' is the engine's, not comm-harness's; 'naive' is comm-harness's, not the engine's. The include
    # entry adds a cell without a communicator value: comm-harness's own.
    matrix = ALL2ALL_MATRIX.format(communicator="twobackends", backends="ring, naive")
    path = project(matrix + "include:\n  - {device: cpu, world_size: 3, all2all_backend: ring}\n")
    message = problems_of(path)
    assert (
        f"{path}:5: axes.all2all_backend[0]: 'ring' is not an all2all backend of comm-harness "
        "(cells cpu-gloo-ws3-ring); known: allgather_reducescatter," in message
    )
    assert (
        f"{path}:5: axes.all2all_backend[1]: 'naive' is not an all2all backend of twobackends "
        "(cells cpu-gloo-ws2-twobackends-naive); known: ring, tree" in message
    )
    assert "2 problems" in message
    ids = load_matrix(project(ALL2ALL_MATRIX.format(communicator="twobackends", backends="ring, tree"))).ids
    assert ids == ["cpu-gloo-ws2-twobackends-ring", "cpu-gloo-ws2-twobackends-tree"]


def test_an_implementation_that_cannot_name_its_backends_is_not_checked(project):
    # vLLM's names are its release's own (importing vLLM would tell): its cells take any name; the same name
    # in a comm-harness cell is still an error; pytest_args may pick the implementation too.
    path = project(ALL2ALL_MATRIX.format(communicator="vllm", backends="pplxx"))
    assert load_matrix(path).ids == ["cpu-gloo-ws2-vllm-pplxx"]
    ours = ALL2ALL_MATRIX.format(communicator="x", backends="pplxx").replace("communicator:", "other:")
    expected = "'pplxx' is not an all2all backend of comm-harness (did you mean 'pplx'?)"
    assert expected in problems_of(project(ours))
    by_option = ours.replace(
        "tests: [tests]", "tests: [tests], pytest_args: [--forked, --dist-communicator, vllm]"
    )
    assert load_matrix(project(by_option)).ids == ["cpu-gloo-ws2-x-pplxx"]


def test_duplicate_ids_duplicate_keys_and_dead_rules_are_caught(project):
    path = project(
        """
        version: 1
        defaults: {tests: [tests]}
        devices:
          cpu: {world_sizes: [1]}
        exclude:
          - {device: cpu, world_size: 8}
        include:
          - {device: cpu, world_size: 2}
          - {device: cpu, world_size: 2}
          - {device: cpu, world_size: 3, colour: red}
        version: 1
        """
    )
    message = problems_of(path)
    assert f"{path}:11: version: key written twice (first on line 1)" in message
    assert f"{path}:6: exclude[0]: this rule matches no cell" in message
    assert f"{path}:9: include[1]: cell id 'cpu-gloo-ws2' is produced twice (first at line 8)" in message
    assert f"{path}:10: include[2].colour: 'colour' is neither a cell setting nor a declared axis" in message


def test_missing_and_empty_files_are_clear_errors(tmp_path):
    assert "matrix file not found" in problems_of(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert "the file is empty" in problems_of(empty)


def test_cell_patterns_select_by_glob_and_reject_unknown_ids(project):
    cells = load_matrix(project(GOOD)).cells
    assert [c.id for c in select_cells(cells, ["cuda-*-ws4-*", "cpu-gloo-ws1-plain"])] == [
        "cpu-gloo-ws1-plain",
        "cuda-nccl-ws4-plain",
    ]
    assert select_cells(cells, []) == list(cells)
    with pytest.raises(ConfigurationError) as caught:
        select_cells(cells, ["cpu-*", "gpu-*"])
    assert "'gpu-*' matches no cell" in str(caught.value) and "cuda-nccl-ws2-spicy" in str(caught.value)


def test_nodes_split_world_sizes_and_multi_node_ids_end_in_n(project):
    matrix = load_matrix(
        project(
            """
            version: 1
            defaults: {tests: [tests/test_tiny.py]}
            devices:
              cpu: {world_sizes: [2, 4], nodes: [1, 2], required: false}
            include:
              - {device: cpu, world_size: 4, nodes: 2, required: true}
              - {device: cpu, world_size: 6, nodes: 3}
            """
        )
    )
    assert matrix.ids == [
        "cpu-gloo-ws2",
        "cpu-gloo-ws2-n2",
        "cpu-gloo-ws4",
        "cpu-gloo-ws4-n2",
        "cpu-gloo-ws6-n3",
    ]
    by_id = {cell.id: cell for cell in matrix.cells}
    assert (by_id["cpu-gloo-ws4-n2"].nodes, by_id["cpu-gloo-ws4-n2"].ranks_per_node) == (2, 2)
    # The include entry with `nodes` matched the expanded multi-node cell, not the single-node one.
    assert by_id["cpu-gloo-ws4-n2"].required and not by_id["cpu-gloo-ws4"].required
    assert by_id["cpu-gloo-ws6-n3"].ranks_per_node == 2 and by_id["cpu-gloo-ws2"].nodes == 1


def test_world_size_that_does_not_divide_over_its_nodes_is_reported_with_its_line(project):
    path = project(
        """
        version: 1
        defaults: {tests: [tests/test_tiny.py]}
        devices:
          cpu:
            world_sizes: [1, 2]
            nodes: [2]
        include:
          - {device: cpu, world_size: 3, nodes: 2}
        """
    )
    message = problems_of(path)
    assert f"{path}:6: devices.cpu.nodes: cell cpu-gloo-ws1-n2: world size 1 does not split evenly" in message
    assert f"{path}:8: include[0].nodes: cell cpu-gloo-ws3-n2: world size 3 does not split evenly" in message
    assert "exclude" in message  # the message says how to drop such a cell
    zero = project("version: 1\ndevices:\n  cpu: {world_sizes: [2], nodes: [0]}\n")
    assert f"{zero}:3: devices.cpu.nodes[0]: 0 is too small: must be at least 1" in problems_of(zero)


def test_default_matrix_multi_node_cells_gate_only_on_cpu():
    cells = {cell.id: cell for cell in load_matrix(REPO_ROOT / "matrix.yaml").cells}
    assert cells["cpu-gloo-ws4-n2"].required and not cells["cuda-nccl-ws2-n2"].required


def test_a_matrix_in_a_subdirectory_names_its_project_which_containers_mount(project, tmp_path):
    (tmp_path / "ci").mkdir()
    sub = GOOD.replace("tests/test_tiny.py", "../tests/test_tiny.py").replace("docker/cpu", "../docker/cpu")
    matrix = load_matrix(project("project: ..\n" + sub.lstrip(), name="ci/matrix.yaml"))
    assert (matrix.root, matrix.project_root) == (tmp_path / "ci", tmp_path)
    assert load_matrix(project(GOOD)).project_root == tmp_path  # default: the matrix's directory
    from harness.running.executors.docker import DockerExecutor

    # The project at /repo, the cell in the matrix's directory there, so `../tests` resolves as on the host.
    executor = DockerExecutor(matrix.project_root, matrix_dir=matrix.root, client=object())
    assert executor._working_dir == "/repo/ci"


def test_a_project_that_is_missing_or_does_not_hold_the_matrix_is_an_error(project, tmp_path):
    missing = problems_of(project("project: nope\n" + GOOD))
    assert "project: project directory 'nope' does not exist" in missing
    (tmp_path / "other").mkdir()
    message = problems_of(project("project: other\n" + GOOD))
    assert "project: project directory 'other'" in message
    assert "does not hold the matrix's directory" in message
    up = "../" * len(tmp_path.parts)  # past the filesystem's root, which resolves to it
    assert "containers would see all of it" in problems_of(project(f"project: {up}\n" + GOOD))


AXIS_IN_IMAGE = """
version: 1
defaults:
  tests: [tests/test_tiny.py]
axes:
  vllm: ["0.19.1", "0.33.0"]
devices:
  cpu:
    world_sizes: [2]
    image: {dockerfile: docker/cpu.Dockerfile, build_args: {VLLM_VERSION: "${{ matrix.vllm }}"}}
    env: {DECLARED: "vllm ${{matrix.vllm}}"}
"""


def test_an_axis_value_selects_the_image_build_args_and_env_of_its_cell(project):
    matrix = load_matrix(project(AXIS_IN_IMAGE))
    by_id = {cell.id: cell for cell in matrix.cells}
    assert by_id["cpu-gloo-ws2-0.19.1"].image.build_args == {"VLLM_VERSION": "0.19.1"}
    assert by_id["cpu-gloo-ws2-0.33.0"].image.build_args == {"VLLM_VERSION": "0.33.0"}
    assert by_id["cpu-gloo-ws2-0.33.0"].env["DECLARED"] == "vllm 0.33.0"


def test_a_reference_to_an_undeclared_axis_names_the_cell_and_key(project):
    text = problems_of(project(AXIS_IN_IMAGE.replace("matrix.vllm }}", "matrix.vlm }}")))
    assert "image.build_args.VLLM_VERSION" in text
    assert "${{ matrix.vlm }} names no axis of this cell (its axes: vllm)" in text


def test_an_include_entry_overrides_what_its_device_sets_for_the_cells_it_matches(project):
    matrix = GOOD.replace(
        "  - {device: cuda, world_size: 2, required: true, env: {EXTRA: x}}",
        "  - {device: cuda, world_size: 2, required: true, test_timeout: 45, env: {EXTRA: x}}\n"
        "  - {device: cpu, world_size: 2, env: {OMP_NUM_THREADS: 4}}",
    )
    cells = {cell.id: cell for cell in load_matrix(project(matrix)).cells}
    assert cells["cuda-nccl-ws2-plain"].test_timeout_s == 45  # the device says 30
    assert cells["cuda-nccl-ws4-plain"].test_timeout_s == 30
    assert cells["cpu-gloo-ws2-plain"].env == {"SHARED": "1", "OMP_NUM_THREADS": "4"}
    assert cells["cpu-gloo-ws1-plain"].env["OMP_NUM_THREADS"] == "1"
