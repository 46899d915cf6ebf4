"""Shared fixtures: the two-member WRN model and random image batches
that the model, ensemble and export tests use."""

import numpy as np
import pytest

import keras_swn
from keras_swn.models import WideResNet


def two_member_model(num_classes=10, **kwargs):
    """WRN-10-2 and WRN-10-1 on 8x8x3 images, budget 250k, seed 0."""
    kwargs.setdefault("budget", 250_000)
    kwargs.setdefault("seed", 0)
    return keras_swn.SWNModel(
        members=[WideResNet(10, 2), WideResNet(10, 1)],
        input_shape=(8, 8, 3),
        num_classes=num_classes,
        **kwargs,
    )


def image_batch(n=32, seed=0, num_classes=5):
    """`n` random 8x8x3 float32 images and integer labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    return x, rng.integers(0, num_classes, n)


@pytest.fixture
def make_model():
    """`two_member_model` as a fixture (a factory: pass options)."""
    return two_member_model


@pytest.fixture
def make_data():
    """`image_batch` as a fixture (a factory)."""
    return image_batch


@pytest.fixture(scope="module")
def model():
    """The two-member model with 10 classes, shared by a test module."""
    return two_member_model()
