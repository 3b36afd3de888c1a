"""Layer 8, the cell: what runs inside a cell (on the host, in a container or on a Slurm node):
`python -m harness.cell.runner` joins the cell's cgroup, takes the fingerprint and runs pytest with the
plugin."""
