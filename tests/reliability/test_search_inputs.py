"""Bad input to `SearchAndRefine`: a clear error, and nothing lost.

Each test is a case a user could type; the error names the argument (or
the file) and the value, and no folder outside the project is touched.
"""

import json
import math
import re

import keras
import numpy as np
import pytest
import swn_fixtures
from swn_fixtures import make_search

from keras_swn.callbacks import StopOnNonFiniteLoss


def make(directory, project="p", **kwargs):
    options = dict(budget=80_000, plots=False, seed=1)
    return make_search(directory, [(10, 1)], project, **{**options, **kwargs})


def digits():
    (x, y), val = swn_fixtures.digits()
    return (x.copy(), y.copy()), val


class Abort(keras.callbacks.Callback):
    """Stops a search at its first training step (nothing trained)."""

    def on_train_begin(self, logs=None):
        raise RuntimeError("aborted by the test")


def start(search, train, val=None):
    with pytest.raises(RuntimeError, match="aborted by the test"):
        search.search(
            train,
            val,
            search_epochs=2,
            epochs=2,
            callbacks=[Abort()],
            verbose=0,
        )


class TestFolderSafety:
    @pytest.mark.parametrize("name", [".", "..", "a/b", "", " "])
    def test_project_name_outside_directory_is_rejected(self, tmp_path, name):
        (tmp_path / "sibling").mkdir()
        (tmp_path / "sibling" / "keep.txt").write_text("x")
        inner = tmp_path / "runs"
        inner.mkdir()
        with pytest.raises(ValueError, match="project_name"):
            make(inner, project=name, overwrite=True)
        assert (tmp_path / "sibling" / "keep.txt").read_text() == "x"
        assert inner.is_dir()

    def test_overwrite_refuses_a_folder_that_is_not_a_project(self, tmp_path):
        folder = tmp_path / "p"
        folder.mkdir()
        (folder / "thesis.tex").write_text("years of work")
        with pytest.raises(ValueError, match="keras_swn did not write"):
            make(tmp_path, overwrite=True)
        assert (folder / "thesis.tex").read_text() == "years of work"

    def test_overwrite_deletes_a_project_folder(self, tmp_path):
        search = make(tmp_path)
        start(search, digits()[0])
        (tmp_path / "p" / "state.json").write_text("{}")
        make(tmp_path, overwrite=True)
        assert not (tmp_path / "p").exists()

    def test_directory_that_is_a_file(self, tmp_path):
        path = tmp_path / "file"
        path.write_text("")
        with pytest.raises(ValueError, match="directory"):
            make(path)


class TestDamagedState:
    @pytest.mark.parametrize(
        "content",
        [
            b"",
            b'{"format": "keras_swn.SearchAndRefine", "vers',
            b"\x89PNG\x00",
            b"[1, 2]",
            b'{"format": "keras_swn.SearchAndRefine", "version": 3}',
        ],
        ids=["empty", "truncated", "binary", "wrong_schema", "missing_keys"],
    )
    def test_clear_error_naming_the_file(self, tmp_path, content):
        (tmp_path / "p").mkdir()
        (tmp_path / "p" / "state.json").write_bytes(content)
        with pytest.raises(ValueError, match=r"state\.json is damaged") as e:
            make(tmp_path)
        assert "overwrite=True" in str(e.value)
        # and the user's way out works
        make(tmp_path, overwrite=True)


class TestData:
    def test_nan_pixel(self, tmp_path):
        (x, y), _ = digits()
        x[3, 2, 2, 0] = np.nan
        with pytest.raises(
            ValueError, match=r"`train_data`.*finite.*1 non-finite values"
        ):
            make(tmp_path).search((x, y), epochs=2, verbose=0)
        assert not (tmp_path / "p").exists()

    def test_label_beyond_the_classes(self, tmp_path):
        (x, y), val = digits()
        y[0] = 100_000
        with pytest.raises(
            ValueError, match=r"`train_data`.*\[0, 10\).*from 0 to 100000"
        ):
            make(tmp_path).search((x, y), val, epochs=2, verbose=0)

    def test_negative_validation_label(self, tmp_path):
        train, (xv, yv) = digits()
        yv = yv.copy()
        yv[0] = -1
        with pytest.raises(ValueError, match="`validation_data`.*from -1"):
            make(tmp_path).search(train, (xv, yv), epochs=2, verbose=0)

    def test_one_hot_labels(self, tmp_path):
        (x, y), _ = digits()
        with pytest.raises(ValueError, match="one-hot.*argmax"):
            make(tmp_path).search((x, np.eye(10)[y]), epochs=2, verbose=0)

    def test_three_channels_into_a_one_channel_model(self, tmp_path):
        (x, y), _ = digits()
        with pytest.raises(ValueError, match=r"\(8, 8, 1\).*\(32, 8, 8, 3\)"):
            make(tmp_path).search(
                (np.repeat(x, 3, axis=-1), y), epochs=2, verbose=0
            )

    def test_resume_on_other_data_is_refused(self, tmp_path):
        train, val = digits()
        start(make(tmp_path), train, val)
        saved = json.loads((tmp_path / "p" / "data.json").read_text())
        assert len(saved["train_data"]) == 64
        other = (train[0][::-1].copy(), train[1][::-1].copy())
        with pytest.raises(ValueError, match="`train_data`.*other data"):
            make(tmp_path).search(
                other, val, search_epochs=2, epochs=2, verbose=0
            )
        # The same data resumes (stopped again before training).
        start(make(tmp_path), train, val)


def test_non_finite_loss_stops_with_an_error():
    callback = StopOnNonFiniteLoss()
    callback.on_epoch_end(0, {"loss": 1.0})
    for value in (float("nan"), float("inf")):
        with pytest.raises(FloatingPointError, match="learning rate"):
            callback.on_epoch_end(3, {"loss": value})


def test_search_passes_the_non_finite_stop_to_fit(tmp_path, monkeypatch):
    seen = []

    def fake_fit(self, *args, callbacks=None, **kwargs):
        seen.extend(type(c).__name__ for c in callbacks or ())
        raise RuntimeError("aborted by the test")

    monkeypatch.setattr(keras.Model, "fit", fake_fit)
    with pytest.raises(RuntimeError, match="aborted"):
        make(tmp_path).search(digits()[0], epochs=2, verbose=0)
    assert "StopOnNonFiniteLoss" in seen


def test_train_and_save_on_batches_writes_the_run(tmp_path):
    """A `tf.data` pipeline has no example count; the finished run must
    still be written (it used to fail after training, losing the model)."""
    import tensorflow as tf

    from keras_swn.training.train import train_and_save

    (x, y), _ = digits()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = swn_fixtures.tiny_swn_model()
    results = train_and_save(
        model, data, directory=tmp_path / "run", epochs=1, verbose=0
    )
    assert results["train_examples"] is None
    assert (tmp_path / "run" / "model.keras").exists()


@pytest.mark.parametrize("arity", [1, 3])
def test_train_data_tuple_that_is_not_x_y(tmp_path, arity):
    (x, y), _ = digits()
    data = (x, y, np.ones(len(y)))[:arity]
    with pytest.raises(ValueError, match="`train_data`.*tuple of arrays"):
        make(tmp_path).search(data, epochs=2, verbose=0)


def test_collect_kernel_gradients_batch_size_zero():
    (x, y), _ = digits()
    model = swn_fixtures.tiny_swn_model()
    with pytest.raises(ValueError, match="batch_size=0"):
        model.collect_kernel_gradients(x, y, batch_size=0)


# ----------------------------------------------------------------------
# The same data checks for every form (issue 20)


class TestDataForms:
    def test_string_labels(self, tmp_path):
        (x, y), _ = digits()
        with pytest.raises(ValueError, match="`train_data`.*not strings"):
            make(tmp_path).search((x, y.astype(str)), epochs=2, verbose=0)

    def test_empty_arrays(self, tmp_path):
        (x, y), _ = digits()
        with pytest.raises(ValueError, match="`train_data`.*empty"):
            make(tmp_path).search((x[:0], y[:0]), epochs=2, verbose=0)
        assert not (tmp_path / "p").exists()

    def test_channels_first(self, tmp_path):
        (x, y), _ = digits()
        with pytest.raises(ValueError, match="`train_data`.*channels-first"):
            make(tmp_path).search(
                (x.transpose(0, 3, 1, 2), y), epochs=2, verbose=0
            )

    def test_list_of_batches_with_a_label_beyond_the_classes(self, tmp_path):
        (x, y), _ = digits()
        y = y.copy()
        y[20] = 10
        batches = [(x[:16], y[:16]), (x[16:], y[16:])]
        with pytest.raises(
            ValueError, match=r"`train_data`.*\[0, 10\).*batch 1: labels"
        ):
            make(tmp_path).search(batches, epochs=2, verbose=0)

    def test_empty_list_of_batches(self, tmp_path):
        with pytest.raises(ValueError, match="`train_data`.*empty"):
            make(tmp_path).search([], epochs=2, verbose=0)

    def test_inputs_without_labels(self, tmp_path):
        (x, _), _ = digits()
        with pytest.raises(ValueError, match="`train_data`.*tuple of arrays"):
            make(tmp_path).search(x, epochs=2, verbose=0)

    def test_generator_is_refused(self, tmp_path):
        (x, y), _ = digits()
        batches = ((x[s : s + 16], y[s : s + 16]) for s in (0, 16))
        with pytest.raises(
            ValueError, match="`train_data`.*more than once.*generator"
        ):
            make(tmp_path).search(batches, epochs=2, verbose=0)

    def test_validation_batches_checked(self, tmp_path):
        train, (xv, yv) = digits()
        with pytest.raises(ValueError, match="`validation_data`.*non-finite"):
            bad = xv.copy()
            bad[0, 0, 0, 0] = np.inf
            make(tmp_path).search(
                train, [(bad[:8], yv[:8])], epochs=2, verbose=0
            )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.data is TF-only"
)
class TestDatasets:
    def dataset(self, x, y, batch=16):
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y))
        return data if batch is None else data.batch(batch)

    def test_infinite_dataset_is_refused(self, tmp_path):
        (x, y), _ = digits()
        data = self.dataset(x, y).repeat()
        with pytest.raises(
            ValueError, match=r"`train_data`.*repeats forever.*\.take"
        ):
            make(tmp_path).search(data, epochs=2, verbose=0)
        assert not (tmp_path / "p").exists()

    def test_label_beyond_the_classes(self, tmp_path):
        (x, y), _ = digits()
        y = y.copy()
        y[0] = 10
        with pytest.raises(ValueError, match=r"`train_data`.*\[0, 10\)"):
            make(tmp_path).search(self.dataset(x, y), epochs=2, verbose=0)

    def test_string_labels(self, tmp_path):
        (x, y), _ = digits()
        data = self.dataset(x, y.astype(str))
        with pytest.raises(ValueError, match="`train_data`.*not strings"):
            make(tmp_path).search(data, epochs=2, verbose=0)

    def test_unbatched(self, tmp_path):
        (x, y), _ = digits()
        data = self.dataset(x, y, batch=None)
        with pytest.raises(ValueError, match=r"`train_data`.*\.batch"):
            make(tmp_path).search(data, epochs=2, verbose=0)

    def test_six_by_six_images(self, tmp_path):
        (x, y), _ = digits()
        data = self.dataset(x[:, :6, :6], y)
        with pytest.raises(ValueError, match=r"\(8, 8, 1\).*6, 6, 1\)"):
            make(tmp_path).search(data, epochs=2, verbose=0)


@pytest.mark.parametrize("value", [2, 5, -5, 1.0001, float("nan")])
def test_refine_threshold_is_a_cosine(tmp_path, value):
    with pytest.raises(ValueError, match="argument `refine_threshold`"):
        make(tmp_path, refine_threshold=value)


@pytest.mark.parametrize("value", [-1, 0.9, 1])
def test_refine_threshold_in_range(tmp_path, value):
    assert make(tmp_path, refine_threshold=value).config.refine_threshold == (
        value
    )


def logged_losses(tree):
    """Every `"loss"` value in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "loss" and isinstance(value, (int, float)):
                yield float(value)
            else:
                yield from logged_losses(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from logged_losses(value)


class TestDivergence:
    def test_message_names_the_epoch_and_the_learning_rate(self):
        from keras_swn.search.steps import diverged

        text = str(diverged("training epoch 3", "loss nan"))
        assert text.startswith(
            "The training diverged at training epoch 3 (loss nan); lower "
            "the learning rate"
        )

    def test_diverging_search_stops_clearly_and_stays_resumable(self, tmp_path):
        train, val = digits()
        with pytest.raises(FloatingPointError) as e:
            make(tmp_path).search(
                train,
                val,
                search_epochs=1,
                epochs=2,
                learning_rate=1e3,
                verbose=0,
            )
        message = str(e.value)
        # Where depends on the backend's numerics (TF: the capture after
        # the search epoch; JAX: a final-training epoch).
        assert re.match(
            r"The training diverged at (search_training|training) epoch "
            r"\d+ \(.*\); lower the learning rate",
            message,
        ), message
        assert "gradients`" not in message
        # Nothing of the diverged step was recorded.
        state = json.loads((tmp_path / "p" / "state.json").read_text())
        losses = list(logged_losses(state))
        assert losses and all(math.isfinite(v) for v in losses), losses
        # The folder resumes: the same arguments stop at the same place.
        with pytest.raises(FloatingPointError, match="diverged"):
            make(tmp_path).search(
                train,
                val,
                search_epochs=1,
                epochs=2,
                learning_rate=1e3,
                verbose=0,
            )
