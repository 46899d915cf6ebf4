"""Bank planning (pure) and the `TemplateBank` layer that owns the variables."""

from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.budget_report import MemberBudget
from keras_swn.bank.plan import BankPlan
from keras_swn.bank.template_bank import TemplateBank
from keras_swn.bank.template_bank import use_gains

__all__ = [
    "BankPlan",
    "BudgetReport",
    "MemberBudget",
    "TemplateBank",
    "use_gains",
]
