"""Reuse mode: rank workers kept alive across tests, the state fixtures set up carried to them or
detected (then: fresh ranks, with the reason), and `--dist-reuse check` that runs every test both ways."""
