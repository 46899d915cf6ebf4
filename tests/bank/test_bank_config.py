"""`BankConfig`: validated once, JSON round trip, merged with arguments."""

import json

import pytest

from keras_swn.bank.bank_config import BankConfig
from keras_swn.validation import ArgumentError


class TestBankConfig:
    def test_defaults_and_json_round_trip(self):
        config = BankConfig(budget=1000)
        assert config == BankConfig(
            budget=1000,
            bank_size=8,
            template_fan_in="kernel",
            chain_sort=None,
            on_over_budget="raise",
            seed=None,
        )
        for c in (config, BankConfig(2, 3, 9, "reference", "report", 7)):
            assert (
                BankConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
            )

    @pytest.mark.parametrize(
        "field, value",
        [
            ("budget", 0),
            ("budget", 1.5),
            ("bank_size", 9),
            ("template_fan_in", 9.0),
            ("template_fan_in", True),
            ("chain_sort", "fast"),
            ("on_over_budget", "warn"),
            ("seed", "0"),
        ],
    )
    def test_bad_field_names_itself(self, field, value):
        kwargs = {"budget": 1000, field: value}
        with pytest.raises(ArgumentError, match=f"Received: {field}=") as e:
            BankConfig(**kwargs)
        assert e.value.argument == field

    def test_resolved_draws_a_seed_and_sets_the_chain_order(self):
        config = BankConfig(budget=1000).resolved(chain_sort="reference")
        assert isinstance(config.seed, int)
        assert config.chain_sort == "reference"
        assert BankConfig(budget=1, seed=5).resolved().seed == 5

    def test_merge(self):
        config = BankConfig(budget=1000, seed=2)
        assert BankConfig.merge(None, budget=1000, seed=2) == config
        assert BankConfig.merge(config.to_dict(), budget=1000) == config
        assert BankConfig.merge(config, bank_size=8, seed=None) == config
        with pytest.raises(ValueError, match=r"\['budget'\].*not both"):
            BankConfig.merge(config, budget=5)
        with pytest.raises(ValueError, match="Unknown keys"):
            BankConfig.from_dict({"budget": 1, "bins": 4})
