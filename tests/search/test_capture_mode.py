"""The search's gradient capture: BatchNorm on each batch's statistics by
default, the moving statistics with `reference_compatible=True`."""

import pytest
from swn_fixtures import digits
from swn_fixtures import make_search

from keras_swn.models import SWNModel


class Stop(Exception):
    pass


@pytest.mark.parametrize("reference, expected", [(False, True), (True, False)])
def test_capture_batch_statistics(tmp_path, monkeypatch, reference, expected):
    seen = []

    def record(self, x, y=None, **kwargs):
        seen.append(kwargs.get("batch_statistics"))
        raise Stop

    monkeypatch.setattr(SWNModel, "collect_kernel_gradients", record)
    options = dict(budget=80_000, run_eagerly=True, plots=False, seed=1)
    if reference:
        options.update(reference_compatible=True, template_fan_in=9)
    search = make_search(tmp_path, ((10, 1),), "p", **options)
    train, val = digits()
    with pytest.raises(Stop):
        search.search(
            train,
            val,
            search_epochs=1,
            epochs=2,
            refine_after=1,
            batch_size=64,
            verbose=0,
        )
    assert seen == [expected]
