"""Results of a run: the fields of `results.json` and the accuracy printout.

`training_results` assembles what `train_and_save` writes after a plain
training run; `keras_swn.search.reporting.search_results` what
`SearchAndRefine` writes at the end of a search. Both carry the validation
accuracy of every member and of the ensemble in the same keys
(`evaluation_fields`); `print_accuracy` prints them.
"""

from __future__ import annotations

from typing import Any
from typing import Mapping
from typing import Sequence

import keras

from keras_swn.bank.budget_report import BudgetReport
from keras_swn.version import __version__


def member_names(builders: Sequence[Any]) -> list[str]:
    """The display name of every member builder."""
    return [getattr(b, "name", type(b).__name__) for b in builders]


def evaluation_fields(
    evaluation: Mapping[str, float] | None, num_members: int
) -> dict[str, Any]:
    """`val_loss`, `val_member_accuracy`, `val_ensemble_accuracy` and the
    whole `evaluation` (all None without validation data)."""
    if evaluation is None:
        return {
            "val_loss": None,
            "val_member_accuracy": None,
            "val_ensemble_accuracy": None,
            "evaluation": None,
        }
    return {
        "val_loss": evaluation.get("loss"),
        "val_member_accuracy": [
            evaluation.get(f"member_{i}_accuracy") for i in range(num_members)
        ],
        "val_ensemble_accuracy": evaluation.get("ensemble_accuracy"),
        "evaluation": dict(evaluation),
    }


def parameter_fields(report: BudgetReport) -> dict[str, int]:
    """The parameter counts of a `BudgetReport`."""
    return {
        "budget": report.budget,
        "bank_total": report.bank_total,
        "coefficient_scalars": report.coefficient_scalars,
        "unshared_trainable": report.unshared_trainable,
        "trainable_total": report.trainable_total,
        "params_unshared": report.params_unshared,
    }


def training_results(
    *,
    model: Any,
    train_examples: int | None,
    val_examples: int | None,
    epochs: int,
    batch_size: int,
    recipe: Any,
    evaluation: Mapping[str, float] | None,
    train_seconds: float,
) -> dict[str, Any]:
    """The contents of `train_and_save`'s `results.json`."""
    names = member_names(model.member_builders)
    report = model.budget_report()
    return {
        "members": names,
        "budget": model.budget,
        "input_shape": list(model.input_shape_),
        "num_classes": model.num_classes,
        "train_examples": (
            None if train_examples is None else int(train_examples)
        ),
        "val_examples": None if val_examples is None else int(val_examples),
        "epochs": epochs,
        "batch_size": batch_size,
        **recipe.to_dict(),
        "template_fan_in": model.template_fan_in,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "keras_swn_version": __version__,
        "train_seconds": round(train_seconds, 3),
        "trainable_total": report.trainable_total,
        **evaluation_fields(evaluation, len(names)),
    }


def print_accuracy(
    names: Sequence[str],
    member_accuracy: Sequence[float | None],
    ensemble_accuracy: float,
) -> None:
    """The validation accuracy of every member and of the ensemble."""
    print("Validation accuracy")
    for i, (name, acc) in enumerate(zip(names, member_accuracy)):
        acc = float("nan") if acc is None else acc
        print(f"  member {i} {name:<10} {acc:.4f}")
    print(f"  ensemble          {ensemble_accuracy:.4f}")
