"""The commands of `keras-swn`: flags -> library objects -> one call.

Each command maps its flags (`keras_swn.cli.flags.Parsed`) to the
library's own objects (`WideResNet` members, a `SharingPolicy`, a
`SearchConfig` and `RunConfig`, a `TrainingRecipe`) and makes one
library call: `BudgetReport.create` (plan), `train_and_save` (train),
`SearchAndRefine(...).search(...)` (search), `load_and_evaluate`
(evaluate). A `ValueError` from the library names its argument; the
command reports it on the matching flag.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any

from keras_swn.cli.flags import ARGUMENT_FLAGS
from keras_swn.cli.flags import DEFAULT_MEMBERS
from keras_swn.cli.flags import Parsed
from keras_swn.validation import argument_error
from keras_swn.validation import naming

_VERBOSE = {"bar": 1, "epoch": 2, "none": 0}


# ----------------------------------------------------------------------
# Flags -> library objects
def members(flags: Parsed) -> list:
    """The `WideResNet` members of `--members` (validated by the model)."""
    from keras_swn.models.wide_resnet import WideResNet

    pairs = flags.members or DEFAULT_MEMBERS
    try:
        return [WideResNet(depth, width) for depth, width in pairs]
    except ValueError as e:
        raise flags.error(e, "members") from None


def layer_specs(builders: list, input_shape: tuple) -> list:
    return [
        s
        for m, b in enumerate(builders)
        for s in b.layer_specs(input_shape, member=m)
    ]


def sharing_policy(flags: Parsed, specs: list, coefficient_sharing: str) -> Any:
    """`--policy` loaded, or the initial bins of `--bins`."""
    from keras_swn.policy.sharing_policy import SharingPolicy

    if flags.policy is None:
        return SharingPolicy.from_bins(
            specs, flags.bins, coefficients=coefficient_sharing
        )
    try:
        if not os.path.isfile(flags.policy):
            raise argument_error(
                "policy", "Expected an existing JSON file.", flags.policy
            )
        return SharingPolicy.load(flags.policy)
    except (ValueError, OSError) as e:
        raise flags.error(e, "policy") from None


def budget_report(
    flags: Parsed,
    builders: list,
    input_shape: tuple,
    num_classes: int,
    policy: Any,
    budget: int,
) -> Any:
    """The `BudgetReport` of the configuration; a plan that fails is
    reported on `--policy` when one was given, else on `--budget`."""
    from keras_swn.bank.budget_report import BudgetReport
    from keras_swn.bank.plan import BankPlan

    specs = layer_specs(builders, input_shape)
    try:
        with naming("policy" if flags.policy is not None else "budget"):
            plan = BankPlan.create(specs, policy, budget)
    except ValueError as e:
        raise flags.error(e) from None
    return BudgetReport.create(
        plan, [b.unshared_params(input_shape, num_classes) for b in builders]
    )


def default_budget(
    builders: list, input_shape: tuple, specs: list, policy: Any
) -> int:
    """The unshared conv parameters of the largest member (the whole
    ensemble in the budget of one network), at least one template per
    bank."""
    from keras_swn.policy.chains import one_template_total

    largest = max(
        b.unshared_params(input_shape, 2).conv_params_unshared for b in builders
    )
    return max(largest, one_template_total(specs, policy.groups))


def default_search_budget(specs: list, bins: int) -> int:
    """25% above the smallest budget that holds the initial bins (one
    template per bank): tight enough that the search must merge layers."""
    from keras_swn.policy.bins import initial_bins
    from keras_swn.policy.chains import one_template_total

    return int(one_template_total(specs, initial_bins(specs, bins)) * 1.25)


def library_kwargs(flags: Parsed, cls: type) -> dict[str, Any]:
    """The flags that set fields of the dataclass `cls`, by field name."""
    found = {}
    for field in dataclasses.fields(cls):
        flag = ARGUMENT_FLAGS.get(field.name, field.name)
        if flag in flags.values:
            found[field.name] = flags.values[flag]
    return found


def recipe(flags: Parsed) -> Any:
    """The `TrainingRecipe` of the recipe flags."""
    from keras_swn.search.recipe import TrainingRecipe

    try:
        return TrainingRecipe(**library_kwargs(flags, TrainingRecipe))
    except ValueError as e:
        raise flags.error(e) from None


def output_dir(flags: Parsed) -> str:
    """`--output_dir`, or a new `swn_runs/<command>-<timestamp>` folder."""
    path = flags.output_dir
    if path is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join("swn_runs", f"{flags.command}-{stamp}")
        n = 1
        while os.path.exists(path):
            n += 1
            path = os.path.join("swn_runs", f"{flags.command}-{stamp}-{n}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise flags.error(
            argument_error("output_dir", "Expected a folder.", path)
        )
    return path


def load_data(flags: Parsed) -> tuple:
    """`(description, train, validation, input_shape, classes)`.

    `--dataset cifar10|cifar100` goes through the TFDS pipeline
    (`keras_swn.data.cifar.load_cifar`: the train split augmented, the
    test split as validation); otherwise the arrays of `--data` or the
    bundled digits (`keras_swn.data.embedded`).
    """
    dataset = flags.values.get("dataset")
    if dataset in ("cifar10", "cifar100"):
        if flags.data is not None:
            raise flags.error(
                argument_error(
                    "dataset", "Pass --dataset or --data, not both.", dataset
                )
            )
        try:
            from keras_swn.data import cifar

            train = cifar.load_cifar(
                dataset,
                split="train",
                batch_size=flags.batch_size,
                seed=flags.seed,
            )
            val = cifar.load_cifar(
                dataset,
                split="test",
                batch_size=flags.batch_size,
                training=False,
            )
        except Exception as e:  # no TFDS, no data: many kinds of errors
            raise flags.error(e, "dataset") from None
        classes = 10 if dataset == "cifar10" else 100
        return dataset, train, val, (32, 32, 3), classes
    from keras_swn.data import embedded

    options = dict(
        validation_split=flags.validation_split,
        seed=flags.seed,
        normalize=flags.normalize,
    )
    try:
        if flags.data is None:
            arrays = embedded.load_digits_dataset(**options)
            name = "digits (scikit-learn)"
        else:
            arrays = embedded.load_npz(flags.data, **options)
            name = flags.data
    except ValueError as e:
        raise flags.error(e, "data") from None
    (x, y), (xv, yv) = arrays
    classes = int(max(y.max(), yv.max())) + 1
    shape = tuple(int(d) for d in x.shape[1:])
    name = f"{name}: {embedded.describe(arrays)}"
    return name, (x, y), (xv, yv), shape, classes


def num_classes(flags: Parsed, classes: int) -> int:
    """`--num_classes`, at least the data's classes (default: those)."""
    if flags.num_classes is None:
        return max(classes, 2)
    if flags.num_classes < classes:
        raise flags.error(
            argument_error(
                "num_classes",
                f"The data has labels up to {classes - 1}.",
                flags.num_classes,
            )
        )
    return flags.num_classes


# ----------------------------------------------------------------------
# The commands
def plan(flags: Parsed) -> int:
    """Print the budget report of a configuration (no model built)."""
    builders = members(flags)
    input_shape = flags.input_shape or (32, 32, 3)
    classes = flags.num_classes or 100
    sharing = flags.coefficient_sharing or "per_bank"
    specs = layer_specs(builders, input_shape)
    policy = sharing_policy(flags, specs, sharing)
    budget = flags.budget or default_budget(
        builders, input_shape, specs, policy
    )
    report = budget_report(
        flags, builders, input_shape, classes, policy, budget
    )
    names = [b.name for b in builders]
    if flags.json:
        out = report.to_dict()
        out["config"] = {
            "members": names,
            "budget": budget,
            "bins": flags.bins,
            "num_classes": classes,
            "input_shape": list(input_shape),
            "policy": flags.policy,
            "coefficient_sharing": None if flags.policy else sharing,
        }
        print(json.dumps(out))
        return 0
    what = (
        f"policy {flags.policy}"
        if flags.policy
        else f"{flags.bins} bins, {sharing} coefficients"
    )
    print(
        f"Members {', '.join(names)}; input {input_shape}; {classes} "
        f"classes; {what}"
    )
    print()
    print(report)
    return 0


def _print_accuracy(names: list, results: dict) -> None:
    from keras_swn.search.results import print_accuracy

    print_accuracy(
        names, results["val_member_accuracy"], results["val_ensemble_accuracy"]
    )


def train(flags: Parsed) -> int:
    """Train an SWN ensemble on fixed groups and save it."""
    training = recipe(flags)
    builders = members(flags)
    out_dir = output_dir(flags)
    name, train_data, val_data, input_shape, classes = load_data(flags)
    n_classes = num_classes(flags, classes)
    if flags.input_shape is not None and flags.input_shape != input_shape:
        raise flags.error(
            argument_error(
                "input_shape",
                f"The data has images of shape {input_shape}.",
                flags.input_shape,
            )
        )
    sharing = flags.coefficient_sharing or "per_layer"
    specs = layer_specs(builders, input_shape)
    policy = sharing_policy(flags, specs, sharing)
    budget = flags.budget or default_budget(
        builders, input_shape, specs, policy
    )
    budget_report(flags, builders, input_shape, n_classes, policy, budget)

    import keras

    import keras_swn
    from keras_swn.search import train_and_save

    print(f"Data: {name}")
    print(f"Backend: {keras.backend.backend()}")
    keras.utils.set_random_seed(flags.seed)
    fan_in = flags.template_fan_in
    model = keras_swn.SWNModel(
        members=builders,
        input_shape=input_shape,
        num_classes=n_classes,
        budget=budget,
        num_bins=flags.bins,
        policy=policy,
        coefficient_sharing=sharing,
        seed=flags.seed,
        **({} if fan_in is None else {"template_fan_in": fan_in}),
    )
    print()
    print(model.budget_report())
    print()
    results = train_and_save(
        model,
        train_data,
        val_data,
        directory=out_dir,
        epochs=flags.epochs,
        batch_size=flags.batch_size,
        recipe=training,
        verbose=_VERBOSE[flags.progress],
        info={
            "command": "train",
            "bins": flags.bins,
            "policy": flags.policy,
            "coefficient_sharing": None if flags.policy else sharing,
            "data": name,
            "seed": flags.seed,
        },
    )
    print()
    _print_accuracy([b.name for b in builders], results)
    print()
    print(
        "Wrote model.keras, policy.json, budget_report.json, history.json "
        "and results.json."
    )
    print(f"Output folder: {os.path.abspath(out_dir)}")
    return 0


def search(flags: Parsed) -> int:
    """Search, train and refine an SWN (`SearchAndRefine`)."""
    import keras_swn.search
    from keras_swn.search.phases import Sharing
    from keras_swn.search.recipe import TrainingRecipe

    recipe(flags)
    builders = members(flags)
    out_dir = output_dir(flags)
    name, train_data, val_data, input_shape, classes = load_data(flags)
    n_classes = num_classes(flags, classes)
    specs = layer_specs(builders, input_shape)
    regime = Sharing(flags.sharing)
    options = library_kwargs(flags, keras_swn.search.SearchConfig)
    for name in ("members", "input_shape", "num_classes"):
        options.pop(name, None)
    options["budget"] = flags.budget or default_search_budget(specs, flags.bins)
    run = dict(
        search_epochs=flags.search_epochs if regime.searches else 0,
        epochs=flags.epochs,
        refine_after=flags.refine_after if regime.refines else None,
        **library_kwargs(flags, TrainingRecipe),
    )
    try:  # the library's own validation, before anything is written
        config = keras_swn.search.SearchConfig(
            members=builders,
            input_shape=input_shape,
            num_classes=n_classes,
            **options,
        )
        keras_swn.search.RunConfig.create(config, **run)
    except ValueError as e:
        raise flags.error(e) from None

    import keras

    print(f"Data: {name}")
    print(f"Backend: {keras.backend.backend()}")
    folder = os.path.abspath(out_dir)
    try:
        runner = keras_swn.search.SearchAndRefine(
            builders,
            input_shape,
            n_classes,
            directory=os.path.dirname(folder),
            project_name=os.path.basename(folder),
            plots=flags.plots,
            run_eagerly=flags.run_eagerly,
            **options,
        )
        print(f"Output folder: {folder}")
        print(f"Interrupted? Rerun with --output_dir={folder} to resume.")
        runner.search(
            train_data, val_data, verbose=_VERBOSE[flags.progress], **run
        )
    except ValueError as e:
        raise flags.error(e) from None
    print()
    runner.results_summary()
    print()
    print(
        "Wrote model.keras, policy.json, search_result.json, "
        "budget_report.json/.txt, results.json, history.json and plots/."
    )
    print(f"Output folder: {folder}")
    return 0


def evaluate(flags: Parsed) -> int:
    """Print member and ensemble accuracy of a saved model."""
    from keras_swn.search import load_and_evaluate
    from keras_swn.search.results import evaluation_fields

    name, _, val_data, _, _ = load_data(flags)
    try:
        model, evaluation = load_and_evaluate(
            flags.model_dir, val_data, batch_size=flags.batch_size
        )
    except ValueError as e:
        raise flags.error(e) from None
    names = [
        getattr(b, "name", f"member {i}")
        for i, b in enumerate(model.member_builders)
    ]
    print(f"Model: {os.path.abspath(flags.model_dir)}")
    print(f"Data: {name}")
    _print_accuracy(names, evaluation_fields(evaluation, len(names)))
    return 0


#: The commands: name -> (function, summary).
COMMANDS = {
    "plan": (plan, "print the budget report of a configuration"),
    "train": (train, "train an SWN ensemble and save it"),
    "search": (search, "search, train and refine an SWN (the main job)"),
    "evaluate": (evaluate, "print member and ensemble accuracy of a model"),
}
