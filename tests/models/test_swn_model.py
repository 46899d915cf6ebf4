"""`SWNModel`: training, sharing, saving, and the member protocol."""

import keras
import numpy as np
import pytest

import keras_swn
from keras_swn.models import MemberBuilder
from keras_swn.models import WideResNet


class TinyNet(MemberBuilder):
    """A user architecture: two shared convs, a shared dense, a plain head."""

    def __init__(self, filters=4):
        self.filters = filters

    def __call__(self, inputs, layers, num_classes):
        x = layers.conv2d(self.filters, 3, padding=1, name="c1")(inputs)
        x = keras.layers.ReLU()(x)
        x = layers.conv2d(2 * self.filters, 3, strides=2, padding=1, name="c2")(
            x
        )
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = layers.dense(8, activation="relu", name="d")(x)
        return keras.layers.Dense(num_classes, name="head")(x)

    def get_config(self):
        return {"filters": self.filters}


keras.saving.register_keras_serializable("keras_swn_tests")(TinyNet)


@pytest.mark.backend_sensitive
class TestTrainingAndSaving:
    def test_fit_sums_member_losses_and_logs_metrics(
        self, make_model, make_data
    ):
        model = make_model()
        x, y = make_data()
        model.compile(keras.optimizers.SGD(0.01))
        logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        logits = model.predict(x, verbose=0)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        total = sum(float(ce(y, l)) for l in logits)
        np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)
        ensemble = np.mean(
            [keras.ops.convert_to_numpy(keras.ops.softmax(l)) for l in logits],
            axis=0,
        )
        np.testing.assert_allclose(
            logs["ensemble_accuracy"],
            np.mean(ensemble.argmax(1) == y),
            atol=1e-6,
        )
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        assert set(history.history) == {
            "loss",
            "member_0_accuracy",
            "member_1_accuracy",
            "ensemble_accuracy",
        }

    def test_keras_file_round_trip_keeps_one_bank(
        self, tmp_path, make_model, make_data
    ):
        model = make_model()
        x, y = make_data()
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9))
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        path = str(tmp_path / "swn.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        for a, b in zip(
            model.predict(x, verbose=0), loaded.predict(x, verbose=0)
        ):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        assert loaded.policy == model.policy
        layers = loaded.shared_layers()
        assert layers and all(l.bank is loaded.bank for l in layers)
        paths = [v.path for v in loaded.trainable_variables]
        assert len(paths) == len(set(paths))
        assert len(loaded.trainable_variables) == len(model.trainable_variables)
        loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)

    def test_from_config_and_clone_keep_sharing(self, make_model, make_data):
        model = make_model(coefficient_sharing="per_bank")
        again = keras_swn.SWNModel.from_config(model.get_config())
        assert again.policy == model.policy
        assert all(l.bank is again.bank for l in again.shared_layers())
        clone = keras_swn.clone_swn_model(model)
        assert clone.bank is not model.bank
        assert all(l.bank is clone.bank for l in clone.shared_layers())
        x, _ = make_data(4)
        for a, b in zip(
            model.predict(x, verbose=0), clone.predict(x, verbose=0)
        ):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    def test_config_chains_to_keras_and_old_configs_load(
        self, make_model, make_data
    ):
        model = make_model(coefficient_sharing="per_bank", weight_decay=1e-4)
        config = model.get_config()
        assert {"name", "trainable", "dtype"} <= set(config)
        assert config["bank_config"] == model.bank_config.to_dict()
        # `.keras` files written before `BankConfig`: flat bank options.
        old = {
            k: v
            for k, v in config.items()
            if k not in ("bank_config", "trainable", "dtype")
        }
        old.update(config["bank_config"])
        again = keras_swn.SWNModel.from_config(old)
        assert again.bank_config == model.bank_config
        assert again.policy == model.policy
        x, _ = make_data(4)
        for a, b in zip(model(x), again(x)):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(a),
                keras.ops.convert_to_numpy(b),
                rtol=1e-6,
                atol=1e-6,
            )

    def test_user_architecture_member(self, tmp_path, make_data):
        model = keras_swn.SWNModel(
            members=[TinyNet(8), TinyNet(4)],
            input_shape=(8, 8, 3),
            num_classes=5,
            budget=5_000,
            num_bins=2,
            seed=0,
        )
        specs = [s for s in model.specs if s.member == 0]
        assert [s.shape for s in specs] == [
            (8, 3, 3, 3),
            (16, 8, 3, 3),
            (8, 16, 1, 1),
        ]
        assert specs[2].kind == "dense"
        x, y = make_data(16)
        model.compile("sgd")
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        path = str(tmp_path / "tiny.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(
            model.predict(x, verbose=0)[1],
            loaded.predict(x, verbose=0)[1],
            rtol=1e-6,
            atol=1e-6,
        )


class TestBuilders:
    def test_wide_resnet_closed_form_equals_traced_shapes(self):
        wrn = WideResNet(16, 2)
        traced = MemberBuilder.layer_specs(wrn, (32, 32, 3), member=1)
        assert traced == wrn.layer_specs((32, 32, 3), member=1)
        counted = MemberBuilder.unshared_params(wrn, (32, 32, 3), 10)
        assert counted == wrn.unshared_params((32, 32, 3), 10)

    def test_budget_report_matches_variables(self, make_model):
        model = make_model()
        report = model.budget_report()
        templates = sum(
            int(np.prod(v.shape)) for v in model.bank.templates.values()
        )
        coefficients = sum(
            int(np.prod(v.shape)) for v in model.bank.coefficients.values()
        )
        assert report.bank_total == templates <= 250_000
        assert report.coefficient_scalars == coefficients
        trainable = sum(
            int(np.prod(v.shape)) for v in model.trainable_variables
        )
        assert report.trainable_total == trainable

    @pytest.mark.parametrize("template_fan_in", [9, "kernel"])
    def test_search_phase_layers_share_top_left_corner(
        self, template_fan_in, make_model
    ):
        # §2.1: one vector per bank, so all layers of a bin agree on the
        # common top-left corner of their kernels; under "kernel" each
        # layer reads it scaled by 1 / sqrt(its own fan-in).
        model = make_model(
            coefficient_sharing="per_bank", template_fan_in=template_fan_in
        )
        plan = model.plan
        keys = [
            k
            for k, r in plan.layers.items()
            if r.group == plan.layers[(0, 1)].group
        ]
        kernels = {
            k: keras.ops.convert_to_numpy(model.bank.kernel_oihw(k))
            for k in keys
        }
        a, b = kernels[keys[0]], kernels[keys[-1]]
        o, i = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        if template_fan_in == "kernel":
            a = a * np.sqrt(np.prod(a.shape[1:]))
            b = b * np.sqrt(np.prod(b.shape[1:]))
        np.testing.assert_allclose(a[:o, :i], b[:o, :i], rtol=1e-5, atol=1e-6)

    def test_bad_arguments(self, make_model):
        with pytest.raises(ValueError, match="Received: num_classes=1"):
            keras_swn.SWNModel(
                members=[WideResNet(10, 1)],
                input_shape=(8, 8, 3),
                num_classes=1,
                budget=100_000,
            )
        with pytest.raises(ValueError, match="coefficient_sharing='x'"):
            make_model(coefficient_sharing="x")
        with pytest.raises(ValueError, match="members"):
            keras_swn.SWNModel(
                members=["wrn"],
                input_shape=(8, 8, 3),
                num_classes=5,
                budget=1000,
            )
        with pytest.raises(ValueError, match="budget"):
            make_model(budget=1000)
        # Checked before the bank is planned (budget=1000 would fail there).
        with pytest.raises(ValueError, match="Received: weight_decay=-1"):
            make_model(budget=1000, weight_decay=-1)
        with pytest.raises(ValueError, match="not both"):
            make_model(bank_config=keras_swn.BankConfig(budget=9), seed=1)
        with pytest.raises(ValueError, match="Received: depth=12"):
            WideResNet(12, 2)
        with pytest.raises(ValueError, match="metrics"):
            make_model().compile("sgd", metrics=["mae"])


@pytest.mark.backend_sensitive
class TestLossOptions:
    def test_weight_decay_is_an_l2_term_without_coefficients(
        self, make_model, make_data
    ):
        model = make_model(weight_decay=5e-4)
        x, y = make_data(8)
        y_pred = model(x, training=False)
        with_wd = float(model.compute_loss(x, y, y_pred, training=True))
        no_wd = float(model.compute_loss(x, y, y_pred, training=False))
        coefficient_ids = {id(v) for v in model.bank.coefficients.values()}
        l2 = sum(
            float(np.sum(keras.ops.convert_to_numpy(v) ** 2))
            for v in model.trainable_variables
            if id(v) not in coefficient_ids
        )
        np.testing.assert_allclose(with_wd - no_wd, 0.5 * 5e-4 * l2, rtol=1e-4)

    def test_untrained_member_keeps_its_own_variables(
        self, make_model, make_data
    ):
        model = make_model(member_loss_weights=[1.0, 0.0], weight_decay=5e-4)
        x, y = make_data(16)
        own = [
            v
            for v in model.members[1].trainable_variables
            if "bank/" not in v.path
        ]
        before = [keras.ops.convert_to_numpy(v).copy() for v in own]
        model.compile(keras.optimizers.SGD(0.1))
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        for b, v in zip(before, own):
            np.testing.assert_array_equal(b, keras.ops.convert_to_numpy(v))
        with pytest.raises(ValueError, match="member_loss_weights"):
            make_model(member_loss_weights=[1.0])
