"""`keras-swn` start-up: import cost, quiet backends, errors in the
words of the flags, and the flag choices kept equal to the library's."""

import os
import subprocess
import sys
import textwrap

import pytest

from keras_swn import cli
from keras_swn.cli import flags
from keras_swn.cli import messages
from keras_swn.validation import invalid_argument

BACKENDS = ("keras", "tensorflow", "jax", "torch")

# Imports the CLI with the package `__init__` modules of keras_swn,
# keras_swn.models and keras_swn.bank not run (as a lazy `__init__`
# would behave), runs one command line and prints the backends imported.
_BYPASSED_INITS = textwrap.dedent(
    """
    import importlib.util, sys
    for name in ("keras_swn", "keras_swn.models", "keras_swn.bank"):
        spec = importlib.util.find_spec(name)
        sys.modules[name] = importlib.util.module_from_spec(spec)
    from keras_swn.cli import execute
    status = execute(["keras-swn", *sys.argv[1:]])
    loaded = [m for m in {backends!r} if m in sys.modules]
    print("LOADED", status, ",".join(loaded), file=sys.stderr)
    """
).format(backends=BACKENDS)


def _python(*args, env=None):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


class TestImportCost:
    @pytest.mark.parametrize(
        "argv",
        [
            ["--help"],
            ["--helpfull"],
            ["plan", "--help"],
            ["search", "--help"],
            ["plan", "--json", "--members=16-2,10-1"],
            ["plan", "--members=15-4"],  # an error path too
        ],
    )
    def test_cli_imports_no_backend(self, argv):
        # The CLI's own modules: no backend on the --help and plan paths.
        proc = _python("-c", _BYPASSED_INITS, *argv)
        line = [t for t in proc.stderr.splitlines() if t.startswith("LOADED")]
        assert line, proc.stderr
        _, status, loaded = (line[-1] + " ").split(" ", 2)
        assert status in ("0", "2")
        assert loaded.strip() == "", f"{argv} imported {loaded}"

    def test_console_help_imports_no_backend(self):
        # The real entry point, package __init__ included.
        proc = _python("-X", "importtime", "-m", "keras_swn.cli", "--help")
        assert proc.returncode == 0
        names = [
            line.rsplit("|", 1)[-1].strip()
            for line in proc.stderr.splitlines()
            if line.startswith("import time:")
        ]
        assert "keras_swn" in names
        top = {n.split(".")[0] for n in names}
        assert not top & set(BACKENDS), f"--help imported {top & set(BACKENDS)}"


class TestQuietBackends:
    def test_sets_level_when_unset(self):
        env = {}
        cli.quiet_backends(env)
        assert env == {"TF_CPP_MIN_LOG_LEVEL": "2"}

    def test_keeps_the_users_level(self):
        env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
        cli.quiet_backends(env)
        assert env == {"TF_CPP_MIN_LOG_LEVEL": "0"}

    def test_no_start_up_lines(self):
        env = {k: v for k, v in os.environ.items()}
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        proc = subprocess.run(
            [sys.executable, "-m", "keras_swn.cli", "plan", "--budget=10"],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("keras-swn plan: error: ")


class TestChoices:
    def test_equal_to_the_library(self):
        from keras_swn.analysis import clustering
        from keras_swn.analysis.partition import CLUSTERINGS
        from keras_swn.analysis.similarity import SIGNALS
        from keras_swn.bank.template_bank import TEMPLATE_FAN_IN
        from keras_swn.policy.chains import CHAIN_SORTS
        from keras_swn.search.phases import SHARINGS
        from keras_swn.training.optim import SCHEDULES

        assert flags.SHARINGS == tuple(SHARINGS)
        assert flags.SCHEDULES == tuple(SCHEDULES)
        assert flags.THRESHOLD_SCHEDULES == tuple(clustering.SCHEDULES)
        assert flags.BUDGET_CHECKS == tuple(clustering.BUDGET_CHECKS)
        assert flags.CLUSTERINGS == tuple(CLUSTERINGS)
        assert flags.SIGNALS == tuple(SIGNALS)
        assert flags.TEMPLATE_FAN_IN == tuple(TEMPLATE_FAN_IN)
        assert flags.CHAIN_SORTS == tuple(CHAIN_SORTS)

    def test_every_library_argument_has_a_known_flag(self):
        # Each library argument a command reports on is a flag or has a
        # rename (messages.ARGUMENT_FLAGS).
        import dataclasses

        from keras_swn.search import SearchConfig
        from keras_swn.search import TrainingRecipe

        search_flags = flags.parse("search", []).values
        lookup = messages.flag_lookup(search_flags)
        python_only = {
            "members",
            "input_shape",
            "num_classes",
            "bank_size",
            "on_over_budget",
            "bank",
        }
        for cls in (SearchConfig, TrainingRecipe):
            for field in dataclasses.fields(cls):
                if field.name not in python_only:
                    assert lookup(field.name), field.name


class TestMessages:
    lookup = staticmethod(
        messages.flag_lookup(
            {
                "budget": 0,
                "bins": 0,
                "sharing": 0,
                "epochs": 0,
                "refine_after": 0,
                "output_dir": 0,
                "overwrite": 0,
                "reference_compatible": 0,
                "template_fan_in": 0,
            }
        )
    )

    @pytest.mark.parametrize(
        "message, expected",
        [
            (  # an ArgumentError: its `expected`, no text cut
                invalid_argument(
                    "budget",
                    "Expected at least 9. Raise `budget` or use fewer "
                    "initial bins (`num_bins`).",
                    5,
                ),
                "Expected at least 9. Raise --budget or use fewer initial "
                "bins (--bins).",
            ),
            (  # the same as text: the frame is cut
                "Invalid value for argument `budget`. Expected at least 9. "
                "Raise `budget` or use fewer initial bins (`num_bins`). "
                "Received: budget=5",
                "Expected at least 9. Raise --budget or use fewer initial "
                "bins (--bins).",
            ),
            (
                invalid_argument(
                    "budget",
                    "The template banks need 9 parameters (one template "
                    "per bank alone needs 9). Raise `budget`, merge more "
                    "layers into fewer groups, or pass "
                    "on_over_budget='report'.",
                    5,
                ),
                "The template banks need 9 parameters (one template per "
                "bank alone needs 9). Raise --budget, or merge more layers "
                "into fewer groups (a lower --bins).",
            ),
            (  # a value whose repr the text frame could not cut
                invalid_argument("budget", "Expected an int.", {"a": 1}),
                "Expected an int.",
            ),
            (
                "The project folder /x holds a search with another "
                "configuration (budget 5 != 6). Pass overwrite=True or "
                "another `project_name`. Received: overwrite=False",
                "The project folder /x holds a search with another "
                "configuration (budget 5 != 6). Pass --overwrite to start "
                "over, or another --output_dir.",
            ),
            (
                invalid_argument(
                    "refine_after",
                    "Expected an int with 1 <= refine_after < epochs=3 "
                    "(sharing='learned' refines; use "
                    "sharing='learned_no_refine' for no refine).",
                    5,
                ),
                "Expected an int with 1 <= --refine_after < --epochs=3 "
                "(--sharing=learned refines; use "
                "--sharing=learned_no_refine for no refine).",
            ),
            (
                "reference_compatible=True selects template_fan_in=9; pass "
                "one or the other. Received: template_fan_in='kernel'",
                "--reference_compatible selects --template_fan_in=9; pass "
                "one or the other.",
            ),
            (
                "Invalid arrays in 'a.npz': `x_train` and `x_test` differ."
                "\nReceived: x_train.shape=(1, 2), x_test.shape=(1, 3)",
                "Invalid arrays in 'a.npz': `x_train` and `x_test` differ. "
                "Received: x_train.shape=(1, 2), x_test.shape=(1, 3)",
            ),
        ],
    )
    def test_flag_message(self, message, expected):
        assert messages.flag_message(message, self.lookup) == expected

    def test_rename(self):
        lookup = messages.flag_lookup({"data": 0}, {"path": "data"})
        text = "Invalid value for argument `path`: no such file. Expected "
        text += "a file. Received: path='/x.npz'"
        assert messages.flag_message(text, lookup) == (
            "no such file. Expected a file."
        )
