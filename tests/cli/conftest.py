"""Fixtures of the `keras-swn` tests: a recording `SearchAndRefine` and
the digits cut to a few dozen examples."""

import pytest


class FakeSearch:
    """Records what `keras-swn search` passes to `SearchAndRefine`."""

    calls: list = []

    def __init__(self, members, input_shape, num_classes, **options):
        self.options = options
        self.data = None
        FakeSearch.calls.append(self)

    def search(self, train, val, **kwargs):
        self.data = (train, val)
        self.run = kwargs

    def results_summary(self):
        print("Results summary")


@pytest.fixture
def fake_search(monkeypatch):
    """`keras_swn.search.SearchAndRefine` replaced by `FakeSearch`."""
    import keras_swn.search

    FakeSearch.calls = []
    monkeypatch.setattr(keras_swn.search, "SearchAndRefine", FakeSearch)
    return FakeSearch


@pytest.fixture
def tiny_digits(monkeypatch):
    """The embedded default, cut to a few dozen examples (tiny runs)."""
    from keras_swn.data import embedded

    real = embedded.load_digits_dataset

    def tiny(**kwargs):
        (x, y), (xv, yv) = real(**kwargs)
        return (x[:32], y[:32]), (xv[:16], yv[:16])

    monkeypatch.setattr(embedded, "load_digits_dataset", tiny)


@pytest.fixture(autouse=True)
def no_tfds_download(monkeypatch):
    """No CLI test reaches TFDS: `load_cifar` fails at once unless a test
    replaces it (a TFDS download attempt hangs for minutes offline)."""
    from keras_swn.data import cifar

    def offline(*args, **kwargs):
        raise AssertionError("a CLI test tried to load CIFAR through TFDS")

    monkeypatch.setattr(cifar, "load_cifar", offline)
