"""keras-swn: plan, train, search and evaluate SuperWeight Networks.

Usage:
  keras-swn plan  [--members 28-7,28-4,16-7,16-4] [--budget 18000000]
                  [--bins 4] [--num_classes 100] [--input_shape 32,32,3]
                  [--policy FILE.json] [--json]
  keras-swn train [--members 10-2,10-1] [--budget N] [--bins 4]
                  [--policy FILE.json] [--coefficient_sharing per_layer]
                  [--data FILE.npz] [--epochs 5] [--batch_size 64]
                  [--learning_rate 0.05] [--schedule step|cosine]
                  [--milestones 0.3,0.6,0.8] [--gamma 0.2]
                  [--weight_decay 5e-4] [--template_fan_in kernel|layer|9]
                  [--seed 0] [--output_dir DIR]
  keras-swn search [--members 10-2,10-1] [--budget N] [--bins 4]
                  [--dataset cifar10|cifar100 | --data FILE.npz]
                  [--search_epochs 2] [--epochs 5] [--refine_after 2]
                  [--sharing learned] [--budget_check exact|proxy]
                  [the training flags of train] [--output_dir DIR] [...]
  keras-swn evaluate --model_dir DIR [--data FILE.npz]

`search` runs the whole SuperWeight pipeline (`SearchAndRefine`): search
training, gradient-similarity clustering under the budget, final training
with a refine step; it writes the policy, budget report, results, plots and
`model.keras` into `--output_dir`, and rerunning it with the same
`--output_dir` resumes an interrupted run. `evaluate` reloads a saved model
and prints each member's and the ensemble's accuracy.

`plan` prints the budget report of the search-phase model (initial bins,
one coefficient vector per bank) without building a model. `train` builds
an `SWNModel` on fixed groups, trains it (on scikit-learn's bundled digits
unless `--data` names an `.npz` file) with the search's recipe, evaluates
it and writes `model.keras`, `policy.json`, `budget_report.json`,
`history.json` and `results.json` into `--output_dir`
(`keras_swn.search.train_and_save`). The backend is chosen by the
`KERAS_BACKEND` environment variable. `keras-swn COMMAND --help` lists the
flags of a command, `keras-swn --helpfull` those of every command.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from keras_swn.cli.commands import COMMANDS
from keras_swn.cli.flags import CommandError
from keras_swn.cli.flags import UsageError
from keras_swn.cli.flags import parse
from keras_swn.cli.flags import parser

__all__ = ["COMMANDS", "execute", "main", "run"]


def _usage() -> str:
    lines = ["usage: keras-swn <command> [--flags]", "", "commands:"]
    lines += [f"  {name:<10} {help}" for name, (_, help) in COMMANDS.items()]
    lines.append("")
    lines.append(
        "`keras-swn <command> --help` lists the flags of a command, "
        "`keras-swn --helpfull` those of every command."
    )
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Run the command of `argv` (`argv[0]` is the program name); returns
    the exit status: 0, 1 for flags that do not parse, 2 for bad values."""
    args = list(argv[1:])
    if args and args[0] in ("-h", "--help"):
        print(f"{__doc__}\n{_usage()}")
        return 0
    if args and args[0] == "--helpfull":
        print(_usage())
        for name in COMMANDS:
            print(f"\n{parser(name).format_help()}")
        return 0
    if not args or args[0] not in COMMANDS:
        got = f"unknown command {args[0]!r}" if args else "no command given"
        print(f"keras-swn: error: {got}.\n\n{_usage()}", file=sys.stderr)
        return 2
    name = args[0]
    try:
        flags = parse(name, args[1:])
    except UsageError as e:
        print(f"keras-swn {name}: error: {e}", file=sys.stderr)
        return 1
    try:
        return COMMANDS[name][0](flags)
    except CommandError as e:
        print(f"keras-swn {name}: error: {e}", file=sys.stderr)
        return 2


def execute(argv: Sequence[str]) -> int:
    """Parse `argv` (`argv[0]` is the program name) and run, in-process.

    The same as the console script, for tests and notebooks.
    """
    try:
        return main(argv)
    except SystemExit as e:  # `--help` of a command
        return int(e.code or 0)


def run() -> None:
    """Console-script entry point (`keras-swn`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(execute(sys.argv))
