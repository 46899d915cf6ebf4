"""A damaged run folder of any kind (state, checkpoint, results, model,
weights) is one `DamagedFileError` naming the file, what is wrong and the
ways on; never a traceback from NumPy, zipfile, h5py or Keras."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import swn_fixtures
from swn_fixtures import make_search

from keras_swn.io_utils import DamagedFileError

#: The run arguments of the interrupted search (a resume repeats them).
RUN = dict(search_epochs=2, epochs=2)


def make(directory, **kwargs):
    options = dict(budget=80_000, plots=False, seed=1)
    return make_search(directory, [(10, 1)], "p", **{**options, **kwargs})


class StopAtSecondEpoch(keras.callbacks.Callback):
    """Stops a search when its second epoch starts (one checkpoint)."""

    calls = 0

    def on_train_begin(self, logs=None):
        StopAtSecondEpoch.calls += 1
        if StopAtSecondEpoch.calls == 2:
            raise RuntimeError("stopped by the test")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A search stopped after its first search epoch: `state.json` names
    one checkpoint."""
    root = tmp_path_factory.mktemp("interrupted")
    train, val = swn_fixtures.digits()
    StopAtSecondEpoch.calls = 0
    with pytest.raises(RuntimeError, match="stopped by the test"):
        make(root).search(
            train, val, callbacks=[StopAtSecondEpoch()], verbose=0, **RUN
        )
    names = os.listdir(root / "p" / "checkpoints")
    assert len(names) == 1
    return root / "p"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch search (no refine)."""
    root = tmp_path_factory.mktemp("finished")
    train, val = swn_fixtures.digits()
    make(root, sharing="learned_no_refine").search(
        train, val, search_epochs=1, epochs=1, verbose=0
    )
    return root / "p"


def copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "p")
    return tmp_path / "p"


def resume(tmp_path, **kwargs):
    train, val = swn_fixtures.digits()
    make(tmp_path, **kwargs).search(train, val, verbose=0, **RUN)


def assert_damaged(error, path, *fragments):
    assert isinstance(error, DamagedFileError), repr(error)
    assert error.path == str(path)
    message = str(error)
    assert message.startswith(str(path)), message
    assert "overwrite=True" in message
    for fragment in fragments:
        assert fragment in message, message


class TestCheckpoints:
    def checkpoint(self, folder):
        (name,) = os.listdir(folder / "checkpoints")
        return folder / "checkpoints" / name

    @pytest.mark.parametrize(
        "damage, what",
        [
            ("delete", "is missing"),
            ("empty", "is damaged or truncated"),
            ("truncate", "is damaged or truncated"),
            ("text", "is damaged or truncated"),
        ],
    )
    def test_damaged_checkpoint(self, interrupted, tmp_path, damage, what):
        folder = copy(interrupted, tmp_path)
        path = self.checkpoint(folder)
        data = path.read_bytes()
        if damage == "delete":
            path.unlink()
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "truncate":
            path.write_bytes(data[: len(data) // 2])
        else:
            path.write_text("not a checkpoint")
        with pytest.raises(ValueError) as e:
            resume(tmp_path)
        assert_damaged(e.value, path, what, "cannot resume")
        assert e.value.argument == "project_name"

    def test_checkpoint_of_another_model(self, interrupted, tmp_path):
        folder = copy(interrupted, tmp_path)
        path = self.checkpoint(folder)
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        key = sorted(k for k in arrays if arrays[k].ndim >= 1)[0]
        arrays[key] = np.zeros((3, *arrays[key].shape))
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(ValueError) as e:
            resume(tmp_path)
        assert_damaged(e.value, path, "other shapes", key)

    def test_checkpoint_with_other_variables(self, interrupted, tmp_path):
        folder = copy(interrupted, tmp_path)
        path = self.checkpoint(folder)
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["w/another/kernel"] = np.zeros(2)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(ValueError) as e:
            resume(tmp_path)
        assert_damaged(e.value, path, "does not match", "w/another/kernel")

    def test_overwrite_is_the_way_on(self, interrupted, tmp_path):
        folder = copy(interrupted, tmp_path)
        self.checkpoint(folder).write_bytes(b"")
        (folder / "notes.txt").write_text("mine")
        search = make(tmp_path, overwrite=True)
        assert search.oracle is None  # starts again
        assert sorted(os.listdir(folder)) == [
            ".keras_swn_manifest.json",
            "notes.txt",
        ]


class TestState:
    def edit_state(self, folder, edit):
        path = folder / "state.json"
        state = json.loads(path.read_text())
        edit(state)
        path.write_text(json.dumps(state))
        return path

    @pytest.mark.parametrize(
        "edit, what",
        [
            (lambda s: s["oracle"].update(cursor=99), "Invalid oracle state"),
            (lambda s: s["oracle"].update(cursor="x"), "Invalid oracle state"),
            (lambda s: s["oracle"].pop("history"), "KeyError"),
            (lambda s: s["run"].pop("epochs"), "KeyError: 'epochs'"),
            (lambda s: s.update(oracle=[]), "AttributeError"),
        ],
        ids=["cursor", "cursor_text", "no_history", "run", "oracle_list"],
    )
    def test_hand_edited_state(self, interrupted, tmp_path, edit, what):
        path = self.edit_state(copy(interrupted, tmp_path), edit)
        with pytest.raises(ValueError) as e:
            make(tmp_path)
        assert_damaged(e.value, path, what, "cannot resume")

    @pytest.mark.parametrize("text", ["", "{", "\x00\xff"])
    def test_truncated_state(self, interrupted, tmp_path, text):
        folder = copy(interrupted, tmp_path)
        (folder / "state.json").write_text(text, encoding="latin-1")
        with pytest.raises(ValueError) as e:
            make(tmp_path)
        assert_damaged(e.value, folder / "state.json", "is damaged")

    def test_damaged_data_record(self, interrupted, tmp_path):
        folder = copy(interrupted, tmp_path)
        (folder / "data.json").write_text("{")
        with pytest.raises(ValueError) as e:
            resume(tmp_path)
        assert_damaged(e.value, folder / "data.json", "not whole JSON")


class TestResultsAndModel:
    def search(self, tmp_path):
        return make(tmp_path, sharing="learned_no_refine")

    @pytest.mark.parametrize(
        "name, read, damage",
        [
            ("results.json", lambda s: s.results(), "truncate"),
            ("results.json", lambda s: s.results(), "delete"),
            ("results.json", lambda s: s.results_summary(), "truncate"),
            ("search_result.json", lambda s: s.search_result(), "truncate"),
        ],
    )
    def test_damaged_results(self, finished, tmp_path, name, read, damage):
        folder = copy(finished, tmp_path)
        path = folder / name
        if damage == "delete":
            path.unlink()
        else:
            path.write_text(path.read_text()[:10])
        with pytest.raises(ValueError) as e:
            read(self.search(tmp_path))
        what = "is missing" if damage == "delete" else "not whole JSON"
        assert_damaged(e.value, path, what)
        policy = folder / "policy.json"
        intact = f"The policy the search found is intact ({policy})"
        assert (intact in str(e.value)) is (name == "results.json")

    def test_truncated_model(self, finished, tmp_path):
        from keras_swn.search import load_and_evaluate

        folder = copy(finished, tmp_path)
        path = folder / "model.keras"
        path.write_bytes(path.read_bytes()[:1000])
        with pytest.raises(ValueError) as e:
            self.search(tmp_path).get_best_models()
        assert_damaged(e.value, path, "not a readable .keras file")
        with pytest.raises(ValueError) as e:
            load_and_evaluate(folder, swn_fixtures.digits()[1])
        assert_damaged(e.value, path, "not a readable .keras file")
        assert e.value.argument == "path"

    def test_truncated_weights(self, tmp_path):
        model = swn_fixtures.tiny_swn_model()
        path = tmp_path / "m.weights.h5"
        model.save_weights(path)
        path.write_bytes(path.read_bytes()[:2000])
        with pytest.raises(ValueError) as e:
            swn_fixtures.tiny_swn_model().load_weights(path)
        assert isinstance(e.value, DamagedFileError)
        assert e.value.argument == "filepath"
        assert str(e.value).startswith(f"{path} is damaged or truncated")
        assert "Save the weights again" in str(e.value)
