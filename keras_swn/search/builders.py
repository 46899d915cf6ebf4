"""The models of a search: the search-phase model, the final model built
from a policy, its refine rebuild, and their plans and budget reports.

All are `SWNModel`s built from one `SearchConfig` and compiled with the
run's `TrainingRecipe`.
"""

from __future__ import annotations

from keras import ops

from keras_swn.analysis.refine import RefineResult
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.plan import BankPlan
from keras_swn.models.rebuild import transfer_optimizer_state
from keras_swn.models.swn_model import SWNModel
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.search.config import SearchConfig
from keras_swn.training.recipe import TrainingRecipe


def own_variables(member) -> list:
    """A member's own trainable variables (BatchNorm, head, biases)."""
    found = []
    for layer in member.layers:
        if getattr(layer, "layer_key", None) is not None:
            bias = getattr(layer, "bias", None)
            if bias is not None and getattr(bias, "trainable", False):
                found.append(bias)
            continue
        found.extend(layer.trainable_variables)
    return found


class SearchModels:
    """Builds and compiles the models of one search.

    Args:
        config: the `SearchConfig`.
        jit_compile: passed to `compile`.
        run_eagerly: passed to `compile`.
    """

    def __init__(
        self,
        config: SearchConfig,
        *,
        jit_compile: bool | str = "auto",
        run_eagerly: bool = False,
    ):
        self.config = config
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly

    def model_kwargs(self) -> dict:
        """The `SWNModel` arguments every model of the search shares."""
        return self.config.model_kwargs()

    def compile(self, model: SWNModel, recipe: TrainingRecipe) -> None:
        recipe.compile(
            model,
            jit_compile=self.jit_compile,
            run_eagerly=self.run_eagerly,
        )

    @property
    def search_coefficients(self) -> str:
        """The coefficient regime of the search model: one vector per bank
        for `signal="gradient"` (the reference); one per layer when the
        similarity reads weights (`"gradient+weight"`, `"parameter"`), as
        the reference's concat option does, since with hard-shared vectors
        every layer of a bin has the same weights in its top-left corner
        and a weight similarity would compare a kernel with itself."""
        if self.config.signal == "gradient":
            return "per_bank"
        return "per_layer"

    def search_model(self, recipe: TrainingRecipe) -> SWNModel:
        """The search-phase model: the initial bins, coefficients as
        `search_coefficients`; only `config.search_members` train
        (the others' own variables are frozen and not decayed)."""
        weights = [
            1.0 if m in self.config.search_members else 0.0
            for m in range(len(self.config.members))
        ]
        model = SWNModel(
            coefficient_sharing=self.search_coefficients,
            member_loss_weights=weights,
            name="search_phase_model",
            **self.model_kwargs(),
        )
        for m, w in enumerate(weights):
            if w == 0.0:  # not run in training: no gradient, no update
                for v in own_variables(model.members[m]):
                    v.trainable = False
        self.compile(model, recipe)
        return model

    def final_model(
        self, policy: SharingPolicy, recipe: TrainingRecipe
    ) -> SWNModel:
        """An `SWNModel` built afresh from `policy`."""
        model = SWNModel(policy=policy, **self.model_kwargs())
        self.compile(model, recipe)
        return model

    def refined(
        self, model: SWNModel, result: RefineResult, recipe: TrainingRecipe
    ) -> SWNModel:
        """`model` rebuilt with the refined policy and its trained values
        (refine), optimizer state and current learning rate carried over;
        `model` itself when the refine split nothing."""
        if not result.copies:
            return model
        new = model.refined(result.policy, copies=result.copies, compile=False)
        self.compile(new, recipe)
        transfer_optimizer_state(model, new)
        new.optimizer.learning_rate = float(
            ops.convert_to_numpy(model.optimizer.learning_rate)
        )
        return new

    def plan(self, policy: SharingPolicy) -> BankPlan:
        """The `BankPlan` of `policy` (raises when over budget, unless
        `on_over_budget="report"`)."""
        c = self.config
        return BankPlan.create(
            c.specs,
            policy,
            c.budget,
            bank_size=c.bank_size,
            chain_sort=c.chain_sort,
            on_over_budget=c.on_over_budget,
        )

    def initial_policy(self) -> SharingPolicy:
        """The search-phase policy: the initial bins, coefficients as
        `search_coefficients`."""
        c = self.config
        assert c.chain_sort is not None  # resolved by SearchConfig
        return SharingPolicy.from_bins(
            c.specs,
            c.num_bins,
            coefficients=self.search_coefficients,
            chain_sort=c.chain_sort,
        )

    def budget_report(self, policy: SharingPolicy) -> BudgetReport:
        """The `BudgetReport` of `policy` over the members."""
        c = self.config
        return BudgetReport.create(
            self.plan(policy),
            [
                b.unshared_params(c.input_shape, c.num_classes)
                for b in c.members
            ],
        )
