"""The plugin's `--dist-*` options, as one table: the plugin declares them from it, the cell runner builds
its pytest command line from it (harness/cell/runner.py), so the two sides cannot name an option apart.

Each option is a `DistOption`; `DIST_OPTIONS` lists them in the order `pytest --help` shows them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.adapters.registry import DEFAULT_COMMUNICATOR
from harness.config.model import BACKEND_OF_DEVICE

if TYPE_CHECKING:
    import pytest  # the cell runner imports this table without importing pytest

GROUP = ("comm-harness", "distributed tests on forked ranks (comm-harness)")


@dataclass(frozen=True)
class DistOption:
    """One `--dist-*` option: how pytest parses it and how a command line gives it a value."""

    flag: str  # "--dist-world-size"
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    switch: bool = False  # store_true: given alone, without a value

    @property
    def dest(self) -> str:
        """The name pytest keeps it under: `config.getoption(option.dest)`."""
        return self.flag.removeprefix("--").replace("-", "_")

    def declare(self, group: pytest.OptionGroup) -> None:
        """Add the option to pytest's parser (the plugin's `pytest_addoption`)."""
        if self.switch:
            group.addoption(self.flag, action="store_true", default=self.default, help=self.help)
            return
        extra: dict[str, Any] = {}
        if self.type is not None:
            extra["type"] = self.type
        if self.choices is not None:
            extra["choices"] = list(self.choices)
        if self.metavar is not None:
            extra["metavar"] = self.metavar
        group.addoption(self.flag, default=self.default, help=self.help, **extra)

    def arguments(self, value: Any) -> list[str]:
        """The command-line words that give the option `value`: none for None or a switch that is off."""
        if value is None or (self.switch and not value):
            return []
        if self.switch:
            return [self.flag]
        # 45.0 → "45": the log line shows the command as a person would type it.
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return [self.flag, text]


def _number(
    convert: Callable[[str], Any], valid: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """An option's `type`: `convert`, and a usage error naming what was `expected` when invalid."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda value: value >= 1, "a positive integer")
_non_negative_int = _number(int, lambda value: value >= 0, "0 or a positive integer")
_node_rank = _number(int, lambda value: value >= 0, "a node rank (0, 1, ...)")
_positive_float = _number(float, lambda value: value > 0, "a positive number of seconds")


DEVICE = DistOption(
    "--dist-device",
    choices=tuple(sorted(BACKEND_OF_DEVICE)),
    default="cpu",
    help="device of the ranks: cpu (gloo), cuda (nccl), xpu (xccl). Default: cpu.",
)
WORLD_SIZE = DistOption(
    "--dist-world-size",
    type=_positive_int,
    default=1,
    metavar="N",
    help="number of ranks each distributed test runs on. Default: 1.",
)
NODES = DistOption(
    "--dist-nodes",
    type=_positive_int,
    default=1,
    metavar="N",
    help="split the world size evenly over N nodes (dist_env.node_rank, local_rank); alone, all nodes "
    "are emulated on this host. Default: 1.",
)
NODE_RANK = DistOption(
    "--dist-node-rank",
    type=_node_rank,
    default=None,
    metavar="K",
    help="run only node K's ranks here; they meet the other nodes' through node 0's store at "
    "MASTER_ADDR:MASTER_PORT (node 0 serves it). Default: every node here.",
)
TIMEOUT = DistOption(
    "--dist-timeout",
    type=_positive_float,
    default=120.0,
    metavar="SECONDS",
    help="per distributed test; then the ranks' stacks are reported and the ranks killed. Default: 120.",
)
REUSE = DistOption(
    "--dist-reuse",
    choices=("auto", "on", "off", "check"),
    default="auto",
    help="keep rank workers and their process group alive across tests (auto: on for cuda/xpu, off for "
    "cpu). Fixtures' environment, cwd, sys.path, RNG states and process switches are carried to them; a "
    "test whose fixtures changed what cannot be carried runs on fresh ranks. check: run each test on "
    "fresh ranks and on the workers, and fail it where the outcomes differ (proves a suite reuse-safe).",
)
ALL2ALL_BACKEND = DistOption(
    "--dist-all2all-backend",
    default="allgather_reducescatter",
    metavar="NAME",
    help="all2all backend the communicator fixture asks for. Default: allgather_reducescatter.",
)
CHECK_COLLECTIVES = DistOption(
    "--dist-check-collectives",
    switch=True,
    default=False,
    help="before every collective, ranks compare op, shapes and dtypes (TORCH_DISTRIBUTED_DEBUG=DETAIL) "
    "and a mismatch fails the test at once instead of hanging until the timeout. Costs a round trip per "
    "collective.",
)
TRACE_COLLECTIVES = DistOption(
    "--dist-trace-collectives",
    choices=("on", "off"),
    default="on",
    help="each rank traces its collectives, and a failed or timed-out test's report opens with which "
    "rank went astray in which call. Default: on.",
)
COMMUNICATOR = DistOption(
    "--dist-communicator",
    default=DEFAULT_COMMUNICATOR,
    metavar="NAME",
    help="implementation the communicator fixture gives: an adapter built in (comm-harness, vllm) or "
    "registered under the entry-point group comm_harness.communicators. Default: comm-harness.",
)
RETRIES = DistOption(
    "--dist-retries",
    type=_non_negative_int,
    default=0,
    metavar="N",
    help="run a distributed test that failed (a rank failed, died or outlived --dist-timeout) again on "
    "fresh ranks, up to N more times; one that then passes is reported flaky, every attempt's failure "
    "kept. Default: 0.",
)
REPEAT = DistOption(
    "--dist-repeat",
    type=_positive_int,
    default=1,
    metavar="N",
    help="run every distributed test N times on fresh ranks and print how often each failed, with its "
    "distinct failures (a flake hunt); a test that failed some of them is flaky. Default: 1.",
)
PROGRESS = DistOption(
    "--dist-progress",
    default=None,
    metavar="FILE",
    help="append one JSON line per test start and report to FILE, as it happens.",
)

DIST_OPTIONS = (
    DEVICE,
    WORLD_SIZE,
    NODES,
    NODE_RANK,
    TIMEOUT,
    REUSE,
    ALL2ALL_BACKEND,
    CHECK_COLLECTIVES,
    TRACE_COLLECTIVES,
    COMMUNICATOR,
    RETRIES,
    REPEAT,
    PROGRESS,
)


def declare_options(parser: pytest.Parser) -> None:
    """Every `--dist-*` option, in one group of pytest's parser."""
    group = parser.getgroup(*GROUP)
    for option in DIST_OPTIONS:
        option.declare(group)


def command_line(values: Mapping[DistOption, Any]) -> list[str]:
    """The command-line words that give each option its value, in the table's order (None: left out)."""
    return [word for option in DIST_OPTIONS if option in values for word in option.arguments(values[option])]
