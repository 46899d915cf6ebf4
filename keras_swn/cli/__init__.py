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
                  [--seed 0] [--output_dir swn_runs/train] [--overwrite]
  keras-swn search [--members 10-2,10-1] [--budget N] [--bins 4]
                  [--dataset digits|cifar10|cifar100 [--data_dir DIR]
                  [--download] | --data FILE.npz]
                  [--search_epochs N] [--epochs 5] [--refine_after N]
                  [--sharing learned] [--budget_check exact|proxy]
                  [the training flags of train]
                  [--output_dir swn_runs/search] [--overwrite] [...]
  keras-swn evaluate --model_dir DIR [--data FILE.npz | --dataset ...]

`search` runs the whole SuperWeight pipeline (`SearchAndRefine`) on the
8x8 digits that ship with keras_swn unless told otherwise: search
training, gradient-similarity clustering under the budget, final
training with a refine step; it writes the policy, budget report,
results, plots and `model.keras` into `--output_dir` (default
`swn_runs/search`). Rerunning the same command resumes an interrupted
run, or prints the finished one; `--overwrite` starts over. `evaluate`
reloads a saved model and prints each member's and the ensemble's
accuracy.

`plan` prints the budget report of the search-phase model (initial bins,
one coefficient vector per bank) without building a model. `train` builds
an `SWNModel` on fixed groups, trains it with the search's recipe,
evaluates it and writes `model.keras`, `policy.json`,
`budget_report.json`, `history.json` and `results.json` into
`--output_dir` (default `swn_runs/train`).

One run at a time per output folder: a second `search` or `train` in a
folder in use fails at once, naming the process that holds it (a lock a
killed run left is taken over, with the temporary files of its
interrupted writes). `train` and `search` never write into each other's
folders; `--overwrite` deletes only what keras-swn wrote there.

The backend is chosen by the `KERAS_BACKEND` environment variable
(tensorflow, jax or torch). Training prints a progress bar on a terminal
and one line per epoch otherwise (`--progress`). Errors are one line on
stderr naming the flag to fix, with exit status 2. `keras-swn COMMAND
--help` lists the flags of a command, `keras-swn --helpfull` those of
every command.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import MutableMapping
from typing import Sequence

from keras_swn.cli.flags import COMMAND_HELP
from keras_swn.cli.flags import UsageError
from keras_swn.cli.flags import parse
from keras_swn.cli.flags import parser
from keras_swn.cli.parsed import CommandError

__all__ = ["COMMANDS", "execute", "main", "run"]

#: The commands: name -> one-line summary. The functions live in
#: `keras_swn.cli.commands`, imported only when a command runs.
COMMANDS = COMMAND_HELP

#: The exit status of every error (bad flag, bad value, bad input).
ERROR = 2


def _usage() -> str:
    lines = ["usage: keras-swn <command> [--flags]", "", "commands:"]
    lines += [f"  {name:<10} {help}" for name, help in COMMANDS.items()]
    lines.append("")
    lines.append(
        "`keras-swn <command> --help` lists the flags of a command, "
        "`keras-swn --helpfull` those of every command."
    )
    return "\n".join(lines)


def _error(prefix: str, message: object) -> int:
    text = " ".join(str(message).split())
    print(f"{prefix}: error: {text}", file=sys.stderr)
    return ERROR


def main(argv: Sequence[str]) -> int:
    """Run the command of `argv` in this process.

    Args:
        argv: the command line; `argv[0]` is the program name.

    Returns:
        The exit status: 0, or 2 after an error (a flag that does not
        parse, a value the library rejects, missing data), which is
        printed as one line on stderr naming the flag.
    """
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
        return _error(
            "keras-swn",
            f"{got}; expected one of {', '.join(COMMANDS)} "
            "(keras-swn --help lists them).",
        )
    name = args[0]
    try:
        flags = parse(name, args[1:])
        from keras_swn.cli import commands

        return getattr(commands, name)(flags)
    except (UsageError, CommandError) as e:
        return _error(f"keras-swn {name}", e)
    except FloatingPointError as e:  # a diverged training: advice in flags
        return _error(f"keras-swn {name}", flags.error(e))


def execute(argv: Sequence[str]) -> int:
    """Parse `argv` (`argv[0]` is the program name) and run, in-process.

    The same as the console script, for tests and notebooks, without
    its changes to the environment (`quiet_backends`).

    Args:
        argv: the command line.

    Returns:
        The exit status (0 after `--help`).
    """
    try:
        return main(argv)
    except SystemExit as e:  # `--help` of a command
        return int(e.code or 0)


def quiet_backends(environ: MutableMapping[str, str] | None = None) -> None:
    """Silence the backends' start-up logs, unless the user chose a level.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` (TensorFlow's C++ INFO and WARNING
    lines: CPU features, oneDNN, absl's pre-init warning) and raises the
    `absl` and JAX start-up Python loggers to ERROR, only when
    `TF_CPP_MIN_LOG_LEVEL` is not already set. Must run before a backend
    is imported.

    Args:
        environ: the environment to change (default `os.environ`).
    """
    environ = os.environ if environ is None else environ
    if "TF_CPP_MIN_LOG_LEVEL" in environ:
        return
    environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    for name in ("absl", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run() -> None:
    """Console-script entry point (`keras-swn`)."""
    quiet_backends()
    try:
        status = execute(sys.argv)
    except KeyboardInterrupt:
        print(
            "\nkeras-swn: interrupted; rerun the same command to resume "
            "(search), or add --overwrite to start over.",
            file=sys.stderr,
        )
        status = 130
    sys.exit(status)
