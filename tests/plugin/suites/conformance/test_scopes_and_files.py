"""tmp_path files, parametrized values, class- and module-scoped fixtures, skips and xfails."""

import os

import helpers
import pytest
import torch.distributed as dist


@pytest.fixture(scope="module", autouse=True)
def module_env_and_attribute():
    os.environ["CONFORMANCE_MODULE"] = "module-scoped"
    helpers.MODULE_SCOPED = "module-scoped"
    yield
    del os.environ["CONFORMANCE_MODULE"]
    del helpers.MODULE_SCOPED


def test_tmp_path_files(dist_env, tmp_path):
    (tmp_path / f"rank{dist_env.rank}").write_text(str(dist_env.rank))
    dist.barrier()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"rank{r}" for r in range(dist_env.world_size)]


@pytest.fixture
def written(tmp_path):
    (tmp_path / "input.txt").write_text("from the fixture")
    return tmp_path / "input.txt"


def test_fixture_file(dist_env, written):
    assert written.read_text() == "from the fixture"


@pytest.mark.parametrize("value", [1, "two", (3, 4)])
def test_parametrized(dist_env, value):
    assert value in (1, "two", (3, 4))


@pytest.fixture(params=["a", "b"])
def indirect(request):
    return request.param * 2


def test_fixture_params(dist_env, indirect):
    assert indirect in ("aa", "bb")


def test_module_scoped(dist_env):
    assert os.environ["CONFORMANCE_MODULE"] == "module-scoped"
    assert helpers.MODULE_SCOPED == "module-scoped"


def test_module_scoped_again(dist_env):
    assert os.environ["CONFORMANCE_MODULE"] == "module-scoped"
    assert helpers.MODULE_SCOPED == "module-scoped"


class TestClassScoped:
    @pytest.fixture(scope="class", autouse=True)
    def class_state(self, request):
        request.cls.shared = "class-scoped"
        os.environ["CONFORMANCE_CLASS"] = "class-scoped"
        yield
        del os.environ["CONFORMANCE_CLASS"]

    @pytest.fixture(autouse=True)
    def instance_state(self):
        self.per_test = "method fixture"

    def test_sees_class_state(self, dist_env):
        assert self.shared == "class-scoped" and os.environ["CONFORMANCE_CLASS"] == "class-scoped"
        assert self.per_test == "method fixture"

    def test_sees_class_state_again(self, dist_env):
        assert self.shared == "class-scoped" and self.per_test == "method fixture"


def test_class_env_is_gone(dist_env):
    assert "CONFORMANCE_CLASS" not in os.environ


def test_skips_on_a_rank(dist_env):
    if dist_env.rank == dist_env.world_size - 1:
        pytest.skip("the last rank has nothing to do")


@pytest.mark.xfail(reason="a known failure", strict=True)
def test_xfails(dist_env):
    raise AssertionError("known")


def test_fails_on_purpose(dist_env):
    assert dist_env.rank < 0, "this test fails in every mode"


def test_after_the_failure(dist_env):
    assert os.environ["CONFORMANCE_MODULE"] == "module-scoped"
