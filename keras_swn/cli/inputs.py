"""Flags -> library objects, for the commands of `keras-swn`.

Members, the sharing policy, budgets, the training recipe, the output
folder and the data, each built from the parsed flags
(`keras_swn.cli.flags.Parsed`) and checked before anything is trained or
written. A library `ValueError` is reported on the matching flag
(`Parsed.error`).

Every library import is inside a function, so that `keras-swn --help`
imports no backend; `plan` reads the WRN shapes without building a
member (`PlannedWideResNet`), so it imports no backend either wherever
the package `__init__` modules import lazily.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from typing import Any
from typing import Sequence

from keras_swn.cli.flags import DEFAULT_MEMBERS
from keras_swn.cli.messages import ARGUMENT_FLAGS
from keras_swn.cli.parsed import Parsed

#: The parent folder of the default `--output_dir` (`swn_runs/<command>`).
RUNS = "swn_runs"

#: `--progress` -> the `verbose` of `fit`.
VERBOSE = {"bar": 1, "epoch": 2, "none": 0}

#: The TFDS datasets of `--dataset` and their classes.
TFDS_CLASSES = {"cifar10": 10, "cifar100": 100}


class PlannedWideResNet:
    """The shapes of a `WideResNet` member, without Keras.

    What `plan` reads from a member (`name`, `layer_specs`,
    `unshared_params`), from `keras_swn.models.wide_resnet_shapes` as
    `WideResNet` computes them, so that `plan` builds no layer.

    Args:
        depth: int, `6n + 4`.
        width: int, the widening factor.

    Raises:
        ValueError: naming `depth` or `width`, as `WideResNet` does.
    """

    def __init__(self, depth: int, width: int):
        from keras_swn.models import wide_resnet_shapes as shapes

        shapes.wide_resnet_param_counts(depth, width, num_classes=1)
        self.depth = depth
        self.width = width

    @property
    def name(self) -> str:
        """`WRN-depth-width`."""
        return f"WRN-{self.depth}-{self.width}"

    def layer_specs(self, input_shape: Sequence[int], member: int = 0) -> list:
        """The shared layers' `LayerSpec`s, as `WideResNet.layer_specs`.

        Args:
            input_shape: `(H, W, C)`.
            member: int, the member index written into the specs.

        Returns:
            A list of `LayerSpec`.
        """
        from keras_swn.models import wide_resnet_shapes as shapes

        return shapes.wide_resnet_layer_specs(
            self.depth,
            self.width,
            member=member,
            in_channels=int(input_shape[-1]),
        )

    def unshared_params(self, input_shape: Sequence[int], num_classes: int):
        """The `MemberBudget`, as `WideResNet.unshared_params`.

        Args:
            input_shape: `(H, W, C)`.
            num_classes: int, the classes of the head.

        Returns:
            A `MemberBudget`.
        """
        from keras_swn.models import wide_resnet_shapes as shapes

        return shapes.wide_resnet_member_budget(
            self.name,
            self.depth,
            self.width,
            in_channels=int(input_shape[-1]),
            num_classes=num_classes,
        )


def members(flags: Parsed, shapes_only: bool = False) -> list:
    """The members of `--members` (validated by the model).

    Args:
        flags: the parsed flags.
        shapes_only: bool, `PlannedWideResNet`s (no Keras) instead of
            `WideResNet`s.

    Returns:
        A list of members.
    """
    if shapes_only:
        cls: Any = PlannedWideResNet
    else:
        from keras_swn.models.wide_resnet import WideResNet

        cls = WideResNet
    pairs = flags.members or DEFAULT_MEMBERS
    try:
        return [cls(depth, width) for depth, width in pairs]
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
    from keras_swn.models.model_args import read_policy_file

    if not os.path.isfile(flags.policy):
        raise flags.invalid("policy", "Expected an existing JSON file.")
    try:
        policy = read_policy_file(flags.policy)
    except ValueError as e:
        raise flags.error(e, "policy") from None
    check_policy_members(flags, specs, policy)
    return policy


def check_policy_members(flags: Parsed, specs: list, policy: Any) -> None:
    """`--policy` must be made for the members of `--members`: one group
    id per shared layer of each, and groups of one kernel kind.

    Args:
        flags: the parsed flags.
        specs: the members' `LayerSpec`s.
        policy: the loaded `SharingPolicy`.
    """
    from keras_swn.policy.bins import index_specs
    from keras_swn.policy.chains import group_members

    have = [len(row) for row in index_specs(specs)]
    listed = [len(row) for row in policy.groups]
    members_text = (
        flags.text("members")
        if flags.members
        else ",".join(f"{d}-{w}" for d, w in DEFAULT_MEMBERS)
    )
    if have != listed:
        raise flags.invalid(
            "policy",
            f"It was made for other members: it lists {listed} shared "
            f"layers per member, --members={members_text} have {have}. "
            "Pass the --members the policy was made for, or a policy made "
            "for these members.",
        )
    try:
        group_members(specs, policy.groups)
    except ValueError as e:
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
    from keras_swn.validation import naming

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
    from keras_swn.training.recipe import TrainingRecipe

    try:
        return TrainingRecipe(**library_kwargs(flags, TrainingRecipe))
    except ValueError as e:
        raise flags.error(e) from None


def output_dir(flags: Parsed) -> str:
    """`--output_dir`, default `swn_runs/<command>`, checked.

    The default is the same folder for every run of a command, so that
    rerunning a search resumes it. For `train` the folder gets the
    checks of `keras_swn.training.train.check_train_directory` here,
    before the data is loaded: refused, unless `--overwrite`, when it
    holds a trained model (`model.keras`) or a search (`state.json`), and
    whenever another run holds it (its lock). `train_and_save` makes the
    same checks again under the folder's lock, and with `--overwrite`
    deletes what the library wrote there just before training; `search`
    lets `SearchAndRefine` do the same. Nothing is written or deleted
    here.

    Args:
        flags: the parsed flags.

    Returns:
        The folder's path (not created).
    """
    path = flags.output_dir
    if path is None:
        path = os.path.join(RUNS, flags.command)
        flags.values["output_dir"] = path
    if os.path.exists(path) and not os.path.isdir(path):
        raise flags.invalid("output_dir", "Expected a folder, not a file.")
    if flags.command == "train":
        from keras_swn.io.locking import FolderLockedError
        from keras_swn.training.train import check_train_directory

        try:
            check_train_directory(path, overwrite=bool(flags.overwrite))
        except (ValueError, FolderLockedError) as e:
            raise flags.error(e, "output_dir") from None
    return path


def progress(flags: Parsed) -> int:
    """The `verbose` of `fit` for `--progress`.

    Default: a progress bar (1) when standard output is a terminal, one
    line per epoch (2) otherwise, so that logs and pipes get no control
    characters.
    """
    choice = flags.progress
    if choice is None:
        isatty = getattr(sys.stdout, "isatty", None)
        choice = "bar" if isatty is not None and isatty() else "epoch"
    return VERBOSE[choice]


def module_available(name: str) -> bool:
    """Whether the top-level module `name` can be imported (not importing
    it).

    Args:
        name: str, e.g. `"matplotlib"`.

    Returns:
        bool.
    """
    return importlib.util.find_spec(name) is not None


def check_plots(flags: Parsed) -> None:
    """`--plots` needs matplotlib: fail before training, not after."""
    if flags.plots and not module_available("matplotlib"):
        raise flags.invalid(
            "plots",
            "The plots need matplotlib, which is not installed. Install "
            "it (`pip install matplotlib`; the backend extras such as "
            "keras-swn[tensorflow-cpu] include it) or pass --noplots.",
        )


def _tfds_data(flags: Parsed, dataset: str) -> tuple:
    """`(train, validation)` pipelines of a TFDS dataset."""
    if flags.data is not None:
        raise flags.invalid("dataset", "Pass --dataset or --data, not both.")
    if not module_available("tensorflow_datasets"):
        raise flags.invalid(
            "dataset",
            "It is read with TensorFlow Datasets, which is not installed: "
            "pip install 'keras-swn[tfds]'.",
        )
    from keras_swn.data import cifar

    options = dict(
        batch_size=flags.batch_size,
        data_dir=flags.data_dir,
        download=flags.download,
    )
    where = flags.data_dir or "TFDS's default data_dir (~/tensorflow_datasets)"
    try:
        train = cifar.load_cifar(
            dataset, split="train", seed=flags.seed, **options
        )
        val = cifar.load_cifar(dataset, split="test", training=False, **options)
    except FileNotFoundError as e:
        if flags.download:
            raise flags.error(e, "dataset") from None
        raise flags.invalid(
            "dataset",
            f"{dataset} is not prepared in {where}. Pass --download to let "
            "TFDS download and prepare it there (needs network access), or "
            "--data_dir=DIR where it was prepared.",
        ) from None
    except Exception as e:  # TFDS and tf.data raise many kinds
        flag = "data_dir" if flags.data_dir else "dataset"
        raise flags.error(e, flag) from None
    return train, val


def load_data(flags: Parsed) -> tuple:
    """`(description, train, validation, input_shape, classes)`.

    `--dataset cifar10|cifar100` goes through the TFDS pipeline
    (`keras_swn.data.cifar.load_cifar`: the train split augmented, the
    test split as validation; `--data_dir`, `--download`); otherwise the
    arrays of `--data` or the digits that ship with keras_swn
    (`keras_swn.data.embedded`).
    """
    dataset = flags.values.get("dataset")
    if dataset is not None and flags.data is not None:
        raise flags.invalid("dataset", "Pass --dataset or --data, not both.")
    if dataset in TFDS_CLASSES:
        train, val = _tfds_data(flags, dataset)
        return dataset, train, val, (32, 32, 3), TFDS_CLASSES[dataset]
    for flag in ("data_dir", "download"):
        if flags.values.get(flag) not in (None, False):
            raise flags.invalid(
                flag, "It applies to --dataset=cifar10|cifar100 only."
            )
    import numpy as np

    from keras_swn.data import embedded

    options = dict(
        validation_split=flags.validation_split,
        seed=flags.seed,
        normalize=flags.normalize,
    )
    try:
        if flags.data is None:
            arrays = embedded.load_digits_dataset(**options)
            name = "digits (8x8, shipped with keras_swn)"
        else:
            arrays = embedded.load_npz(flags.data, **options)
            name = flags.data
    except ValueError as e:
        raise flags.error(e, "data", renames={"path": "data"}) from None
    (x, y), (xv, yv) = arrays
    check_split(flags, len(x), len(xv))
    from keras_swn.data_checks import CHANNELS_FIRST
    from keras_swn.data_checks import check_arrays
    from keras_swn.data_checks import looks_channels_first

    if looks_channels_first(x.shape):
        raise flags.invalid(
            "data",
            f"Images of shape {tuple(x.shape[1:])}: "
            + CHANNELS_FIRST.replace("pass", "save"),
        )
    try:  # the checks of SearchAndRefine.search and SWNModel.fit
        check_arrays(x, y, "train_data")
        check_arrays(xv, yv, "validation_data")
    except ValueError as e:
        raise flags.error(e, "data") from None
    classes = int(max(y.max(), yv.max())) + 1
    seen = np.union1d(np.unique(y), np.unique(yv))
    if flags.values.get("num_classes") is None and len(seen) < classes // 2:
        raise flags.invalid(
            "data",
            f"The labels run up to {classes - 1} but only {len(seen)} "
            "distinct values occur: a stray label? Expected class ids "
            "0..K-1 (pass --num_classes if the gaps are meant).",
        )
    shape = tuple(int(d) for d in x.shape[1:])
    name = f"{name}: {embedded.describe(arrays)}"
    return name, (x, y), (xv, yv), shape, classes


def check_split(flags: Parsed, train: int, validation: int) -> None:
    """Both splits of `--data` must hold examples.

    Args:
        flags: the parsed flags.
        train: int, the training examples.
        validation: int, the validation examples.
    """
    if train and validation:
        return
    if train + validation == 0:
        raise flags.invalid("data", "The file holds no examples (x is empty).")
    which = "training" if not train else "validation"
    raise flags.invalid(
        "data",
        f"The file holds {train + validation} examples: the split leaves "
        f"{train} for training and {validation} for validation, no "
        f"{which} example. Pass more examples (or a file with "
        "x_train/y_train/x_test/y_test), or another --validation_split.",
    )


def num_classes(flags: Parsed, classes: int) -> int:
    """`--num_classes`, at least the data's classes (default: those)."""
    if flags.num_classes is None:
        return max(classes, 2)
    if flags.num_classes < classes:
        raise flags.invalid(
            "num_classes", f"The data has labels up to {classes - 1}."
        )
    return flags.num_classes
