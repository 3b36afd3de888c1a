"""Hypothesis on every rank, in lockstep: the ranks draw the same examples and shrink the same way.

A property test of a collective runs its body on N ranks, and every example's collectives must be entered by
all of them. Hypothesis is a deterministic function of its seed and of the outcome of each example it has
run, so N copies of it make the same choices exactly when they start from one seed and see the same outcomes.
`given_on_ranks` ensures both:

- One seed. The `ci` profile is derandomized (the seed comes from the test's name and source, the same in
  every rank); any other profile gets the seed `configure_shared_seed` picked in the pytest process before
  any rank was forked (`--hypothesis-seed`, or a random one that failure messages name). Left to itself,
  Hypothesis would seed each rank from the rank's own entropy: different examples, mismatched collectives.
- One outcome. After each example every rank says whether it passed, in one all_reduce over the default
  process group (raw torch.distributed, never the communicator under test). If any rank failed, every rank
  raises the same exception type from the same line, with no chained exception, so every copy of Hypothesis
  records the same failure and shrinks along the same path; the message names the failing ranks, and on a
  failing rank its own error. The same all_reduce compares a checksum of each rank's draws, so ranks that
  ever drew different examples fail loudly instead of testing nonsense.
- No time-dependent choices: no deadline, no health checks (some measure time), and one bug per test
  (`report_multiple_bugs=False`: with more, Hypothesis keeps generating for 10 s of wall time after the
  first failure, a moment each rank would judge differently). Shrinking stops after 5 minutes of wall
  time, later than the plugin's per-test timeout kills the ranks, so that limit never splits them.

Drawing in the pytest process and shipping batches to the ranks would need the pytest process to run
candidate examples on the ranks while shrinking, which the plugin (one body, one run) does not offer; in
lockstep, shrinking happens where the collectives run, and the report is Hypothesis's own: the minimal
falsifying example, its draws, and each rank's error.

A hang inside an example (a rank that skipped a collective its peers entered) is the plugin's to catch: at
`--dist-timeout` it reports every rank's stack.
"""

from __future__ import annotations

import functools
import random
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.strategies import DataObject, SearchStrategy

# The seed of every non-derandomized profile, chosen in the pytest process (conftest) before ranks fork.
_shared_seed: int | None = None

# Phases that only replay or search: `explain` and `target` are left out (explain traces the test with
# settrace, and neither adds anything a conformance check needs).
_LOCKSTEP_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)


class RanksDisagreeError(AssertionError):
    """An example failed on at least one rank; raised on every rank alike."""


def configure_shared_seed(requested: int | None) -> int:
    """Fix the seed that non-derandomized profiles use on every rank: `requested`, or a random one."""
    global _shared_seed
    _shared_seed = requested if requested is not None else random.SystemRandom().getrandbits(32)
    return _shared_seed


def shared_seed() -> int | None:
    """The seed every rank uses when the profile is not derandomized (None before `configure_shared_seed`)."""
    return _shared_seed


def given_on_ranks(**strategies: SearchStrategy[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`hypothesis.given` for a distributed test body: the ranks draw, fail and shrink together.

    Use it as `@given(...)`; fixtures (`communicator`, `dist_env`) pass through. Draw ws-dependent values
    with `data=st.data()`.
    """

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)
        def run_example(*args: Any, **kwargs: Any) -> None:
            draws: list[str] = []
            for name, value in list(kwargs.items()):
                if isinstance(value, DataObject):
                    kwargs[name] = _RecordingData(value, draws)
                elif name in strategies:
                    draws.append(f"{name}={value!r}")
            error = None
            try:
                test(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure must reach the other ranks
                error = exc
            verdict = _agree(error is not None, zlib.crc32("\n".join(draws).encode()))
            # Raised here, outside the except block, so the exception chains to nothing rank-specific.
            if verdict.failed_ranks or verdict.diverged:
                raise RanksDisagreeError(_describe(verdict, error))

        tuned = settings(
            parent=settings.default,
            database=None,
            deadline=None,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            phases=[phase for phase in settings.default.phases if phase in _LOCKSTEP_PHASES],
        )
        wrapped = tuned(given(**strategies)(run_example))
        if not settings.default.derandomize:
            if _shared_seed is None:
                raise RuntimeError(
                    f"{test.__name__}: profile {settings.get_current_profile_name()!r} is not derandomized "
                    "and no seed is shared by the ranks; the conformance conftest must call "
                    "configure_shared_seed"
                )
            wrapped = seed(_shared_seed)(wrapped)
        return wrapped

    return decorate


def warm_up(strategies: list[SearchStrategy[Any]]) -> None:
    """Draw a few examples of each strategy here, in the pytest process, before any rank is forked.

    Hypothesis builds and caches much on first use (measured: 2.3 s of a 2.9 s first run on the loaded
    2-core machine, then nothing for new strategies of the same kinds); ranks forked afterwards inherit it
    instead of paying for it in every test.
    """

    @settings(
        database=None,
        derandomize=True,
        max_examples=5,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(data=st.data())
    def draw_each(data: DataObject) -> None:
        for strategy in strategies:
            data.draw(strategy)

    draw_each()


class _RecordingData:
    """A `st.data()` object that also notes each drawn value, for the ranks to compare."""

    def __init__(self, data: DataObject, draws: list[str]) -> None:
        self._data = data
        self._draws = draws

    def draw(self, strategy: SearchStrategy[Any], label: Any = None) -> Any:
        value = self._data.draw(strategy, label)
        self._draws.append(repr(value))
        return value


@dataclass(frozen=True)
class _Verdict:
    """What the ranks agreed on after one example, seen from `rank`."""

    failed_ranks: list[int]
    diverged: bool  # the ranks' draws differ
    rank: int
    world_size: int


def _agree(failed: bool, checksum: int) -> _Verdict:
    """Every rank's pass/fail and draw checksum, exchanged in one all_reduce over the default group."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    table = torch.zeros(2, world_size, dtype=torch.int64, device=_exchange_device())
    table[0, rank] = int(failed)
    table[1, rank] = checksum
    dist.all_reduce(table)
    flags, checksums = table.tolist()
    return _Verdict([r for r, flag in enumerate(flags) if flag], len(set(checksums)) > 1, rank, world_size)


def _exchange_device() -> torch.device:
    """A device the default group's backend can reduce on: the CPU for gloo, else this rank's accelerator."""
    backend = str(dist.get_backend())
    if "gloo" in backend and ":" not in backend:
        return torch.device("cpu")
    accelerator = torch.accelerator.current_accelerator()
    if accelerator is None:
        return torch.device("cpu")
    return torch.device(accelerator.type, torch.accelerator.current_device_index())


def _describe(verdict: _Verdict, error: Exception | None) -> str:
    where = f"rank {verdict.rank} of {verdict.world_size}"
    if verdict.diverged:
        head = (
            f"{where}: the ranks drew different examples; this suite's lockstep assumption broke (a "
            "Hypothesis setting or version that makes choices per process?)"
        )
    elif error is None:
        head = f"{where} passed this example, but rank(s) {_ranks(verdict.failed_ranks)} failed it"
    else:
        others = [r for r in verdict.failed_ranks if r != verdict.rank]
        also = f" (also failed on rank(s) {_ranks(others)})" if others else " (only this rank failed)"
        head = f"{where} failed this example{also}:\n" + _error_text(error)
    if _shared_seed is not None and not settings.default.derandomize:
        head += f"\n(examples seeded with --hypothesis-seed {_shared_seed})"
    return head


def _ranks(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)


def _error_text(error: Exception) -> str:
    # The innermost frames say where the check failed; the whole chain of the communicator's frames would
    # drown the example that Hypothesis prints after this message.
    frames = traceback.extract_tb(error.__traceback__)[-4:]
    return "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(error)).rstrip()
