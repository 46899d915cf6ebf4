"""The commands of `keras-swn`: flags -> library objects -> one call.

Each command maps its flags (`keras_swn.cli.flags.Parsed`) to the
library's own objects (`keras_swn.cli.inputs`: members, a
`SharingPolicy`, a `SearchConfig` and `RunConfig`, a `TrainingRecipe`)
and makes one library call: `BudgetReport.create` (plan),
`train_and_save` (train), `SearchAndRefine(...).search(...)` (search),
`load_and_evaluate` (evaluate). Everything the flags decide is checked
before anything is trained or written; a `ValueError` from the library
names its argument, and the command reports it on the matching flag.

Each command is a function `command(flags) -> exit status`, imported by
`keras_swn.cli.main` only when that command runs.
"""

from __future__ import annotations

import json
import os

from keras_swn.cli import inputs
from keras_swn.cli.parsed import Parsed


def plan(flags: Parsed) -> int:
    """Print the budget report of a configuration (no model built).

    Args:
        flags: the parsed flags of `keras-swn plan`.

    Returns:
        0.
    """
    builders = inputs.members(flags, shapes_only=True)
    input_shape = flags.input_shape or (32, 32, 3)
    classes = flags.num_classes or 100
    sharing = flags.coefficient_sharing or "per_bank"
    specs = inputs.layer_specs(builders, input_shape)
    policy = inputs.sharing_policy(flags, specs, sharing)
    budget = flags.budget or inputs.default_budget(
        builders, input_shape, specs, policy
    )
    report = inputs.budget_report(
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


def _output_dir(flags: Parsed) -> str:
    """`--output_dir`, checked before any data is loaded: not empty (an
    unset shell variable would make the current directory the run
    folder), a folder that can be created, and (for a new run) no files
    keras_swn did not write unless `--allow_existing_files`; then the
    command's own checks (`inputs.output_dir`).

    Args:
        flags: the parsed flags of `train` or `search`.

    Returns:
        The folder's path (not created).
    """
    from keras_swn.io.run_folder import RunFolder
    from keras_swn.io.run_folder import check_creatable
    from keras_swn.io.run_folder import check_folder_text
    from keras_swn.io.run_folder import check_name
    from keras_swn.io.run_folder import folder_kind

    text = flags.output_dir
    try:
        if text is not None:
            check_folder_text("output_dir", text)
            name = os.path.basename(os.path.abspath(text))
            if not name:
                raise flags.invalid(
                    "output_dir",
                    "Expected a folder below the root of the file system.",
                )
            check_name("output_dir", name, os.path.dirname(text))
    except ValueError as e:
        raise flags.error(e, "output_dir") from None
    out_dir = inputs.output_dir(flags)
    try:
        folder = RunFolder(out_dir)
        if not flags.overwrite and folder_kind(out_dir) is None:
            # (a search or train result: the library's own message)
            folder.check_new_run("output_dir", flags.allow_existing_files)
        elif os.path.isdir(out_dir):
            folder.check_not_current("--output_dir")
        if not os.path.isdir(out_dir):
            check_creatable("output_dir", out_dir)
    except ValueError as e:
        raise flags.error(e, "output_dir") from None
    return out_dir


def _print_accuracy(names: list, results: dict) -> None:
    from keras_swn.training.results import print_accuracy

    print_accuracy(
        names, results["val_member_accuracy"], results["val_ensemble_accuracy"]
    )


def train(flags: Parsed) -> int:
    """Train an SWN ensemble on fixed groups and save it.

    Args:
        flags: the parsed flags of `keras-swn train`.

    Returns:
        0.
    """
    training = inputs.recipe(flags)
    builders = inputs.members(flags)
    out_dir = _output_dir(flags)
    name, train_data, val_data, input_shape, classes = inputs.load_data(flags)
    n_classes = inputs.num_classes(flags, classes)
    if flags.input_shape is not None and flags.input_shape != input_shape:
        raise flags.invalid(
            "input_shape", f"The data has images of shape {input_shape}."
        )
    sharing = flags.coefficient_sharing or "per_layer"
    specs = inputs.layer_specs(builders, input_shape)
    policy = inputs.sharing_policy(flags, specs, sharing)
    budget = flags.budget or inputs.default_budget(
        builders, input_shape, specs, policy
    )
    inputs.budget_report(
        flags, builders, input_shape, n_classes, policy, budget
    )

    import keras

    import keras_swn
    from keras_swn.io.locking import FolderLockedError
    from keras_swn.search import train_and_save
    from keras_swn.validation import ArgumentError

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
    try:  # holds the folder's lock; --overwrite deletes only its files
        results = train_and_save(
            model,
            train_data,
            val_data,
            directory=out_dir,
            epochs=flags.epochs,
            batch_size=flags.batch_size,
            recipe=training,
            verbose=inputs.progress(flags),
            info={
                "command": "train",
                "bins": flags.bins,
                "policy": flags.policy,
                "coefficient_sharing": None if flags.policy else sharing,
                "data": name,
                "seed": flags.seed,
            },
            overwrite=bool(flags.overwrite),
            allow_existing_files=bool(flags.allow_existing_files),
        )
    except FolderLockedError as e:
        raise flags.error(e, "output_dir") from None
    except ArgumentError as e:
        raise flags.error(e) from None
    print()
    _print_accuracy([b.name for b in builders], results)
    print()
    print(
        "Wrote model.keras, policy.json, budget_report.json, history.json "
        "and results.json."
    )
    print(f"Output folder: {os.path.abspath(out_dir)}")
    return 0


def _sharing(flags: Parsed) -> str:
    """`--sharing`; by default learned, or learned_no_refine when
    `--epochs=1` leaves no epoch after a refine step."""
    if flags.sharing is not None:
        return flags.sharing
    if flags.epochs < 2 and flags.refine_after is None:
        print(
            "Note: --epochs=1 leaves no epoch after a refine step; running "
            "--sharing=learned_no_refine."
        )
        return "learned_no_refine"
    return "learned"


def search(flags: Parsed) -> int:
    """Search, train and refine an SWN (`SearchAndRefine`).

    Args:
        flags: the parsed flags of `keras-swn search`.

    Returns:
        0.
    """
    import keras_swn.search
    from keras_swn.io.locking import FolderLockedError
    from keras_swn.search.phases import Sharing
    from keras_swn.training.recipe import TrainingRecipe

    inputs.recipe(flags)
    sharing = _sharing(flags)
    builders = inputs.members(flags)
    out_dir = _output_dir(flags)
    inputs.check_plots(flags)
    data_name, train_data, val_data, input_shape, classes = inputs.load_data(
        flags
    )
    n_classes = inputs.num_classes(flags, classes)
    specs = inputs.layer_specs(builders, input_shape)
    regime = Sharing(sharing)
    options = inputs.library_kwargs(flags, keras_swn.search.SearchConfig)
    for key in ("members", "input_shape", "num_classes"):
        options.pop(key, None)
    options["sharing"] = sharing
    options["budget"] = flags.budget or inputs.default_search_budget(
        specs, flags.bins
    )
    search_epochs = flags.search_epochs  # None: the library's default
    refine_after = flags.refine_after
    if refine_after is None and flags.reference_compatible:
        # The reference's 10, but within short runs.
        from keras_swn.search.run_config import REFERENCE_REFINE_AFTER

        refine_after = min(REFERENCE_REFINE_AFTER, max(1, flags.epochs - 1))
    run = dict(
        search_epochs=search_epochs,
        epochs=flags.epochs,
        refine_after=refine_after if regime.refines else None,
        **inputs.library_kwargs(flags, TrainingRecipe),
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

    print(f"Data: {data_name}")
    print(f"Backend: {keras.backend.backend()}")
    folder = os.path.abspath(out_dir)
    try:
        runner = keras_swn.search.SearchAndRefine(
            builders,
            input_shape,
            n_classes,
            directory=os.path.dirname(folder),
            project_name=os.path.basename(folder),
            overwrite=flags.overwrite,
            allow_existing_files=bool(flags.allow_existing_files),
            plots=flags.plots,
            run_eagerly=flags.run_eagerly,
            **options,
        )
        print(f"Output folder: {folder}")
        print(
            "(If this run is stopped, the same command resumes it; "
            "--overwrite starts over.)"
        )
        runner.search(
            train_data, val_data, verbose=inputs.progress(flags), **run
        )
        print()
        runner.results_summary()  # a damaged results.json: named
    except FolderLockedError as e:
        raise flags.error(e, "output_dir") from None
    except ValueError as e:
        raise flags.error(e) from None
    print()
    print(
        "Wrote model.keras, policy.json, search_result.json, "
        "budget_report.json/.txt, results.json, history.json"
        + (" and plots/." if flags.plots else ".")
    )
    print(f"Output folder: {folder}")
    return 0


def evaluate(flags: Parsed) -> int:
    """Print member and ensemble accuracy of a saved model.

    Args:
        flags: the parsed flags of `keras-swn evaluate`.

    Returns:
        0.
    """
    if not os.path.exists(flags.model_dir):
        raise flags.invalid(
            "model_dir",
            "No such folder or file. Expected a search/train output folder "
            "holding model.keras, or a .keras file.",
        )
    name, _, val_data, _, _ = inputs.load_data(flags)
    # Registers WideResNet for `.keras` loading (the CLI's members).
    import keras_swn.models.wide_resnet  # noqa: F401
    from keras_swn.search import load_and_evaluate
    from keras_swn.training.results import evaluation_fields

    try:
        model, evaluation = load_and_evaluate(
            flags.model_dir, val_data, batch_size=flags.batch_size
        )
    except ValueError as e:
        raise flags.error(e, "model_dir") from None
    names = [
        getattr(b, "name", f"member {i}")
        for i, b in enumerate(model.member_builders)
    ]
    print(f"Model: {os.path.abspath(flags.model_dir)}")
    print(f"Data: {name}")
    _print_accuracy(names, evaluation_fields(evaluation, len(names)))
    return 0
