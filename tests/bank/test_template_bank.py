"""`TemplateBank`: arguments, the plan's chain order, config round trip."""

import dataclasses

import pytest

import keras_swn
from keras_swn.bank.template_bank import TemplateBank


def _specs():
    return [
        keras_swn.LayerSpec(0, 0, "conv2d", (8, 3, 3, 3)),
        keras_swn.LayerSpec(0, 1, "conv2d", (8, 8, 3, 3)),
        keras_swn.LayerSpec(1, 0, "conv2d", (4, 3, 3, 3)),
    ]


def _shared_policy(chain_sort="stable"):
    return keras_swn.SharingPolicy(
        groups=[[0, 0], [0]],
        coefficient_owners={(1, 0, 0): (0, 0)},
        chain_sort=chain_sort,
    )


class TestChainSort:
    def test_default_is_the_policy_chain_sort(self):
        for sort in ("stable", "reference"):
            bank = TemplateBank(_specs(), _shared_policy(sort), 10_000)
            assert bank.chain_sort == bank.plan.chain_sort == sort
            # The configuration is kept as given: None is the policy's.
            assert bank.get_config()["bank_config"]["chain_sort"] is None
            assert bank.bank_config.chain_sort is None

    def test_config_round_trip(self):
        bank = TemplateBank(
            _specs(), _shared_policy("reference"), 10_000, seed=1
        )
        again = TemplateBank.from_config(bank.get_config())
        assert again.policy == bank.policy
        assert again.plan.chains == bank.plan.chains
        assert again.chain_sort == "reference"

    def test_config_written_before_bank_config_loads(self):
        bank = TemplateBank(
            _specs(), _shared_policy("reference"), 10_000, seed=1
        )
        old = {k: v for k, v in bank.get_config().items() if k != "bank_config"}
        old.update(bank.bank_config.to_dict())
        again = TemplateBank.from_config(old)
        assert again.bank_config == bank.bank_config

    def test_bank_config_is_passed_whole(self):
        config = keras_swn.BankConfig(
            budget=10_000, template_fan_in="layer", seed=3
        )
        bank = TemplateBank(_specs(), _shared_policy(), bank_config=config)
        assert bank.bank_config is config
        assert bank.chain_sort == "stable"
        assert (bank.budget, bank.template_fan_in, bank.seed) == (
            10_000,
            "layer",
            3,
        )
        with pytest.raises(ValueError, match="not both"):
            TemplateBank(
                _specs(), _shared_policy(), bank_size=4, bank_config=config
            )

    def test_mismatch_raises(self):
        with pytest.raises(ValueError, match=r"Received: chain_sort='stable'"):
            TemplateBank(
                _specs(),
                _shared_policy("reference"),
                10_000,
                chain_sort="stable",
            )


def test_model_and_bank_hold_one_configuration():
    """`SWNModel` passes its resolved `BankConfig` whole: the bank keeps
    that object (no second merge), and a reloaded model does the same."""
    model = keras_swn.SWNModel(
        members=[keras_swn.models.WideResNet(10, 1)],
        input_shape=(8, 8, 3),
        num_classes=4,
        budget=60_000,
    )
    assert model.bank.bank_config is model.bank_config
    assert model.bank_config.seed is not None
    assert model.bank_config.chain_sort is None
    assert model.chain_sort == model.bank.chain_sort == "stable"
    again = keras_swn.SWNModel.from_config(model.get_config())
    assert again.bank_config == model.bank_config
    assert again.bank.bank_config is again.bank_config
    seeded = TemplateBank(_specs(), _shared_policy(), 10_000)
    assert seeded.bank_config == dataclasses.replace(
        keras_swn.BankConfig(budget=10_000), seed=seeded.seed
    )


class TestArguments:
    @pytest.mark.parametrize("value", ["fan_in", 9.0, True, 3])
    def test_template_fan_in(self, value):
        with pytest.raises(
            ValueError,
            match=r"`template_fan_in`\. Expected one of 'kernel' .*'layer' or "
            r"9 .*Received: template_fan_in=",
        ):
            TemplateBank(
                _specs(), _shared_policy(), 10_000, template_fan_in=value
            )

    def test_policy(self):
        with pytest.raises(ValueError, match=r"Expected a SharingPolicy"):
            TemplateBank(_specs(), [[0, 0], [0]], 10_000)
        bank = TemplateBank(_specs(), _shared_policy().to_dict(), 10_000)
        assert bank.policy == _shared_policy()
