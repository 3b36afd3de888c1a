"""Layer 1, common: what every layer uses and that knows no other layer: errors and exit codes, text from
cells made harmless, YAML with locations, output paths checked before work, `DistEnv` (what a test and an
adapter see of the distributed world), and the contract between the harness, the cell and the plugin: the
environment variables' names (`contract.py`) and the typed progress events (`progress_events.py`)."""
