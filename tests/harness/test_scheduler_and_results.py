"""Scheduling within cores and GPUs, a cell's result from its files, exit codes and the run's report files."""

from __future__ import annotations

import dataclasses
import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.common.progress_events import Collected, Interrupted, Reported, Started, event_line
from harness.config.model import Cell
from harness.planning.plan import PlannedCell
from harness.presentation.markdown import render_markdown
from harness.results.cell_dir import collect_cell_result
from harness.results.cell_result import CellResult
from harness.results.cell_result import TestCounts as Counts  # an alias, or pytest would try to collect it
from harness.results.junit import node_id_of, read_junit_counts
from harness.results.merge import merge_results
from harness.results.report import compute_exit_code, nothing_ran_reason
from harness.results.summary import RunReport, load_summary
from harness.running.scheduler import CellScheduler, ResourcePool


def planned(device: str, world_size: int, suffix: str = "", required: bool = False) -> PlannedCell:
    backend = {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl"}[device]
    cell = Cell(
        id=f"{device}-{backend}-ws{world_size}{suffix}",
        device=device,
        backend=backend,
        world_size=world_size,
        tests=("tests",),
        required=required,
    )
    return PlannedCell(cell, "local", "on the host")


def test_cpu_cells_take_cores_but_an_idle_host_takes_any_cell():
    pool = ResourcePool(cores=2)
    assert pool.try_acquire(planned("cpu", 1)) == []
    assert pool.try_acquire(planned("cpu", 2)) is None  # 1 + 2 > 2 cores
    pool.release(planned("cpu", 1), [])
    assert pool.try_acquire(planned("cpu", 4)) == []  # more than the host, but nothing else runs
    assert pool.try_acquire(planned("cpu", 1)) is None


def test_jobs_caps_cells_regardless_of_cores():
    pool = ResourcePool(cores=2, jobs=3)
    assert all(pool.try_acquire(planned("cpu", 4)) == [] for _ in range(3))
    assert pool.try_acquire(planned("cpu", 1)) is None


def test_gpu_cells_get_disjoint_gpu_ids():
    pool = ResourcePool(cores=64, gpu_ids={"cuda": [0, 1, 2, 3]})
    first = pool.try_acquire(planned("cuda", 2))
    second = pool.try_acquire(planned("cuda", 1))
    assert first == [0, 1] and second == [2]
    assert pool.try_acquire(planned("cuda", 2)) is None  # only GPU 3 is free
    pool.release(planned("cuda", 2), first)
    assert pool.try_acquire(planned("cuda", 2)) == [0, 1]


def test_a_cell_books_the_cores_the_matrix_gives_it():
    spawns_four = planned("cpu", 2)
    spawns_four = PlannedCell(dataclasses.replace(spawns_four.cell, cores=4), "local", "on the host")
    pool = ResourcePool(cores=4)
    assert pool.try_acquire(spawns_four) == []
    assert pool.try_acquire(planned("cpu", 1)) is None  # its ws2 would fit; the 4 cores it booked do not
    pool.release(spawns_four, [])
    assert pool.try_acquire(planned("cpu", 2)) == [] and pool.try_acquire(planned("cpu", 2)) == []


class RecordingExecutor:
    """Runs nothing; records which GPUs are held at once, so overlaps would show."""

    name = "local"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: set[int] = set()
        self.overlaps: list[int] = []
        self.most_at_once = 0
        self.running = 0

    def run(self, cell: Cell, results_dir: Path, gpu_ids: list[int], on_progress) -> CellResult:
        with self.lock:
            self.overlaps += [g for g in gpu_ids if g in self.held]
            self.held |= set(gpu_ids)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        on_progress(cell.id, Reported("t", "call", "passed"))
        threading.Event().wait(0.05)
        with self.lock:
            self.held -= set(gpu_ids)
            self.running -= 1
        return CellResult(
            cell.id, cell.device, cell.world_size, "passed", executor=self.name, counts=Counts(passed=1)
        )

    def interrupt(self) -> None:
        """Nothing runs long enough to need stopping."""

    def close(self) -> None:
        """Holds nothing."""


def test_scheduler_runs_every_cell_in_parallel_without_sharing_a_gpu(tmp_path):
    executor = RecordingExecutor()
    cells = [planned("cuda", n, f"-{i}") for i, n in enumerate([1, 2, 4, 1, 2, 1, 1])]
    events, finished = [], []
    scheduler = CellScheduler(
        {"local": executor},
        ResourcePool(cores=64, gpu_ids={"cuda": [0, 1, 2, 3]}),
        tmp_path,
        lambda p: None,
        lambda cid, e: events.append(cid),
        finished.append,
    )
    results, interrupted = scheduler.run(cells)
    assert not interrupted and executor.overlaps == []
    assert sorted(r.id for r in results) == sorted(p.cell.id for p in cells) == sorted(r.id for r in finished)
    assert len(events) == len(cells) and executor.most_at_once >= 2


def test_an_executor_exception_becomes_that_cells_error(tmp_path):
    class Broken(RecordingExecutor):
        def run(self, cell, results_dir, gpu_ids, on_progress):
            raise RuntimeError("engine went away")

    scheduler = CellScheduler(
        {"local": Broken()},
        ResourcePool(cores=2),
        tmp_path,
        lambda p: None,
        lambda c, e: None,
        lambda r: None,
    )
    results, _ = scheduler.run([planned("cpu", 1)])
    assert results[0].status == "error" and "RuntimeError: engine went away" in results[0].reason


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
<testsuite name="pytest" errors="{errors}" failures="{failures}" skipped="1" tests="{tests}" time="1.0">
<testcase classname="tests.test_x" name="test_ok" time="0.1"/>
<testcase classname="tests.test_x" name="test_skip" time="0.0">
<skipped message="supports world sizes 2"/></testcase>
{extra}
</testsuite></testsuites>"""
FAILURE = (
    '<testcase classname="tests.test_x" name="test_bad" time="0.2">'
    '<failure message="rank 1: assert 3 == 4">Traceback\nrank 1: assert 3 == 4</failure></testcase>'
)


def write_cell_dir(tmp_path: Path, *, failures: int = 0, junit: bool = True) -> Path:
    directory = tmp_path / "cpu-gloo-ws2"
    directory.mkdir(parents=True)
    if junit:
        extra = FAILURE if failures else ""
        text = JUNIT.format(errors=0, failures=failures, tests=2 + failures, extra=extra)
        (directory / "junit.xml").write_text(text)
    (directory / "log.txt").write_text("line 1\nTraceback: boom\n")
    (directory / "fingerprint.json").write_text(json.dumps({"torch": "2.13.0", "hostname": "h"}))
    return directory


def test_a_cells_result_comes_from_its_junit_and_fingerprint(tmp_path):
    cell = planned("cpu", 2).cell
    passed = collect_cell_result(cell, write_cell_dir(tmp_path), 0, 1.5, "local")
    assert passed.status == "passed" and passed.counts == Counts(passed=1, skipped=1)
    assert passed.fingerprint["torch"] == "2.13.0" and passed.executor == "local"


def test_failures_missing_junit_timeouts_and_empty_collections(tmp_path):
    cell = planned("cpu", 2).cell
    failed = collect_cell_result(cell, write_cell_dir(tmp_path / "a", failures=1), 1, 1.0, "local")
    assert failed.status == "failed" and failed.counts.failed == 1
    missing = collect_cell_result(cell, write_cell_dir(tmp_path / "b", junit=False), 1, 1.0, "docker")
    assert (
        missing.status == "error" and "no junit.xml" in missing.reason and "Traceback: boom" in missing.reason
    )
    timed_out = collect_cell_result(
        cell, write_cell_dir(tmp_path / "c"), -9, 9.0, "local", "cell timed out after 9s"
    )
    assert timed_out.status == "error" and timed_out.reason == "cell timed out after 9s"
    assert timed_out.counts.passed == 1  # what finished before the timeout still counts
    empty = collect_cell_result(cell, write_cell_dir(tmp_path / "d"), 5, 1.0, "local")
    assert empty.status == "error" and "collected no tests" in empty.reason


def test_an_error_names_the_running_test_or_else_the_last_one_that_finished(tmp_path):
    cell = planned("cpu", 2).cell
    directory = write_cell_dir(tmp_path)
    events = [
        Collected(2),
        Started("tests/t.py::test_a"),
        Reported("tests/t.py::test_a", "teardown", "passed"),
        Started("tests/t.py::test_b"),
    ]
    progress = directory / "progress.jsonl"
    progress.write_text("".join(event_line(event) + "\n" for event in events))
    running = collect_cell_result(cell, directory, 1, 1.0, "docker", "node 1 of 2 exited with code 137")
    assert running.reason.endswith("while running tests/t.py::test_b (1 of 2 tests finished, 1 not run)")
    # A node killed mid-test can fail the test on the other nodes before the harness sees the node go.
    teardown = Reported("tests/t.py::test_b", "teardown", "failed", message="node 1 is gone")
    progress.write_text("".join(event_line(event) + "\n" for event in [*events, teardown]))
    after = collect_cell_result(cell, directory, 1, 1.0, "docker", "node 1 of 2 exited with code 137")
    assert after.reason.endswith("after tests/t.py::test_b (2 of 2 tests finished, 0 not run)")


def test_a_cell_stopped_before_pytest_wrote_its_junit_keeps_its_finished_tests_from_the_events(tmp_path):
    # Killed past its grace period (a loaded machine), pytest never wrote junit.xml: what the finished tests
    # did is still known from the progress events.
    cell = planned("cpu", 2).cell
    directory = write_cell_dir(tmp_path, junit=False)
    events = [Collected(5)]
    for name, outcome in [("a", "passed"), ("b", "passed"), ("c", "failed"), ("d", "skipped")]:
        nodeid = f"tests/t.py::test_{name}"
        phases = [("setup", "passed"), ("call", outcome)] if outcome != "skipped" else [("setup", "skipped")]
        events += [Started(nodeid), *(Reported(nodeid, when, o) for when, o in phases)]
        events.append(Reported(nodeid, "teardown", "passed"))
    events.append(Started("tests/t.py::test_e"))
    (directory / "progress.jsonl").write_text("".join(event_line(event) + "\n" for event in events))
    result = collect_cell_result(cell, directory, -9, 1.0, "local", "interrupted")
    counts = result.counts
    assert (counts.passed, counts.failed, counts.skipped, counts.errors, counts.not_run) == (2, 1, 1, 0, 1)
    assert result.reason.splitlines() == [
        "interrupted while running tests/t.py::test_e (4 of 5 tests finished, 1 not run)",
        "(counts from the progress events: no junit.xml (the cell runner exited with code -9))",
    ]


def test_an_interrupted_cell_names_its_test_the_ranks_still_in_it_and_their_stacks(tmp_path):
    cell = planned("cpu", 4).cell
    directory = write_cell_dir(tmp_path)
    stack = 'Current thread 0x1 (most recent call first):\n  File "tests/t.py", line 6 in test_b\n'
    events = [
        Collected(2),
        Started("tests/t.py::test_a"),
        # An event about another test than the one running (a line forged by test code, say) says nothing.
        Interrupted("tests/t.py::test_a", 4, (0,), (1, 2, 3), ("tests/t.py:1 forged",), ("forged",)),
        Reported("tests/t.py::test_a", "teardown", "passed"),
        Started("tests/t.py::test_b"),
        Interrupted("tests/t.py::test_b", 4, (1, 3), (0, 2), ("tests/t.py:6 test_b", ""), (stack, "")),
    ]
    (directory / "progress.jsonl").write_text("".join(event_line(event) + "\n" for event in events))
    result = collect_cell_result(cell, directory, 2, 1.0, "local", "interrupted")
    assert result.reason.splitlines() == [
        "interrupted in tests/t.py::test_b: ranks 1, 3 of 4 still running (rank 1 in tests/t.py:6 test_b) "
        "(ranks 0, 2 finished the test body) (1 of 2 tests finished, 1 not run)",
        "---- rank 1 of 4 when interrupted; its stack ----",
        *stack.rstrip().splitlines(),
    ]
    (directory / "progress.jsonl").write_text("".join(event_line(event) + "\n" for event in events[:5]))
    result = collect_cell_result(cell, directory, 2, 1.0, "local", "interrupted")
    assert result.reason == "interrupted while running tests/t.py::test_b (1 of 2 tests finished, 1 not run)"
    one = Interrupted("tests/t.py::test_b", 2, (1,), (0,), ("tests/t.py:6 test_b",))
    (directory / "progress.jsonl").write_text("".join(event_line(e) + "\n" for e in [*events[:5], one]))
    result = collect_cell_result(cell, directory, 2, 1.0, "local", "interrupted")
    assert result.reason == (
        "interrupted in tests/t.py::test_b: rank 1 of 2 still running, in tests/t.py:6 test_b "
        "(rank 0 finished the test body) (1 of 2 tests finished, 1 not run)"
    )


def test_unreadable_junit_counts_as_missing(tmp_path):
    (tmp_path / "junit.xml").write_text("<testsuites><testsuite")
    assert read_junit_counts(tmp_path / "junit.xml") is None


def status(s: str, required: bool = False, passed: int | None = None) -> CellResult:
    ran = passed if passed is not None else int(s != "skipped")
    return CellResult("c", "cpu", 2, s, required=required, counts=Counts(passed=ran))


def test_exit_codes():
    assert (
        compute_exit_code([status("passed"), status("skipped", True)], strict=False, interrupted=False) == 0
    )
    assert compute_exit_code([status("passed"), status("failed")], strict=False, interrupted=False) == 1
    assert compute_exit_code([status("error")], strict=False, interrupted=False) == 1
    assert compute_exit_code([status("failed"), status("skipped", True)], strict=True, interrupted=False) == 3
    assert (
        compute_exit_code([status("skipped", False), status("passed", True)], strict=True, interrupted=False)
        == 0
    )
    assert compute_exit_code([status("failed", True)], strict=True, interrupted=False) == 1
    assert compute_exit_code([status("passed")], strict=True, interrupted=True) == 130


def test_a_run_in_which_no_test_executed_exits_5_and_says_why():
    # Every cell skipped (a CI job whose cell cannot run on its runner), or cells that ran no test.
    skipped = [status("skipped", True), status("skipped", False)]
    assert compute_exit_code(skipped, strict=False, interrupted=False) == 5
    assert compute_exit_code([status("passed", passed=0)], strict=False, interrupted=False) == 5
    # Some test ran somewhere: the skipped cells alone do not fail a run without --strict.
    assert compute_exit_code([*skipped, status("passed")], strict=False, interrupted=False) == 0
    # Failures and --strict come first: they say more.
    assert compute_exit_code(skipped, strict=True, interrupted=False) == 3
    cells = [dataclasses.replace(c, id=f"c{i}", reason="needs 4 CUDA GPUs") for i, c in enumerate(skipped)]
    assert nothing_ran_reason(cells) == "no test ran: every cell was skipped (needs 4 CUDA GPUs)"
    empty = [dataclasses.replace(status("passed", passed=0), id="cpu-gloo-ws1"), *cells]
    assert nothing_ran_reason(empty).startswith("no test ran: cpu-gloo-ws1 collected no test or skipped")


def run_with_a_skipped_cuda_cell(out, *, strict: bool) -> tuple[RunReport, PlannedCell]:
    """A run's report of a cpu ws2 cell and a cuda ws4 cell; the cuda one already reported skipped."""
    out.mkdir()
    ran, skipped = planned("cpu", 2, required=True), planned("cuda", 4, required=True)
    skipped = PlannedCell(skipped.cell, None, "needs 4 CUDA GPUs, this host has 0")
    cell_ids = [ran.cell.id, skipped.cell.id]
    report = RunReport(
        out, cell_ids, {"cores": 2}, strict=strict, matrix="matrix.yaml", markdown=render_markdown
    )
    report.add(skipped.skipped_result())
    return report, ran


def test_the_report_is_rewritten_as_cells_finish_and_merges_junit(tmp_path):
    out = tmp_path / "results"
    report, ran = run_with_a_skipped_cuda_cell(out, strict=True)
    partial = load_summary(out)
    assert partial.pending == ["cpu-gloo-ws2"] and partial.exit_code is None
    result = collect_cell_result(ran.cell, write_cell_dir(out, failures=1), 1, 2.0, "local")
    report.add(result)
    assert report.finish(interrupted=False) == 3
    summary = load_summary(out / "summary.json")
    assert [c.id for c in summary.cells] == ["cpu-gloo-ws2", "cuda-nccl-ws4"]
    first = summary.cells[0]
    assert first == dataclasses.replace(result, results_dir="cpu-gloo-ws2")
    assert summary.finished and summary.strict is True
    markdown = (out / "summary.md").read_text()
    assert "| cpu | ❌ failed: 1 failed, 1 passed" in markdown and "rank 1: assert 3 == 4" in markdown
    assert "| cuda-nccl-ws4 | skipped | yes | needs 4 CUDA GPUs, this host has 0 |" in markdown
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot()}
    assert set(suites) == {"cpu-gloo-ws2", "cuda-nccl-ws4"}
    assert len(suites["cpu-gloo-ws2"].findall("testcase")) == 3
    assert (
        suites["cuda-nccl-ws4"].find("testcase/skipped").get("message")
        == "needs 4 CUDA GPUs, this host has 0"
    )


def table_lines(markdown: str) -> list[str]:
    """The device x world-size grid of a Markdown report, and the failures and problems under it."""
    return [line for line in markdown.splitlines() if line.startswith(("| ", "### ", "- `", "## "))]


def test_report_of_a_finished_run_renders_the_same_tables_as_its_summary_md(tmp_path):
    out = tmp_path / "results"
    report, ran = run_with_a_skipped_cuda_cell(out, strict=False)
    report.add(collect_cell_result(ran.cell, write_cell_dir(out, failures=1), 1, 2.0, "local"))
    report.finish(interrupted=False)

    merged = render_markdown(merge_results([out]))

    assert table_lines(merged) == table_lines((out / "summary.md").read_text())
    assert "| cpu | ❌ failed: 1 failed, 1 passed" in merged


def test_test_ids_keep_classes_apart_from_the_module_path():
    def case(classname: str, name: str) -> ET.Element:
        return ET.Element("testcase", classname=classname, name=name)

    assert node_id_of(case("tests.test_x", "test_a")) == "tests/test_x.py::test_a"
    assert node_id_of(case("tests.test_x.TestGroup", "test_a")) == "tests/test_x.py::TestGroup::test_a"
    assert node_id_of(case("tests.test_x.TestOuter.TestInner", "test_b[1]")) == (
        "tests/test_x.py::TestOuter::TestInner::test_b[1]"
    )
    assert node_id_of(case("", "collection")) == "collection"


def test_summary_md_lists_each_cells_skip_reasons_with_counts(tmp_path):
    skips = [
        ("a", 'type="pytest.skip" message="needs 2 CUDA GPUs"'),
        ("b", 'type="pytest.skip" message="needs 2 CUDA GPUs"'),
        ("c", 'type="pytest.skip" message="[evil](https://x) &lt;img src=x&gt;"'),
        ("d", 'type="pytest.xfail" message="gloo has no all_to_all"'),
    ]
    cases = "".join(
        f'<testcase classname="tests.test_x" name="{n}"><skipped {m}/></testcase>' for n, m in skips
    )
    cell_dir = tmp_path / "out" / "cpu-gloo-ws2"
    cell_dir.mkdir(parents=True)
    (cell_dir / "junit.xml").write_text(
        f'<testsuites><testsuite name="pytest" tests="5" failures="0" errors="0" skipped="4">{cases}'
        '<testcase classname="tests.test_x" name="e"/></testsuite></testsuites>'
    )
    ran = planned("cpu", 2)
    result = collect_cell_result(ran.cell, cell_dir, 0, 1.0, "local")
    assert result.skip_reasons == {
        "needs 2 CUDA GPUs": 2,
        "[evil](https://x) <img src=x>": 1,
        "xfail: gloo has no all_to_all": 1,
    }
    report = RunReport(
        tmp_path / "out", [ran.cell.id], {}, strict=False, matrix="m.yaml", markdown=render_markdown
    )
    report.add(result)
    report.finish(interrupted=False)

    section = skip_section((tmp_path / "out" / "summary.md").read_text())
    # Most frequent first; a reason is the cell's text, so it is shown inert (no link, no HTML).
    assert section[0] == "- cpu-gloo-ws2 · 2 × needs 2 CUDA GPUs"
    assert section[1:] == [
        "- cpu-gloo-ws2 · 1 × `[evil](https://x) <img src=x>`",
        "- cpu-gloo-ws2 · 1 × xfail: gloo has no all_to_all",
    ]
    # The same cell read back by `harness report` says the same.
    assert skip_section(render_markdown(merge_results([tmp_path / "out"]))) == section


def skip_section(markdown: str) -> list[str]:
    """The lines of a Markdown report's skip reasons."""
    return markdown.split("## Skipped tests, by reason\n\n")[1].split("\n\n")[0].splitlines()
