"""keras_swn: SuperWeight Networks for Keras 3.

Networks, and ensembles of networks, whose kernels are composed at every
step from a shared budget of trainable templates (Teterwak et al.,
"Learning to Compose SuperWeights for Neural Parameter Allocation Search",
WACV 2024).
"""

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
from keras_swn.version import __version__

__all__ = [
    "BankConfig",
    "BankPlan",
    "BudgetReport",
    "LayerSpec",
    "MemberBudget",
    "SWNModel",
    "SharingPolicy",
    "TemplateBank",
    "__version__",
    "analysis",
    "callbacks",
    "clone_swn_model",
    "data",
    "ensembles",
    "export",
    "layers",
    "models",
    "search",
]
