"""Layer 2, host: facts about and control of the machine: the capability probe, the environment
fingerprint (also run inside cells), and the cgroups that hold a run's local processes."""
