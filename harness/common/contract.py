"""The environment variables that cross process boundaries: harness → cell runner → pytest → ranks.

One name each, set by one side and read by the other; every module that sets or reads one imports it from
here, so a rename cannot leave one side behind. (The `--dist-*` options are the other half of the contract:
harness/pytest_plugin/options.py.)
"""

from __future__ import annotations

# -- set by the harness's executors, read in the cell
# The run a process belongs to: the guardian finds a dead run's leftovers (processes, containers) by it.
RUN_ID_ENV = "HARNESS_RUN_ID"
# The cgroup a local cell's runner joins before pytest starts (absent where the host gives none).
CELL_CGROUP_ENV = "HARNESS_CELL_CGROUP"
# Set by an executor that runs one node of a multi-node cell here (a container or Slurm task per node);
# absent, every node of the cell is emulated in one runner.
NODE_RANK_ENV = "HARNESS_NODE_RANK"
# The image a container cell runs in, and its digest: recorded in the cell's fingerprint.
IMAGE_ENV = "HARNESS_IMAGE"
IMAGE_DIGEST_ENV = "HARNESS_IMAGE_DIGEST"
# How a container cell reaches its GPUs (runtime, devices, CDI): recorded in the cell's fingerprint.
GPU_ACCESS_ENV = "HARNESS_GPU_ACCESS"

# -- set by the cell runner, read by pytest, the ranks and the suite
CELL_ENV = "HARNESS_CELL"  # the cell's id
DEVICE_ENV = "HARNESS_DEVICE"
WORLD_SIZE_ENV = "HARNESS_WORLD_SIZE"
# A cell's params as PARAM_ENV_PREFIX + KEY.upper() (HARNESS_PARAM_VLLM, HARNESS_PARAM_ALL2ALL_BACKEND).
PARAM_ENV_PREFIX = "HARNESS_PARAM_"
# Which setting gave the per-test timeout, for a hang's message ("test_timeout in matrix.yaml").
TIMEOUT_SOURCE_ENV = "HARNESS_TEST_TIMEOUT_SOURCE"

# -- set by the plugin for its ranks
NODES_EMULATED_ENV = "HARNESS_NODES_EMULATED"  # "1": every node of the cell is forked on this one host


def param_env(key: str) -> str:
    """The variable that carries the cell's param `key` ('vllm' → HARNESS_PARAM_VLLM)."""
    return f"{PARAM_ENV_PREFIX}{key.upper()}"
