"""Bank planning (pure) and the `TemplateBank` layer that owns the variables."""

from typing import TYPE_CHECKING

from keras_swn.lazy import export_names

# The exports below, imported statically for type checkers only (keep the
# two lists equal).
if TYPE_CHECKING:
    from keras_swn.bank.budget_report import BudgetReport
    from keras_swn.bank.budget_report import MemberBudget
    from keras_swn.bank.plan import BankPlan
    from keras_swn.bank.template_bank import TemplateBank
    from keras_swn.bank.template_bank import use_gains

export_names(
    globals(),
    {
        "BankPlan": "keras_swn.bank.plan",
        "BudgetReport": "keras_swn.bank.budget_report",
        "MemberBudget": "keras_swn.bank.budget_report",
        "TemplateBank": "keras_swn.bank.template_bank",
        "use_gains": "keras_swn.bank.template_bank",
    },
)
