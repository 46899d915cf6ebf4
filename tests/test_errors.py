"""One error type for a bad argument, made one way.

Every bad-argument error is a `keras_swn.validation.ArgumentError` made
by `invalid_argument` (directly or through the `check_*` helpers), so its
message has one format and `.argument` / `.expected` / `.received` say
which argument, what is accepted and what came; the command line builds
its flag messages from those attributes. Library messages never name a
command-line flag (the command line translates).

The source checks read string literals with `ast` (docstrings, whose
doctests may show an error's text, and comments do not count).
"""

import ast
import pathlib
import re

import numpy as np
import pytest

import keras_swn
from keras_swn.validation import ArgumentError
from keras_swn.validation import invalid_argument

ROOT = pathlib.Path(keras_swn.__file__).parent
FRAME = "Invalid value for argument"
#: The one writer of the house frame, and the command-line module that
#: reads it back from the text of errors that have no `expected`.
FRAME_ALLOWED = {"validation.py", "cli/messages.py"}
#: A command-line flag (`--budget`), not a decrement (`x--`) or a rule.
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z_]+")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(
            node,
            (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef),
        ):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.add(id(body[0].value))
    return found


def _literals(path: pathlib.Path):
    """`(line, text)` of every string literal of a module but docstrings
    (f-strings: their literal parts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
        ):
            yield node.lineno, node.value


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path


def _joined(path: pathlib.Path):
    """Adjacent literals joined per line run, so that a phrase split over
    implicitly concatenated strings is found: `(first line, text)`."""
    literals = sorted(_literals(path))
    runs: list[tuple[int, str]] = []
    for line, text in literals:
        if runs and line - runs[-1][0] <= 8:
            runs[-1] = (runs[-1][0], runs[-1][1] + text)
        else:
            runs.append((line, text))
    return runs


def test_no_hand_written_argument_messages():
    offenders = [
        f"keras_swn/{name}:{line}"
        for name, path in _modules()
        if name not in FRAME_ALLOWED
        for line, text in _literals(path)
        if FRAME in text
    ]
    assert not offenders, (
        f"hand-written {FRAME!r} messages (raise "
        f"keras_swn.validation.invalid_argument instead): {offenders}"
    )


def test_library_messages_name_no_flags():
    offenders = [
        f"keras_swn/{name}:{line}: {FLAG.search(text).group(0)}"
        for name, path in _modules()
        if not name.startswith("cli/")
        for line, text in _literals(path)
        if FLAG.search(text)
    ]
    assert not offenders, (
        "library messages name command-line flags (name the argument; "
        f"keras_swn.cli translates): {offenders}"
    )


def test_one_factory():
    """`invalid_argument` is the one factory: its older alias
    `argument_error` is gone."""
    import keras_swn.validation as validation

    assert not hasattr(validation, "argument_error")
    users = [
        name
        for name, path in _modules()
        if "argument_error" in path.read_text(encoding="utf-8")
    ]
    assert not users


def test_invalid_argument_attributes():
    error = invalid_argument("x", "Expected 2D.", [1], shown="x.shape=(1,)")
    assert isinstance(error, ValueError)
    assert (error.argument, error.expected, error.received) == (
        "x",
        "Expected 2D.",
        [1],
    )
    assert str(error) == (
        "Invalid value for argument `x`. Expected 2D. Received: x.shape=(1,)"
    )


def _raises(argument: str, received=None):
    """`pytest.raises` for an `ArgumentError` naming `argument` in its
    attribute and its message (and, given, the value received)."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(ArgumentError)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            if not handled:
                return handled
            error = self.info.value
            assert error.argument == argument, str(error)
            assert f"`{argument}`" in str(error), str(error)
            assert error.expected and error.expected in str(error)
            if received is not None:
                assert error.received == received
            return handled

    return _Check()


def _specs():
    from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs

    return wide_resnet_layer_specs(10, 1)


class TestEntryPoints:
    """A sample of public entry points: a bad argument is an
    `ArgumentError` naming it (message and attribute alike)."""

    def test_sharing_policy(self):
        with _raises("groups"):
            keras_swn.SharingPolicy(groups=[])
        with _raises("groups"):
            keras_swn.SharingPolicy(groups=[[0, -1]])
        with _raises("coefficient_owners"):
            keras_swn.SharingPolicy(
                groups=[[0, 1]], coefficient_owners={(0, 1, 0): (0, 0)}
            )
        with _raises("coefficients", received="x"):
            keras_swn.SharingPolicy.from_bins(_specs(), 2, coefficients="x")

    def test_bank_plan(self):
        specs = _specs()
        policy = keras_swn.SharingPolicy.from_bins(specs, 2)
        with _raises("budget", received=0):
            keras_swn.BankPlan.create(specs, policy, 0)
        with _raises("budget", received=10):  # over budget
            keras_swn.BankPlan.create(specs, policy, 10)
        other = keras_swn.SharingPolicy(groups=[[0, 1]])
        with _raises("policy"):
            keras_swn.BankPlan.create(specs, other, 10**6)

    def test_swn_model(self):
        from keras_swn.models import WideResNet

        def model(**kwargs):
            options = dict(
                members=[WideResNet(10, 1)],
                input_shape=(8, 8, 3),
                num_classes=10,
                budget=250_000,
                seed=0,
            )
            return keras_swn.SWNModel(**{**options, **kwargs})

        with _raises("budget"):
            model(budget=-1)
        with _raises("num_bins"):
            model(num_bins=0)
        with _raises("seed", received="a"):
            model(seed="a")
        with _raises("metrics", received=["mae"]):
            model().compile("sgd", metrics=["mae"])

    def test_search_and_refine(self, tmp_path):
        from keras_swn.models import WideResNet
        from keras_swn.search import SearchAndRefine

        def search(**kwargs):
            options = dict(
                members=[WideResNet(10, 1)],
                input_shape=(8, 8, 3),
                num_classes=10,
                budget=50_000,
                directory=tmp_path,
            )
            return SearchAndRefine(**{**options, **kwargs})

        with _raises("budget"):
            search(budget=0)
        with _raises("sharing", received="hard"):
            search(sharing="hard")
        with _raises("num_bins"):
            search(num_bins=0)
        with _raises("group_share"):
            search(group_share=2.0)

    def test_layers(self):
        from keras_swn.layers import SuperWeightConv2D

        with _raises("filters", received=0):
            SuperWeightConv2D(0, 3)
        with _raises("padding", received="full"):
            SuperWeightConv2D(4, 3, padding="full")
        with _raises("data_format"):
            SuperWeightConv2D(4, 3, data_format="channels_first")
        with _raises("num_templates", received=9):
            SuperWeightConv2D(4, 3, num_templates=9)

    def test_analysis_and_data(self):
        from keras_swn.analysis import cluster_bin
        from keras_swn.data import load_npz

        with _raises("sim"):
            cluster_bin([0, 1], np.eye(1), 0.1)
        with _raises("path"):
            load_npz("/no/such/file.npz")
        with _raises("validation_split", received=1.5):
            load_npz("/no/such/file.npz", validation_split=1.5)


class TestCommandLine:
    """The command line words an `ArgumentError` from its attributes."""

    def test_expected_not_text(self):
        from keras_swn.cli import messages

        error = invalid_argument(
            "budget",
            "Expected at least 9. Raise `budget` or lower `num_bins`.",
            5,
            shown="budget=5 (Received: nothing to cut)",
        )
        lookup = messages.flag_lookup({"budget": 0, "bins": 0})
        assert messages.flag_message(error, lookup) == (
            "Expected at least 9. Raise --budget or lower --bins."
        )

    def test_diverged_training(self, monkeypatch, capsys):
        """A diverged training (`FloatingPointError`) is one line naming
        flags, not a traceback naming arguments."""
        from keras_swn import cli
        from keras_swn.cli import commands

        def diverge(flags):
            raise FloatingPointError(
                "The loss is nan; lower the learning rate (`learning_rate`)."
            )

        monkeypatch.setattr(commands, "search", diverge)
        assert cli.execute(["keras-swn", "search"]) == 2
        assert capsys.readouterr().err == (
            "keras-swn search: error: The loss is nan; lower the learning "
            "rate (--learning_rate).\n"
        )
