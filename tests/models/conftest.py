"""The model tests use the shared two-member model with 5 classes."""

import functools

import pytest


@pytest.fixture
def make_model(make_model):
    """The shared factory (tests/conftest.py) with `num_classes=5`."""
    return functools.partial(make_model, num_classes=5)
