"""Initial scale of composed kernels: He-normal for each kernel's own fan-in."""

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.models import WideResNet

CONFIGS = {
    # The README ensemble at its 18M budget, and WRN-16-4 + WRN-16-2.
    "readme": ([(28, 7), (28, 4), (16, 7), (16, 4)], 18_000_000),
    "wrn16": ([(16, 4), (16, 2)], 1_000_000),
}


def _bank(config, coefficients, template_fan_in):
    members, budget = CONFIGS[config]
    specs = [
        s
        for i, (d, k) in enumerate(members)
        for s in WideResNet(d, k).layer_specs((32, 32, 3), member=i)
    ]
    policy = keras_swn.SharingPolicy.from_bins(
        specs, 4, coefficients=coefficients
    )
    bank = keras_swn.TemplateBank(
        specs, policy, budget, seed=0, template_fan_in=template_fan_in
    )
    bank.build()
    return bank


def _scales(bank):
    """Composed-kernel std over the He-normal std of its own fan-in."""
    scales = {}
    for key, recipe in bank.plan.layers.items():
        kernel = keras.ops.convert_to_numpy(bank.kernel_oihw(key))
        fan_in = int(np.prod(recipe.shape[1:]))
        scales[key] = float(kernel.std()) / np.sqrt(2.0 / fan_in)
    return scales


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("coefficients", ["per_layer", "per_bank"])
def test_default_kernels_start_at_he_scale(config, coefficients):
    scales = _scales(_bank(config, coefficients, "kernel"))
    bad = {k: round(v, 2) for k, v in scales.items() if not 0.5 <= v <= 2.0}
    assert not bad, bad
    # Not just inside the band: centred on 1.
    assert 0.8 < np.median(list(scales.values())) < 1.25


def test_reference_initialisation_is_off_scale():
    # The reference's N(0, 2/9) templates: most kernels start several times
    # too large (the reason the default departs from it).
    scales = _scales(_bank("wrn16", "per_layer", 9))
    values = np.array(list(scales.values()))
    assert np.median(values) > 2.0
    assert values.max() > 5.0


def test_gains_fold_into_coefficients():
    # A unit-norm coefficient row, times the fixed gain of the use.
    bank = _bank("wrn16", "per_layer", "kernel")
    for rows in bank.coefficients.values():
        norms = np.linalg.norm(keras.ops.convert_to_numpy(rows), axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    stem = bank.plan.layers[(0, 0)]
    assert keras_swn.bank.use_gains(bank.plan, (0, 0))[0] == 1.0
    assert len(keras_swn.bank.use_gains(bank.plan, (0, 0))) == stem.num_levels
