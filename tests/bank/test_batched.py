"""Batched composition: the same kernels as a layer-by-layer oracle.

`TemplateBank` composes every kernel through `BatchedComposer` (all
layers at once, or one layer alone). The oracle here composes one layer
at a time with `keras.ops`, the way the bank did before: per width level a
`(1 x K) . (K x seg)` matmul of the slot's coefficient row (probe added,
gain folded in) with its template window, cut into pieces and assembled.
"""

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.bank.assembly import assemble
from keras_swn.bank.batched import assemble_keras
from keras_swn.bank.layout import hwio_shape
from keras_swn.bank.layout import level_pieces
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.bank.template_bank import coefficient_probe_key
from keras_swn.bank.template_bank import use_gains
from keras_swn.models import WideResNet
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.probe import active_probe
from keras_swn.probe import probe_scope


def _per_layer_kernel(bank, key):
    """The oracle: `bank.kernel(key)` composed layer by layer."""
    ops = keras.ops
    parts = []
    for w, (bank_key, offset, k, seg) in enumerate(bank.plan.windows(*key)):
        templates = bank.templates[bank_key][offset : offset + k * seg]
        owner = bank.policy.owner((key[0], key[1], w))
        row = bank.coefficient_rows[bank_key][owner]
        c = bank.coefficients[bank_key][row : row + 1]
        probe = active_probe(coefficient_probe_key(bank, key, w))
        if probe is not None:
            c = c + ops.reshape(probe, (1, k))
        c = c * use_gains(bank.plan, key, bank.template_fan_in)[w]
        vector = ops.reshape(
            ops.matmul(c, ops.reshape(templates, (k, seg))), (seg,)
        )
        parts.append(
            [
                ops.reshape(vector[start : start + n], hwio_shape(shape))
                for start, n, shape in level_pieces(
                    bank.plan.levels_of(*key)[w], w == 0
                )
            ]
        )
    kernel = assemble_keras(
        bank.plan.levels_of(*key), parts, concatenate=ops.concatenate
    )
    return ops.reshape(kernel, bank.kernel_shape(key))


def _wrn_specs():
    """Three WRN members of different widths and depths: multi-level."""
    return [
        s
        for m, (depth, width) in enumerate([(16, 2), (10, 2), (10, 1)])
        for s in wide_resnet_layer_specs(depth, width, member=m)
    ]


def _mixed_specs():
    """Convolutions of several shapes and a dense layer in one group."""
    return [
        keras_swn.LayerSpec(0, 0, "conv2d", (8, 3, 3, 3)),
        keras_swn.LayerSpec(0, 1, "conv2d", (16, 8, 3, 3)),
        keras_swn.LayerSpec(0, 2, "dense", (10, 16, 1, 1)),
        keras_swn.LayerSpec(1, 0, "conv2d", (4, 3, 3, 3)),
        keras_swn.LayerSpec(1, 1, "conv2d", (12, 4, 3, 3)),
        keras_swn.LayerSpec(1, 2, "dense", (10, 12, 1, 1)),
    ]


def _banks():
    specs = _wrn_specs()
    yield (
        "bins_per_layer",
        TemplateBank(
            specs, keras_swn.SharingPolicy.from_bins(specs, 4), 800_000, seed=0
        ),
    )
    yield (
        "bins_per_bank",
        TemplateBank(
            specs,
            keras_swn.SharingPolicy.from_bins(
                specs, 4, coefficients="per_bank"
            ),
            800_000,
            seed=1,
        ),
    )
    # bank_size 2: sliding template windows; fan-in 9: no gains.
    yield (
        "sliding_windows",
        TemplateBank(
            specs,
            keras_swn.SharingPolicy.from_bins(specs, 2),
            400_000,
            bank_size=2,
            template_fan_in=9,
            seed=2,
        ),
    )
    mixed = _mixed_specs()
    yield (
        "mixed_shared",
        TemplateBank(
            mixed,
            keras_swn.SharingPolicy(
                groups=[[0, 0, 1], [0, 0, 1]],
                coefficient_owners={(1, 0, 0): (0, 0), (1, 2, 0): (0, 2)},
            ),
            20_000,
            seed=3,
        ),
    )


BANKS = dict(_banks())


def test_assemble_keras_is_assemble_transposed():
    rng = np.random.default_rng(0)
    for bank in BANKS.values():
        plan = bank.plan
        for key, recipe in plan.layers.items():
            levels = plan.levels_of(*key)
            vectors = [rng.normal(size=level.seg) for level in levels]
            parts = [
                [
                    v[start : start + n].reshape(shape).transpose(2, 3, 1, 0)
                    for start, n, shape in level_pieces(level, w == 0)
                ]
                for w, (level, v) in enumerate(zip(levels, vectors))
            ]
            expected = assemble(
                levels,
                vectors,
                concatenate=np.concatenate,
                reshape=np.reshape,
                shape=recipe.shape,
            ).transpose(2, 3, 1, 0)
            got = assemble_keras(levels, parts, concatenate=np.concatenate)
            np.testing.assert_array_equal(got, expected)


def test_row_by_row_only_for_long_templates():
    bank = BANKS["mixed_shared"]
    composer = bank._batched
    expected = None if keras.backend.backend() == "torch" else 2**19
    assert composer.row_matmul_min_seg == expected
    if expected is not None:
        assert composer._row_by_row(2**19)
        assert not composer._row_by_row(2**19 - 1)


def test_configurations_are_multi_level_and_shared():
    plan = BANKS["bins_per_layer"].plan
    assert len({k[0] for k in plan.layers}) == 3
    assert max(r.num_levels for r in plan.layers.values()) >= 3
    shared = BANKS["bins_per_bank"].plan
    assert shared.coefficient_vectors < shared.num_slots
    sliding = BANKS["sliding_windows"].plan
    assert any(o != 0 for r in sliding.layers.values() for o in r.offsets)


#: `row_matmul_min_seg` of the composer: one matmul per window, split
#: into rows (None), or one matmul per row (0). The tests' banks are small,
#: so the default threshold would never pick the second.
ROWS = pytest.mark.parametrize("rows", [None, 0], ids=["split", "per_row"])


@pytest.mark.backend_sensitive
@ROWS
@pytest.mark.parametrize("name", sorted(BANKS))
def test_batched_kernels_equal_per_layer(name, rows, monkeypatch):
    bank = BANKS[name]
    bank.build()
    monkeypatch.setattr(bank._batched, "row_matmul_min_seg", rows)
    batched = bank.compose_all()
    assert sorted(batched) == sorted(bank.plan.layers)
    for key in bank.plan.layers:
        expected = keras.ops.convert_to_numpy(_per_layer_kernel(bank, key))
        got = keras.ops.convert_to_numpy(batched[key])
        assert got.shape == expected.shape == bank.kernel_shape(key)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.backend_sensitive
def test_composed_scope_serves_kernels_and_coefficient_probes():
    bank = BANKS["mixed_shared"]
    bank.build()
    rng = np.random.default_rng(0)
    probes = {
        coefficient_probe_key(bank, key, w): keras.ops.convert_to_tensor(
            rng.normal(size=(bank.plan.banks[(r.group, w)].templates,)).astype(
                "float32"
            )
        )
        for key, r in bank.plan.layers.items()
        for w in range(r.num_levels)
        if key != (1, 1)
    }
    with probe_scope(probes):
        expected = {
            k: keras.ops.convert_to_numpy(_per_layer_kernel(bank, k))
            for k in bank.plan.layers
        }
        with bank.composed([1]) as kernels:
            assert sorted(kernels) == [(1, 0), (1, 1), (1, 2)]
            served = bank.kernel((1, 0), dtype="float16")
            assert keras.backend.standardize_dtype(served.dtype) == "float16"
            got = {k: bank.kernel(k) for k in bank.plan.layers}
        assert not bank._kernel_cache.stack
    for key in bank.plan.layers:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got[key]),
            expected[key],
            rtol=0,
            atol=1e-6,
        )
    # The probes reached the kernels.
    plain = keras.ops.convert_to_numpy(_per_layer_kernel(bank, (0, 0)))
    assert not np.allclose(plain, expected[(0, 0)])


@pytest.mark.backend_sensitive
def test_model_call_matches_members_called_per_layer():
    model = keras_swn.SWNModel(
        members=[WideResNet(10, 2), WideResNet(10, 1)],
        input_shape=(8, 8, 3),
        num_classes=5,
        budget=250_000,
        seed=0,
    )
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    batched = model(x)
    # Members called directly compose their kernels layer by layer.
    for member, logits in zip(model.members, batched):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logits),
            keras.ops.convert_to_numpy(member(x)),
            rtol=1e-5,
            atol=1e-5,
        )


def _gradients(loss_fn, tensors):
    """`d loss_fn(*tensors) / d tensors` on the active backend, with
    `tensors` float32 arrays (NumPy); returns NumPy arrays."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.convert_to_tensor(t) for t in tensors]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = loss_fn(*xs)
        return [
            tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, xs)
        ]
    if backend == "jax":
        import jax

        grads = jax.grad(lambda xs: loss_fn(*xs))(
            [jax.numpy.asarray(t) for t in tensors]
        )
        return [np.asarray(g) for g in grads]
    if backend == "torch":
        import torch

        xs = [torch.tensor(t, requires_grad=True) for t in tensors]
        grads = torch.autograd.grad(loss_fn(*xs), xs)
        return [g.detach().cpu().numpy() for g in grads]
    pytest.skip(f"no gradient helper for the {backend} backend")


def _kernel_loss(bank, compose, probe_keys):
    """`loss(*variable values, *probes)`: sum of every kernel times a fixed
    random weight; the bank's variables read from the arguments."""
    variables = bank.trainable_variables
    rng = np.random.default_rng(5)
    weights = {
        key: rng.normal(size=bank.kernel_shape(key)).astype("float32")
        for key in bank.plan.layers
    }

    def loss(*args):
        values, probes = args[: len(variables)], args[len(variables) :]
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping):
            with probe_scope(dict(zip(probe_keys, probes))):
                kernels = compose()
        return sum(
            keras.ops.sum(
                kernels[key] * keras.ops.convert_to_tensor(weights[key])
            )
            for key in sorted(kernels)
        )

    return loss


def _probes(bank, skip=()):
    rng = np.random.default_rng(1)
    return {
        coefficient_probe_key(bank, key, w): rng.normal(
            size=(bank.plan.banks[(r.group, w)].templates,)
        ).astype("float32")
        for key, r in sorted(bank.plan.layers.items())
        for w in range(r.num_levels)
        if key not in skip
    }


@pytest.mark.backend_sensitive
@ROWS
@pytest.mark.parametrize("name", sorted(BANKS))
def test_batched_gradients_equal_per_layer(name, rows, monkeypatch):
    """Conv and dense layers, several members, hard-shared coefficients,
    sliding windows: the gradients with respect to every template and
    coefficient equal the per-layer path's."""
    bank = BANKS[name]
    bank.build()
    monkeypatch.setattr(bank._batched, "row_matmul_min_seg", rows)
    keys = sorted(bank.plan.layers)
    values = [keras.ops.convert_to_numpy(v) for v in bank.trainable_variables]
    batched = _kernel_loss(bank, bank.compose_all, [])
    per_layer = _kernel_loss(
        bank, lambda: {k: _per_layer_kernel(bank, k) for k in keys}, []
    )
    got = _gradients(batched, values)
    want = _gradients(per_layer, values)
    assert len(got) == len(want) == len(values)
    for g, w, v in zip(got, want, bank.trainable_variables):
        assert g.shape == w.shape == tuple(v.shape)
        # Float sums over many kernel entries in another order: the
        # tolerance scales with the gradient's size.
        atol = 1e-5 * (1.0 + float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol, err_msg=v.path)


@pytest.mark.backend_sensitive
@ROWS
def test_batched_probe_gradients_equal_per_layer(rows, monkeypatch):
    """With coefficient probes on every slot but one (per-slot rows), the
    gradients with respect to the probes and the variables equal the
    per-layer path's."""
    bank = BANKS["mixed_shared"]
    bank.build()
    monkeypatch.setattr(bank._batched, "row_matmul_min_seg", rows)
    keys = sorted(bank.plan.layers)
    probes = _probes(bank, skip=[(1, 1)])
    values = [keras.ops.convert_to_numpy(v) for v in bank.trainable_variables]
    inputs = values + list(probes.values())
    batched = _kernel_loss(bank, bank.compose_all, list(probes))
    per_layer = _kernel_loss(
        bank,
        lambda: {k: _per_layer_kernel(bank, k) for k in keys},
        list(probes),
    )
    got = _gradients(batched, inputs)
    want = _gradients(per_layer, inputs)
    for g, w in zip(got, want):
        atol = 1e-5 * (1.0 + float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol)
    # The probe gradients are not all zero: they reached the kernels.
    assert any(np.abs(g).max() > 0 for g in got[len(values) :])
