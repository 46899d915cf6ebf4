"""`SWNModel`: members sharing one template bank, trained with one `fit`."""

from __future__ import annotations

from typing import Any
from typing import Mapping
from typing import Sequence

import keras
from keras import ops

from keras_swn import seeding
from keras_swn.api_export import swn_export
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.bank.template_bank import coefficient_probe_key
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.models.trainers import CaptureTrainer
from keras_swn.models.trainers import replica_count
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.probe import probes_active

_SHARING = ("per_layer", "per_bank")


@swn_export
class SWNModel(CaptureTrainer, keras.Model):
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
        template_fan_in: the initialisation: `"kernel"` (default: every
            composed kernel starts He-normal for its own fan-in), `"layer"`
            or `9` (the reference's); see `keras_swn.TemplateBank`.
        chain_sort: `"stable"` or `"reference"` (§1.4).
        on_over_budget: `"raise"` or `"report"` (F6).
        seed: int or None, the root seed of every initial value.
        weight_decay: float, coupled L2 weight decay as a loss term
            `weight_decay / 2 * ||w||^2` over every trainable variable except
            the coefficients (templates, BatchNorm, heads), each shared
            variable counted once: PyTorch's SGD `weight_decay` (§5, §9.4).
        member_loss_weights: None or one float per member; the training
            loss is the weighted sum of member losses. A member with weight
            0 is not trained (the search trains only some members): in
            training mode it is not run at all (no forward compute, no
            BatchNorm statistics update, no training accuracy), and its own
            variables get no weight decay. Gradient capture
            (`collect_kernel_gradients`, the refine pass) still uses every
            member's own loss.
        capture_kernel_gradients: bool, create one non-trainable
            accumulator per shared layer so that `fit` can add dL/dkernel
            into it (see `start_kernel_gradient_capture` and
            `keras_swn.callbacks.KernelGradientCapture`). The step stays
            compiled and works under `tf.distribute` strategies.

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
        budget: int,
        num_bins: int = 4,
        policy: SharingPolicy | Mapping | str | None = None,
        coefficient_sharing: str = "per_layer",
        bank_size: int = 8,
        template_fan_in: int | str = "kernel",
        chain_sort: str = "stable",
        on_over_budget: str = "raise",
        seed: int | None = None,
        weight_decay: float = 0.0,
        member_loss_weights: Sequence[float] | None = None,
        capture_kernel_gradients: bool = False,
        **kwargs: Any,
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
                seed=int(
                    seeding.rng_for(self.seed, "member", i).integers(2**31)
                ),
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
        if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise ValueError(
                "Invalid value for argument `weight_decay`. Expected a "
                f"non-negative float. Received: weight_decay={weight_decay!r}"
            )
        self.weight_decay = float(weight_decay)
        if member_loss_weights is not None:
            member_loss_weights = [float(w) for w in member_loss_weights]
            if (
                len(member_loss_weights) != len(builders)
                or min(member_loss_weights) < 0
            ):
                raise ValueError(
                    "Invalid value for argument `member_loss_weights`. "
                    f"Expected {len(builders)} non-negative floats. "
                    f"Received: member_loss_weights={member_loss_weights!r}"
                )
        self.member_loss_weights = member_loss_weights
        self.capture_kernel_gradients = bool(capture_kernel_gradients)
        self._capture_on = False
        self._kernel_accumulators = []
        if self.capture_kernel_gradients:
            for layer in self.shared_layers():
                m, l = layer.layer_key
                self._kernel_accumulators.append(
                    self.add_weight(
                        name=f"kernel_gradient_m{m}_l{l}",
                        shape=self.bank.kernel_shape(layer.layer_key),
                        initializer="zeros",
                        trainable=False,
                        aggregation="mean",
                    )
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
    # Gradient capture (swn-algorithm.md §2.3, §3.2; keras3-notes §3)
    def _capture_active(self) -> bool:
        return self._capture_on

    def _capture_probes(self) -> list:
        return [
            (id(layer), self.bank.kernel_shape(layer.layer_key))
            for layer in self.shared_layers()
        ]

    def start_kernel_gradient_capture(self) -> None:
        """Zero the accumulators; from now on every `fit` step adds each
        shared layer's dL/dkernel into its accumulator."""
        if not self.capture_kernel_gradients:
            raise ValueError(
                "This model has no gradient accumulators. Build it with "
                "`capture_kernel_gradients=True`."
            )
        for acc in self._kernel_accumulators:
            acc.assign(ops.zeros(acc.shape))
        self._capture_on = True
        self.make_train_function(force=True)

    def stop_kernel_gradient_capture(self) -> None:
        """Stop accumulating (the accumulators keep their values)."""
        self._capture_on = False
        if self.compiled:
            self.make_train_function(force=True)

    def accumulated_kernel_gradients(self) -> list[dict]:
        """The accumulators, per member: layer name -> NumPy array (Keras
        layout). On JAX, call this after `fit` or after `jax_state_sync()`.
        """
        if hasattr(self, "jax_state_sync"):
            self.jax_state_sync()
        result = [{} for _ in self.members]
        for layer, acc in zip(self.shared_layers(), self._kernel_accumulators):
            result[layer.layer_key[0]][layer.name] = ops.convert_to_numpy(acc)
        return result

    def _summed_probe_gradients(
        self, x, y, probes, batch_size, batches, training
    ) -> list:
        """Probe gradients summed over the batches, in float64 NumPy."""
        from keras_swn.models.data_batches import iterate_batches

        sums = None
        for bx, by, bw in iterate_batches(
            x, y, batch_size=batch_size, batches=batches
        ):
            grads = self.compiled_probe_gradients(bx, by, bw, probes, training)
            grads = [ops.convert_to_numpy(g).astype("float64") for g in grads]
            sums = (
                grads if sums is None else [a + g for a, g in zip(sums, grads)]
            )
        if sums is None:
            raise ValueError("Received no data: `x` yielded no batch.")
        return sums

    def collect_kernel_gradients(
        self,
        x: Any,
        y: Any = None,
        *,
        batches: int | None = 1,
        batch_size: int = 128,
        training: bool = False,
    ) -> list[dict]:
        """dL/dkernel of every shared layer, as the reference's search does.

        BatchNorm runs in inference mode (`training=False`), no optimizer
        step is taken, and each member's gradient is the gradient of its own
        loss (members share no kernel, so one backward pass of the summed
        loss gives every member's gradient). Gradients are summed over
        `batches` batches (None: the whole data).

        Args:
            x: inputs (array) or a dataset of `(x, y)` batches.
            y: labels when `x` is an array.
            batches: int or None, how many batches to use (§2.3: one).
            batch_size: int, the batch size for arrays.
            training: bool, BatchNorm mode (default inference).

        Returns:
            Per member, a dict from shared-layer name to dL/dkernel as a
            NumPy array in the kernel's Keras layout.
        """
        layers = self.shared_layers()
        probes = [(id(l), self.bank.kernel_shape(l.layer_key)) for l in layers]
        sums = self._summed_probe_gradients(
            x, y, probes, batch_size, batches, training
        )
        result = [{} for _ in self.members]
        for layer, g in zip(layers, sums):
            result[layer.layer_key[0]][layer.name] = g
        return result

    def collect_coefficient_gradients(
        self,
        x: Any,
        y: Any = None,
        *,
        batches: int | None = None,
        batch_size: int = 128,
        training: bool = False,
    ) -> dict:
        """Per-slot coefficient gradients for refine (§3.2).

        For every slot `(member, layer_id, width)`, the gradient of that
        member's loss on the coefficient vector the slot reads, summed over
        the data (default: one full pass) with BatchNorm in inference mode.
        As in the reference, gradients on a shared vector are kept per
        member: a member's entry is the sum over all of its layers that
        read the same vector (a zero probe at each use site gives each use
        separately; they are summed per member and owner).

        Returns:
            dict from slot `(member, layer_id, width)` to a float64 NumPy
            vector of length `K` of its bank.
        """
        slots = [
            (m, l, w)
            for (m, l), recipe in sorted(self.plan.layers.items())
            for w in range(recipe.num_levels)
        ]
        probes = [
            (
                coefficient_probe_key(self.bank, (m, l), w),
                (
                    self.plan.banks[
                        (self.plan.layers[(m, l)].group, w)
                    ].templates,
                ),
            )
            for m, l, w in slots
        ]
        sums = self._summed_probe_gradients(
            x, y, probes, batch_size, batches, training
        )
        per_use = dict(zip(slots, sums))
        per_member: dict = {}
        for (m, l, w), g in per_use.items():
            key = (m, self.policy.owner((m, l, w)), w)
            per_member[key] = per_member.get(key, 0) + g
        return {
            (m, l, w): per_member[(m, self.policy.owner((m, l, w)), w)]
            for (m, l, w) in slots
        }

    # ------------------------------------------------------------------
    def call(self, inputs, training=None):
        """Every member's logits. In training mode, members with loss weight
        0 are skipped (their entry is None), or, in a gradient-capture pass,
        run in inference mode so that their BatchNorm statistics stay."""
        frozen = self._frozen_members() if training else ()
        capture = probes_active()
        return [
            None
            if i in frozen and not capture
            else m(inputs, training=training and i not in frozen)
            for i, m in enumerate(self.members)
        ]

    def _frozen_members(self) -> frozenset:
        """Indices of the members with loss weight 0."""
        weights = self.member_loss_weights or ()
        return frozenset(i for i, w in enumerate(weights) if w == 0)

    def probe_loss(self, y, y_pred, sample_weight=None):
        """The loss whose gradients the probes capture: the unweighted sum
        of every member's own loss (no weight decay, no loss weights), so
        each member's dL/dkernel is that member's own gradient even where
        the member does not train."""
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
            l2 = ops.sum(
                ops.stack([ops.sum(ops.square(v)) for v in self._decayed()])
            )
            losses.append(0.5 * self.weight_decay * l2 / replica_count())
        return ops.sum(ops.stack(losses))

    def _decayed(self) -> list:
        """Variables under weight decay: every trainable variable except the
        coefficients and the own variables of untrained members."""
        skip = {id(v) for v in self.bank.coefficients.values()}
        shared = {id(v) for v in self.bank.trainable_variables}
        for member, w in zip(self.members, self.member_loss_weights or []):
            if w == 0:
                skip |= {id(v) for v in member.trainable_variables} - shared
        return [v for v in self.trainable_variables if id(v) not in skip]

    def compute_metrics(self, x: Any, y: Any, y_pred, sample_weight=None):
        probabilities = [
            None if logits is None else ops.softmax(logits)
            for logits in y_pred
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

    def predict(
        self,
        x: Any,
        *args,
        flops_budget: Any = None,
        curve: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Like `keras.Model.predict`; with `flops_budget`, anytime
        prediction: only the members of the best subset whose inference
        FLOPs fit the budget are run (the others are not computed at all),
        and their ensemble probabilities are returned.

        Args:
            x: the inputs.
            flops_budget: None, or the per-image FLOPs budget (§4.3).
            curve: optional `keras_swn.ensembles.AnytimeCurve` from
                validation data, which ranks the subsets by accuracy;
                without it the subset with the most FLOPs that fits wins.
            **kwargs: passed to `keras.Model.predict` (without a budget).

        Returns:
            A list of logits per member, or, with `flops_budget`, the
            ensemble probabilities of the chosen members.
        """
        if flops_budget is None:
            return super().predict(x, *args, **kwargs)
        from keras_swn.ensembles.anytime import predict_within_budget

        return predict_within_budget(
            self,
            x,
            flops_budget=flops_budget,
            curve=curve,
            batch_size=kwargs.get("batch_size") or 128,
        )

    def predict_ensemble(self, x: Any, **kwargs: Any):
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
            "weight_decay": self.weight_decay,
            "member_loss_weights": self.member_loss_weights,
            "capture_kernel_gradients": self.capture_kernel_gradients,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def refined(
        self, policy: SharingPolicy, *, copies=None, compile: bool = True
    ) -> "SWNModel":
        """This model rebuilt for `policy`, with its trained values.

        Used after the refine step (§3.2): `policy` and `copies` come from
        `keras_swn.analysis.refine_partition`. Each new owner's coefficient
        vector starts from its former owner's value; templates, BatchNorm
        and heads are copied. If this model is compiled, the new one is
        compiled the same way and keeps the optimizer state of every
        unchanged variable (fresh state for the rewired coefficients).
        """
        from keras_swn.models.rebuild import transfer_optimizer_state
        from keras_swn.models.rebuild import transfer_weights

        new = self.with_policy(policy)
        transfer_weights(self, new, copies=copies)
        if compile and self.compiled and self.optimizer is not None:
            config = self.get_compile_config()
            new.compile_from_config(config)
            transfer_optimizer_state(self, new)
        return new

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
