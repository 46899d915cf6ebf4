"""`SWNModel`: members sharing one template bank, trained with one `fit`."""

from __future__ import annotations

import os
from typing import Any
from typing import Mapping
from typing import Sequence

import keras
from keras import ops

from keras_swn import seeding
from keras_swn.api_export import swn_export
from keras_swn.bank.bank_config import BankConfig
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.models.capture import GradientCaptureMethods
from keras_swn.models.capture import KernelAccumulators
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.models.model_args import check_input_shape
from keras_swn.models.model_args import check_loss_weights
from keras_swn.models.model_args import check_members
from keras_swn.models.model_args import checked_fit_arguments
from keras_swn.models.model_args import policy_argument
from keras_swn.models.model_args import resolve_loss
from keras_swn.models.rebuild import RebuildMethods
from keras_swn.models.rebuild import clone_swn_model
from keras_swn.models.saving import SavingMethods
from keras_swn.models.trainers import CaptureTrainer
from keras_swn.models.weight_decay import configure_optimizer
from keras_swn.models.weight_decay import l2_penalty
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.probe import probes_active
from keras_swn.validation import check_choice
from keras_swn.validation import check_int
from keras_swn.validation import check_real
from keras_swn.validation import invalid_argument

__all__ = ["SWNModel", "clone_swn_model"]

_SHARING = ("per_layer", "per_bank")


@swn_export
class SWNModel(
    SavingMethods,
    RebuildMethods,
    GradientCaptureMethods,
    CaptureTrainer,
    keras.Model,
):
    """An ensemble of member networks whose kernels share one template bank.

    The model owns the [`TemplateBank`][keras_swn.TemplateBank] (so `.keras`
    files keep one set of shared variables) and builds every member from its
    builder, each member reading its kernels from the bank. Calling the model
    returns a list of logits, one per member. Training minimises the **sum** of
    the member losses on the same batch (see the algorithm page,
    [Ensembles and anytime prediction][ensembles]); `fit` logs each member's
    accuracy and the accuracy of the ensemble (mean of the member softmaxes).

    Args:
        members: list of member builders (e.g. `WideResNet(16, 4)`), the
            deepest first: member 0 seeds every group of the search.
        input_shape: tuple, the shape of one input (e.g. `(32, 32, 3)`).
        num_classes: int, the number of classes of every member's head.
        budget: int, the template budget: bank parameters only (see
            the algorithm page, [Budget and template allocation][budget]).
        num_bins: int, the number of initial bins `B`, used when
            `policy` is None.
        policy: a [`SharingPolicy`][keras_swn.SharingPolicy] (or its dict/JSON
            form); None uses the initial bins.
        coefficient_sharing: the coefficient regime when `policy` is None:
            `"per_layer"` (every layer mixes the templates with its own
            coefficients) or `"per_bank"` (the search-phase model:
            one coefficient vector per bank, hard-shared by every layer of
            every member).
        bank_size: int, the cap on templates per layer (1 to 8).
        template_fan_in: the initialisation: `"kernel"` (default: every
            composed kernel starts He-normal for its own fan-in), `"layer"`
            or `9` (the reference's); see `keras_swn.TemplateBank`.
        chain_sort: `None` (default: the policy's chain order; `"stable"`
            for the initial bins), `"stable"` or `"reference"` (see the
            algorithm page, [Stacking chains][stacking-chains]).
        on_over_budget: `"raise"` or `"report"` (F6).
        seed: int or None, the root seed of every initial value.
        weight_decay: float >= 0, coupled L2 weight decay as a loss term
            `weight_decay / 2 * ||w||^2` over
            `keras_swn.models.decayed_variables(model)`: every trainable
            variable except the coefficients (templates, BatchNorm, heads),
            each shared variable counted once: PyTorch's SGD
            `weight_decay` (see the algorithm page, [Training recipe][recipe]).
        member_loss_weights: None or one float per member; the training
            loss is the weighted sum of member losses. A member with weight
            0 is not trained (the search trains only some members): in
            training mode it is not run at all (no forward compute, no
            BatchNorm statistics update, no training accuracy), and its own
            variables get no weight decay. Gradient capture
            (`collect_kernel_gradients`, the refine pass) still uses every
            member's own loss.
        capture_kernel_gradients: bool, create one non-trainable accumulator per
            shared layer so that `fit` can add dL/dkernel into it (see
            `start_kernel_gradient_capture` and
            [`keras_swn.callbacks.KernelGradientCapture`][]).
            The step stays compiled and works under `tf.distribute` strategies.
        bank_config: a [`keras_swn.BankConfig`][] (or its
            dict form) holding `budget`, `bank_size`, `template_fan_in`,
            `chain_sort`, `on_over_budget` and `seed`, instead of passing them
            one by one; the model keeps it (seed drawn) as `bank_config` and
            passes it whole to its `TemplateBank`.

    Anytime prediction under a FLOPs budget is
    `keras_swn.ensembles.predict_within_budget(model, x, flops_budget=...)`.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> [tuple(y.shape) for y in model(keras.ops.ones((2, 8, 8, 3)))]
        [(2, 10)]
    """

    def __init__(
        self,
        members: Sequence[MemberBuilder | Mapping],
        input_shape: Sequence[int],
        num_classes: int,
        *,
        budget: int | None = None,
        num_bins: int = 4,
        policy: SharingPolicy | Mapping | str | None = None,
        coefficient_sharing: str = "per_layer",
        bank_size: int = 8,
        template_fan_in: int | str = "kernel",
        chain_sort: str | None = None,
        on_over_budget: str = "raise",
        seed: int | None = None,
        weight_decay: float = 0.0,
        member_loss_weights: Sequence[float] | None = None,
        capture_kernel_gradients: bool = False,
        bank_config: BankConfig | Mapping | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # Every argument is checked before anything is built.
        self.member_builders = check_members(members)
        self.input_shape_ = check_input_shape(input_shape)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.num_bins = check_int("num_bins", num_bins, minimum=1)
        self.coefficient_sharing = check_choice(
            "coefficient_sharing", coefficient_sharing, _SHARING
        )
        self.bank_config = BankConfig.from_arguments(locals()).resolved()
        self.weight_decay = check_real(
            "weight_decay", weight_decay, nonnegative=True
        )
        self.member_loss_weights = check_loss_weights(
            member_loss_weights, len(self.member_builders)
        )
        self.capture_kernel_gradients = bool(capture_kernel_gradients)
        self.specs = tuple(
            s
            for i, builder in enumerate(self.member_builders)
            for s in builder.layer_specs(self.input_shape_, member=i)
        )
        self.bank = TemplateBank(
            self.specs,
            self._policy_of(policy),
            bank_config=self.bank_config,
            name="bank",
        )
        self.bank.build()
        self.members = [
            builder.build_member(
                self.bank,
                i,
                self.input_shape_,
                self.num_classes,
                name=f"member_{i}",
                seed=int(
                    seeding.rng_for(self.seed, "member", i).integers(2**31)
                ),
            )
            for i, builder in enumerate(self.member_builders)
        ]
        self.member_accuracy = [
            keras.metrics.SparseCategoricalAccuracy(name=f"member_{i}_accuracy")
            for i in range(len(self.members))
        ]
        self.ensemble_accuracy = keras.metrics.SparseCategoricalAccuracy(
            name="ensemble_accuracy"
        )
        self.member_loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        )
        self._accumulators = (
            KernelAccumulators(self) if self.capture_kernel_gradients else None
        )
        self.built = True

    @classmethod
    def from_keras(
        cls, models: Any, *, budget: int | float, **kwargs: Any
    ) -> "SWNModel":
        """An SWN of Keras models: each model as a `KerasMember`.

        Args:
            models: a functional or Sequential `keras.Model`, or a list of them
                (the deepest first); a
                [`MemberBuilder`][keras_swn.models.member_builder.MemberBuilder]
                is used as is.
            budget: int, the template budget, or a float in (0, 1]: that
                fraction of the shared kernels' parameters, summed over
                the members.
            **kwargs: [`KerasMember`][keras_swn.models.keras_member.KerasMember]
                options (`share`, `share_head`, `init`) and
                [`SWNModel`][keras_swn.SWNModel] arguments; `input_shape` and
                `num_classes` default to the first model's.

        Returns:
            The `SWNModel`.

        Examples:
            >>> inputs = keras.Input((8, 8, 3))
            >>> x = keras.layers.Conv2D(8, 3, name="conv1")(inputs)
            >>> x = keras.layers.Conv2D(8, 3, name="conv2")(x)
            >>> x = keras.layers.GlobalAveragePooling2D()(x)
            >>> net = keras.Model(inputs, keras.layers.Dense(10)(x))
            >>> model = keras_swn.SWNModel.from_keras(
            ...     net, budget=0.9, num_bins=1, seed=0)
            >>> model.budget  # 90% of the 216 + 576 kernel parameters
            712
        """
        from keras_swn.models.keras_member import keras_members

        members, budget, kwargs = keras_members(models, budget, kwargs)
        return cls(members=members, budget=budget, **kwargs)

    def _policy_of(self, policy) -> SharingPolicy:
        """`policy` as a `SharingPolicy`; None: the initial bins."""
        if isinstance(policy, (str, os.PathLike)):
            return policy_argument(policy)
        if isinstance(policy, Mapping):
            return SharingPolicy.from_dict(policy)
        if policy is not None:
            return policy
        chain_sort = self.bank_config.chain_sort
        return SharingPolicy.from_bins(
            self.specs,
            self.num_bins,
            coefficients=self.coefficient_sharing,
            **({} if chain_sort is None else {"chain_sort": chain_sort}),
        )

    # The bank options, as before `BankConfig` (read-only).
    budget = property(lambda self: self.bank_config.budget)
    bank_size = property(lambda self: self.bank_config.bank_size)
    template_fan_in = property(lambda self: self.bank_config.template_fan_in)
    on_over_budget = property(lambda self: self.bank_config.on_over_budget)
    seed = property(lambda self: self.bank_config.seed)

    @property
    def chain_sort(self) -> str:
        """The chain order of the bank's plan.

        `chain_sort=None` is resolved to the policy's."""
        return self.bank.chain_sort

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
        """The SuperWeight layers, in (member, layer id) order.

        Args:
            member: int or None, one member's layers, or every member's.

        Returns:
            layers (list): the SuperWeight layers.
        """
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
        """Every member's logits.

        In training mode, members with loss weight
        0 are skipped (their entry is None), or, in a gradient-capture pass,
        run in inference mode so that their BatchNorm statistics stay."""
        frozen = self._frozen_members() if training else ()
        capturing = probes_active()
        running = [
            i for i in range(len(self.members)) if capturing or i not in frozen
        ]
        # Every kernel of the running members composed in one batched pass.
        with self.bank.composed(running):
            return [
                m(inputs, training=training and i not in frozen)
                if i in running
                else None
                for i, m in enumerate(self.members)
            ]

    def _frozen_members(self) -> frozenset:
        """Indices of the members with loss weight 0."""
        weights = self.member_loss_weights or ()
        return frozenset(i for i, w in enumerate(weights) if w == 0)

    def probe_loss(self, y, y_pred, sample_weight=None):
        """The loss whose gradients the probes capture.

        The unweighted sum
        of every member's own loss (no weight decay, no loss weights), so
        each member's dL/dkernel is that member's own gradient even where
        the member does not train.

        Args:
            y (Tensor): the labels.
            y_pred (list): the members' logits, one per member.
            sample_weight (Tensor | None): optional per-example weights.

        Returns:
            loss (Tensor): the scalar loss.
        """
        return ops.sum(
            ops.stack(
                [
                    self.member_loss(y, logits, sample_weight=sample_weight)
                    for logits in y_pred
                ]
            )
        )

    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Any = None,
        **kwargs: Any,
    ):
        """Configure training; `loss` is applied to every member's logits.

        Args:
            optimizer: as in `keras.Model.compile`.
            loss: the per-member loss (default: sparse categorical
                cross-entropy on logits). The training loss is the sum over
                members.
            metrics: None or `["accuracy"]`: member and ensemble accuracy
                are always reported.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, ...).
        """
        if metrics not in (None, [], ["accuracy"], ("accuracy",)):
            raise invalid_argument(
                "metrics",
                "SWNModel reports each member's accuracy and the ensemble "
                "accuracy itself; pass None or ['accuracy'].",
                metrics,
            )
        self.member_loss = resolve_loss(loss)
        self._member_loss_config = loss
        super().compile(optimizer=optimizer, loss=None, **kwargs)
        configure_optimizer(self, self.optimizer)  # the one L2 rule

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
        self,
        x: Any = None,
        y: Any = None,
        y_pred=None,
        sample_weight=None,
        training=True,
    ):
        """The sum of the member losses (plus any layer losses)."""
        weights = self.member_loss_weights or [1.0] * len(y_pred)
        losses = [
            self.member_loss(y, logits, sample_weight=sample_weight) * w
            for logits, w in zip(y_pred, weights)
            if w != 0 and logits is not None
        ]
        losses += [ops.sum(loss) for loss in self.losses]
        if self.weight_decay and training:
            losses.append(l2_penalty(self, self.weight_decay))
        return ops.sum(ops.stack(losses))

    def compute_metrics(self, x: Any, y: Any, y_pred, sample_weight=None):
        probabilities = [
            None if logits is None else ops.softmax(logits) for logits in y_pred
        ]
        for metric, p in zip(self.member_accuracy, probabilities):
            if p is not None:
                metric.update_state(y, p, sample_weight=sample_weight)
        ensemble = ops.mean(
            ops.stack([p for p in probabilities if p is not None]), axis=0
        )
        self.ensemble_accuracy.update_state(
            y, ensemble, sample_weight=sample_weight
        )
        return self.get_metrics_result()

    def fit(self, *args: Any, **kwargs: Any) -> keras.callbacks.History:
        """`keras.Model.fit`, the data checked first.

        `x`/`y` and `validation_data`, in any form `fit` takes, get the
        checks of `keras_swn.data_checks.check_data` (input shape, finite
        values, class ids, not empty, `steps_per_epoch` for an infinite
        dataset) and fail with an error naming the argument.

        Args:
            *args: as `keras.Model.fit`.
            **kwargs: as `keras.Model.fit`.

        Returns:
            The `History`.
        """
        return super().fit(**checked_fit_arguments(self, args, kwargs))

    def predict_ensemble(self, x: Any, **kwargs: Any):
        """Mean of the member softmax probabilities, as a NumPy array.

        Args:
            x: the inputs, as `predict` takes them.
            **kwargs: passed to `predict` (`batch_size`, `verbose`, ...).

        Returns:
            probabilities (np.ndarray): `(N, num_classes)`.
        """
        logits = self.predict(x, **kwargs)
        probs = [keras.ops.convert_to_numpy(ops.softmax(l)) for l in logits]
        return sum(probs) / len(probs)

    # ------------------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            "members": [
                keras.saving.serialize_keras_object(b)
                for b in self.member_builders
            ],
            "input_shape": list(self.input_shape_),
            "num_classes": self.num_classes,
            "num_bins": self.num_bins,
            "policy": self.policy.to_dict(),
            "coefficient_sharing": self.coefficient_sharing,
            "bank_config": self.bank_config.to_dict(),
            "weight_decay": self.weight_decay,
            "member_loss_weights": self.member_loss_weights,
            "capture_kernel_gradients": self.capture_kernel_gradients,
        }
