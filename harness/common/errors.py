"""Fatal errors of the harness, each with the exit code the CLI returns for it."""

from __future__ import annotations

# Exit codes, the contract with users and CI scripts.
EXIT_OK = 0
EXIT_TEST_FAILURES = 1
EXIT_CONFIG = 2
EXIT_STRICT = 3
# No test executed in any cell (every cell skipped, or no test collected or left unskipped): as pytest's 5.
EXIT_NO_TESTS = 5
EXIT_INTERRUPTED = 130


class HarnessError(Exception):
    """A fatal error: the CLI prints its message (never a traceback) and exits with `exit_code`."""

    exit_code = EXIT_CONFIG


class ConfigurationError(HarnessError):
    """The matrix, a command-line option or a file it names is wrong; the message says where and how."""

    exit_code = EXIT_CONFIG


class DockerUnavailableError(ConfigurationError):
    """`--executor docker` was asked for but no Docker engine answers."""


class SlurmUnavailableError(ConfigurationError):
    """`--executor slurm` was asked for but no Slurm cluster answers."""
