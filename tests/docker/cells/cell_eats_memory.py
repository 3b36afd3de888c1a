"""Run inside a container by tests/docker: allocates far past the cell's memory limit."""


def test_allocates_two_gigabytes():
    blocks = [bytearray(64 << 20) for _ in range(32)]
    assert len(blocks) == 32
