"""The similarity signals read the right search model."""

import json
import os

import keras
import numpy as np
import pytest

from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet
from keras_swn.search import SearchAndRefine


@pytest.mark.parametrize(
    "signal, coefficients",
    [("gradient", "per_bank"), ("parameter", "per_layer")],
)
def test_weight_signals_search_with_own_coefficients(
    tmp_path, signal, coefficients
):
    # With one hard-shared vector per bank, every layer of a bin has the
    # same weights in its top-left corner (up to its fixed gain), so a
    # weight similarity would be 1 for every pair: weight signals search
    # with per-layer coefficients, as the reference's concat option does.
    keras.utils.clear_session()
    (x, y), (xv, yv) = load_digits_dataset(seed=0)
    search = SearchAndRefine(
        [WideResNet(10, 1)],
        (8, 8, 1),
        10,
        budget=80_000,
        batch_size=16,
        run_eagerly=True,
        seed=0,
        signal=signal,
        sharing="learned_no_refine",
        plots=False,
        directory=str(tmp_path),
        project_name="p",
    )
    search.search(
        (x[:32], y[:32]),
        (xv[:16], yv[:16]),
        search_epochs=1,
        epochs=1,
        verbose=0,
    )
    with open(os.path.join(search.project_dir, "search_result.json")) as f:
        result = json.load(f)
    off = []
    for entry in result["similarity"]:
        matrix = np.asarray(entry["matrix"])
        if matrix.shape[0] > 1:
            off.extend(matrix[~np.eye(matrix.shape[0], dtype=bool)])
    assert off and np.min(off) < 0.999
    assert search.models.search_coefficients == coefficients
