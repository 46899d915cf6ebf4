"""The flags of `keras-swn`: one table, one `argparse` parser per command.

Each flag is declared once (`FLAGS`: its type, default, help and the
commands that take it); `parser(command)` builds that command's parser,
so `keras-swn COMMAND --help` lists only the flags COMMAND reads. Flags
are written `--name=value` or `--name value`; a bool flag is `--name`,
`--noname` or `--name=true|false`.

Import cost: none beyond the standard library, so that `--help` answers
at once. The enumerated choices are therefore written out here; a test
(`tests/cli/test_startup.py`) keeps them equal to the library's own constants.

Errors: a flag that does not parse is a `UsageError`; a value the
library rejects raises an `keras_swn.validation.ArgumentError` naming the
library argument, which `Parsed.error` turns into a `CommandError` naming
the flag (`keras_swn.cli.messages`). Both exit with status 2 and one line
on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any
from typing import Callable
from typing import NoReturn
from typing import Sequence

from keras_swn.cli.messages import one_line
from keras_swn.cli.parsed import Parsed
from keras_swn.cli.values import boolean
from keras_swn.cli.values import fan_in
from keras_swn.cli.values import fraction
from keras_swn.cli.values import int_at_least
from keras_swn.cli.values import members
from keras_swn.cli.values import milestones
from keras_swn.cli.values import shape

#: The enumerated choices, equal to the library's constants (tested):
#: `keras_swn.search.phases.SHARINGS`, `keras_swn.training.optim.SCHEDULES`,
#: `keras_swn.analysis.clustering.SCHEDULES` and `.BUDGET_CHECKS`,
#: `keras_swn.analysis.partition.CLUSTERINGS`,
#: `keras_swn.analysis.similarity.SIGNALS`,
#: `keras_swn.bank.template_bank.TEMPLATE_FAN_IN` and
#: `keras_swn.policy.chains.CHAIN_SORTS`.
SHARINGS = ("learned", "learned_no_refine", "bins_hard", "soft")
SCHEDULES = ("step", "cosine")
THRESHOLD_SCHEDULES = ("fill", "split", "step")
BUDGET_CHECKS = ("proxy", "exact")
CLUSTERINGS = ("connected_components", "reference")
SIGNALS = ("gradient", "gradient+weight", "parameter")
TEMPLATE_FAN_IN = ("kernel", "layer", 9)
CHAIN_SORTS = ("stable", "reference")

#: The members when `--members` is not given.
DEFAULT_MEMBERS = ((10, 2), (10, 1))

PLAN, TRAIN, SEARCH, EVALUATE = "plan", "train", "search", "evaluate"

#: The commands and their one-line summaries, in `--help` order.
COMMAND_HELP = {
    PLAN: "print the budget report of a configuration",
    TRAIN: "train an SWN ensemble and save it",
    SEARCH: "search, train and refine an SWN (the main job)",
    EVALUATE: "print member and ensemble accuracy of a model",
}
_MODEL = (PLAN, TRAIN, SEARCH)
_RUN = (TRAIN, SEARCH)
_DATA = (TRAIN, SEARCH, EVALUATE)


class UsageError(Exception):
    """A flag that does not parse (exit status 2), printed as one line."""


@dataclasses.dataclass(frozen=True)
class Flag:
    """One flag: how it parses, its default and the commands that take it.

    `choices` are compared with the raw text; `parse` turns the text into
    the value (raising `ValueError` with the reason).
    """

    commands: tuple[str, ...]
    help: str
    default: Any = None
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None


def _texts(values: Sequence) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


FLAGS: dict[str, Flag] = {
    "members": Flag(
        _MODEL,
        "The ensemble: comma-separated WRN depth-width pairs, deepest "
        "first (default 10-2,10-1).",
        parse=members,
    ),
    "budget": Flag(
        _MODEL,
        "Template budget (bank parameters only). plan/train default: the "
        "unshared conv parameters of the largest member, or the "
        "one-template-per-bank minimum if that is larger. search default: "
        "25%% above the minimum that holds the initial bins.",
        parse=int_at_least(1),
    ),
    "bins": Flag(_MODEL, "Initial bins B.", 4, int_at_least(1)),
    "num_classes": Flag(
        _MODEL,
        "Classes of every head. plan: default 100. train/search: default "
        "from the data.",
        parse=int_at_least(2),
    ),
    "input_shape": Flag(
        (PLAN, TRAIN),
        "Input image shape H,W,C. plan: default 32,32,3. train: from the "
        "data (must match).",
        parse=shape,
    ),
    "policy": Flag(
        (PLAN, TRAIN), "A SharingPolicy JSON file (fixed policy; no bins)."
    ),
    "coefficient_sharing": Flag(
        (PLAN, TRAIN),
        "Coefficients when no --policy is given: per_bank (one vector per "
        "bank) or per_layer (every layer its own). Default: per_bank for "
        "plan, per_layer for train.",
        choices=("per_layer", "per_bank"),
    ),
    "json": Flag(
        (PLAN,), "Print one JSON object, not a table.", False, boolean
    ),
    "dataset": Flag(
        (SEARCH, EVALUATE),
        "The dataset (default: the 8x8 digits that ship with keras_swn; "
        "cifar10/cifar100 read TensorFlow Datasets, `pip install "
        "'keras-swn[tfds]'`). Exclusive with --data.",
        choices=("digits", "cifar10", "cifar100"),
    ),
    "data_dir": Flag(
        (SEARCH, EVALUATE),
        "The TFDS data directory of --dataset=cifar10|cifar100 (default: "
        "TFDS's own, ~/tensorflow_datasets).",
    ),
    "download": Flag(
        (SEARCH, EVALUATE),
        "Let TFDS download and prepare --dataset=cifar10|cifar100 into "
        "--data_dir if it is not there (needs network access).",
        False,
        boolean,
    ),
    "data": Flag(
        _DATA,
        "An .npz file with x/y or x_train/y_train/x_test/y_test arrays. "
        "Default: the 8x8 digits that ship with keras_swn.",
    ),
    "validation_split": Flag(
        _DATA,
        "Validation fraction when the data has no separate test arrays.",
        0.2,
        fraction,
    ),
    "normalize": Flag(
        _DATA,
        "Standardise each channel with training statistics.",
        False,
        boolean,
    ),
    "search_epochs": Flag(
        (SEARCH,),
        "Search-training epochs. Default: 5%% of --epochs, rounded up "
        "(1 for up to 20 epochs); 20 with --reference_compatible; 0 for "
        "--sharing=bins_hard, which runs no search.",
        parse=int_at_least(0),
    ),
    "epochs": Flag(_RUN, "Training epochs.", 5, int_at_least(1)),
    "refine_after": Flag(
        (SEARCH,),
        "Final-training epochs before the refine step; must be "
        "below --epochs. Default: 5%% of --epochs, rounded up (1 for up "
        "to 20 epochs); with --reference_compatible 10, or --epochs - 1 if "
        "fewer.",
        parse=int_at_least(1),
    ),
    "batch_size": Flag(_DATA, "Batch size.", 64, int_at_least(1)),
    "learning_rate": Flag(
        _RUN,
        "The initial learning rate of SGD (Nesterov momentum 0.9).",
        0.05,
        float,
    ),
    "schedule": Flag(
        _RUN,
        "The learning-rate schedule over --epochs, set at the start of "
        "every epoch (search training replays its first epochs): step "
        "(default; times --gamma at each of --milestones) or cosine (from "
        "--learning_rate down to 0).",
        choices=_texts(SCHEDULES),
    ),
    "milestones": Flag(
        _RUN,
        "The step schedule's milestones: epochs (ints) or fractions of "
        "--epochs (floats in (0, 1)). Default 0.3,0.6,0.8 (with "
        "--reference_compatible: epochs 60,120,160); empty: a constant "
        "rate.",
        parse=milestones,
    ),
    "gamma": Flag(
        _RUN, "The step schedule's factor at each milestone (0.2).", None, float
    ),
    "weight_decay": Flag(
        _RUN,
        "Coupled L2 weight decay on every trainable variable but the "
        "coefficients.",
        5e-4,
        float,
    ),
    "template_fan_in": Flag(
        _RUN,
        "The template initialisation: kernel (default: every composed "
        "kernel starts He-normal for its own fan-in), layer, or 9 (the "
        "reference's N(0, 2/9); the default with --reference_compatible).",
        parse=fan_in,
        choices=_texts(TEMPLATE_FAN_IN),
    ),
    "seed": Flag(
        _DATA,
        "Root seed: initial values, split, shuffling.",
        0,
        int_at_least(0),
    ),
    "output_dir": Flag(
        _RUN,
        "Where the run writes its files. Default: swn_runs/<command> "
        "(swn_runs/search, swn_runs/train). search: rerunning the same "
        "command resumes the run in this folder; train: refuses a folder "
        "that holds a model unless --overwrite.",
    ),
    "overwrite": Flag(
        _RUN,
        "Delete what keras_swn wrote in --output_dir (listed in its "
        "manifest; other files are kept) and start over (search: instead "
        "of resuming).",
        False,
        boolean,
    ),
    "allow_existing_files": Flag(
        _RUN,
        "Run in an --output_dir that already holds files keras_swn did not "
        "write (they are kept; without this flag such a folder is refused "
        "for a new run).",
        False,
        boolean,
    ),
    "progress": Flag(
        _RUN,
        "Training output: a progress bar, one line per epoch, or nothing. "
        "Default: bar when standard output is a terminal, else epoch "
        "(logs and pipes get no control characters).",
        choices=("bar", "epoch", "none"),
    ),
    "sharing": Flag(
        (SEARCH,),
        "The sharing regime. Default: learned, "
        "or learned_no_refine with --epochs=1 (a refine step needs an "
        "epoch on each side).",
        choices=_texts(SHARINGS),
    ),
    "threshold_schedule": Flag(
        (SEARCH,),
        "Which groupings the search tries: split (default: from the "
        "initial bins, split groups one at a time, least similar first, "
        "within --group_share of the budget left after the bins), fill "
        "(the least-merged grouping under one threshold within "
        "--group_share of the budget) or step "
        "(the reference's: from --threshold_start down by "
        "--threshold_decrement; the default with --reference_compatible).",
        choices=_texts(THRESHOLD_SCHEDULES),
    ),
    "group_share": Flag(
        (SEARCH,),
        "Under --threshold_schedule=split: the share of the budget left "
        "after the initial bins that splits may take; under fill: the "
        "share of the budget one template per bank may take.",
        0.5,
        float,
    ),
    "threshold_start": Flag(
        (SEARCH,), "The first clustering threshold (step).", 0.1, float
    ),
    "threshold_decrement": Flag(
        (SEARCH,), "The threshold step (> 0).", 0.05, float
    ),
    "clustering": Flag(
        (SEARCH,),
        "Clustering rule (default connected_components).",
        choices=_texts(CLUSTERINGS),
    ),
    "signal": Flag(
        (SEARCH,), "Similarity signal.", "gradient", choices=_texts(SIGNALS)
    ),
    "capture_batches": Flag(
        (SEARCH,), "Batches of gradient capture.", 1, int_at_least(1)
    ),
    "refine_threshold": Flag((SEARCH,), "Refine cosine threshold.", 0.9, float),
    "coefficient_threshold": Flag(
        (SEARCH,),
        "Gate student coefficient sharing; default off.",
        None,
        float,
    ),
    "budget_check": Flag(
        (SEARCH,),
        "The budget measure of the clustering threshold loop: exact "
        "(default: the exact one-template total, so a search that starts "
        "never fails on the budget after its training) or proxy (the "
        "reference's; the default with --reference_compatible).",
        choices=_texts(BUDGET_CHECKS),
    ),
    "chain_sort": Flag(
        (SEARCH,),
        "Stacking chain sort (default stable).",
        choices=_texts(CHAIN_SORTS),
    ),
    "reference_compatible": Flag(
        (SEARCH,),
        "The reference's clustering, chain sort, initialisation (9), budget "
        "check (proxy) and step schedule (epochs 60,120,160).",
        False,
        boolean,
    ),
    "plots": Flag(
        (SEARCH,),
        "Write PNG plots (needs matplotlib, which the backend extras "
        "install; checked before training starts).",
        True,
        boolean,
    ),
    "run_eagerly": Flag(
        (SEARCH,),
        "Train without compiling (faster for tiny runs on a CPU).",
        False,
        boolean,
    ),
    "model_dir": Flag(
        (EVALUATE,),
        "A search/train output folder holding model.keras, or a .keras "
        "file (required).",
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # "argument --x: Invalid value for flag --x=..." -> "Invalid ..."
        head, _, rest = message.partition(": ")
        if head.startswith("argument --") and rest.startswith("Invalid"):
            message = rest
        raise UsageError(one_line(message))


class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to a flag's help unless its help already
    states its default or it has none (None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default is not None
            and action.default is not argparse.SUPPRESS
            and "Default" not in text
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _typed(name: str, flag: Flag, raw: dict) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        raw[name] = text
        if flag.choices is not None and text not in flag.choices:
            raise argparse.ArgumentTypeError(
                f"Invalid value for flag --{name}={text}: expected one of "
                f"{', '.join(flag.choices)}"
            )
        try:
            return flag.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                f"Invalid value for flag --{name}={text}: {e}"
            ) from None

    return parse


def parser(command: str, raw: dict | None = None) -> argparse.ArgumentParser:
    """The parser of `command`; `raw` collects the text of every flag."""
    raw = {} if raw is None else raw
    p = _Parser(
        prog=f"keras-swn {command}",
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
    )
    for name, flag in FLAGS.items():
        if command not in flag.commands:
            continue
        typed = _typed(name, flag, raw)
        metavar = "|".join(flag.choices) if flag.choices else name.upper()
        if flag.parse is boolean:
            p.add_argument(
                f"--{name}",
                nargs="?",
                const="true",
                type=typed,
                default=flag.default,
                metavar="true|false",
                help=flag.help,
            )
            p.add_argument(
                f"--no{name}",
                dest=name,
                action="store_false",
                help=argparse.SUPPRESS,
            )
        else:
            p.add_argument(
                f"--{name}",
                type=typed,
                default=flag.default,
                required=name == "model_dir",
                metavar=metavar,
                help=flag.help,
            )
    return p


def parse(command: str, args: Sequence[str]) -> Parsed:
    """The flags of `command` (`UsageError` if they do not parse)."""
    raw: dict = {}
    namespace = parser(command, raw).parse_args(list(args))
    return Parsed(command, vars(namespace), raw)
