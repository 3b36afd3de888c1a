"""The bench: nccl-tests-style bandwidth of every collective, all2all dispatch/combine timings, and their
verdict against the floors (the `harness bench` command is harness/commands/bench.py).

Which process runs which file:
- `runner.py`: the bench parent; checks devices, forks the ranks, watches them, collects rank 0's rows.
- `rank_main.py`: a rank process; joins the process group and runs the sweeps below.
- `collectives.py`, `dispatch_combine.py`, `naive_reference.py`, `timing.py`: inside the ranks.
- `options.py`, `bandwidth.py`, `floors.py`, `results.py`, `table.py`, `plot.py`: the parent (plain data).
- `verdict.py`: the one judge of bench rows and documents (`harness bench`, `report`, `qualify`, `compare`).
"""
