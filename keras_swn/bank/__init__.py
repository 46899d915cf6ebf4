"""Bank planning (pure) and the `TemplateBank` layer that owns the variables."""

from keras_swn.lazy import export_names

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
