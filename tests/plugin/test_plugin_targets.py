"""`--dist-communicator`: an engine's adapter found by entry point, its platforms, its gaps as strict xfails.

A separate pytest runs small tests against a toy engine ("toyengine"), registered the way an engine's own
package registers it: a dist-info with an entry point in the group comm_harness.communicators. Its
communicator is comm-harness's CPU communicator, except that on its emulated "xpu" platform `broadcast`
returns None, and its recorded gaps say so (and say wrong things on purpose, to see them caught).
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from plugin_runs import run_pytest_in

ADAPTER = textwrap.dedent(
    """
    import os

    from harness.adapters.base import KnownGap, TargetPlatform


    class ToyCommunicator:
        def __init__(self, env, platform):
            from communicators import create_communicator

            self._inner = create_communicator(env.device)
            self.platform = platform
            self.rank, self.world_size, self.device = env.rank, env.world_size, env.device

        def all_reduce(self, tensor):
            return self._inner.all_reduce(tensor)

        def broadcast(self, tensor, src=0):
            out = self._inner.broadcast(tensor, src)
            return None if self.platform.name == "xpu" else out

        def destroy(self):
            self._inner.destroy()


    class ToyAdapter:
        name = "toyengine"
        description = "a toy engine"
        known_gaps = (
            KnownGap("test_broadcast_returns_the_tensor", ("xpu_emulated",), "broadcast returns None",
                     match="NoneType"),
            KnownGap("test_all_reduce_sums", ("xpu_emulated",), "recorded, but all_reduce works"),
            KnownGap("test_broadcast_of_zeros", ("xpu_emulated",), "recorded as a ValueError",
                     match="ValueError"),
        ) + ((KnownGap("test_renamed_away", ("cpu",), "since renamed", origin="gaps.yaml:7: v 1.0 gap 4"),)
             if os.environ.get("TOY_RENAMED_GAP") else ())

        def platforms(self, device):
            return (TargetPlatform("cpu"), TargetPlatform("xpu", emulated_on="cpu"))

        def preload(self):
            pass

        def create(self, env, platform, all2all_backend):
            return ToyCommunicator(env, platform)

        def version(self):
            return "1.0"


    ADAPTER = ToyAdapter()
    """
)

TESTS = textwrap.dedent(
    """
    import pytest
    import torch


    def test_all_reduce_sums(communicator):
        out = communicator.all_reduce(torch.ones(2))
        assert out.tolist() == [float(communicator.world_size)] * 2


    def test_broadcast_returns_the_tensor(communicator):
        out = communicator.broadcast(torch.full((2,), float(communicator.rank)), src=0)
        assert out.tolist() == [0.0, 0.0]


    def test_broadcast_of_zeros(communicator):
        out = communicator.broadcast(torch.zeros(2), src=0)
        assert out.sum().item() == 0


    def test_factory_makes_the_platform(communicator_factory, communicator_platform):
        made = communicator_factory("allgather_reducescatter")
        assert made.platform == communicator_platform
        made.destroy()


    def test_a_subgroup_needs_an_adapter_that_takes_a_group(communicator_factory):
        import torch.distributed as dist

        group = dist.new_group([0])
        if dist.get_rank() == 0:
            communicator_factory(group=group)


    def test_of_the_reference_package_only(dist_env):
        pass


    @pytest.mark.comm_harness_internals("it reads an internal")
    def test_marked_internal(communicator):
        pass
    """
)


def _install_toy_engine(directory: Path) -> None:
    (directory / "toyengine_adapter.py").write_text(ADAPTER)
    dist_info = directory / "toyengine-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyengine\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[comm_harness.communicators]\ntoyengine = toyengine_adapter:ADAPTER\n"
    )


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("toyengine")
    _install_toy_engine(directory)
    (directory / "test_toy.py").write_text(TESTS)
    run = run_pytest_in(directory, "--dist-world-size=2", "--dist-communicator=toyengine", timeout=180)
    return run, ET.parse(directory / "junit.xml").getroot()


def test_the_adapter_an_engine_registers_is_found_by_name(toy_run):
    run, _ = toy_run
    assert "communicator under test toyengine (a toy engine); cpu, xpu_emulated" in run.output


def test_every_platform_runs_and_the_emulated_one_says_so(toy_run):
    run, junit = toy_run
    assert run.outcomes["test_all_reduce_sums[cpu]"] == "passed"
    assert run.outcomes["test_broadcast_returns_the_tensor[cpu]"] == "passed"
    assert run.outcomes["test_factory_makes_the_platform[xpu_emulated]"] == "passed"
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in junit.iter("testcase")
    }
    assert properties["test_broadcast_of_zeros[xpu_emulated]"] == {
        "communicator_platform": "xpu_emulated",
        "emulated": "xpu-on-gloo",
    }
    assert properties["test_broadcast_of_zeros[cpu]"] == {"communicator_platform": "cpu"}
    assert properties["test_of_the_reference_package_only"] == {}


def test_a_gap_that_holds_is_an_xfail_naming_its_reason(toy_run):
    run, _ = toy_run
    name = "test_broadcast_returns_the_tensor[xpu_emulated]"
    assert run.outcomes[name] == "skipped"  # JUnit's form of xfailed
    assert "known gap of toyengine on xpu_emulated: broadcast returns None" in run.messages[name]
    # On the terminal too: the target behaving as recorded, not an expected failure of the suite.
    assert " 1 known gap" in run.output.splitlines()[-1]


def test_a_gap_that_no_longer_holds_fails_the_run(toy_run):
    run, _ = toy_run
    assert run.outcomes["test_all_reduce_sums[xpu_emulated]"] == "failed"
    assert "[XPASS(strict)] known gap of toyengine on xpu_emulated: recorded, but" in run.output
    assert run.ret == 1


def test_a_gap_that_fails_differently_than_recorded_fails(toy_run):
    run, _ = toy_run
    name = "test_broadcast_of_zeros[xpu_emulated]"
    assert run.outcomes[name] == "failed"
    assert "recorded a failure matching 'ValueError'" in run.messages[name]
    assert "NoneType" in run.messages[name]


def test_an_adapter_without_sub_groups_skips_the_sub_group_tests(toy_run):
    run, _ = toy_run
    name = "test_a_subgroup_needs_an_adapter_that_takes_a_group[cpu]"
    assert run.outcomes[name] == "skipped"
    assert "the toyengine adapter builds no communicator over a sub-group" in run.messages[name]


def test_a_gap_that_matches_no_collected_test_is_an_error_naming_where_it_is(tmp_path, monkeypatch):
    _install_toy_engine(tmp_path)
    (tmp_path / "test_toy.py").write_text(TESTS)
    monkeypatch.setenv("TOY_RENAMED_GAP", "1")
    run = run_pytest_in(tmp_path, "--dist-communicator=toyengine", "-k", "all_reduce", timeout=180)
    assert run.ret == 4, run.output
    assert "1 known gap(s) never match a collected test" in run.output
    assert "gaps.yaml:7: v 1.0 gap 4: 'test_renamed_away' on cpu" in run.output
    # One file, or one test, of the suite: the other gaps are not expected to match.
    run = run_pytest_in(tmp_path, "--dist-communicator=toyengine", "test_toy.py::test_all_reduce_sums")
    assert run.outcomes["test_all_reduce_sums[cpu]"] == "passed", run.output


def test_tests_of_the_reference_package_are_skipped_for_another_target(toy_run):
    run, _ = toy_run
    assert run.outcomes["test_of_the_reference_package_only"] == "skipped"
    assert "does not use the communicator fixture" in run.messages["test_of_the_reference_package_only"]
    assert run.outcomes["test_marked_internal[cpu]"] == "skipped"
    assert "it reads an internal" in run.messages["test_marked_internal[cpu]"]


def test_an_unknown_communicator_is_a_usage_error_listing_the_known_ones(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one(communicator):\n    pass\n")
    run = run_pytest_in(tmp_path, "--dist-communicator=nosuchengine")
    assert run.ret == 4, run.output
    assert "no communicator adapter named 'nosuchengine'; known: comm-harness, vllm" in run.output
