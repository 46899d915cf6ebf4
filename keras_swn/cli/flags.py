"""The flags of `keras-swn`: one table, one `argparse` parser per command.

Each flag is declared once (`FLAGS`: its type, default, help and the
commands that take it); `parser(command)` builds that command's parser,
so `keras-swn COMMAND --help` lists only the flags COMMAND reads. Flags
are written `--name=value` or `--name value`; a bool flag is `--name`,
`--noname` or `--name=true|false`. The enumerated choices come from the
library's own constants.

Errors: a flag that does not parse is a usage error (`UsageError`, exit
status 1); a value the library rejects raises an
`keras_swn.validation.ArgumentError` naming the library argument, which
`flag_error` turns into an error naming the flag (exit status 2).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any
from typing import Callable
from typing import Sequence

from keras_swn.analysis.clustering import BUDGET_CHECKS
from keras_swn.analysis.clustering import SCHEDULES as THRESHOLD_SCHEDULES
from keras_swn.analysis.partition import CLUSTERINGS
from keras_swn.analysis.similarity import SIGNALS
from keras_swn.bank.template_bank import TEMPLATE_FAN_IN
from keras_swn.policy.chains import CHAIN_SORTS
from keras_swn.search.optim import SCHEDULES
from keras_swn.search.phases import SHARINGS
from keras_swn.validation import argument_of

#: The members when `--members` is not given.
DEFAULT_MEMBERS = ((10, 2), (10, 1))

PLAN, TRAIN, SEARCH, EVALUATE = "plan", "train", "search", "evaluate"
_MODEL = (PLAN, TRAIN, SEARCH)
_RUN = (TRAIN, SEARCH)
_DATA = (TRAIN, SEARCH, EVALUATE)

#: Library arguments whose flag has another name.
ARGUMENT_FLAGS = {
    "num_bins": "bins",
    "depth": "members",
    "width": "members",
    "train_data": "data",
    "validation_data": "data",
    "path": "model_dir",
}


class UsageError(Exception):
    """A flag that does not parse (exit status 1)."""


class CommandError(Exception):
    """A bad flag value or input (exit status 2), printed as one line."""


# ----------------------------------------------------------------------
# Flag types: raw text -> value, or `ValueError` with the reason.
def _members(text: str) -> tuple:
    members = []
    for item in text.split(","):
        try:
            depth, width = (int(p) for p in item.strip().split("-"))
        except ValueError:
            raise ValueError(
                "Expected comma-separated WRN depth-width pairs such as "
                f"28-7,16-4; {item.strip()!r} is not one"
            ) from None
        members.append((depth, width))
    return tuple(members)


def _number(item: str) -> int | float:
    try:
        return int(item)
    except ValueError:
        try:
            return float(item)
        except ValueError:
            raise ValueError(f"{item.strip()!r} is not a number") from None


def _milestones(text: str) -> tuple:
    if not text.strip():
        return ()  # no milestone: a constant learning rate
    return tuple(_number(item) for item in text.split(","))


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(p) for p in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            "Expected three comma-separated positive ints (height, width, "
            "channels), e.g. 32,32,3"
        )
    return shape


def _int(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"Expected an integer >= {minimum}")
        return value

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise ValueError("Expected a number strictly between 0 and 1")
    return value


def _fan_in(text: str) -> int | str:
    return int(text) if text.isdigit() else text


_BOOL = {"true": True, "1": True, "false": False, "0": False}


def _bool(text: str) -> bool:
    if text.lower() not in _BOOL:
        raise ValueError("Expected true or false")
    return _BOOL[text.lower()]


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
        parse=_members,
    ),
    "budget": Flag(
        _MODEL,
        "Template budget (bank parameters only). plan/train default: the "
        "unshared conv parameters of the largest member, or the "
        "one-template-per-bank minimum if that is larger. search default: "
        "25%% above the minimum that holds the initial bins.",
        parse=_int(1),
    ),
    "bins": Flag(_MODEL, "Initial bins B (§1.3).", 4, _int(1)),
    "num_classes": Flag(
        _MODEL,
        "Classes of every head. plan: default 100. train/search: default "
        "from the data.",
        parse=_int(2),
    ),
    "input_shape": Flag(
        (PLAN, TRAIN),
        "Input image shape H,W,C. plan: default 32,32,3. train: from the "
        "data (must match).",
        parse=_shape,
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
    "json": Flag((PLAN,), "Print one JSON object, not a table.", False, _bool),
    "dataset": Flag(
        (SEARCH, EVALUATE),
        "The dataset (default: the digits bundled with scikit-learn; "
        "cifar10/cifar100 need the TFDS pipeline). Exclusive with --data.",
        choices=("digits", "cifar10", "cifar100"),
    ),
    "data": Flag(
        _DATA,
        "An .npz file with x/y or x_train/y_train/x_test/y_test arrays. "
        "Default: the 8x8 digits bundled with scikit-learn.",
    ),
    "validation_split": Flag(
        _DATA,
        "Validation fraction when the data has no separate test arrays.",
        0.2,
        _fraction,
    ),
    "normalize": Flag(
        _DATA,
        "Standardise each channel with training statistics.",
        False,
        _bool,
    ),
    "search_epochs": Flag(
        (SEARCH,), "Search-training epochs (§2.2).", 2, _int(0)
    ),
    "epochs": Flag(_RUN, "Training epochs.", 5, _int(1)),
    "refine_after": Flag(
        (SEARCH,),
        "Final-training epochs before the refine step (§3.2).",
        2,
        _int(1),
    ),
    "batch_size": Flag(_DATA, "Batch size.", 64, _int(1)),
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
        parse=_milestones,
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
        parse=_fan_in,
        choices=_texts(TEMPLATE_FAN_IN),
    ),
    "seed": Flag(_DATA, "Root seed: initial values, split, shuffling.", 0, int),
    "output_dir": Flag(
        _RUN,
        "Where the run writes its files. Default: "
        "swn_runs/<command>-<timestamp>. search: rerun with the same "
        "folder to resume.",
    ),
    "progress": Flag(
        _RUN,
        "Training output: a progress bar, one line per epoch, or nothing.",
        "bar",
        choices=("bar", "epoch", "none"),
    ),
    "sharing": Flag(
        (SEARCH,),
        "The sharing regime (swn-algorithm.md §3.3).",
        "learned",
        choices=_texts(SHARINGS),
    ),
    "threshold_schedule": Flag(
        (SEARCH,),
        "Which clustering thresholds are tried: fill (default: the "
        "least-merged grouping within --group_share of the budget) or step "
        "(the reference's: from --threshold_start down by "
        "--threshold_decrement; the default with --reference_compatible).",
        choices=_texts(THRESHOLD_SCHEDULES),
    ),
    "group_share": Flag(
        (SEARCH,),
        "The share of the budget one template per bank may take under "
        "--threshold_schedule=fill.",
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
        (SEARCH,), "Batches of gradient capture.", 1, _int(1)
    ),
    "refine_threshold": Flag((SEARCH,), "Refine cosine threshold.", 0.9, float),
    "coefficient_threshold": Flag(
        (SEARCH,),
        "Gate student coefficient sharing (§2.5); default off.",
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
        _bool,
    ),
    "plots": Flag((SEARCH,), "Write PNG plots.", True, _bool),
    "run_eagerly": Flag(
        (SEARCH,),
        "Train without compiling (faster for tiny runs on a CPU).",
        False,
        _bool,
    ),
    "model_dir": Flag(
        (EVALUATE,),
        "A search/train output folder holding model.keras, or a .keras "
        "file (required).",
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # "argument --x: Invalid value for flag --x=..." -> "Invalid ..."
        head, _, rest = message.partition(": ")
        if head.startswith("argument --") and rest.startswith("Invalid"):
            message = rest
        raise UsageError(message)


def flag_text(value: Any) -> str:
    """A flag value as it is written on the command line."""
    if isinstance(value, (tuple, list)):
        if value and isinstance(value[0], tuple):
            return ",".join("-".join(map(str, v)) for v in value)
        return ",".join(str(v) for v in value)
    return str(value)


class Parsed:
    """The flags of one command line: values, and the text as written.

    Attributes:
        command: str.
        values: dict, flag name -> value (the default when not given).
        raw: dict, flag name -> its text as written.
    """

    def __init__(self, command: str, values: dict, raw: dict):
        self.command = command
        self.values = values
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def text(self, name: str) -> str:
        """The flag's text: as written, or its value (a default)."""
        if name in self.raw:
            return self.raw[name]
        return flag_text(self.values.get(name))

    def error(
        self, error: Exception, argument: str | None = None
    ) -> CommandError:
        """`error` (from the library) as a `CommandError` naming the flag
        of the argument it names, else the flag of `argument`."""
        for name in (argument_of(error), argument):
            flag = ARGUMENT_FLAGS.get(name, name) if name else None
            if flag in self.values:
                return CommandError(
                    f"Invalid value for flag --{flag}={self.text(flag)}: "
                    f"{error}"
                )
        return CommandError(str(error))


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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, flag in FLAGS.items():
        if command not in flag.commands:
            continue
        typed = _typed(name, flag, raw)
        metavar = "|".join(flag.choices) if flag.choices else name.upper()
        if flag.parse is _bool:
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
