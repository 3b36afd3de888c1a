"""The terminal tables of a bench run (rich when installed, plain text otherwise).

Three tables: collectives nccl-tests style (size, time, algbw, busbw, check), the communicator's overhead
against raw torch.distributed, and dispatch+combine of each backend against the naive reference.
"""

from __future__ import annotations

from typing import Any

from harness.bench.options import DISPATCH_COMBINE, format_size
from harness.bench.results import collective_label, is_collective, scheme_label

Table = tuple[str, list[str], list[list[str]]]  # title, headers, rows of cells


def bench_tables(rows: list[dict[str, Any]], title: str) -> list[Table]:
    """The tables that have rows, as plain data."""
    collectives = [
        [
            collective_label(r),
            r["impl"],
            format_size(r["bytes"]),
            f"{r['time_us']:.1f}",
            f"{r['algbw_gbps']:.3f}",
            f"{r['busbw_gbps']:.3f}",
            _check(r),
        ]
        for r in rows
        if is_collective(r)
    ]
    overhead = [
        [
            r["collective"],
            format_size(r["bytes"]),
            # Documents from before the best-of-repeats fields have only the medians.
            f"{r.get('communicator_best_us', r['communicator_us']):.1f}",
            f"{r.get('torch_best_us', r['torch_us']):.1f}",
            f"{r['overhead_pct']:+.1f}",
        ]
        for r in rows
        if r.get("op") == "overhead"
    ]
    dispatch = [
        [
            str(r["tokens"]),
            str(r["hidden"]),
            r["dtype"],
            scheme_label(r),
            f"{r['dispatch_us']:.0f}",
            f"{r['combine_us']:.0f}",
            f"{r['time_us']:.0f}",
            f"{r['speedup_vs_naive']:.2f}x" if "speedup_vs_naive" in r else "",
            f"{r['uneven_over_equal']:.2f}x" if "uneven_over_equal" in r else "",
            _check(r),
        ]
        for r in rows
        if r.get("op") == DISPATCH_COMBINE
    ]
    tables: list[Table] = [
        (
            f"{title}: collectives",
            ["op (shares max/mean)", "impl", "size", "time us", "algbw GB/s", "busbw GB/s", "check"],
            collectives,
        ),
        (
            f"{title}: communicator overhead against torch.distributed",
            ["collective", "size", "communicator us (best)", "torch us (best)", "overhead %"],
            overhead,
        ),
        (
            f"{title}: all2all dispatch + combine",
            [
                "tokens",
                "hidden",
                "dtype",
                "backend",
                "dispatch us (synced)",
                "combine us (synced)",
                "round trip us",
                "naive/backend (best)",
                "uneven/equal (best)",
                "check",
            ],
            dispatch,
        ),
    ]
    return [table for table in tables if table[2]]


def print_tables(rows: list[dict[str, Any]], title: str) -> None:
    """Print the tables to stdout."""
    tables = bench_tables(rows, title)
    try:
        from rich.console import Console
        from rich.table import Table as RichTable
    except ImportError:
        for name, headers, cells in tables:
            print(render_plain((name, headers, cells)))
        return
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    for name, headers, cells in tables:
        table = RichTable(title=name)
        for index, header in enumerate(headers):
            table.add_column(header, justify="left" if index < 2 else "right")
        for cell_row in cells:
            table.add_row(*cell_row)
        console.print(table)


def render_plain(table: Table) -> str:
    """A table as aligned plain text."""
    name, headers, cells = table
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *cells, strict=True)]
    lines = [name, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(cells_row, widths, strict=True)) for cells_row in cells]
    return "\n".join(lines)


def _check(row: dict[str, Any]) -> str:
    return "ok" if row.get("correct") else "WRONG"
