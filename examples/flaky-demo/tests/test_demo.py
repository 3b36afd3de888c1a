"""The merged junit.xml in a viewer: a pass, a flaky test, a quarantined failure, a real failure."""
import os
from pathlib import Path

import torch
import torch.distributed as dist


def test_all_reduce_sums(dist_env):
    t = torch.ones(4) * (dist_env.rank + 1)
    dist.all_reduce(t)
    assert t.tolist() == [3.0] * 4


def test_rendezvous_flaky_first_attempt(dist_env):
    # Fails on its first attempt only: the marker file says an attempt already ran.
    marker = Path(os.environ["DEMO_STATE"]) / "attempted"  # render.sh empties it before each run
    dist.barrier()
    first = not marker.exists()
    dist.barrier()
    if dist_env.rank == 0 and first:
        marker.write_text("1")
    assert not first, "rendezvous timed out (simulated: first attempt only)"


def test_known_flaky_p2p(dist_env):
    if dist_env.rank == 1:
        raise RuntimeError("recv timed out (known flaky, quarantined)")


def test_broadcast_wrong(dist_env):
    t = torch.tensor([float(dist_env.rank)])
    dist.broadcast(t, src=0)
    assert t.item() == 1.0, f"rank {dist_env.rank} got {t.item()}"
