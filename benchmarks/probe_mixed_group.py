"""Whether one NCCL group may hold an all-gather and point-to-point ops (uneven_rows.gather_window_grouped).

Exits 0 and prints "mixed group ok" when the grouped window gathers correctly at world size 2.

    python benchmarks/probe_mixed_group.py --device cuda --world-size 2
"""

from __future__ import annotations

import torch
from forked_ranks import join_group, run_rank_script


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, rows: int) -> None:
    from communicators import create_communicator
    from communicators.tensor_layout import row_split
    from communicators.uneven_rows import gather_window_grouped

    device = join_group(rank, world_size, device_type, store_path)
    comm = create_communicator(device)
    for sizes in ([rows, 2 * rows], [2 * rows, rows], [0, rows]):
        mine = torch.full((sizes[rank], 4), float(rank + 1), device=device)
        out = gather_window_grouped(mine, row_split(tuple(sizes), world_size, rank), comm._calls)
        expected = torch.cat([torch.full((s, 4), float(r + 1), device=device) for r, s in enumerate(sizes)])
        assert torch.equal(out, expected), f"rank {rank}: wrong at sizes {sizes}"
    if device.type == "cuda":
        torch.cuda.synchronize()
    if rank == 0:
        print("mixed group ok", flush=True)


if __name__ == "__main__":
    run_rank_script(__doc__, rank_main, "rows", 1000)
