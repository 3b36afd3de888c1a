"""comm-harness: run communicator tests over a device-by-world-size matrix."""

__version__ = "0.1.0"
