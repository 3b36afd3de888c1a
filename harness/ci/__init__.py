"""The matrix fanned out on CI systems: one module per system, all built on the cell jobs of `cell_jobs.py`.

`harness matrix --format github|buildkite|gitlab` prints what each system reads: GitHub Actions'
`strategy.matrix` JSON, a Buildkite dynamic pipeline, a GitLab CI child pipeline.
"""
