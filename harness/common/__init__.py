"""Layer 1, common: what every layer uses and that knows no other layer: errors and exit codes, text from
cells made harmless, YAML with locations, output paths checked before work, and `DistEnv` (what a test and an
adapter see of the distributed world)."""
