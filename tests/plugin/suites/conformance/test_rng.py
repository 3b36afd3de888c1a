"""Random number generators seeded or consumed in fixtures, and consumed by bodies."""

import random

import numpy
import pytest
import torch
import torch.distributed as dist


@pytest.fixture
def seeded():
    torch.manual_seed(1234)
    random.seed(1234)
    numpy.random.seed(1234)


@pytest.fixture
def consumed():
    """Draws in pytest, as a fixture building random inputs does; returns the generators' states after."""
    torch.rand(5)
    random.random()
    numpy.random.rand(3)
    return torch.get_rng_state(), numpy.random.get_state()[1].copy()


def test_seeded_in_a_fixture(dist_env, seeded):
    expected = torch.Generator().manual_seed(1234)
    assert torch.equal(torch.rand(4), torch.rand(4, generator=expected))
    assert numpy.random.rand() == numpy.random.RandomState(1234).rand()


def test_python_random_is_reseeded_on_each_rank(dist_env, seeded):
    """CPython reseeds `random` in every forked child: the ranks draw differently, whatever pytest seeded."""
    drawn = [None] * dist_env.world_size
    dist.all_gather_object(drawn, random.random(), group=dist_env.group)
    assert len(set(drawn)) == dist_env.world_size, drawn


def test_seeded_on_the_device(dist_env, seeded):
    expected = torch.Generator(device=dist_env.device).manual_seed(1234)
    drawn = torch.rand(4, device=dist_env.device)
    assert torch.equal(drawn, torch.rand(4, device=dist_env.device, generator=expected))


def test_consumed_in_a_fixture(dist_env, consumed):
    torch_state, numpy_key = consumed
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert (numpy.random.get_state()[1] == numpy_key).all()


def test_body_draws(dist_env):
    torch.rand(100)
    random.random()
    numpy.random.rand(10)
    torch.manual_seed(99)


@pytest.fixture
def pytest_states():
    return torch.get_rng_state(), numpy.random.get_state()[1].copy()


def test_body_draws_do_not_leak(dist_env, pytest_states):
    torch_state, numpy_key = pytest_states
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert (numpy.random.get_state()[1] == numpy_key).all()


@pytest.fixture
def float64_default():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_default_dtype_from_a_fixture(dist_env, float64_default):
    assert torch.ones(1).dtype == torch.float64


def test_default_dtype_is_back(dist_env):
    assert torch.ones(1).dtype == torch.float32
