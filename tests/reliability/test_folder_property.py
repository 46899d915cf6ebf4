"""keras_swn never deletes a file it did not write.

Each run lists what it writes in the folder's manifest; `overwrite`
deletes only those entries. Checked case by case (user files next to a
search or a train result, links, the current directory, folders of
earlier versions without a manifest) and as a property: random sequences
of searches, trainings, overwrites and interrupted runs (the training
faked, the folder handling real) on a folder holding user files.
"""

import contextlib
import os
import pathlib
import socket
import tempfile

import numpy as np
import pytest
import swn_fixtures
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from swn_fixtures import make_search

from keras_swn.io_utils import LOCK_FILE
from keras_swn.io_utils import MANIFEST_FILE
from keras_swn.io_utils import atomic_write
from keras_swn.io_utils import atomic_write_text
from keras_swn.io_utils import is_temp_file
from keras_swn.io_utils import read_manifest
from keras_swn.search import SearchAndRefine
from keras_swn.search import train_and_save
from keras_swn.search.oracle import PhaseOracle
from keras_swn.training import train as training

#: A pid no process can have (above Linux's largest pid_max, 2**22).
DEAD_PID = 2**22 + 1
RUN = dict(search_epochs=1, epochs=2)
USER_FILES = {
    "notes.txt": "my notes",
    "mydata/data.csv": "1,2,3",
    ".tmp-notes.txt": "looks like a temp file",
}


class Interrupted(Exception):
    """A run killed part-way (the fakes raise it)."""


#: Where the fakes stop: None (they finish) or the index of a write.
STOP = {"at": None}


def kill_here(store):
    """What a killed run leaves: a half-written temporary file (and a
    stale lock, `plant_stale_lock`)."""
    with open(store.path(".tmp-k1ll3d00.npz"), "w") as f:
        f.write("half")
    raise Interrupted


def plant_stale_lock(folder):
    if folder.is_dir():
        (folder / LOCK_FILE).write_text(f"{DEAD_PID} {socket.gethostname()}")


def fake_run(self, run, train, val, callbacks, verbose):
    """`SearchAndRefine._run` without training: the files a search
    writes, through the store, in order."""
    oracle = self.oracle or PhaseOracle(
        self.config.sharing,
        search_epochs=run.search_epochs,
        epochs=run.epochs,
        refine_after=run.refine_after,
    )
    store = self.store

    def checkpoint(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, x=np.zeros(2))

    writes = [
        lambda: store.check_data({"train_data": train.fingerprint()}),
        lambda: atomic_write(
            store.path("checkpoints", "checkpoint-00001.npz"),
            checkpoint,
            suffix=".npz",
        ),
        lambda: store.write_state(
            self.config.to_dict(), run.to_dict(), oracle.get_state()
        ),
        lambda: atomic_write_text(store.path("plots", "groups.png"), "png"),
        lambda: store.write_json("results.json", {"accuracy": 0.5}),
        lambda: atomic_write_text(store.path("model.keras"), "model"),
    ]
    for i, write in enumerate(writes):
        if STOP["at"] == i:
            kill_here(store)
        write()


def fake_fit(model, train, val, *, store, **kwargs):
    """`train_and_save`'s training replaced: its files, in order."""
    writes = [
        lambda: atomic_write_text(store.path("model.keras"), "model"),
        lambda: store.write_json("history.json", {"loss": [1.0]}),
        lambda: store.write_json("results.json", {"keras_swn_version": "0"}),
    ]
    for i, write in enumerate(writes):
        if STOP["at"] == i:
            kill_here(store)
        write()
    return {}


@contextlib.contextmanager
def fakes():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SearchAndRefine, "_run", fake_run)
        patch.setattr(training, "_fit_and_write", fake_fit)
        yield


@pytest.fixture
def faked():
    with fakes():
        yield


def search(folder, **kwargs):
    s = make_search(
        folder.parent,
        [(10, 1)],
        folder.name,
        budget=80_000,
        plots=False,
        seed=1,
        sharing="learned_no_refine",
        **kwargs,
    )
    s.search(swn_fixtures.digits()[0], verbose=0, **RUN)
    return s


def train(folder, **kwargs):
    return train_and_save(
        None, swn_fixtures.digits()[0], directory=folder, epochs=1, **kwargs
    )


def plant_user_files(folder, files=USER_FILES):
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def assert_user_files(folder, files=USER_FILES):
    for name, text in files.items():
        assert (folder / name).read_text() == text, name


def assert_listed(folder, user=USER_FILES):
    """Every file keras_swn wrote is in the manifest (or bookkeeping)."""
    if not folder.exists():
        return
    listed = set(read_manifest(folder) or [])
    for root, dirs, files in os.walk(folder):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), folder)
            rel = rel.replace(os.sep, "/")
            if rel in user or name in (LOCK_FILE, MANIFEST_FILE):
                continue
            if is_temp_file(name):
                continue
            assert rel in listed, (rel, sorted(listed))


class TestUserFiles:
    @pytest.mark.parametrize("run", [search, train])
    def test_new_run_refuses_a_folder_of_user_files(self, tmp_path, faked, run):
        folder = tmp_path / "run"
        plant_user_files(folder)
        with pytest.raises(ValueError, match="keras_swn did not write") as e:
            run(folder)
        message = str(e.value)
        assert "(.tmp-notes.txt, mydata/, notes.txt)" in message
        assert "allow_existing_files=True" in message
        assert "another folder" in message
        assert sorted(os.listdir(folder)) == sorted(
            [".tmp-notes.txt", "mydata", "notes.txt"]
        )

    @pytest.mark.parametrize("run", [search, train])
    def test_allow_existing_files_then_overwrite(self, tmp_path, faked, run):
        folder = tmp_path / "run"
        plant_user_files(folder)
        run(folder, allow_existing_files=True)
        assert (folder / "model.keras").exists()
        assert_listed(folder)
        run(folder, overwrite=True)  # a run folder now: no opt-in needed
        if run is search:
            run(folder)  # resumes
        else:
            with pytest.raises(ValueError, match="trained model"):
                run(folder)
        assert_user_files(folder)

    @pytest.mark.parametrize("run", [search, train])
    @pytest.mark.parametrize("name", ["history.json", "checkpoints"])
    def test_a_user_file_named_as_a_run_file(self, tmp_path, faked, run, name):
        folder = tmp_path / "run"
        plant_user_files(
            folder, {f"{name}/x" if "." not in name else name: "u"}
        )
        for allow in (False, True):
            with pytest.raises(ValueError, match="would replace them") as e:
                run(folder, allow_existing_files=allow)
            assert f"holds {name}" in str(e.value)
        assert len(os.listdir(folder)) == 1

    def test_search_overwrite_keeps_user_files(self, tmp_path, faked):
        folder = tmp_path / "run"
        search(folder)
        plant_user_files(folder)
        (folder / "checkpoints" / "mine.txt").write_text("mine")
        s = make_search(
            tmp_path, [(10, 1)], "run", budget=80_000, overwrite=True
        )
        assert s.oracle is None
        assert_user_files(folder)
        assert (folder / "checkpoints" / "mine.txt").read_text() == "mine"
        assert sorted(os.listdir(folder)) == sorted(
            [
                ".tmp-notes.txt",
                "mydata",
                "notes.txt",
                MANIFEST_FILE,
                "checkpoints",
            ]
        )

    def test_train_overwrite_of_a_search_keeps_user_files(
        self, tmp_path, faked
    ):
        folder = tmp_path / "run"
        search(folder)
        plant_user_files(folder)
        train(folder, overwrite=True)
        assert_user_files(folder)
        assert not (folder / "state.json").exists()
        assert_listed(folder)

    @pytest.mark.parametrize("where", [".", ".."])
    def test_overwrite_refuses_the_current_directory(
        self, tmp_path, monkeypatch, faked, where
    ):
        folder = tmp_path / "run"
        search(folder)
        (folder / "sub").mkdir()
        monkeypatch.chdir(folder if where == "." else folder / "sub")
        for run in (search, train):
            with pytest.raises(ValueError, match="current directory"):
                run(folder, overwrite=True)
        assert (folder / "state.json").exists()

    def test_links_are_not_followed(self, tmp_path, faked):
        folder = tmp_path / "run"
        search(folder)
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "checkpoint-00001.npz").write_text("user's")
        (outside / "model.keras").write_text("user's")
        for name in ("checkpoints", "model.keras"):
            target = outside if name == "checkpoints" else outside / name
            path = folder / name
            if path.is_dir():
                for inner in path.iterdir():
                    inner.unlink()
                path.rmdir()
            else:
                path.unlink()
            path.symlink_to(target)
        make_search(tmp_path, [(10, 1)], "run", budget=80_000, overwrite=True)
        assert (outside / "checkpoint-00001.npz").read_text() == "user's"
        assert (outside / "model.keras").read_text() == "user's"

    def test_folder_of_an_earlier_version(self, tmp_path, faked):
        # No manifest: the names keras_swn writes are its own.
        folder = tmp_path / "run"
        search(folder)
        os.remove(folder / MANIFEST_FILE)
        plant_user_files(folder)
        (folder / "plots" / "mine.txt").write_text("mine")
        search(folder)  # resumes, and adopts the files in a manifest
        assert "state.json" in read_manifest(folder)
        os.remove(folder / MANIFEST_FILE)
        make_search(tmp_path, [(10, 1)], "run", budget=80_000, overwrite=True)
        assert_user_files(folder)
        assert (folder / "plots" / "mine.txt").read_text() == "mine"
        assert not (folder / "plots" / "groups.png").exists()

    def test_stale_lock_and_temp_files_of_a_killed_run(self, tmp_path, faked):
        folder = tmp_path / "run"
        STOP["at"] = 3
        try:
            with pytest.raises(Interrupted):
                search(folder)
        finally:
            STOP["at"] = None
        plant_stale_lock(folder)
        plant_user_files(folder)
        search(folder)  # resumes: a run folder, not a foreign one
        assert not (folder / ".tmp-k1ll3d00.npz").exists()
        assert_user_files(folder)


class TestRealSearch:
    def test_overwrite_of_a_finished_search(self, tmp_path):
        folder = tmp_path / "run"
        s = make_search(
            tmp_path,
            [(10, 1)],
            "run",
            budget=80_000,
            plots=False,
            sharing="learned_no_refine",
        )
        s.search(*swn_fixtures.digits(), search_epochs=1, epochs=1, verbose=0)
        listed = read_manifest(folder)
        assert {"state.json", "model.keras", "checkpoints/"} <= set(listed)
        assert_listed(folder, {})
        plant_user_files(folder)
        make_search(tmp_path, [(10, 1)], "run", budget=80_000, overwrite=True)
        assert sorted(os.listdir(folder)) == sorted(
            [".tmp-notes.txt", "mydata", "notes.txt", MANIFEST_FILE]
        )
        assert_user_files(folder)


OPS = st.sampled_from(
    [
        "search",
        "search_overwrite",
        "search_killed",
        "train",
        "train_overwrite",
        "train_killed",
        "user_file",
    ]
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=st.lists(st.tuples(OPS, st.booleans(), st.integers(0, 5)), max_size=6),
    user_first=st.booleans(),
)
def test_no_user_file_is_ever_removed(ops, user_first):
    """Any sequence of runs, overwrites and killed runs on a folder of
    user files: every user file stays, every file keras_swn wrote is in
    the manifest, and every refusal is a `ValueError`."""
    with tempfile.TemporaryDirectory() as tmp, fakes():
        root = pathlib.Path(tmp)
        folder = root / "run"
        user = dict(USER_FILES) if user_first else {}
        (root / "beside.txt").write_text("beside")
        if user_first:
            plant_user_files(folder, user)
        for i, (op, allow, stop) in enumerate(ops):
            if op == "user_file":
                folder.mkdir(exist_ok=True)
                user[f"later{i}.txt"] = str(i)
                plant_user_files(folder, {f"later{i}.txt": str(i)})
                continue
            run = search if op.startswith("search") else train
            kwargs = dict(allow_existing_files=allow)
            if op.endswith("overwrite"):
                kwargs["overwrite"] = True
            STOP["at"] = stop if op.endswith("killed") else None
            try:
                run(folder, **kwargs)
            except (ValueError, Interrupted):
                pass
            finally:
                STOP["at"] = None
            if op.endswith("killed"):
                plant_stale_lock(folder)
            assert_user_files(folder, user)
            assert_listed(folder, user)
        assert (root / "beside.txt").read_text() == "beside"
