"""`KerasMember`: Keras models (keras.applications, a nested functional
model) converted into SWN members, trained, searched, saved and exported.

Everything is tiny: 32x32 (or 8x8) inputs, batches of 2, one step, run
eagerly (tracing a 200-layer graph costs more than the step on a CPU).
"""

import warnings

import keras
import numpy as np
import pytest
from swn_fixtures import digits

import keras_swn
from keras_swn.ensembles import member_flops
from keras_swn.ensembles import predict_within_budget
from keras_swn.export import to_keras
from keras_swn.layers import SuperWeightConv2D
from keras_swn.layers import SuperWeightDense
from keras_swn.models import KerasMember
from keras_swn.models.conversion.compress import oihw_kernel
from keras_swn.models.conversion.graph import walk
from keras_swn.models.keras_member import ConversionNotice
from keras_swn.policy.bins import initial_bins
from keras_swn.policy.chains import one_template_total
from keras_swn.search import SearchAndRefine

APPS = dict(weights=None, input_shape=(32, 32, 3), classes=10)


def resnet50v2():
    return keras.applications.ResNet50V2(classifier_activation=None, **APPS)


def mobilenetv2():
    return keras.applications.MobileNetV2(
        alpha=0.35, classifier_activation=None, **APPS
    )


def efficientnetb0():
    return keras.applications.EfficientNetB0(classifier_activation=None, **APPS)


def nested(shape=(32, 32, 3), width=8, name="nested", softmax=False):
    """A functional model with a nested functional block (dilated conv,
    depthwise conv, 1x1 conv, residual add), a Rescaling input, a hidden
    Dense and a head."""
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inputs)
    x = keras.layers.Conv2D(
        width, 3, padding="same", use_bias=True, name="stem"
    )(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    block_in = keras.Input((shape[0], shape[1], width))
    y = keras.layers.Conv2D(
        width, 3, padding="same", dilation_rate=2, name="dilated"
    )(block_in)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(y)
    y = keras.layers.Conv2D(width, 1, activation="relu", name="pointwise")(y)
    y = keras.layers.Add(name="add")([block_in, y])
    x = keras.Model(block_in, y, name="block")(x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, name="down")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(
        10, activation="softmax" if softmax else None, name="head"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def quiet(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionNotice)
        return KerasMember(model, **kwargs)


def kernel_params(model, exclude=("predictions", "head")):
    """The Conv2D / Dense kernel parameters of a Keras model."""
    total = 0
    for _, layer in walk(model):
        if type(layer) in (keras.layers.Conv2D, keras.layers.Dense):
            if layer.name not in exclude:
                total += int(np.prod(layer.kernel.shape))
    return total


def budget_for(members, fraction=0.4):
    """`fraction` of the shared kernels, or 1.2 times one template per
    bank of the initial bins where that is more."""
    specs = [
        s
        for i, m in enumerate(members)
        for s in m.layer_specs(m.input_shape, member=i)
    ]
    need = one_template_total(specs, initial_bins(specs, 4))
    return int(max(fraction * sum(s.numel for s in specs), 1.2 * need))


def images(n=2, shape=(32, 32, 3), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, *shape)) * 255).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


# ----------------------------------------------------------------------
class TestConversion:
    def test_specs_names_and_notice(self):
        with pytest.warns(ConversionNotice, match=r"block/depthwise.*softmax"):
            member = KerasMember(nested(softmax=True))
        specs = member.layer_specs((32, 32, 3))
        assert [s.name for s in specs] == [
            "stem",
            "dilated",
            "pointwise",
            "down",
            "fc",
        ]
        assert [s.shape for s in specs] == [
            (8, 3, 3, 3),
            (8, 8, 3, 3),
            (8, 8, 1, 1),
            (16, 8, 3, 3),
            (32, 16, 1, 1),
        ]
        assert [s.kind for s in specs][-1] == "dense"
        assert member.input_shape == (32, 32, 3) and member.num_classes == 10
        budget = member.unshared_params((32, 32, 3), 10)
        assert budget.conv_params_unshared == sum(s.numel for s in specs)
        assert budget.params_unshared == nested().count_params() - 16

    def test_share_predicate_names_and_head(self):
        net = nested()
        only_convs = quiet(
            net, share=lambda l: isinstance(l, keras.layers.Conv2D)
        )
        assert only_convs.shared_layers == (
            "stem",
            "block/dilated",
            "block/pointwise",
            "down",
        )
        named = quiet(net, share=["down", "pointwise"])
        assert named.shared_layers == ("block/pointwise", "down")
        with_head = quiet(net, share_head=True)
        assert with_head.shared_layers[-2:] == ("fc", "head")

    def test_member_layers(self):
        model = keras_swn.SWNModel(
            [quiet(nested())], (32, 32, 3), 10, budget=20_000, seed=0
        )
        net = model.members[0]
        assert isinstance(net.get_layer("stem"), SuperWeightConv2D)
        assert net.get_layer("dilated").dilation_rate == (2, 2)
        assert net.get_layer("pointwise").activation.__name__ == "relu"
        assert isinstance(net.get_layer("fc"), SuperWeightDense)
        assert type(net.get_layer("head")) is keras.layers.Dense
        assert type(net.get_layer("depthwise")) is keras.layers.DepthwiseConv2D
        # The sub-model is inlined; every layer keeps its name.
        names = [layer.name for layer in net.layers]
        assert names == [
            "image",
            "scale",
            "stem",
            "bn",
            "relu",
            "dilated",
            "depthwise",
            "pointwise",
            "add",
            "down",
            "pool",
            "fc",
            "head",
        ]
        # Kept layers start from the source model's values.
        source = model.member_builders[0].model
        np.testing.assert_array_equal(
            _np(net.get_layer("head").kernel),
            _np(source.get_layer("head").kernel),
        )

    def test_sequential(self):
        net = keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(4, 3, padding="same", name="c1"),
                keras.layers.ReLU(name="r"),
                keras.layers.Conv2D(4, 3, name="c2"),
                keras.layers.Flatten(name="flat"),
                keras.layers.Dense(3, name="out"),
            ],
            name="seq",
        )
        model = keras_swn.SWNModel.from_keras(net, budget=1.0, seed=0)
        assert model.num_classes == 3 and model.input_shape_ == (8, 8, 3)
        x = images(2, (8, 8, 3))
        plain = to_keras(model)
        assert [l.name for l in plain.layers][1:] == [
            "c1",
            "r",
            "c2",
            "flat",
            "out",
        ]
        np.testing.assert_allclose(
            _np(plain(x)), _np(model(x)[0]), rtol=1e-5, atol=1e-5
        )

    def test_graph_features(self):
        """A nested Sequential block, a layer called twice, Concatenate,
        Multiply (a sigmoid gate), ZeroPadding2D, max pooling; compressed
        from the model at a budget that holds it exactly."""
        inputs = keras.Input((8, 8, 3), name="x")
        block = keras.Sequential(
            [
                keras.layers.Conv2D(4, 3, padding="same", name="s1"),
                keras.layers.ReLU(name="sr"),
            ],
            name="seqblock",
        )
        a = block(inputs)
        twice = keras.layers.Conv2D(4, 1, name="twice")
        b = twice(a)
        c = twice(b)
        d = keras.layers.Concatenate(name="cat")([b, c])
        gate = keras.layers.Conv2D(8, 1, activation="sigmoid", name="gate")
        e = keras.layers.Multiply(name="mul")([d, gate(d)])
        f = keras.layers.ZeroPadding2D(1, name="zp")(e)
        f = keras.layers.Conv2D(8, 3, strides=2, name="down")(f)
        g = keras.layers.GlobalMaxPooling2D(name="gmp")(f)
        net = keras.Model(inputs, keras.layers.Dense(5, name="head")(g))
        member = KerasMember(net, init="trained")
        assert member.shared_layers == ("seqblock/s1", "twice", "gate", "down")
        model = keras_swn.SWNModel.from_keras(
            [member], budget=100_000, num_bins=3, seed=0
        )
        assert max(member.reconstruction_errors.values()) < 1e-5
        x = images(2, (8, 8, 3))
        np.testing.assert_allclose(
            _np(model(x)[0]), _np(net(x)), rtol=1e-4, atol=1e-5
        )
        plain = to_keras(model)
        assert [l.name for l in plain.layers] == [
            "x", "s1", "sr", "twice", "cat", "gate", "mul", "zp", "down",
            "gmp", "head",
        ]  # fmt: skip
        np.testing.assert_allclose(
            _np(plain(x)), _np(net(x)), rtol=1e-4, atol=1e-5
        )

    def test_from_keras_fraction(self):
        net = nested()
        model = keras_swn.SWNModel.from_keras(
            net, budget=0.9, share=["stem", "down"], num_bins=1, seed=0
        )
        assert model.budget == int(0.9 * (8 * 27 + 16 * 72))
        assert [s.name for s in model.specs] == ["stem", "down"]


class TestErrors:
    def test_subclassed_model(self):
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.conv = keras.layers.Conv2D(4, 3)

            def call(self, x):
                return self.conv(x)

        with pytest.raises(ValueError, match=r"subclassed.*functional API"):
            KerasMember(Net())

    def test_unsupported_layer_in_shared_position(self):
        with pytest.raises(
            ValueError, match=r"Layer 'block/depthwise'.*DepthwiseConv2D"
        ):
            KerasMember(nested(), share=["stem", "depthwise"])
        with pytest.raises(ValueError, match=r"'block/depthwise'.*share="):
            KerasMember(nested(), share=lambda layer: True)

    def test_grouped_and_channels_first(self):
        inputs = keras.Input((8, 8, 4))
        x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(inputs)
        x = keras.layers.Conv2D(4, 3, name="plain")(x)
        net = keras.Model(inputs, keras.layers.Flatten()(x))
        with pytest.warns(ConversionNotice, match=r"grouped"):
            member = KerasMember(net)
        assert member.shared_layers == ("plain",)
        with pytest.raises(ValueError, match=r"'grouped'.*groups=2"):
            KerasMember(net, share=["grouped"])
        if keras.backend.backend() != "tensorflow":
            return  # channels_first convolutions need a GPU on TF only
        inputs = keras.Input((4, 8, 8))
        x = keras.layers.Conv2D(4, 3, data_format="channels_first", name="cf")(
            inputs
        )
        net = keras.Model(inputs, keras.layers.Flatten()(x))
        with pytest.raises(ValueError, match=r"'cf'.*channels_first"):
            KerasMember(net)

    def test_unknown_name_and_shapes(self):
        with pytest.raises(ValueError, match=r"`share`.*\['nope'\]"):
            KerasMember(nested(), share=["nope"])
        member = quiet(nested())
        with pytest.raises(ValueError, match=r"`input_shape`"):
            keras_swn.SWNModel([member], (16, 16, 3), 10, budget=20_000)
        with pytest.raises(ValueError, match=r"`num_classes`.*10 outputs"):
            keras_swn.SWNModel([member], (32, 32, 3), 5, budget=20_000)

    def test_two_outputs(self):
        inputs = keras.Input((8,))
        a = keras.layers.Dense(2, name="a")(inputs)
        b = keras.layers.Dense(2, name="b")(inputs)
        with pytest.raises(ValueError, match=r"one input and returns one"):
            KerasMember(keras.Model(inputs, [a, b]))


# ----------------------------------------------------------------------
ARCHITECTURES = {
    "resnet50v2": resnet50v2,
    "mobilenetv2": mobilenetv2,
    "efficientnetb0": efficientnetb0,
    "nested": nested,
}


def check_member_round_trip(model, x, y, tmp_path):
    """One fit step, `.keras` round trip and export, for every member."""
    templates = [_np(v) for v in model.bank.templates.values()]
    model.compile(optimizer="sgd", run_eagerly=True)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for old, new in zip(templates, model.bank.templates.values()):
        assert not np.array_equal(old, _np(new))  # every bank trained
    after = [_np(o) for o in model(x)]
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(after, loaded(x)):
        np.testing.assert_allclose(a, _np(b), rtol=1e-5, atol=1e-5)
    for m, builder in enumerate(model.member_builders):
        plain = to_keras(model, m)
        assert not any(
            isinstance(l, (SuperWeightConv2D, SuperWeightDense))
            for l in plain.layers
        )
        np.testing.assert_allclose(
            _np(plain(x)), after[m], rtol=1e-4, atol=1e-4
        )
    return loaded


@pytest.fixture(scope="module")
def converted():
    """`converted(arch)`: the `KerasMember` of a source model, built once
    per module (building ResNet50V2 takes seconds; every `SWNModel` is
    built from the member afresh, and the source model is only read)."""
    built: dict = {}

    def get(arch):
        if arch not in built:
            built[arch] = quiet(ARCHITECTURES[arch]())
        return built[arch]

    return get


@pytest.mark.backend_sensitive
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture(arch, converted, tmp_path):
    member = converted(arch)
    net = member.model
    shared = kernel_params(net)
    model = keras_swn.SWNModel.from_keras(
        [member], budget=budget_for([member]), seed=0
    )
    report = model.budget_report()
    assert report.members[0].conv_params_unshared == shared
    assert report.members[0].params_unshared == sum(
        int(np.prod(v.shape)) for v in net.trainable_weights
    )
    assert sum(b.size for b in model.plan.banks.values()) <= model.budget
    # Same layer names (nothing nested in keras.applications).
    if arch != "nested":
        assert [l.name for l in model.members[0].layers] == [
            l.name for l in net.layers
        ]
    x = images()
    check_member_round_trip(model, x, np.array([1, 7]), tmp_path)


@pytest.mark.backend_sensitive
def test_heterogeneous_ensemble(converted, tmp_path):
    """EfficientNetB0 (65 shared layers) and MobileNetV2 (35) on one bank;
    anytime prediction picks the cheaper member under a tight budget."""
    members = [converted("efficientnetb0"), converted("mobilenetv2")]
    model = keras_swn.SWNModel.from_keras(
        members, budget=budget_for(members), seed=0
    )
    layers = [sum(1 for k in model.plan.layers if k[0] == m) for m in (0, 1)]
    assert layers == [65, 35]
    text = str(model.budget_report())
    assert "efficientnetb0" in text and "mobilenetv2_0.35_32" in text
    x = images(seed=1)
    loaded = check_member_round_trip(model, x, np.array([0, 3]), tmp_path)
    cheap, dear = (member_flops(loaded, m).inference_macs for m in (1, 0))
    assert cheap < dear
    probs = predict_within_budget(loaded, x, flops_budget=dear - 1)
    expected = _np(keras.ops.softmax(loaded.members[1](x)))
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------
@pytest.mark.backend_sensitive
def test_search_and_refine_nested_pair(tmp_path):
    """The search, the refine and the final training of two converted
    nested models (8 and 4 channels) on real 8x8 digits."""
    keras.utils.clear_session()
    members = [
        quiet(nested((8, 8, 1), 8, "wide")),
        quiet(nested((8, 8, 1), 4, "narrow")),
    ]
    search = SearchAndRefine(
        members,
        (8, 8, 1),
        10,
        directory=str(tmp_path),
        project_name="keras",
        budget=20_000,
        batch_size=16,
        run_eagerly=True,
        seed=3,
    )
    train, val = digits()
    search.search(train, val, search_epochs=1, epochs=2, refine_after=1)
    best = search.get_best_models()[0]
    assert len(best.policy.groups) == 2
    assert [len(r) for r in best.policy.groups] == [5, 5]
    assert best.member_builders[0].name == "wide"
    x = train[0][:4].astype("float32")
    out = best(x)  # `best` was saved and loaded (`model.keras`)
    assert [tuple(o.shape) for o in out] == [(4, 10), (4, 10)]
    assert all(np.isfinite(_np(o)).all() for o in out)
    assert (tmp_path / "keras" / "refine.json").exists()
    for m in range(2):  # export: plain models with the same outputs
        np.testing.assert_allclose(
            _np(to_keras(best, m)(x)), _np(out[m]), rtol=1e-4, atol=1e-4
        )


# ----------------------------------------------------------------------
class TestCompression:
    """`init="trained"`: the bank fitted to a trained model's kernels."""

    def test_exact_when_the_budget_allows(self):
        net = nested()
        # Non-trivial BatchNorm statistics: kept layers keep their values.
        bn = net.get_layer("bn")
        rng = np.random.default_rng(0)
        bn.set_weights(
            [rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8)]
            + [rng.normal(0, 0.1, 8), rng.uniform(0.5, 2.0, 8)]
        )
        member = quiet(net, init="trained")
        model = keras_swn.SWNModel.from_keras(
            [member], budget=20_000, num_bins=2, seed=0
        )
        errors = member.reconstruction_errors
        assert sorted(errors) == ["dilated", "down", "fc", "pointwise", "stem"]
        assert max(errors.values()) < 1e-5
        x = images(4)
        np.testing.assert_allclose(
            _np(model(x)[0]), _np(net(x)), rtol=1e-4, atol=1e-5
        )

    def test_tight_budget_and_two_members(self):
        nets = [nested(width=8, name="wide"), nested(width=4, name="narrow")]
        members = [quiet(n, init="trained") for n in nets]
        model = keras_swn.SWNModel.from_keras(
            members, budget=0.8, num_bins=2, seed=0
        )
        fresh = keras_swn.SWNModel.from_keras(
            [quiet(n) for n in nets], budget=0.8, num_bins=2, seed=0
        )
        for m, member in enumerate(members):
            errors = member.reconstruction_errors
            assert list(errors) == ["stem", "dilated", "pointwise", "down"] + [
                "fc"
            ]
            for i, (name, error) in enumerate(errors.items()):
                layers = dict(walk(member.model))
                target = oihw_kernel(layers[member.shared_layers[i]])
                fitted = _np(model.bank.kernel_oihw((m, i)))
                norm = np.linalg.norm(target)
                assert error == pytest.approx(
                    np.linalg.norm(fitted - target) / norm, rel=1e-4, abs=1e-6
                )
                # Fresh templates are about one kernel norm or more away.
                start = _np(fresh.bank.kernel_oihw((m, i)))
                assert error < 1.0 < np.linalg.norm(start - target) / norm

    def test_no_layer_left_unfitted(self):
        """Four random 3x3 kernels, one 50 times smaller than the others,
        in one bank of 3 templates for 4 coefficient vectors: each layer's
        error counts relative to its own norm, so the small one is fitted
        too (a plain least-squares fit left it at relative error 0.995
        and fitted the other three exactly)."""
        inputs = keras.Input((8, 8, 8))
        x = inputs
        for i in range(4):
            x = keras.layers.Conv2D(
                8, 3, padding="same", use_bias=False, name=f"c{i}"
            )(x)
        x = keras.layers.Flatten()(x)
        net = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
        rng = np.random.default_rng(0)
        for i, scale in enumerate([1.0, 1.0, 0.02, 1.0]):
            net.get_layer(f"c{i}").kernel.assign(
                rng.normal(0, scale, (3, 3, 8, 8)).astype("float32")
            )
        member = quiet(net, init="trained")
        model = keras_swn.SWNModel.from_keras(
            [member], budget=0.8, num_bins=1, seed=0
        )
        [bank] = model.plan.banks.values()
        assert (bank.users, bank.templates) == (4, 3)
        errors = member.reconstruction_errors
        assert sorted(errors) == ["c0", "c1", "c2", "c3"]
        assert max(errors.values()) < 0.7, errors
        assert min(errors.values()) > 0.1  # a rank-3 fit of 4 kernels


def test_compress_benchmark_smoke(tmp_path, capsys):
    """`benchmarks/compress.py --smoke`: the three runs on random 8x8
    images, one epoch each; the JSON result and every table row."""
    import importlib.util
    import json
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    path = os.path.join(root, "benchmarks", "compress.py")
    spec = importlib.util.spec_from_file_location("compress_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = str(tmp_path / "result.json")
    result = module.main(["--smoke", "--out", out])
    with open(out, encoding="utf-8") as f:
        assert json.load(f) == json.loads(json.dumps(result))
    assert result["model"] == "WRN-10-1" and result["kernel_params"] == 76_720
    assert result["budget"] == int(0.8 * 76_720)
    assert len(result["reconstruction_errors"]) == 9
    assert 0 <= result["reconstruction_error_mean"] < 1
    for key in ("plain", "scratch", "compressed_accuracy_after_finetune"):
        name = key if key.startswith("compressed") else f"{key}_accuracy"
        assert 0 <= result[name] <= 1
    text = capsys.readouterr().out
    assert text.count("\n| ") == 6  # header, separator, 4 rows


#: JAX compiles the search's steps (op by op, one search of EfficientNetB0
#: took minutes).
EAGER_SEARCH = keras.backend.backend() != "jax"


@pytest.mark.backend_sensitive
@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - {"nested"}))
def test_search_and_refine_applications(arch, converted, tmp_path):
    """The search, the refine and the final training of a converted
    `keras.applications` model on 8 random images (one batch), then the
    saved final model loaded and exported to the original architecture.

    The capture after one search epoch reads each batch's own BatchNorm
    statistics: the moving ones are still near their initial values, and
    with them the activations of ResNet50V2 and EfficientNetB0 overflow."""
    member = converted(arch)
    search = SearchAndRefine(
        [member],
        (32, 32, 3),
        10,
        directory=str(tmp_path),
        project_name=arch,
        budget=budget_for([member]),
        batch_size=8,
        run_eagerly=EAGER_SEARCH,
        plots=False,
        seed=0,
    )
    x = images(8, seed=2) / 255.0
    y = np.arange(8) % 10
    search.search(
        (x, y),
        None,
        search_epochs=1,
        epochs=2,
        refine_after=1,
        learning_rate=0.01,
        verbose=0,
    )
    assert (tmp_path / arch / "refine.json").exists()
    best = search.get_best_models()[0]  # `model.keras`, loaded
    result = search.search_result()
    assert result.need <= result.budget
    assert len(set(best.policy.groups[0])) >= 4  # the bins, maybe split
    out = _np(best(x[:2])[0])
    assert out.shape == (2, 10) and np.isfinite(out).all()
    # The refined model still exports to the original architecture.
    plain = to_keras(best, 0)
    names = [layer.name for layer in member.model.layers]
    assert [layer.name for layer in plain.layers] == names
    np.testing.assert_allclose(_np(plain(x[:2])), out, rtol=1e-4, atol=1e-4)
