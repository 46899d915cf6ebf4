"""Root pytest configuration: seeds, doctest namespace, traceback filtering."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_swn  # noqa: E402

keras.config.disable_traceback_filtering()


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["keras"] = keras
    doctest_namespace["keras_swn"] = keras_swn
    doctest_namespace["np"] = np


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield
