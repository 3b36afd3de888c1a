"""Run inside a container by tests/docker: one test passes, one fails, so the cell must be "failed"."""


def test_passes():
    assert 1 + 1 == 2


def test_fails_on_purpose():
    assert 1 + 1 == 3, "this failure is the point of the cell"
