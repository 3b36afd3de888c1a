"""How should the CPU communicator build AgRs dispatch and combine on gloo? Candidates, measured end to end.

Dispatch is `all_gatherv` of a list [hidden, weights, ids]; combine is `reduce_scatterv`. For each pair of
candidate implementations (patched into CpuCommunicator in this process before `harness bench` forks its
ranks), run the bench's dispatch+combine against the naive reference and print naive time / AgRs time per
token count. Findings: benchmarks/communicators/bench_findings.md.

    PYTHONPATH=. python benchmarks/communicators/bench_gloo_all2all.py --world-sizes 2,4 --json /tmp/a2a.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

import torch
import torch.distributed as dist

from communicators.base import DeviceCommunicatorBase
from communicators.cpu import CpuCommunicator
from communicators.tensor_layout import RowSplit, check_sizes, row_split, to_rows
from communicators.torch_compat import reduce_scatter_single
from harness.bench.options import build_options
from harness.bench.runner import run_bench

Rows = Callable[[CpuCommunicator, torch.Tensor, RowSplit], torch.Tensor]


def single_or_list(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """The base class's choice: reduce_scatter_single for equal sizes (gloo emulates it), lists otherwise."""
    sizes = split.sizes
    out = rows.new_empty((sizes[self.rank], *rows.shape[1:]))
    if len(set(sizes)) == 1:
        reduce_scatter_single(out, rows, group=self.group)
    else:
        dist.reduce_scatter(out, list(rows.split(sizes)), group=self.group)
    return out


def all_reduce_slice(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """What the naive combine does: sum every row everywhere, keep this rank's."""
    sizes = split.sizes
    summed = rows.clone()
    dist.all_reduce(summed, group=self.group)
    start = sum(sizes[: self.rank])
    return summed[start : start + sizes[self.rank]]


def all_reduce_in_place(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """The naive combine exactly: reduce_scatterv may change its input, so sum it in place and slice."""
    sizes = split.sizes
    dist.all_reduce(rows, group=self.group)
    start = sum(sizes[: self.rank])
    return rows[start : start + sizes[self.rank]]


def reduce_scatter_list(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """gloo's own reduce_scatter on a list of per-rank views, equal or not."""
    sizes = split.sizes
    out = rows.new_empty((sizes[self.rank], *rows.shape[1:]))
    dist.reduce_scatter(out, list(rows.split(sizes)), group=self.group)
    return out


def all_to_all_sum(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """Send rank r its block, receive every rank's copy of this rank's block, sum them here (one step)."""
    sizes = split.sizes
    mine = sizes[self.rank]
    received = rows.new_empty((self.world_size * mine, *rows.shape[1:]))
    dist.all_to_all_single(
        received, rows, output_split_sizes=[mine] * self.world_size, input_split_sizes=sizes, group=self.group
    )
    return received.view(self.world_size, mine, *rows.shape[1:]).sum(dim=0)


def reduce_per_rank(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """One reduce per destination rank, all in flight at once."""
    sizes = split.sizes
    blocks = [block.clone() for block in rows.split(sizes)]
    works = [dist.reduce(block, dst=r, group=self.group, async_op=True) for r, block in enumerate(blocks)]
    for work in works:
        work.wait()
    return blocks[self.rank]


def communicator_own(self: CpuCommunicator, input_, dim=0, sizes=None):  # noqa: ANN001, ANN201
    """The communicator's own list path (byte-packed side by side in each row until f0ad17d)."""
    return DeviceCommunicatorBase.all_gatherv(self, input_, dim=dim, sizes=sizes)


def per_tensor(self: CpuCommunicator, input_, dim=0, sizes=None):  # noqa: ANN001, ANN201
    """One gather per tensor of the list: no packing copies, len(list) times the collectives."""
    if not isinstance(input_, (list, tuple)):
        return DeviceCommunicatorBase.all_gatherv(self, input_, dim=dim, sizes=sizes)
    return [DeviceCommunicatorBase.all_gatherv(self, tensor, dim=dim, sizes=sizes) for tensor in input_]


def planar_packed(self: CpuCommunicator, input_, dim=0, sizes=None):  # noqa: ANN001, ANN201
    """Each rank's tensors flattened one after another into one byte buffer, one gather, contiguous unpack."""
    if not isinstance(input_, (list, tuple)) or dim != 0:
        return DeviceCommunicatorBase.all_gatherv(self, input_, dim=dim, sizes=sizes)
    rows = [to_rows(tensor, 0) for tensor in input_]
    local = rows[0].shape[0]
    sizes = [local] * self.world_size if sizes is None else check_sizes(sizes, self.world_size, self.rank)
    row_bytes = [math.prod(row.shape[1:]) * row.element_size() for row in rows]
    packed = torch.cat([row.reshape(-1).view(torch.uint8) for row in rows])
    per_rank = [size * sum(row_bytes) for size in sizes]
    gathered = self._gather_rows(packed, row_split(tuple(per_rank), self.world_size, self.rank))
    outputs = []
    for index, tensor in enumerate(rows):
        pieces = []
        offset = 0
        for size, total in zip(sizes, per_rank, strict=True):
            start = offset + size * sum(row_bytes[:index])
            pieces.append(gathered[start : start + size * row_bytes[index]])
            offset += total
        flat = torch.cat(pieces).view(tensor.dtype)
        outputs.append(flat.view(sum(sizes), *tensor.shape[1:]))
    return outputs


GATHERS = {"communicator": communicator_own, "per_tensor": per_tensor, "planar_packed": planar_packed}


def broadcast_gather_rows(self: CpuCommunicator, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
    """The CPU communicator's former gather: one async broadcast per rank, all in flight at once.

    Every rank issues them in rank order so that they pair up (gloo pairs collectives by issue order);
    this rank's broadcast reads `rows` while its block of the output is copied.
    """
    out = rows.new_empty((split.total, *rows.shape[1:]))
    blocks = out.split(split.sizes)
    works = [
        dist.broadcast(rows if src == self.rank else block, group=self.group, group_src=src, async_op=True)
        for src, block in enumerate(blocks)
        if block.shape[0]
    ]
    blocks[self.rank].copy_(rows)
    for work in works:
        work.wait()
    return out


# How the rows of one gather move (under any GATHERS candidate).
GATHER_ROWS: dict[str, Rows] = {"p2p": CpuCommunicator._all_gatherv_rows, "broadcasts": broadcast_gather_rows}

CANDIDATES: dict[str, Rows] = {
    "communicator": CpuCommunicator._reduce_scatterv_rows,
    "single_or_list": single_or_list,
    "all_reduce_slice": all_reduce_slice,
    "all_reduce_in_place": all_reduce_in_place,
    "reduce_scatter_list": reduce_scatter_list,
    "all_to_all_sum": all_to_all_sum,
    "reduce_per_rank": reduce_per_rank,
}


def main() -> None:
    """Run every candidate at every world size and print the naive/AgRs ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-sizes", default="2,4")
    parser.add_argument("--tokens", default="64,512,4096")
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--candidates", default="communicator", help=f"combine candidates: {', '.join(CANDIDATES)}"
    )
    parser.add_argument(
        "--gathers", default="communicator", help=f"dispatch candidates: {', '.join(GATHERS)}"
    )
    parser.add_argument(
        "--gather-rows", default="p2p", help=f"how a gather's rows move: {', '.join(GATHER_ROWS)}"
    )
    parser.add_argument("--json", help="write every row, by candidate, here")
    args = parser.parse_args()
    original = CpuCommunicator._reduce_scatterv_rows
    original_gatherv = CpuCommunicator.__dict__.get("all_gatherv")
    original_rows = CpuCommunicator._all_gatherv_rows
    results: dict[str, list[dict]] = {}
    pairs = [
        (g, r, c)
        for g in args.gathers.split(",")
        for r in args.gather_rows.split(",")
        for c in args.candidates.split(",")
    ]
    try:
        for gather, rows_way, combine in pairs:
            name = f"{gather}/{rows_way}+{combine}"
            CpuCommunicator.all_gatherv = GATHERS[gather]
            CpuCommunicator._all_gatherv_rows = GATHER_ROWS[rows_way]
            CpuCommunicator._reduce_scatterv_rows = CANDIDATES[combine]
            for world_size in (int(n) for n in args.world_sizes.split(",")):
                options = build_options(
                    device="cpu",
                    world_size=world_size,
                    ops="dispatch_combine",
                    tokens=args.tokens,
                    hidden=args.hidden,
                    dispatch_dtype=args.dtype,
                    repeats=args.repeats,
                )
                rows = run_bench(options)
                results.setdefault(name, []).extend(rows)
                ratios = ", ".join(
                    f"{r['tokens']}: {r['speedup_vs_naive']:.2f}x (combine {r['combine_us'] / 1e3:.1f} ms)"
                    for r in rows
                    if "speedup_vs_naive" in r
                )
                print(f"{name:<36} ws{world_size}  naive/AgRs  {ratios}", flush=True)
    finally:
        CpuCommunicator._reduce_scatterv_rows = original
        CpuCommunicator._all_gatherv_rows = original_rows
        if original_gatherv is None:
            del CpuCommunicator.all_gatherv
        else:
            CpuCommunicator.all_gatherv = original_gatherv
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()
