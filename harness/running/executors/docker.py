"""Runs a cell in a container of its device's image, through the Docker SDK.

The container runs `python -m harness.cell.runner /results/cell.json /results` with the repository mounted
read-only at /repo and the cell's work directory (`OUT/<cell>/work`, nothing else of the host) at /results,
exactly as the local executor runs it on the host; the harness copies the results out of it, checked
(harness/results/files.py). The harness owns the container's whole life: it enforces the cell's timeout
itself (the SDK's wait timeout is an HTTP timeout, not a watchdog), removes the container on every exit
path, and at start removes labelled containers that a crashed harness left behind.

The container gets no capabilities (none is needed: GPUs come as devices, through the NVIDIA runtime or
from the harness itself (gpu_access.py), memlock as a ulimit),
no-new-privileges, a pids limit and the matrix's memory limit; an out-of-memory kill errors the cell.
It runs as the harness's uid, or as nobody when the harness is root, so that nothing a cell writes is
root's: a set-uid copy of a binary in its work directory is at most nobody's, and behind the cell's
directory, which is 0700 until work/ is gone (harness/results/files.py), no other user reaches it.
"""

from __future__ import annotations

import grp
import os
import re
import stat
import threading
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from harness.common.contract import IMAGE_DIGEST_ENV, IMAGE_ENV, RUN_ID_ENV
from harness.common.errors import ConfigurationError, DockerUnavailableError, HarnessError
from harness.common.progress_events import BuildLine, ProgressCallback
from harness.config.model import Cell, ImageSpec
from harness.host.probe import engine_runtimes, find_intel_render_nodes
from harness.results.bounded_log import BoundedLog
from harness.results.cell_dir import collect_cell_result, prepare_cell_dir
from harness.results.cell_result import CellResult, CellStatus
from harness.results.files import LOG_TXT, PROGRESS_JSONL, WORK_DIR, harvest_work_dir
from harness.running.containers import (
    LABEL_NODE,
    cell_labels,
    connect_engine,
    containers_of_run,
    remove_container,
    remove_containers,
    remove_stale_containers,
)
from harness.running.executors.docker_nodes import (
    HOLDER_COMMAND,
    NodeContainers,
    node_dir,
    node_environment,
    node_gpus,
    store_port,
    with_node_result,
)
from harness.running.executors.gpu_access import GpuAccess, gpu_access, runtime_access
from harness.running.executors.progress_reader import ProgressReader
from harness.running.executors.protocol import Executor
from harness.running.executors.running import RunningCells
from harness.running.images import build_command, build_image, find_image, recipe_for

REPO_MOUNT = "/repo"
RESULTS_MOUNT = "/results"
# Where the harness package is mounted when the project root (the matrix's directory) does not hold it.
HARNESS_MOUNT = "/opt/comm-harness"
HARNESS_PACKAGE = Path(__file__).resolve().parents[2]
# How long a cell may take to wind down after SIGINT (pytest then still writes junit.xml) before SIGKILL:
# seconds on a loaded host, and a cell that is quick about it is not kept waiting.
INTERRUPT_GRACE_S = 20.0
POLL_S = 1.0
MIN_CUDA_SHM_BYTES = 1 << 30
# Who a cell's containers run as when the harness is root: nobody, who owns no file of the host.
UNPRIVILEGED_USER = (65534, 65534)
# Docker keeps a container's output on the host disk too (json-file): bounded like log.txt.
CONTAINER_LOG_CONFIG = {"type": "json-file", "config": {"max-size": "16m", "max-file": "2"}}

# Host variables a container inherits: the toolchains' own knobs, by prefix, and a few exact names users
# set to debug or tune communicators. Everything else stays on the host (the harness's HARNESS_* included:
# the harness sets its own); the matrix's `env:` adds more explicitly.
INHERITED_ENV_PREFIXES = ("NCCL_", "TORCH_", "GLOO_", "CCL_", "NVSHMEM_", "FI_", "UCX_")
INHERITED_ENV = frozenset({
    "OMP_NUM_THREADS", "CUDA_LAUNCH_BLOCKING", "CUDA_DEVICE_MAX_CONNECTIONS", "ZE_ENABLE_PCI_ID_DEVICE_ORDER",
    "PYTHONFAULTHANDLER",
})  # fmt: skip


def container_environment(
    cell: Cell, gpu_ids: list[int], host_env: dict[str, str] | None = None, run_id: str = ""
) -> dict[str, str]:
    """The container's whole environment: allow-listed host variables, the cell's `env`, the harness's own."""
    host = dict(os.environ if host_env is None else host_env)
    env = {
        name: value
        for name, value in host.items()
        if name in INHERITED_ENV or name.startswith(INHERITED_ENV_PREFIXES)
    }
    env.update(cell.env)
    if run_id:
        env[RUN_ID_ENV] = run_id
    if cell.device == "xpu":
        # /dev/dri holds every Intel GPU of the host: Level Zero's mask keeps the cell on its own.
        env["ZE_AFFINITY_MASK"] = ",".join(str(gpu) for gpu in gpu_ids)
    env.update(
        {
            "PYTHONPATH": f"{REPO_MOUNT}:{HARNESS_MOUNT}",
            # The container user (container_user) has no home there; torch and pytest want one.
            "HOME": "/tmp",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def project_mounts(project_root: Path, work_dir: Path) -> dict[str, dict[str, str]]:
    """Bind mounts: the project read-only at /repo, the cell's work directory read-write, the harness."""
    mounts = {
        str(project_root): {"bind": REPO_MOUNT, "mode": "ro"},
        str(work_dir): {"bind": RESULTS_MOUNT, "mode": "rw"},
    }
    if HARNESS_PACKAGE.parent != project_root:
        # Only the package directory: a whole site-packages on PYTHONPATH would shadow the image's torch.
        mounts[str(HARNESS_PACKAGE)] = {"bind": f"{HARNESS_MOUNT}/harness", "mode": "ro"}
    return mounts


def container_user(host_uid: int | None = None, host_gid: int | None = None) -> tuple[int, int]:
    """The (uid, gid) a cell's containers run as: the harness's own, so its results are the user's files,
    or nobody's when the harness is root, so that nothing a cell writes is root's."""
    uid = os.getuid() if host_uid is None else host_uid
    gid = os.getgid() if host_gid is None else host_gid
    return UNPRIVILEGED_USER if uid == 0 else (uid, gid)


def closed_to(user: tuple[int, int], mounts: dict[str, dict[str, str]]) -> str:
    """Why the container `user` cannot read a read-only mount's directory ('' when it can)."""
    for source, spec in mounts.items():
        if spec["mode"] != "ro":
            continue
        info = os.stat(source)
        if info.st_uid == user[0] or info.st_mode & 0o005 == 0o005:
            continue
        return (
            f"{source} (mode {stat.S_IMODE(info.st_mode):o}) is closed to uid {user[0]}, which cells run as "
            "when the harness runs as root: open it to other users (chmod o+rx, its files o+r) or run "
            "the harness as a user"
        )
    return ""


def hand_over_work_dir(work_dir: Path, user: tuple[int, int]) -> None:
    """Make `work_dir` the container user's to write (root hands it over; a user owns it already)."""
    if os.getuid() == 0 and user[0] != 0:
        os.chown(work_dir, *user)


def parse_size(size: str, key: str = "shm_size") -> int:
    """Bytes in a Docker size such as "512m" or "2g"."""
    match = re.fullmatch(r"\s*(\d+)\s*([bkmg]?)b?\s*", size.lower())
    if not match:
        raise ConfigurationError(f"{key} {size!r} is not a size such as 512m or 2g")
    return int(match.group(1)) * 1024 ** "bkmg".index(match.group(2) or "b")


def confinement_options(cell: Cell) -> dict[str, Any]:
    """containers.create() options that confine the cell: no capabilities, no privilege gain, limits."""
    image = cell.image
    options: dict[str, Any] = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": image.pids_limit if image else 4096,
        "log_config": CONTAINER_LOG_CONFIG,
        "privileged": False,
    }
    if image is not None and image.memory:
        limit = parse_size(image.memory, "image.memory")
        # Swap included: a cell over its limit is killed, not slowed to a crawl by swapping.
        options.update(mem_limit=limit, memswap_limit=limit)
    return options


def device_options(cell: Cell, gpu_ids: list[int], access: GpuAccess | None = None) -> dict[str, Any]:
    """containers.create() options that give the cell its devices and nothing more (never privileged).

    A cuda cell's GPUs come as `access` says (harness/running/executors/gpu_access.py); None: the NVIDIA
    runtime.
    """
    import docker.types

    shm_size = cell.image.shm_size if cell.image else "1g"
    options: dict[str, Any] = {"shm_size": shm_size}
    if cell.device == "cuda":
        # NCCL fails on Docker's 64 MB default /dev/shm ("Error while creating shared memory segment").
        if parse_size(shm_size) < MIN_CUDA_SHM_BYTES:
            options["shm_size"] = "1g"
        options.update((access or runtime_access(gpu_ids)).create_options())
        limit = memlock_limit()
        options["ulimits"] = [docker.types.Ulimit(name="memlock", soft=limit, hard=limit)]
    elif cell.device == "xpu":
        options["devices"] = ["/dev/dri:/dev/dri:rwm"]
        render_gid = _render_group_id()
        if render_gid is not None:
            options["group_add"] = [str(render_gid)]
    return options


def memlock_limit() -> int:
    """The locked-memory limit a cuda container gets: as much as the harness itself may lock (-1: unlimited).

    NCCL registers memory with it; an engine refuses to start a container asking for more than its own
    hard limit ("error setting rlimit type 8"), and the harness's limit is the best guess at the engine's.
    """
    import resource

    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return -1 if hard == resource.RLIM_INFINITY else hard


def with_image_library_path(env: dict[str, str], image: Any) -> dict[str, str]:
    """`env` with the image's own LD_LIBRARY_PATH kept after the driver's folder (NGC images set one)."""
    added = env.get("LD_LIBRARY_PATH")
    if not added:
        return env
    image_env = dict(
        item.split("=", 1) for item in (image.attrs.get("Config") or {}).get("Env") or () if "=" in item
    )
    own = image_env.get("LD_LIBRARY_PATH")
    return {**env, "LD_LIBRARY_PATH": f"{added}:{own}" if own else added}


def _render_group_id() -> int | None:
    """The gid owning the host's Intel render nodes, which the container user must share to open them."""
    render_nodes = find_intel_render_nodes()
    if render_nodes:
        return Path(render_nodes[0]).stat().st_gid
    try:
        return grp.getgrnam("render").gr_gid
    except KeyError:
        return None


def container_name(run_id: str, cell_id: str) -> str:
    """A unique, valid container name that says which run and cell it belongs to."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"comm-harness-{run_id}-{cell_id}")


class _RunningContainer:
    """One cell's container, and why the harness stopped it if it did."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.stop_reason = ""
        self.lock = threading.Lock()

    def has_exited(self) -> bool:
        self.container.reload()
        return self.container.status in ("exited", "dead")

    def exit_code(self) -> int:
        return int(self.container.attrs.get("State", {}).get("ExitCode", -1))

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the container for exceeding its memory limit."""
        return bool(self.container.attrs.get("State", {}).get("OOMKilled"))

    def wait_exited(self, seconds: float) -> bool:
        """Poll until the container exits or `seconds` pass (the SDK's wait is not a watchdog)."""
        deadline = time.monotonic() + seconds
        while not self.has_exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def stop(self, reason: str) -> None:
        """SIGINT (pytest still writes junit.xml), then SIGKILL after the grace period."""
        import docker.errors

        with self.lock:
            if self.stop_reason:
                return
            self.stop_reason = reason
        try:
            self.container.kill(signal="SIGINT")
            if not self.wait_exited(INTERRUPT_GRACE_S):
                self.container.kill()
                self.wait_exited(INTERRUPT_GRACE_S)
        except docker.errors.APIError:
            pass  # it exited between two calls: what we wanted


class DockerExecutor(Executor):
    """Runs cells in containers of their device's image; use as a context manager (it holds an engine
    client and the containers of its run)."""

    name = "docker"

    def __init__(
        self,
        project_root: Path,
        *,
        matrix_dir: Path | None = None,
        run_id: str | None = None,
        offline: bool = False,
        client: Any | None = None,
    ) -> None:
        self.project_root = project_root.resolve()
        # Where the matrix lies: its image paths are relative to it, and cells run there (under /repo).
        self.matrix_dir = (matrix_dir or project_root).resolve()
        inside = self.matrix_dir.relative_to(self.project_root)
        self._working_dir = (PurePosixPath(REPO_MOUNT) / inside.as_posix()).as_posix()
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.offline = offline
        # A client passed in is the caller's to close; one connected here is closed with the executor.
        self._own_client = client is None
        self._client = client or connect_engine()
        self._closed = False
        self._running = RunningCells()
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._build_failures: dict[str, str] = {}
        self._runtimes: tuple[str, ...] | None = None

    def start(self) -> list[str]:
        """Remove the containers dead harnesses on this host left (when a run starts, never when planning)."""
        return [
            f"removed container {name}, left by a harness that died"
            for name in remove_stale_containers(self._client)
        ]

    @staticmethod
    def engine_status() -> tuple[bool, str]:
        """(a Docker engine answers, why not)."""
        try:
            connect_engine(timeout_s=5.0).close()
        except DockerUnavailableError as error:
            return False, str(error)
        return True, ""

    def image_status(self, cell: Cell) -> tuple[bool, str]:
        """(the cell's image is present locally, a reason naming its tag and how to build it)."""
        try:
            tag = recipe_for(cell.device, cell.image, self.matrix_dir).tag
        except ConfigurationError as error:
            return False, str(error)
        if find_image(self._client, tag) is not None:
            return True, f"image {tag} present"
        return False, f"image {tag} is not built; `{build_command(cell.device)}` builds it"

    def run(
        self, cell: Cell, results_dir: Path, gpu_ids: list[int], on_progress: ProgressCallback
    ) -> CellResult:
        """Run the cell in a fresh container to completion (or timeout) and collect its result."""
        results_dir = results_dir.resolve()
        work_dir = prepare_cell_dir(cell, results_dir)
        hand_over_work_dir(work_dir, container_user())
        started = time.monotonic()
        if cell.device == "xpu" and not find_intel_render_nodes():
            # Without /dev/dri to pass in, torch.xpu would see nothing: the cell must not look run.
            return self._result(cell, results_dir, "skipped", "no Intel GPU on this host", 0.0)
        closed = closed_to(container_user(), project_mounts(self.project_root, work_dir))
        if closed:
            return self._result(cell, results_dir, "error", closed, 0.0)
        if cell.device in ("cuda", "xpu") and len(gpu_ids) < cell.world_size:
            reason = f"needs {cell.world_size} {cell.device} GPUs, was given {len(gpu_ids)} ({gpu_ids})"
            return self._result(cell, results_dir, "error", reason, 0.0)
        with BoundedLog(results_dir / LOG_TXT) as log:
            try:
                if cell.device == "cuda":
                    log.write(f"[gpus] {self.gpu_access(cell, gpu_ids).description}\n".encode())
                image = self._ensure_image(cell, log, on_progress)
            except HarnessError as error:
                return self._result(cell, results_dir, "error", str(error), time.monotonic() - started)
            with ProgressReader(work_dir / PROGRESS_JSONL, cell.id, on_progress):
                if cell.nodes > 1:
                    exit_codes, stop_reason = self._run_nodes(cell, image, results_dir, gpu_ids, log)
                else:
                    exit_code, stop_reason = self._run_container(cell, image, work_dir, gpu_ids, log)
                    exit_codes = [exit_code]
        refused = harvest_work_dir(results_dir)
        duration = time.monotonic() - started
        result = collect_cell_result(
            cell, results_dir, exit_codes[0], duration, self.name, reason=stop_reason, refused=refused
        )
        for node_rank, code in enumerate(exit_codes[1:], start=1):
            result = with_node_result(cell, result, node_rank, code, results_dir, duration, self.name)
        return result

    def gpu_access(self, cell: Cell, gpu_ids: list[int]) -> GpuAccess:
        """How the cuda cell's container gets `gpu_ids`: the matrix's `image.gpus` on this engine."""
        if self._runtimes is None:
            self._runtimes = engine_runtimes(self._client)
        spec = cell.image or ImageSpec()
        return gpu_access(spec.gpus, gpu_ids, spec.driver_dir, self._runtimes)

    def _ensure_image(self, cell: Cell, log: BoundedLog, on_progress: ProgressCallback) -> Any:
        """The cell's image, built first when missing (once per run, however many cells need it)."""
        recipe = recipe_for(cell.device, cell.image, self.matrix_dir)
        tag = recipe.tag
        with self._lock:
            build_lock = self._build_locks.setdefault(tag, threading.Lock())
        with build_lock:
            if tag in self._build_failures:
                raise HarnessError(self._build_failures[tag])
            image = find_image(self._client, tag)
            if image is not None:
                return image

            def log_line(line: str) -> None:
                log.write(f"[build] {line}\n".encode())
                log.flush()
                on_progress(cell.id, BuildLine(line))

            try:
                build_image(self._client, recipe, offline=self.offline, log=log_line)
            except HarnessError as error:
                self._build_failures[tag] = f"image {tag} is missing and building it failed: {error}"
                raise HarnessError(self._build_failures[tag]) from None
            return self._client.images.get(tag)

    def _run_container(
        self, cell: Cell, image: Any, work_dir: Path, gpu_ids: list[int], log: BoundedLog
    ) -> tuple[int, str]:
        """Create, start, watch and always remove the cell's container; returns (exit code, stop reason).

        The runner inside kills the cell itself past its timeout (a backstop for a harness that died);
        the run guardian removes the container when the harness dies.
        """
        network_host = bool(cell.image and cell.image.network_host)
        container = self._create_container(
            cell,
            image,
            work_dir,
            gpu_ids,
            name=container_name(self.run_id, cell.id),
            # gloo over loopback works without a network; NCCL and xccl use shared memory and devices.
            network={"network_mode": "host" if network_host else "none"},
        )
        running = _RunningContainer(container)
        self._running.add(cell.id, running)
        try:
            container.start()
            stream_ended = threading.Event()
            streamer = threading.Thread(
                target=_stream_logs, args=(container, log, stream_ended), name=f"logs-{cell.id}", daemon=True
            )
            streamer.start()
            self._watch(cell, running, stream_ended)
            streamer.join(timeout=10)
            return running.exit_code(), running.stop_reason or _out_of_memory_reason(cell, running)
        finally:
            self._running.remove(cell.id)
            remove_container(container)

    def _create_container(
        self,
        cell: Cell,
        image: Any,
        work_dir: Path,
        gpu_ids: list[int],
        *,
        name: str,
        network: dict[str, Any],
        extra_env: dict[str, str] | None = None,
        extra_labels: dict[str, str] | None = None,
    ) -> Any:
        """Create (not start) a confined container running the cell runner on `work_dir` (at /results)."""
        tag = image.tags[0] if image.tags else image.id
        environment = container_environment(cell, gpu_ids, run_id=self.run_id)
        environment.update({IMAGE_ENV: tag, IMAGE_DIGEST_ENV: image.id, **(extra_env or {})})
        access = self.gpu_access(cell, gpu_ids) if cell.device == "cuda" else None
        if access is not None:
            environment = with_image_library_path({**environment, **access.env}, image)
        command = ["python", "-m", "harness.cell.runner", f"{RESULTS_MOUNT}/cell.json", RESULTS_MOUNT]
        return self._client.containers.create(
            image.id,
            command,
            name=name,
            working_dir=self._working_dir,
            volumes=project_mounts(self.project_root, work_dir),
            environment=environment,
            labels={**cell_labels(self.run_id, cell.id), **(extra_labels or {})},
            user="{}:{}".format(*container_user()),
            # An init as PID 1 forwards SIGINT to the runner and reaps orphaned rank processes.
            init=True,
            **network,
            **confinement_options(cell),
            **device_options(cell, gpu_ids, access),
        )

    def _create_holder(self, cell: Cell, image: Any, name: str, network_host: bool) -> Any:
        """Create (not start) the container holding a multi-node cell's network namespace; it runs nothing."""
        return self._client.containers.create(
            image.id,
            HOLDER_COMMAND,
            name=name,
            labels=cell_labels(self.run_id, cell.id),
            user="{}:{}".format(*container_user()),
            init=True,
            network_mode="host" if network_host else "none",
            **confinement_options(cell),
        )

    def _run_nodes(
        self, cell: Cell, image: Any, results_dir: Path, gpu_ids: list[int], log: BoundedLog
    ) -> tuple[list[int], str]:
        """Run a multi-node cell (harness/running/executors/docker_nodes.py); (each node's exit code, stop
        reason)."""
        base_name = container_name(self.run_id, cell.id)
        work_dirs = [results_dir / WORK_DIR] + [
            prepare_cell_dir(cell, node_dir(results_dir, rank)).resolve() for rank in range(1, cell.nodes)
        ]
        for work_dir in work_dirs[1:]:
            hand_over_work_dir(work_dir, container_user())
        network_host = bool(cell.image and cell.image.network_host)
        port = store_port(network_host)
        node_logs = [log] + [
            BoundedLog(node_dir(results_dir, rank) / LOG_TXT) for rank in range(1, cell.nodes)
        ]

        def create_holder() -> Any:
            return self._create_holder(cell, image, f"{base_name}-net", network_host)

        def create_node(node_rank: int, holder: Any) -> _RunningContainer:
            container = self._create_container(
                cell,
                image,
                work_dirs[node_rank],
                node_gpus(cell, gpu_ids, node_rank),
                name=f"{base_name}-node{node_rank}",
                network={"network_mode": f"container:{holder.id}"},
                extra_env=node_environment(cell, node_rank, port),
                extra_labels={LABEL_NODE: str(node_rank)},
            )
            return _RunningContainer(container)

        def stream(node_rank: int, running: _RunningContainer) -> threading.Thread:
            thread = threading.Thread(
                target=_stream_logs,
                args=(running.container, node_logs[node_rank], threading.Event()),
                name=f"logs-{cell.id}-node{node_rank}",
                daemon=True,
            )
            thread.start()
            return thread

        nodes = NodeContainers(cell, create_holder, create_node, stream, remove_container)
        self._running.add(cell.id, nodes)
        try:
            with nodes:
                nodes.run()
        finally:
            self._running.remove(cell.id)
            for node_log in node_logs[1:]:
                node_log.close()
        codes = [node.exit_code if node.exit_code is not None else -1 for node in nodes.nodes]
        codes += [-1] * (cell.nodes - len(codes))
        reason = nodes.stop_reason
        if not reason and nodes.nodes:
            reason = _out_of_memory_reason(cell, nodes.nodes[0].running)
        return codes, reason

    def _watch(self, cell: Cell, running: _RunningContainer, stream_ended: threading.Event) -> None:
        """Return when the container exits; past the cell's timeout, stop it (the harness's own watchdog)."""
        deadline = time.monotonic() + cell.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                running.stop(f"cell timed out after {cell.timeout_s:g}s; the container was killed")
                running.wait_exited(INTERRUPT_GRACE_S)
                return
            # The log stream ends when the container does, which wakes us at once; the status check
            # covers a stream that broke early.
            if stream_ended.is_set():
                time.sleep(min(POLL_S, remaining))
            else:
                stream_ended.wait(min(POLL_S, remaining))
            if running.has_exited():
                return

    def _result(
        self, cell: Cell, results_dir: Path, status: CellStatus, reason: str, duration: float
    ) -> CellResult:
        return CellResult.of_cell(
            cell, status, reason, executor=self.name, duration_s=duration, results_dir=str(results_dir)
        )

    def interrupt(self) -> None:
        """Stop every running cell (Ctrl-C); their results say "interrupted"."""
        self._running.stop_all("interrupted")

    def close(self) -> None:
        """Stop running cells, remove every container of the run, release the engine client; once."""
        if self._closed:
            return
        self._closed = True
        try:
            self.interrupt()
            remove_containers(containers_of_run(self._client, self.run_id))
        finally:
            if self._own_client:
                self._client.close()


def _out_of_memory_reason(cell: Cell, running: _RunningContainer) -> str:
    if not running.out_of_memory():
        return ""
    limit = cell.image.memory if cell.image and cell.image.memory else "the host's memory"
    return (
        f"out of memory: a process of the cell was killed for exceeding {limit} "
        "(raise image.memory in the matrix)"
    )


def _stream_logs(container: Any, log: BoundedLog, ended: threading.Event) -> None:
    """Copy the container's output into the cell's log as it comes; the stream ends with the container."""
    try:
        for chunk in container.logs(stream=True, follow=True):
            log.write(chunk)
            log.flush()
    except Exception as error:  # a broken stream must not lose the cell: the watchdog still polls
        log.write(f"\n[harness] the container's log stream broke: {error}\n".encode())
    finally:
        ended.set()
