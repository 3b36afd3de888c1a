"""What the harness hands Slurm and how it reads Slurm's answers: no cluster needed (the real cluster's tests
are beside this file). Command lines a lab's cluster would get (N nodes, GRES, pyxis) are checked here
because the test cluster has no GPUs and no container support."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.common.errors import ConfigurationError, SlurmUnavailableError
from harness.config.matrix import load_matrix
from harness.config.model import Cell, SlurmSpec
from harness.host.probe import HostCapabilities
from harness.planning.plan import plan_cells
from harness.running.executors.slurm import (
    batch_script,
    job_reason,
    sbatch_arguments,
    srun_command,
    time_limit_minutes,
)
from harness.running.executors.slurm_jobs import (
    JobState,
    _expand_hostlist_here,
    parse_sacct_line,
    parse_scontrol_job,
)

JOB_DIR = Path("/shared/run/cell")
PROJECT = Path("/repo")


def cuda_cell(**overrides: object) -> Cell:
    fields: dict = dict(
        id="cuda-nccl-ws16-n2", device="cuda", backend="nccl", world_size=16, nodes=2, tests=("t",),
        timeout_s=1801.0,
    )  # fmt: skip
    fields.update(overrides)
    return Cell(**fields)


def test_an_n_node_cell_is_one_allocation_of_n_nodes_with_its_gpus_per_node_as_gres() -> None:
    spec = SlurmSpec(partition="h100", account="comm", qos="high", sbatch_args=("--exclusive",))

    arguments = sbatch_arguments(cuda_cell(), spec, "abc", JOB_DIR, PROJECT)

    assert arguments == [
        "--job-name=comm-harness.abc",
        "--comment=cuda-nccl-ws16-n2",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--time=31",  # 1801 s, rounded up to whole minutes
        "--output=/shared/run/cell/work/slurm-batch.out",
        "--chdir=/repo",
        "--partition=h100",
        "--account=comm",
        "--qos=high",
        "--gres=gpu:8",
        "--exclusive",  # the lab's own options last: they win
    ]


def test_a_cpu_cell_asks_for_no_gres_and_at_least_a_minute() -> None:
    cell = cuda_cell(device="cpu", backend="gloo", world_size=2, nodes=1, timeout_s=5.0)
    arguments = sbatch_arguments(cell, SlurmSpec(), "abc", JOB_DIR, PROJECT)
    assert not any(argument.startswith("--gres") for argument in arguments)
    assert time_limit_minutes(cell) == 1


def test_every_node_runs_a_task_in_the_nodes_environment_or_in_the_image_through_pyxis() -> None:
    host = srun_command(cuda_cell(), SlurmSpec(), JOB_DIR, PROJECT)
    assert host[:4] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert host[-3:] == ["-m", "harness.running.executors.slurm_node", str(JOB_DIR)]

    image = srun_command(
        cuda_cell(), SlurmSpec(container_image="nvcr.io#nvidia/pytorch:25.01"), JOB_DIR, PROJECT
    )
    assert "--container-image=nvcr.io#nvidia/pytorch:25.01" in image
    mounts = next(argument for argument in image if argument.startswith("--container-mounts="))
    assert "/repo:/repo" in mounts and "/shared/run/cell:/shared/run/cell" in mounts
    assert "--container-workdir=/repo" in image
    assert image[-4] == "python3"


def test_the_batch_script_points_every_node_at_the_first_node_of_the_allocation() -> None:
    script = batch_script(cuda_cell(), SlurmSpec(), JOB_DIR, PROJECT)
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in script
    assert "export MASTER_ADDR=" in script and "export MASTER_PORT=" in script
    assert script.rstrip().splitlines()[-1].startswith("exec srun --nodes=2")


def test_command_line_options_replace_the_matrix_values_and_sbatch_arguments_add_up() -> None:
    matrix = SlurmSpec(partition="a", qos="low", sbatch_args=("--exclusive",), gres="gpu:h100")
    merged = matrix.with_command_line(SlurmSpec(partition="b", sbatch_args=("--constraint=ib",)))
    assert merged == SlurmSpec(
        partition="b", qos="low", sbatch_args=("--exclusive", "--constraint=ib"), gres="gpu:h100"
    )
    assert SlurmSpec().with_command_line(SlurmSpec()) == SlurmSpec()


SCONTROL = (
    "JobId=7 JobName=comm-harness.abc UserId=root(0) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) "
    "ExitCode=0:15 NodeList=n[1-2] BatchHost=n1 Command=/tmp/a b.sh WorkDir=/tmp"
)


def test_scontrol_and_sacct_answers_are_read_into_a_job_state() -> None:
    fields = parse_scontrol_job(SCONTROL)
    assert (fields["JobState"], fields["Reason"], fields["NodeList"]) == ("TIMEOUT", "TimeLimit", "n[1-2]")
    assert fields["Command"] == "/tmp/a b.sh"
    state = parse_sacct_line("CANCELLED by 0|0:15|gpu[01-02]")
    assert (state.state, state.reason, state.nodes, state.finished) == (
        "CANCELLED", "by 0", ("gpu01", "gpu02"), True,
    )  # fmt: skip
    assert not JobState("COMPLETING").finished


def test_host_lists_expand_in_slurm_order() -> None:
    assert _expand_hostlist_here("n[1-3,7],login,gpu[08-10]") == (
        "n1", "n2", "n3", "n7", "login", "gpu08", "gpu09", "gpu10",
    )  # fmt: skip


BATCH_OUTPUT = """[harness] job 9 on n[1-2]
srun: error: n2: task 1: Killed
slurmstepd: error: *** STEP 9.0 ON n1 CANCELLED AT 2026-12-07T21:00:00 ***
"""


def test_the_reason_names_the_node_that_did_not_finish_and_what_srun_said() -> None:
    job = JobState("FAILED", nodes=("n1", "n2"))
    reason = job_reason("9", job, cuda_cell(), [2, None], BATCH_OUTPUT)
    assert reason.startswith("Slurm job 9 FAILED on n1, n2; ended without finishing: node 1 of 2 (n2)")
    assert "srun: Killed" in reason


@pytest.mark.parametrize("state", ["OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED"])
def test_every_way_slurm_ends_a_job_is_in_the_reason(state: str) -> None:
    reason = job_reason("9", JobState(state, nodes=("n1", "n2")), cuda_cell(), [0, None], "")
    assert reason.startswith(f"Slurm job 9 {state} on n1, n2") and "node 1 of 2 (n2)" in reason


def test_a_timeout_says_the_time_limit_and_a_failed_job_whose_nodes_all_ended_leaves_it_to_the_tests() -> (
    None
):
    timeout = job_reason("9", JobState("TIMEOUT", nodes=("n1",)), cuda_cell(nodes=1), [None], "")
    assert "TIMEOUT" in timeout and "time limit of 31 min" in timeout
    assert job_reason("9", JobState("FAILED", nodes=("n1", "n2")), cuda_cell(), [1, 0], "") == ""
    assert job_reason("9", JobState("COMPLETED"), cuda_cell(), [0, 0], "") == ""


def host(**fields: object) -> HostCapabilities:
    return dataclasses.replace(HostCapabilities(cores=2), **fields)


def test_executor_slurm_plans_every_cell_as_a_job_and_takes_no_gpu_of_this_host() -> None:
    (planned,) = plan_cells([cuda_cell()], host(), "slurm", slurm_gap="")
    assert (planned.executor, planned.gpus_needed) == ("slurm", 0)
    with pytest.raises(SlurmUnavailableError, match="--executor slurm: sinfo failed"):
        plan_cells([cuda_cell()], host(), "slurm", slurm_gap="sinfo failed")


def test_a_devices_executor_in_the_matrix_holds_under_auto_and_yields_to_the_command_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "t.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "version: 1\n"
        "defaults: {tests: [t.py]}\n"
        "devices:\n"
        "  cpu:\n"
        "    world_sizes: [2]\n"
        "    executor: slurm\n"
        "    slurm: {partition: debug, sbatch_args: [--exclusive], results_dir: /shared}\n"
    )
    (cell,) = load_matrix(tmp_path / "matrix.yaml").cells
    assert cell.slurm == SlurmSpec(partition="debug", sbatch_args=("--exclusive",), results_dir="/shared")

    (auto,) = plan_cells([cell], host(), "auto", slurm_gap="")
    (local,) = plan_cells([cell], host(torch={"torch": "2", "gloo_available": True}), "local", slurm_gap="")
    (no_cluster,) = plan_cells([cell], host(), "auto", slurm_gap="sinfo lists no nodes")
    assert (auto.executor, local.executor, no_cluster.executor) == ("slurm", "local", None)
    assert no_cluster.reason == "the matrix says executor: slurm, but sinfo lists no nodes"


def test_an_unknown_executor_in_the_matrix_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "version: 1\ndefaults: {tests: [t.py]}\ndevices:\n  cpu:\n    world_sizes: [2]\n    executor: k8s\n"
    )
    with pytest.raises(ConfigurationError, match=r"matrix.yaml:6: .*executor.*k8s"):
        load_matrix(tmp_path / "matrix.yaml")
