"""`harness matrix`: GitHub's fan-out is matrix.yaml's cells, each once, with matrix.yaml's runner labels."""

from __future__ import annotations

import json

import yaml
from github_runs import REPO_ROOT, run_harness, write_project


def github_entries(*args: str) -> list[dict]:
    done = run_harness("matrix", "matrix.yaml", "--format", "github", *args, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    # One line: the plan job appends `matrix=<this>` to $GITHUB_OUTPUT, which takes one line per output.
    assert done.stdout.count("\n") == 1
    return json.loads(done.stdout)["include"]


def test_every_cell_once_with_the_runner_labels_of_matrix_yaml():
    entries = github_entries()
    ids = [entry["cell"] for entry in entries]
    assert len(ids) == len(set(ids))
    raw = yaml.safe_load((REPO_ROOT / "matrix.yaml").read_text())
    for entry in entries:
        assert entry["runs-on"] == raw["devices"][entry["device"]]["runs_on"]
        assert entry["cell"].startswith(f"{entry['device']}-{entry['backend']}-ws{entry['world_size']}")
        assert entry["artifact"] == f"results-{entry['cell']}"
        assert entry["image"].startswith(f"comm-harness/{entry['device']}:")
        # Hosted runners cache the image as a tarball; self-hosted ones keep it in their engine.
        assert entry["cache_image"] == ("self-hosted" not in entry["runs-on"])
    world_sizes = {d: c["world_sizes"] for d, c in raw["devices"].items()}
    expected = {(d, ws) for d, sizes in world_sizes.items() for ws in sizes}
    expected |= {(i["device"], i["world_size"]) for i in raw.get("include", [])}
    assert {(e["device"], e["world_size"]) for e in entries} == expected


def test_ids_match_harness_plan_and_ids_format():
    plan = run_harness("plan", "matrix.yaml", "--json", "--executor", "local", cwd=REPO_ROOT)
    assert plan.returncode == 0, plan.stderr
    plan_ids = [cell["id"] for cell in json.loads(plan.stdout)["cells"]]
    assert [entry["cell"] for entry in github_entries()] == plan_ids
    ids = run_harness("matrix", "matrix.yaml", "--format", "ids", cwd=REPO_ROOT)
    assert ids.stdout.split() == plan_ids
    full = json.loads(run_harness("matrix", "matrix.yaml", "--format", "json", cwd=REPO_ROOT).stdout)
    assert [cell["id"] for cell in full["cells"]] == plan_ids


def test_cell_patterns_and_required_select_as_harness_run_does():
    cuda = github_entries("--cell", "cuda-*", "--required")
    assert [e["cell"] for e in cuda] == ["cuda-nccl-ws1", "cuda-nccl-ws2", "cuda-nccl-ws4"]
    assert all(e["required"] and e["runs-on"][0] == "self-hosted" for e in cuda)
    two = github_entries("--cell", "cpu-gloo-ws1", "--cell", "xpu-*ws2")
    assert [e["cell"] for e in two] == ["cpu-gloo-ws1", "xpu-xccl-ws2"]


def test_a_pattern_matching_nothing_exits_2_listing_valid_ids():
    done = run_harness("matrix", "matrix.yaml", "--cell", "tpu-*", cwd=REPO_ROOT)
    assert done.returncode == 2
    assert "'tpu-*' matches no cell" in done.stderr and "cpu-gloo-ws1" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_cell_without_runner_labels_is_an_error_naming_where(tmp_path):
    write_project(
        tmp_path, "version: 1\ndefaults: {tests: [tests/test_tiny.py]}\ndevices:\n  cpu: {world_sizes: [2]}\n"
    )
    done = run_harness("matrix", "matrix.yaml", "--format", "github", cwd=tmp_path)
    assert done.returncode == 2
    assert "matrix.yaml:4: cell cpu-gloo-ws2 has no runner labels" in done.stderr
    assert "runs_on" in done.stderr
    # The other formats need no runner labels.
    assert run_harness("matrix", "matrix.yaml", "--format", "ids", cwd=tmp_path).stdout == "cpu-gloo-ws2\n"
