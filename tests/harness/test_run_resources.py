"""A run closes what it opened on every way out: executors, the plan's Docker executor, the SIGTERM handler
(harness/running/runs.py)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

import harness.running.executors as executors_module
from harness.config.matrix import load_matrix
from harness.host.probe import HostCapabilities
from harness.planning.plan import plan_cells
from harness.running.executors.protocol import Executor
from harness.running.runs import MatrixPlan, run_plan

REPO_ROOT = Path(__file__).resolve().parents[2]


class RecordingExecutor(Executor):
    """An executor whose `start` fails as an engine that went away would; it records its closes."""

    name = "local"
    closed: list[str] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> list[str]:
        raise RuntimeError("the engine went away")

    def run(self, *args: object) -> None:  # type: ignore[override]
        raise AssertionError("no cell runs after a failed start")

    def close(self) -> None:
        self.closed.append(self.name)


def local_plan(docker: Executor | None = None) -> MatrixPlan:
    matrix = load_matrix(REPO_ROOT / "matrix.yaml")
    host = HostCapabilities(cores=4, torch={"torch": "2.5.0", "gloo_available": True})
    planned = plan_cells(matrix.select(["cpu-gloo-ws1"]), host, "local")
    assert [p.executor for p in planned] == ["local"]
    return MatrixPlan(matrix, host, planned, docker)  # type: ignore[arg-type]


def test_a_run_that_fails_as_it_starts_closes_its_executors_and_restores_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    RecordingExecutor.closed = []
    monkeypatch.setattr(executors_module, "LocalExecutor", RecordingExecutor)
    handler = signal.getsignal(signal.SIGTERM)
    guard = SimpleNamespace(run_id="run-1", notes=[])

    with pytest.raises(RuntimeError, match="the engine went away"):
        run_plan(local_plan(), tmp_path / "out", guard, jobs=None, strict=False)  # type: ignore[arg-type]

    assert RecordingExecutor.closed == ["local"]
    assert signal.getsignal(signal.SIGTERM) == handler


def test_the_plans_docker_executor_is_closed_when_the_plan_is_left_unrun() -> None:
    docker = RecordingExecutor()
    RecordingExecutor.closed = []
    with local_plan(docker) as plan:
        assert plan.docker is docker and not RecordingExecutor.closed
    assert RecordingExecutor.closed == ["local"]
