"""Storage order: templates held with each piece in HWIO order.

The bank composes without transposes because each template's pieces are
stored HWIO; files keep the spec's OIHW order. These tests pin the
permutation, that the kernels are those the spec's OIHW assembly makes
from the OIHW values, and that files (including those written before the
change, which hold OIHW) load to the same kernels.
"""

import os

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.bank import layout
from keras_swn.bank.assembly import assemble
from keras_swn.bank.template_bank import use_gains
from keras_swn.models import WideResNet
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.chains import Level


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _bank(seed=0, budget=200_000):
    specs = [
        s
        for m, (depth, width) in enumerate([(10, 2), (10, 1)])
        for s in wide_resnet_layer_specs(depth, width, member=m)
    ]
    policy = keras_swn.SharingPolicy.from_bins(specs, 3)
    bank = keras_swn.TemplateBank(specs, policy, budget, seed=seed)
    bank.build()
    return bank


def _spec_kernels(bank, oihw_values):
    """Every kernel by the spec: OIHW SuperWeights, `assemble`, HWIO."""
    kernels = {}
    for key, recipe in sorted(bank.plan.layers.items()):
        vectors = []
        for w, (bank_key, offset, k, seg) in enumerate(bank.plan.windows(*key)):
            templates = oihw_values[bank_key][offset : offset + k * seg]
            row = bank.coefficient_rows[bank_key][
                bank.policy.owner((key[0], key[1], w))
            ]
            gain = use_gains(bank.plan, key)[w]
            c = _np(bank.coefficients[bank_key])[row] * gain
            vectors.append(c @ templates.reshape(k, seg))
        oihw = assemble(
            bank.plan.levels_of(*key),
            vectors,
            concatenate=np.concatenate,
            reshape=np.reshape,
            shape=recipe.shape,
        )
        if recipe.kind == "dense":
            kernels[key] = oihw[:, :, 0, 0].T
        else:
            kernels[key] = oihw.transpose(2, 3, 1, 0)
    return kernels


def _oihw(bank):
    return {
        key: layout.to_oihw(_np(v), bank.storage_order(*key))
        for key, v in bank.templates.items()
    }


class TestOrder:
    def test_segment_order_is_hwio_of_each_piece(self):
        level = Level(6, 5, ((2, 5, 3, 3), (4, 2, 3, 3)), 162)
        pieces = layout.level_pieces(level, first=False)
        oihw = np.arange(162.0)
        stored = layout.to_storage(oihw, layout.segment_order(pieces, 162))
        cols = oihw[:72].reshape(4, 2, 3, 3).transpose(2, 3, 1, 0)
        rows = oihw[72:].reshape(2, 5, 3, 3).transpose(2, 3, 1, 0)
        np.testing.assert_array_equal(stored[:72], cols.ravel())
        np.testing.assert_array_equal(stored[72:], rows.ravel())

    def test_storage_order_permutes_each_template_and_keeps_the_tail(self):
        pieces = [(0, 6, (3, 2, 1, 1))]
        order = layout.storage_order(15, 6, pieces)
        assert sorted(order.tolist()) == list(range(15))
        np.testing.assert_array_equal(order[6:12], order[:6] + 6)
        np.testing.assert_array_equal(order[12:], [12, 13, 14])
        x = np.random.default_rng(0).normal(size=15)
        np.testing.assert_array_equal(
            layout.to_oihw(layout.to_storage(x, order), order), x
        )

    def test_every_bank_order_is_a_permutation(self):
        bank = _bank()
        for key, spec in bank.plan.banks.items():
            order = bank.storage_order(*key)
            assert np.array_equal(np.sort(order), np.arange(spec.size))


@pytest.mark.backend_sensitive
class TestKernels:
    def test_kernels_are_the_spec_assembly_of_the_oihw_values(self):
        bank = _bank()
        want = _spec_kernels(bank, _oihw(bank))
        batched = bank.compose_all()
        for key, kernel in want.items():
            np.testing.assert_allclose(
                _np(batched[key]), kernel, rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(
                _np(bank.kernel(key)), kernel, rtol=1e-5, atol=1e-6
            )
            np.testing.assert_allclose(
                _np(bank.kernel_oihw(key)),
                kernel.transpose(3, 2, 0, 1)
                if kernel.ndim == 4
                else kernel.T[:, :, None, None],
                rtol=1e-5,
                atol=1e-6,
            )

    def test_initial_values_are_drawn_in_oihw_order(self):
        # The same seeded N(0, std) draw as before the storage change,
        # permuted: the same initial kernels.
        from keras_swn import seeding

        bank = _bank(seed=5)
        for (g, w), values in _oihw(bank).items():
            rng = seeding.rng_for(5, "templates", g, w)
            draw = rng.standard_normal(values.size)
            ratio = values / draw
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


@pytest.mark.backend_sensitive
class TestFiles:
    def test_files_hold_oihw_and_load_back(self):
        bank = _bank(seed=1)
        store = {}
        bank.save_own_variables(store)
        saved = {key: store[str(i)] for i, key in enumerate(bank.templates)}
        for key, values in _oihw(bank).items():
            np.testing.assert_array_equal(saved[key], values)
        other = _bank(seed=2)
        other.load_own_variables(store)
        for key, v in bank.templates.items():
            np.testing.assert_array_equal(_np(other.templates[key]), _np(v))

    def test_a_file_in_oihw_order_loads_to_the_spec_kernels(self):
        # Files written before the storage change hold OIHW templates;
        # they give the kernels the spec assembles from those values.
        bank = _bank(seed=3)
        rng = np.random.default_rng(0)
        store = {}
        bank.save_own_variables(store)
        oihw = {}
        for i, (key, v) in enumerate(bank.templates.items()):
            oihw[key] = rng.normal(size=v.shape).astype("float32")
            store[str(i)] = oihw[key]
        bank.load_own_variables(store)
        want = _spec_kernels(bank, oihw)
        got = bank.compose_all()
        for key, kernel in want.items():
            np.testing.assert_allclose(
                _np(got[key]), kernel, rtol=1e-5, atol=1e-5
            )

    def test_keras_file_round_trip_keeps_kernels(self, tmp_path):
        model = keras_swn.SWNModel(
            members=[WideResNet(10, 1)],
            input_shape=(8, 8, 3),
            num_classes=3,
            budget=60_000,
            seed=0,
        )
        path = os.path.join(tmp_path, "m.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        want = model.bank.compose_all()
        got = loaded.bank.compose_all()
        for key in want:
            np.testing.assert_array_equal(_np(got[key]), _np(want[key]))
