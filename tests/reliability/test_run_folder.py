"""One run per folder: the run lock, `train` and `search` folders kept
apart, and the temporary files of a killed run cleaned up."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import keras
import pytest
import swn_fixtures
from swn_fixtures import make_search

from keras_swn.io.store import describe_changes
from keras_swn.io_utils import LOCK_FILE
from keras_swn.io_utils import MANIFEST_FILE
from keras_swn.io_utils import FolderLockedError
from keras_swn.io_utils import RunLock
from keras_swn.io_utils import is_temp_file
from keras_swn.io_utils import read_manifest
from keras_swn.io_utils import write_manifest

#: A pid no process can have (above Linux's largest pid_max, 2**22).
DEAD_PID = 2**22 + 1


def make(directory, project="p", **kwargs):
    options = dict(budget=80_000, plots=False, seed=1)
    return make_search(directory, [(10, 1)], project, **{**options, **kwargs})


class Abort(keras.callbacks.Callback):
    """Stops a search at its first training step (nothing trained)."""

    def on_train_begin(self, logs=None):
        raise RuntimeError("aborted by the test")


def start(search, callback=None):
    train, val = swn_fixtures.digits()
    with pytest.raises(RuntimeError, match="aborted by the test"):
        search.search(
            train,
            val,
            search_epochs=2,
            epochs=2,
            callbacks=[callback or Abort()],
            verbose=0,
        )


def plant_lock(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(text)


class TestRunLock:
    def test_second_search_in_the_folder_fails_at_once(self, tmp_path):
        seen = {}

        class SecondSearch(keras.callbacks.Callback):
            """While the first search runs, a second one starts."""

            def on_train_begin(self, logs=None):
                second = make(tmp_path)
                with pytest.raises(FolderLockedError) as e:
                    second.search(
                        swn_fixtures.digits()[0],
                        search_epochs=2,
                        epochs=2,
                        verbose=0,
                    )
                seen["error"] = e.value
                raise RuntimeError("aborted by the test")

        start(make(tmp_path), SecondSearch())
        error = seen["error"]
        assert str(tmp_path / "p") in str(error)
        assert f"process {os.getpid()}" in str(error)
        assert error.pid == os.getpid()
        # Released when the first run ended (with an exception).
        assert not (tmp_path / "p" / LOCK_FILE).exists()

    @pytest.mark.parametrize(
        "text",
        [f"{DEAD_PID} {socket.gethostname()}\n", "\x00garbage", ""],
        ids=["dead_pid", "unreadable", "empty"],
    )
    def test_stale_lock_is_taken_over(self, tmp_path, text):
        plant_lock(tmp_path / "p", text)
        start(make(tmp_path))
        assert not (tmp_path / "p" / LOCK_FILE).exists()
        assert (tmp_path / "p" / "data.json").exists()  # the run started

    def test_overwrite_refuses_a_folder_in_use(self, tmp_path):
        folder = tmp_path / "p"
        plant_lock(folder, f"{os.getpid()} {socket.gethostname()}\n")
        (folder / "state.json").write_text("{}")
        with pytest.raises(FolderLockedError, match=f"process {os.getpid()}"):
            make(tmp_path, overwrite=True)
        assert (folder / "state.json").read_text() == "{}"

    def test_lock_of_another_host_is_held(self, tmp_path):
        plant_lock(tmp_path, f"{DEAD_PID} another-host.example\n")
        with pytest.raises(FolderLockedError, match="on another-host"):
            RunLock(tmp_path).acquire()

    def test_context_manager_releases_on_exception(self, tmp_path):
        with pytest.raises(KeyError):
            with RunLock(tmp_path / "f", "train"):
                with pytest.raises(FolderLockedError, match="another train"):
                    RunLock(tmp_path / "f").acquire()
                raise KeyError("boom")
        assert os.listdir(tmp_path / "f") == []

    def test_lock_being_written_is_not_stale(self, tmp_path):
        # Another run created the lock a moment ago and writes it now.
        (tmp_path / LOCK_FILE).write_text("")
        writer = threading.Timer(
            0.2,
            lambda: (tmp_path / LOCK_FILE).write_text(
                f"{os.getpid()} {socket.gethostname()} search\n"
            ),
        )
        writer.start()
        try:
            with pytest.raises(FolderLockedError, match="another search"):
                RunLock(tmp_path).acquire()
        finally:
            writer.join()

    def test_release_leaves_a_lock_taken_over(self, tmp_path):
        lock = RunLock(tmp_path)
        lock.acquire()
        other = f"{DEAD_PID + 1} {socket.gethostname()} search\n"
        (tmp_path / LOCK_FILE).write_text(other)
        lock.release()
        assert (tmp_path / LOCK_FILE).read_text() == other

    def test_lock_of_a_killed_process(self, tmp_path):
        # One real second process: it holds the lock, then is killed.
        script = textwrap.dedent(
            """
            import sys, time
            from keras_swn.io_utils import RunLock
            RunLock(sys.argv[1]).acquire()
            print("locked", flush=True)
            time.sleep(120)
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline().strip() == "locked"
            with pytest.raises(FolderLockedError) as e:
                RunLock(tmp_path).acquire()
            assert e.value.pid == proc.pid
            assert str(tmp_path) in str(e.value)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        with RunLock(tmp_path):  # the dead holder's lock is taken over
            pid = (tmp_path / LOCK_FILE).read_text().split()[0]
            assert int(pid) == os.getpid()


class TestTrainAndSearchFolders:
    def train_result(self, folder, *extra):
        folder.mkdir()
        for name in ("model.keras", "policy.json", *extra):
            (folder / name).write_text("train")
        (folder / "results.json").write_text('{"keras_swn_version": "0"}')

    def test_search_refuses_a_train_result(self, tmp_path):
        self.train_result(tmp_path / "p")
        with pytest.raises(ValueError, match="result of a `train` run") as e:
            make(tmp_path)
        assert str(tmp_path / "p") in str(e.value)
        assert "overwrite=True" in str(e.value)
        assert (tmp_path / "p" / "model.keras").read_text() == "train"

    def test_overwrite_refuses_files_keras_swn_did_not_write(self, tmp_path):
        folder = tmp_path / "p"
        folder.mkdir()
        (folder / "model.keras").write_text("someone else's model")
        (folder / "results.json").write_text('{"accuracy": 1}')
        with pytest.raises(ValueError, match="keras_swn did not write"):
            make(tmp_path, overwrite=True)
        assert sorted(os.listdir(folder)) == ["model.keras", "results.json"]

    def test_overwrite_recognises_a_saved_swn_model(self, tmp_path):
        import zipfile

        folder = tmp_path / "p"
        folder.mkdir()
        with zipfile.ZipFile(folder / "model.keras", "w") as archive:
            archive.writestr("config.json", '{"class_name": "SWNModel"}')
        make(tmp_path, overwrite=True)  # a killed train: no results.json
        assert not folder.exists()

    def test_overwrite_deletes_only_the_train_files(self, tmp_path):
        self.train_result(tmp_path / "p", "notes.txt")
        make(tmp_path, overwrite=True)
        # The folder stays a run folder: an empty manifest.
        assert sorted(os.listdir(tmp_path / "p")) == [
            MANIFEST_FILE,
            "notes.txt",
        ]
        assert read_manifest(tmp_path / "p") == []

    def test_overwrite_deletes_a_train_folder(self, tmp_path):
        self.train_result(tmp_path / "p")
        make(tmp_path, overwrite=True)
        assert not (tmp_path / "p").exists()


class TestTrainAndSave:
    """`train_and_save` called from Python: the folder checks and the
    lock of `keras-swn train`, before anything is trained or deleted."""

    @pytest.fixture
    def model(self):
        return swn_fixtures.tiny_swn_model()

    @pytest.fixture
    def fake_fit(self, monkeypatch):
        """The training replaced: records the folder's files and writes
        the run's `model.keras` and `results.json`."""
        from keras_swn.training import train as training

        calls = []

        def fake(model, train, val, *, store, **kwargs):
            calls.append(sorted(os.listdir(store.project_dir)))
            for name in ("model.keras", "results.json"):
                with open(store.path(name), "w") as f:
                    f.write("new")
            return {}

        monkeypatch.setattr(training, "_fit_and_write", fake)
        return calls

    def train(self, model, folder, **kwargs):
        from keras_swn.search import train_and_save

        return train_and_save(
            model,
            swn_fixtures.digits()[0],
            directory=folder,
            epochs=1,
            verbose=0,
            **kwargs,
        )

    @pytest.mark.parametrize("overwrite", [False, True])
    def test_refuses_a_folder_in_use(self, tmp_path, model, overwrite):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        with RunLock(folder, "search"):
            with pytest.raises(FolderLockedError) as e:
                self.train(model, folder, overwrite=overwrite)
            lock = (folder / LOCK_FILE).read_text()
        message = str(e.value)
        assert str(folder) in message
        assert f"in use by another search (process {os.getpid()})" in message
        assert lock.split()[0] == str(os.getpid())  # not taken over
        assert os.listdir(folder) == ["notes.txt"]
        assert not model.compiled  # nothing trained

    def test_refuses_a_search_folder(self, tmp_path, model):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "state.json").write_text("{}")
        with pytest.raises(ValueError, match="holds a search") as e:
            self.train(model, folder)
        assert e.value.argument == "directory"
        assert str(folder) in str(e.value)
        assert "overwrite=True" in str(e.value)
        assert os.listdir(folder) == ["state.json"]
        assert not model.compiled

    def test_refuses_a_trained_model(self, tmp_path, model):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "model.keras").write_text("old")
        with pytest.raises(ValueError, match="holds a trained model") as e:
            self.train(model, folder)
        assert e.value.argument == "directory"
        assert str(folder) in str(e.value)  # Received: directory=...
        assert (folder / "model.keras").read_text() == "old"

    def test_overwrite_a_search(self, tmp_path, model, fake_fit):
        folder = tmp_path / "run"
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "state.json").write_text("{}")
        self.train(model, folder, overwrite=True)
        assert fake_fit == [[LOCK_FILE]]  # held while training
        assert sorted(os.listdir(folder)) == ["model.keras", "results.json"]

    def test_overwrite_deletes_only_the_train_files(
        self, tmp_path, model, fake_fit
    ):
        folder = tmp_path / "run"
        folder.mkdir()
        for name in ("model.keras", "history.json", "notes.txt"):
            (folder / name).write_text("old")
        (folder / "results.json").write_text('{"keras_swn_version": "0"}')
        (folder / ".tmp-abcd1234.keras").write_text("half")
        self.train(model, folder, overwrite=True)
        assert fake_fit == [[LOCK_FILE, MANIFEST_FILE, "notes.txt"]]
        assert (folder / "notes.txt").read_text() == "old"

    def test_overwrite_refuses_files_keras_swn_did_not_write(
        self, tmp_path, model, fake_fit
    ):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "model.keras").write_text("someone else's")
        with pytest.raises(ValueError, match="keras_swn did not write") as e:
            self.train(model, folder, overwrite=True)
        assert e.value.argument == "directory"
        assert (folder / "model.keras").read_text() == "someone else's"
        assert not fake_fit

    def test_stale_temp_files_are_removed(self, tmp_path, model, fake_fit):
        folder = tmp_path / "run"
        folder.mkdir()
        write_manifest(folder, [])  # a run killed before its first file
        (folder / ".tmp-abcd1234.keras").write_text("half")
        (folder / ".tmp-notes.txt").write_text("mine")
        self.train(model, folder)
        assert fake_fit == [[LOCK_FILE, MANIFEST_FILE, ".tmp-notes.txt"]]
        assert not (folder / LOCK_FILE).exists()  # released

    def test_a_file_is_not_a_folder(self, tmp_path, model):
        path = tmp_path / "file"
        path.write_text("")
        with pytest.raises(ValueError, match="not a file") as e:
            self.train(model, path)
        assert e.value.argument == "directory"


class TestTempFiles:
    @pytest.mark.parametrize(
        "name, temp",
        [
            (".tmp-a1b2_c3d.npz", True),
            (".tmp-zzzzzzzz", True),
            (".tmp-abcdefgh.keras", True),
            (".tmp-notes.txt", False),
            ("tmp-abcdefgh.npz", False),
            (".tmp-ABCDEFGH.npz", False),
            ("model.keras", False),
        ],
    )
    def test_pattern(self, name, temp):
        assert is_temp_file(name) is temp

    def test_search_start_removes_stale_temp_files(self, tmp_path):
        folder = tmp_path / "p"
        (folder / "checkpoints").mkdir(parents=True)
        stale = [
            folder / ".tmp-k1ll3d00.txt",
            folder / "checkpoints" / ".tmp-abcd1234.npz",
        ]
        kept = [folder / ".tmp-notes.txt", folder / "checkpoints" / "notes.txt"]
        outside = tmp_path / ".tmp-abcd1234.npz"
        for path in [*stale, *kept, outside]:
            path.write_text("x")
        write_manifest(folder, ["checkpoints/"])  # a killed run's folder
        start(make(tmp_path))
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in kept)
        assert outside.exists()  # only the project folder tree


class TestChangedArguments:
    def test_other_configuration_names_the_keys(self, tmp_path):
        start(make(tmp_path))
        with pytest.raises(ValueError, match="another configuration") as e:
            make(tmp_path, budget=90_000, num_bins=3)
        message = str(e.value)
        assert "budget: saved 80000, now 90000" in message
        assert "num_bins: saved 4, now 3" in message
        assert "seed" not in message

    def test_other_run_arguments_name_the_keys(self, tmp_path):
        start(make(tmp_path))
        with pytest.raises(ValueError, match="other arguments") as e:
            make(tmp_path).search(
                swn_fixtures.digits()[0], search_epochs=2, epochs=3, verbose=0
            )
        assert "epochs: saved 2, now 3" in str(e.value)

    def test_values_are_shortened_cleanly(self):
        member = {
            "module": "keras_swn.models.wide_resnet",
            "class_name": "WideResNet",
            "config": {"depth": 10, "width": 1},
            "registered_name": "keras_swn>WideResNet",
        }
        text = describe_changes(
            {"members": [member], "recipe": {"gamma": 0.2}, "x": "a" * 200},
            {"members": [member] * 2, "recipe": {"gamma": 0.5}, "x": "b"},
        )
        assert "members: saved [WRN-10-1], now [WRN-10-1, WRN-10-1]" in text
        assert "recipe.gamma: saved 0.2, now 0.5" in text
        assert f"x: saved '{'a' * 96}..., now 'b'" in text
        unknown = {**member, "class_name": "Unknown", "module": "nowhere"}
        unknown.pop("registered_name")
        members = describe_changes({"m": [unknown] * 9}, {"m": []})
        assert "m: saved [Unknown(depth=10, width=1), " in members
        assert ", ... 7 more], now []" in members
        many = describe_changes({f"k{i}": i for i in range(9)}, {})
        assert many.endswith("; and 3 more")
        assert "k0: saved 0, now (not set)" in many


# ----------------------------------------------------------------------
# Folder safety: empty, uncreatable and too-long folders; user files.
class TestFolderArguments:
    @pytest.mark.parametrize("directory", ["", "   ", "\t"])
    def test_empty_directory_is_refused(self, tmp_path, monkeypatch, directory):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ValueError, match="not an empty one") as e:
            make(directory)
        assert e.value.argument == "directory"
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize("name", ["", "  ", ".", "..", "a/b"])
    def test_project_name_one_folder_name(self, tmp_path, name):
        with pytest.raises(ValueError, match="one folder") as e:
            make(tmp_path, name)
        assert e.value.argument == "project_name"

    def test_long_project_name(self, tmp_path):
        with pytest.raises(ValueError, match="name is too long") as e:
            make(tmp_path, "p" * 300)
        assert e.value.argument == "project_name"
        assert "300 bytes" in str(e.value)
        assert os.listdir(tmp_path) == []

    @pytest.mark.parametrize(
        "directory, reason",
        [
            ("/proc/keras_swn_x", "No such file or directory"),
            ("{file}/sub", "Not a directory"),
        ],
    )
    def test_folder_that_cannot_be_created(self, tmp_path, directory, reason):
        (tmp_path / "file").write_text("")
        directory = directory.format(file=tmp_path / "file")
        search = make(directory)
        with pytest.raises(ValueError, match="Cannot create or write") as e:
            search.search(
                swn_fixtures.digits()[0], search_epochs=1, epochs=2, verbose=0
            )
        assert e.value.argument == "directory"
        assert reason in str(e.value)
        assert directory in str(e.value)

    def test_train_empty_directory(self, tmp_path, monkeypatch):
        from keras_swn.search import train_and_save

        monkeypatch.chdir(tmp_path)
        for directory in ("", " "):
            with pytest.raises(ValueError, match="not an empty one") as e:
                train_and_save(
                    swn_fixtures.tiny_swn_model(),
                    swn_fixtures.digits()[0],
                    directory=directory,
                    epochs=1,
                )
            assert e.value.argument == "directory"
        assert os.listdir(tmp_path) == []

    def test_train_folder_that_cannot_be_created(self, tmp_path):
        from keras_swn.search import train_and_save

        model = swn_fixtures.tiny_swn_model()
        with pytest.raises(ValueError, match="No such file") as e:
            train_and_save(
                model,
                swn_fixtures.digits()[0],
                directory="/proc/keras_swn_x",
                epochs=1,
            )
        assert e.value.argument == "directory"
        assert not model.compiled

    def test_store_and_training_share_the_file_names(self):
        # No hidden import cycle: store.py does not import training.py.
        from keras_swn.io import run_folder
        from keras_swn.io import store
        from keras_swn.training import train as training

        source = open(store.__file__).read()
        assert "keras_swn.training.train" not in source
        assert training.TRAINING_FILES is run_folder.TRAINING_FILES
        assert set(run_folder.TRAINING_FILES) <= set(run_folder.SEARCH_FILES)
