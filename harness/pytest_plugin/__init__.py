"""The distributed pytest plugin: each test that asks for `dist_env` runs its body on N forked rank processes.

Which process runs which file:
- `plugin.py`: the pytest process (markers, hooks, fixtures; options declared from `options.py`).
- `options.py`: the `--dist-*` options as one table, which the cell runner builds its command line from too.
- `launcher.py`: the pytest process, or its pytest-forked child; forks fresh ranks for one test (fork mode).
- `workers.py`: the pytest process; keeps rank workers alive across tests (reuse mode).
- `carried_state.py`: the pytest process; what fixtures set up that reuse workers take on (env, cwd, RNG).
- `uncarried.py`: the pytest process; what fixtures changed that cannot be carried (then: fresh ranks).
- `worker_state.py`: a reuse worker; takes on the carried state before a test, returns to its base after.
- `fresh_ranks.py`: the pytest process; counts the tests reuse mode ran on fresh ranks, and why.
- `rank_processes.py`: the pytest process; forks, watches, dumps, kills and reaps a set of ranks.
- `rank.py`: a rank process; joins the process group, runs the test body, reports its outcome.
- `rank_warnings.py`: both; records a rank's uncaught warnings, re-issues them in pytest naming the ranks.
- `forked_reports.py`: both; carries a failure's exception line through pytest-forked's flattened report.
- `native_stacks.py`: the pytest process; py-spy's native stacks of ranks still running at the timeout.
- `settings.py`, `env.py`, `outcomes.py`, `lifetime.py`: data and small functions used on both sides.
"""
