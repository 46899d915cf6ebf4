"""Results of a run: the `results.json` dicts and their printed summaries.

`search_results` assembles what `SearchAndRefine` writes at the end of a
search, `training_results` what `train_and_save` writes after a plain
training run; both carry the validation accuracy of every member and of
the ensemble in the same keys (`evaluation_fields`), and
`print_accuracy` / `print_search_summary` print them.
"""

from __future__ import annotations

import os
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


def search_results(
    *,
    config: Any,
    run: Mapping[str, Any],
    model: Any,
    report: BudgetReport,
    evaluation: Mapping[str, float] | None,
    phase_log: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The contents of a search's `results.json`.

    Args:
        config: the `SearchConfig`.
        run: the `RunConfig` as a dict.
        model: the final `SWNModel`.
        report: its `BudgetReport`.
        evaluation: the final validation logs (floats), or None.
        phase_log: the oracle's phase log.
    """
    names = member_names(config.members)
    log = {e["phase"]: e for e in phase_log}
    evaluated = evaluation_fields(evaluation, len(names))
    return {
        "members": names,
        "sharing": config.sharing.value,
        "budget": config.budget,
        "seed": config.seed,
        "backend": keras.backend.backend(),
        **evaluated,
        "groups": model.policy.num_groups,
        "groups_per_member": [list(r) for r in model.policy.groups],
        "threshold": log.get("clustering", {}).get("threshold"),
        "coefficient_vectors": report.coefficient_vectors,
        "parameters": parameter_fields(report),
        "phases": list(phase_log),
        "options": config.to_dict(),
        "run": dict(run),
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


def print_search_summary(results: Mapping[str, Any], project_dir: str) -> None:
    """Validation accuracy per member and of the ensemble, the parameters
    and the groups (like KerasTuner's `results_summary`)."""
    r = results
    print("Results summary")
    print(f"Results in {os.path.abspath(project_dir)}")
    print(f"Sharing: {r['sharing']}; budget {r['budget']:,}")
    if r["val_ensemble_accuracy"] is not None:
        print_accuracy(
            r["members"], r["val_member_accuracy"], r["val_ensemble_accuracy"]
        )
    else:
        print("Validation accuracy: no validation data")
    p = r["parameters"]
    print(
        f"Parameters: templates {p['bank_total']:,} (budget "
        f"{p['budget']:,}), coefficients {p['coefficient_scalars']:,}, "
        f"BatchNorm and heads {p['unshared_trainable']:,}; trainable "
        f"total {p['trainable_total']:,} (without sharing "
        f"{p['params_unshared']:,})"
    )
    thr = r["threshold"]
    print(
        f"Groups: {r['groups']}"
        + ("" if thr is None else f" (threshold {thr:.3g})")
        + f"; coefficient vectors {r['coefficient_vectors']}"
    )
    for name, row in zip(r["members"], r["groups_per_member"]):
        print(f"  {name:<12} {row}")
