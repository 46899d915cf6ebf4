"""`SWNModel`: members sharing one template bank, trained with one `fit`."""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
from keras import ops

from keras_swn import seeding
from keras_swn.api_export import swn_export
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy

_SHARING = ("per_layer", "per_bank")


@swn_export
class SWNModel(keras.Model):
    """An ensemble of member networks whose kernels share one template bank.

    The model owns the `TemplateBank` (so `.keras` files keep one set of
    shared variables) and builds every member from its builder, each member
    reading its kernels from the bank. Calling the model returns a list of
    logits, one per member. Training minimises the **sum** of the member
    losses on the same batch (swn-algorithm.md §4.2); `fit` logs each
    member's accuracy and the accuracy of the ensemble (mean of the member
    softmaxes).

    Args:
        members: list of member builders (e.g. `WideResNet(16, 4)`), the
            deepest first: member 0 seeds every group of the search.
        input_shape: tuple, the shape of one input (e.g. `(32, 32, 3)`).
        num_classes: int, the number of classes of every member's head.
        budget: int, the template budget: bank parameters only (§1.7).
        num_bins: int, the number of initial bins `B` (§1.3), used when
            `policy` is None.
        policy: a `SharingPolicy` (or its dict/JSON form); None uses the
            initial bins.
        coefficient_sharing: the coefficient regime when `policy` is None:
            `"per_layer"` (every layer mixes the templates with its own
            coefficients) or `"per_bank"` (the search-phase model of §2.1:
            one coefficient vector per bank, hard-shared by every layer of
            every member).
        bank_size: int, the cap on templates per layer (1 to 8).
        template_fan_in: `9` (reference) or `"layer"` (§0.4).
        chain_sort: `"stable"` or `"reference"` (§1.4).
        on_over_budget: `"raise"` or `"report"` (F6).
        seed: int or None, the root seed of every initial value.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=20_000, seed=0)
        >>> [tuple(y.shape) for y in model(keras.ops.ones((2, 8, 8, 3)))]
        [(2, 10)]
    """

    def __init__(
        self,
        members: Sequence[MemberBuilder | Mapping],
        input_shape: Sequence[int],
        num_classes: int,
        *,
        budget: int,
        num_bins: int = 4,
        policy: SharingPolicy | Mapping | str | None = None,
        coefficient_sharing: str = "per_layer",
        bank_size: int = 8,
        template_fan_in: int | str = 9,
        chain_sort: str = "stable",
        on_over_budget: str = "raise",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        builders = []
        for m in members:
            if isinstance(m, Mapping):
                m = keras.saving.deserialize_keras_object(m)
            if not isinstance(m, MemberBuilder):
                raise ValueError(
                    "Invalid value for argument `members`. Expected a list "
                    "of `keras_swn.models.MemberBuilder` (e.g. WideResNet). "
                    f"Received: members={members!r}"
                )
            builders.append(m)
        if not builders:
            raise ValueError(
                "Invalid value for argument `members`. Expected at least "
                f"one member. Received: members={members!r}"
            )
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, int)
            or num_classes < 2
        ):
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an int "
                f">= 2. Received: num_classes={num_classes!r}"
            )
        if coefficient_sharing not in _SHARING:
            raise ValueError(
                "Invalid value for argument `coefficient_sharing`. Expected "
                f"one of {_SHARING}. Received: "
                f"coefficient_sharing={coefficient_sharing!r}"
            )
        self.member_builders = builders
        self.input_shape_ = tuple(int(d) for d in input_shape)
        self.num_classes = num_classes
        self.budget = budget
        self.num_bins = num_bins
        self.coefficient_sharing = coefficient_sharing
        self.bank_size = bank_size
        self.template_fan_in = template_fan_in
        self.chain_sort = chain_sort
        self.on_over_budget = on_over_budget
        self.seed = seeding.resolve_seed(seed)

        specs: list[LayerSpec] = []
        for i, builder in enumerate(builders):
            specs += builder.layer_specs(self.input_shape_, member=i)
        self.specs = tuple(specs)
        if isinstance(policy, str):
            policy = SharingPolicy.from_json(policy)
        elif isinstance(policy, Mapping):
            policy = SharingPolicy.from_dict(policy)
        if policy is None:
            policy = SharingPolicy.from_bins(
                specs,
                num_bins,
                coefficients=coefficient_sharing,
                chain_sort=chain_sort,
            )
        self.bank = TemplateBank(
            specs,
            policy,
            budget,
            bank_size=bank_size,
            template_fan_in=template_fan_in,
            chain_sort=chain_sort,
            on_over_budget=on_over_budget,
            seed=self.seed,
            name="bank",
        )
        self.bank.build()
        self.members = [
            builder.build_member(
                self.bank,
                i,
                self.input_shape_,
                num_classes,
                name=f"member_{i}",
                seed=int(seeding.rng_for(self.seed, "member", i).integers(2**31)),
            )
            for i, builder in enumerate(builders)
        ]
        self.member_accuracy = [
            keras.metrics.SparseCategoricalAccuracy(name=f"member_{i}_accuracy")
            for i in range(len(builders))
        ]
        self.ensemble_accuracy = keras.metrics.SparseCategoricalAccuracy(
            name="ensemble_accuracy"
        )
        self.member_loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        )
        self.built = True

    # ------------------------------------------------------------------
    @property
    def policy(self) -> SharingPolicy:
        """The `SharingPolicy` the bank was built from."""
        return self.bank.policy

    @property
    def plan(self):
        """The `BankPlan`: chains, banks and the recipe of every layer."""
        return self.bank.plan

    @property
    def num_members(self) -> int:
        return len(self.members)

    def budget_report(self) -> BudgetReport:
        """Parameters per bank and per member, deduplicated totals."""
        return BudgetReport.create(
            self.bank.plan,
            [
                b.unshared_params(self.input_shape_, self.num_classes)
                for b in self.member_builders
            ],
        )

    def shared_layers(self, member: int | None = None) -> list:
        """The SuperWeight layers, in (member, layer id) order."""
        found = []
        for i, m in enumerate(self.members):
            if member is not None and i != member:
                continue
            for layer in m.layers:
                if getattr(layer, "layer_key", None) is not None and (
                    getattr(layer, "bank", None) is self.bank
                ):
                    found.append(layer)
        return sorted(found, key=lambda layer: layer.layer_key)

    # ------------------------------------------------------------------
    def call(self, inputs, training=None):
        return [m(inputs, training=training) for m in self.members]

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        **kwargs,
    ):
        """Configure training; `loss` is applied to every member's logits.

        Args:
            optimizer: as in `keras.Model.compile`.
            loss: the per-member loss (default: sparse categorical
                cross-entropy on logits). The training loss is the sum over
                members (§4.2).
            metrics: None or `["accuracy"]`: member and ensemble accuracy
                are always reported.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, ...).
        """
        if metrics not in (None, [], ["accuracy"], ("accuracy",)):
            raise ValueError(
                "Invalid value for argument `metrics`. SWNModel reports each "
                "member's accuracy and the ensemble accuracy itself; pass "
                f"None or ['accuracy']. Received: metrics={metrics!r}"
            )
        self.member_loss = (
            keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            if loss is None
            else keras.losses.get(loss)
        )
        self._member_loss_config = loss
        super().compile(optimizer=optimizer, loss=None, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["loss"] = keras.saving.serialize_keras_object(
                getattr(self, "_member_loss_config", None)
            )
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss_weights", None)
        config.pop("weighted_metrics", None)
        config.pop("metrics", None)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The sum of the member losses (plus any layer losses)."""
        losses = [
            self.member_loss(y, logits, sample_weight=sample_weight)
            for logits in y_pred
        ]
        losses += [ops.sum(loss) for loss in self.losses]
        return ops.sum(ops.stack(losses))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        probabilities = [ops.softmax(logits) for logits in y_pred]
        for metric, p in zip(self.member_accuracy, probabilities):
            metric.update_state(y, p, sample_weight=sample_weight)
        ensemble = ops.mean(ops.stack(probabilities), axis=0)
        self.ensemble_accuracy.update_state(
            y, ensemble, sample_weight=sample_weight
        )
        return self.get_metrics_result()

    def predict_ensemble(self, x, **kwargs):
        """Mean of the member softmax probabilities, as a NumPy array."""
        logits = self.predict(x, **kwargs)
        probs = [keras.ops.convert_to_numpy(ops.softmax(l)) for l in logits]
        return sum(probs) / len(probs)

    # ------------------------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "members": [
                keras.saving.serialize_keras_object(b)
                for b in self.member_builders
            ],
            "input_shape": list(self.input_shape_),
            "num_classes": self.num_classes,
            "budget": self.budget,
            "num_bins": self.num_bins,
            "policy": self.policy.to_dict(),
            "coefficient_sharing": self.coefficient_sharing,
            "bank_size": self.bank_size,
            "template_fan_in": self.template_fan_in,
            "chain_sort": self.chain_sort,
            "on_over_budget": self.on_over_budget,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def with_policy(self, policy: SharingPolicy, **overrides) -> "SWNModel":
        """A new, freshly initialised model of the same members and options
        with another sharing policy (the model's own is not changed)."""
        config = {**self.get_config(), "policy": policy.to_dict()}
        config.pop("name")
        config.update(overrides)
        return type(self).from_config(config)


def clone_swn_model(model: SWNModel, *, copy_weights: bool = True) -> SWNModel:
    """A copy of `model` with its own (still shared) bank.

    `keras.models.clone_model` would hand the clone the original's bank
    object; this builds a new model from the config, so the clone's members
    share the clone's bank, and copies the weights.
    """
    clone = type(model).from_config(model.get_config())
    if copy_weights:
        clone.set_weights(model.get_weights())
    return clone
