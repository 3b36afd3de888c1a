"""The bench's JSON document: {"rows": [...], "environment": {...}, "settings": {...}}, and its schema.

Row kinds, told apart by "op":
- a collective (all_reduce, ... reduce_scatterv): {"op", "impl", "bytes", "time_us", "algbw_gbps",
  "busbw_gbps", "correct", ...}; "impl" is "communicator", or "torch.distributed" where the communicator
  lacks the collective or for the baseline twin ("baseline": true) that overhead rows compare against;
  "repeats_us" (each repeat's time per iteration, in repeat order: "time_us" is their median);
  the uneven ones (all_gatherv, reduce_scatterv) add "shares" (the pattern: "rank+1" or "mild"),
  "share_counts" (elements per rank) and "max_over_mean" (their best busbw is the even one's / that);
- "overhead": {"collective", "bytes", "communicator_us", "torch_us" (medians), "communicator_best_us",
  "torch_best_us" (best repeats), "overhead_pct" (from the best repeats), "overhead_median_pct"};
- "dispatch_combine": {"tokens", "hidden", "backend" ("allgather_reducescatter" | "naive_reference"),
  "time_us" (median), "time_best_us", "repeats_us", "dispatch_us", "combine_us", "correct"}; the
  backend's row adds "speedup_vs_naive" (from "time_best_us": best repeats of round trips back to back)
  and "speedup_vs_naive_median" (from "time_us"). The backend's third row, at mildly uneven token counts of
  the same total, adds "shares", "sizes" and "uneven_over_equal" (its best round trip over the equal one's).
  "dispatch_us" and "combine_us" come from a separate pass with a device synchronize after each phase, so
  on accelerators they add up to more than "time_us".

Rows and their references are timed in alternation within each repeat, so repeat i of a communicator row and
repeat i of its torch.distributed twin (of the backend and its naive reference) are one pair. Documents
written before "repeats_us" existed lack it; readers must not require it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.bench.bandwidth import COLLECTIVES
from harness.bench.options import DISPATCH_COMBINE, BenchOptions, format_size

_NUMBER = {"type": "number", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 1}
_COMMON = {"world_size": _COUNT, "device": {"type": "string"}, "dtype": {"type": "string"}}
_REPEATS = {"type": "array", "minItems": 1, "items": _NUMBER}

ROW_SCHEMAS: dict[str, dict[str, Any]] = {
    "collective": {
        "type": "object",
        "required": ["op", "impl", "bytes", "time_us", "algbw_gbps", "busbw_gbps", "correct", "world_size"],
        "properties": {
            "op": {"enum": list(COLLECTIVES)},
            "impl": {"enum": ["communicator", "torch.distributed"]},
            "bytes": _COUNT,
            "time_us": _NUMBER,
            "algbw_gbps": _NUMBER,
            "busbw_gbps": _NUMBER,
            "repeats_us": _REPEATS,
            "correct": {"type": "boolean"},
            "incorrect_ranks": {"type": "array", "items": {"type": "integer"}},
            "shares": {"type": "string"},
            "share_counts": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "max_over_mean": {"type": "number", "minimum": 1},
            **_COMMON,
        },
    },
    "overhead": {
        "type": "object",
        "required": ["op", "collective", "bytes", "communicator_us", "torch_us", "overhead_pct"],
        "properties": {
            "op": {"const": "overhead"},
            "collective": {"enum": list(COLLECTIVES)},
            "bytes": _COUNT,
            "communicator_us": _NUMBER,
            "torch_us": _NUMBER,
            "communicator_best_us": _NUMBER,
            "torch_best_us": _NUMBER,
            "overhead_pct": {"type": "number"},
            "overhead_median_pct": {"type": "number"},
            **_COMMON,
        },
    },
    "dispatch_combine": {
        "type": "object",
        "required": ["op", "tokens", "hidden", "backend", "time_us", "dispatch_us", "combine_us", "correct"],
        "properties": {
            "op": {"const": DISPATCH_COMBINE},
            "tokens": _COUNT,
            "hidden": _COUNT,
            "backend": {"type": "string"},
            "time_us": _NUMBER,
            "time_best_us": _NUMBER,
            "repeats_us": _REPEATS,
            "dispatch_us": _NUMBER,
            "combine_us": _NUMBER,
            "speedup_vs_naive": _NUMBER,
            "speedup_vs_naive_median": _NUMBER,
            "shares": {"type": "string"},
            "sizes": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "uneven_over_equal": _NUMBER,
            "uneven_over_equal_median": _NUMBER,
            "correct": {"type": "boolean"},
            **_COMMON,
        },
    },
}

DOCUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["rows", "environment", "settings"],
    "properties": {
        "rows": {
            "type": "array",
            "items": {
                "oneOf": [
                    ROW_SCHEMAS["collective"],
                    ROW_SCHEMAS["overhead"],
                    ROW_SCHEMAS["dispatch_combine"],
                ]
            },
        },
        "environment": {"type": "object"},
        "settings": {"type": "object"},
    },
}


def build_document(
    rows: list[dict[str, Any]], options: BenchOptions, environment: dict[str, Any]
) -> dict[str, Any]:
    """The --json document."""
    return {"rows": rows, "environment": environment, "settings": options.to_json()}


def write_document(path: str | Path, document: dict[str, Any]) -> None:
    """Write the document as indented JSON, creating the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def collective_label(row: dict[str, Any]) -> str:
    """The op, with an uneven collective's share pattern and max/mean: 'all_gatherv (mild 1.20)'."""
    if not row.get("shares"):
        return row["op"]
    return f"{row['op']} ({row['shares']} {row.get('max_over_mean', 0):.2f})"


def scheme_label(row: dict[str, Any]) -> str:
    """A dispatch_combine row's backend, with its share pattern where the token counts are uneven."""
    return f"{row['backend']} ({row['shares']} shares)" if row.get("shares") else row["backend"]


def is_collective(row: dict[str, Any]) -> bool:
    """A collective's own row (not its torch.distributed baseline twin)."""
    return row.get("op") in COLLECTIVES and not row.get("baseline")


def incorrect_rows(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row whose check failed, naming the op, the size and the ranks."""
    lines = []
    for row in rows:
        if row.get("correct", True):
            continue
        at = format_size(row["bytes"]) if "bytes" in row else f"{row['tokens']} tokens ({row['backend']})"
        at += f", {row['shares']} shares" if row.get("shares") else ""
        ranks = ", ".join(str(rank) for rank in row.get("incorrect_ranks", [])) or "?"
        lines.append(f"{row['op']} at {at}: wrong result on rank(s) {ranks}")
    return lines
