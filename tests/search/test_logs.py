"""The search's own log lines: where they fall among Keras' epoch lines,
what they say about a training split by the refine step, and no terminal
control characters when standard output is not a terminal."""

import keras
from swn_fixtures import digits
from swn_fixtures import make_search

from keras_swn.search.steps import fit_verbosity


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_fit_verbosity(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Stream(True))
    assert fit_verbosity("auto") == 1
    monkeypatch.setattr("sys.stdout", _Stream(False))
    assert fit_verbosity("auto") == 2
    assert fit_verbosity(0) == 0 and fit_verbosity(1) == 1


def test_log_lines(tmp_path, capsys):
    keras.utils.clear_session()
    search = make_search(
        tmp_path, [(10, 1)], "p", budget=80_000, run_eagerly=True, seed=0
    )
    train, val = digits()
    # verbose="auto" (the default): captured output is not a terminal.
    search.search(train, val, search_epochs=1, epochs=3, refine_after=1)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\b" not in out
    lines = out.splitlines()
    ours = [i for i, line in enumerate(lines) if "[SearchAndRefine]" in line]
    assert all(lines[i].startswith("[SearchAndRefine]") for i in ours)
    paused = [
        i for i in ours if "training paused after 1 of 3 epochs" in lines[i]
    ]
    assert len(paused) == 1 and "refine step" in lines[paused[0]]
    assert not any(
        lines[i].startswith("[SearchAndRefine] training done: 1 epochs")
        for i in ours
    )
    # Every phase-end line comes after the Keras line of its last epoch.
    (done,) = [i for i in ours if "training done: 3 epochs" in lines[i]]
    epoch_lines = [i for i, line in enumerate(lines) if "/step" in line]
    assert epoch_lines[-1] < done
    assert any(
        i + 1 == paused[0] for i in epoch_lines
    ), "the paused line follows the epoch's Keras line"
