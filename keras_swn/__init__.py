"""keras_swn: SuperWeight Networks for Keras 3.

Networks, and ensembles of networks, whose kernels are composed at every
step from a shared budget of trainable templates (Teterwak et al.,
"Learning to Compose SuperWeights for Neural Parameter Allocation Search",
WACV 2024).

`import keras_swn` imports every submodule (and so Keras), which registers
the library's classes for `.keras` loading; the `keras-swn` command
imports them on first use (`keras_swn.lazy`).
"""

from typing import TYPE_CHECKING

from keras_swn.lazy import LAZY
from keras_swn.lazy import export_names
from keras_swn.version import __version__

# The exports below, imported statically for type checkers only (keep the
# two lists equal).
if TYPE_CHECKING:
    from keras_swn import analysis
    from keras_swn import callbacks
    from keras_swn import data
    from keras_swn import ensembles
    from keras_swn import export
    from keras_swn import layers
    from keras_swn import models
    from keras_swn import search
    from keras_swn.bank.bank_config import BankConfig
    from keras_swn.bank.budget_report import BudgetReport
    from keras_swn.bank.budget_report import MemberBudget
    from keras_swn.bank.plan import BankPlan
    from keras_swn.bank.template_bank import TemplateBank
    from keras_swn.models.rebuild import clone_swn_model
    from keras_swn.models.swn_model import SWNModel
    from keras_swn.policy.layer_spec import LayerSpec
    from keras_swn.policy.sharing_policy import SharingPolicy

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
