"""keras_swn: SuperWeight Networks for Keras 3.

Networks, and ensembles of networks, whose kernels are composed at every
step from a shared budget of trainable templates (Teterwak et al.,
"Learning to Compose SuperWeights for Neural Parameter Allocation Search",
WACV 2024).

`import keras_swn` imports every submodule (and so Keras), which registers
the library's classes for `.keras` loading; the `keras-swn` command
imports them on first use (`keras_swn.lazy`).
"""

from keras_swn.lazy import LAZY
from keras_swn.lazy import export_names
from keras_swn.version import __version__

__all__ = ["__version__"]
export_names(
    globals(),
    {
        **{
            name: f"keras_swn.{name}"
            for name in (
                "analysis",
                "callbacks",
                "data",
                "ensembles",
                "export",
                "layers",
                "models",
                "search",
            )
        },
        "BankConfig": "keras_swn.bank.bank_config",
        "BankPlan": "keras_swn.bank.plan",
        "BudgetReport": "keras_swn.bank.budget_report",
        "LayerSpec": "keras_swn.policy.layer_spec",
        "MemberBudget": "keras_swn.bank.budget_report",
        "SWNModel": "keras_swn.models.swn_model",
        "SharingPolicy": "keras_swn.policy.sharing_policy",
        "TemplateBank": "keras_swn.bank.template_bank",
        "clone_swn_model": "keras_swn.models.rebuild",
    },
)
