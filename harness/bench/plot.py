"""The PNG of a bench run: busbw against message size per collective (log-x), and dispatch+combine times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.bench.options import DISPATCH_COMBINE, format_size
from harness.bench.results import collective_label, is_collective, scheme_label
from harness.common.errors import ConfigurationError


def require_matplotlib() -> None:
    """A ConfigurationError now, before a long run, when --plot could not be drawn at its end."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "--plot needs matplotlib, which is not installed: pip install matplotlib (or comm-harness[bench])"
        ) from None


def write_plot(path: str | Path, rows: list[dict[str, Any]], title: str) -> None:
    """Draw the figure with matplotlib's Agg backend (no display needed) and save it as PNG."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    collective_rows = [r for r in rows if is_collective(r)]
    dispatch_rows = [r for r in rows if r.get("op") == DISPATCH_COMBINE]
    panels = 1 + bool(dispatch_rows)
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, 5), squeeze=False)
    busbw = axes[0][0]
    for op in dict.fromkeys(collective_label(r) for r in collective_rows):
        points = sorted((r["bytes"], r["busbw_gbps"]) for r in collective_rows if collective_label(r) == op)
        impl = next(r["impl"] for r in collective_rows if collective_label(r) == op)
        label = op if impl == "communicator" else f"{op} ({impl})"
        busbw.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    busbw.set_xscale("log", base=2)
    # Bus bandwidth spans four decades between 1 KiB and 1 GiB: a linear axis hides the small sizes.
    busbw.set_yscale("log")
    sizes = sorted({r["bytes"] for r in collective_rows})
    if sizes:
        busbw.set_xticks(sizes, [format_size(size) for size in sizes], rotation=45)
    busbw.set_xlabel("message size (bytes, nccl-tests convention)")
    busbw.set_ylabel("bus bandwidth (GB/s)")
    busbw.set_title("collectives: busbw against size")
    busbw.grid(True, which="both", alpha=0.3)
    if collective_rows:
        busbw.legend(fontsize="small")
    if dispatch_rows:
        _plot_dispatch(axes[0][1], dispatch_rows)
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_dispatch(axis: Any, rows: list[dict[str, Any]]) -> None:
    tokens = sorted({r["tokens"] for r in rows})
    backends = list(dict.fromkeys(scheme_label(r) for r in rows))
    width = 0.8 / len(backends)
    for index, backend in enumerate(backends):
        times = {r["tokens"]: r["time_us"] / 1e3 for r in rows if scheme_label(r) == backend}
        xs = [t + (index - (len(backends) - 1) / 2) * width for t in range(len(tokens))]
        axis.bar(xs, [times.get(t, 0.0) for t in tokens], width=width, label=backend)
    for position, count in enumerate(tokens):
        at_count = [r for r in rows if r["tokens"] == count]
        speedups = [r["speedup_vs_naive"] for r in at_count if "speedup_vs_naive" in r]
        if speedups:
            top = max(r["time_us"] for r in at_count) / 1e3
            axis.annotate(
                f"{speedups[0]:.2f}x",
                (position, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize="small",
            )
    hidden = sorted({r["hidden"] for r in rows})
    axis.set_xticks(range(len(tokens)), [str(t) for t in tokens])
    axis.set_xlabel(f"tokens per rank (hidden {', '.join(map(str, hidden))})")
    axis.set_ylabel("dispatch + combine (ms, lower is better)")
    axis.set_yscale("log")
    axis.set_title("all2all dispatch + combine (label: naive time / backend time)")
    axis.legend(fontsize="small")
