"""`keras-swn train`/`search` output folders: one run at a time, train
and search results kept apart, `--policy` made for other members, and
resuming with other flags."""

import json
import os
import socket

import pytest
from swn_fixtures import assert_one_line
from swn_fixtures import cli_status as run_cli

from keras_swn import cli
from keras_swn.io_utils import LOCK_FILE
from keras_swn.io_utils import MANIFEST_FILE


@pytest.fixture
def fake_train(monkeypatch):
    """The training of `train_and_save` replaced (its folder checks, lock
    and `overwrite` run): records the folder's files, writes
    `model.keras` and `results.json` as the real one does."""
    from keras_swn.training import train as training

    calls = []

    def fake(model, train, val, *, store, **kwargs):
        directory = store.project_dir
        calls.append(sorted(os.listdir(directory)))
        for name in ("model.keras", "results.json"):
            with open(os.path.join(directory, name), "w") as f:
                f.write("new")
        return {"val_member_accuracy": [0.5], "val_ensemble_accuracy": 0.5}

    monkeypatch.setattr(training, "_fit_and_write", fake)
    return calls


def train(capsys, folder, *args):
    return run_cli(
        capsys,
        "train",
        "--members=10-1",
        "--budget=60000",
        f"--output_dir={folder}",
        *args,
    )


class TestTrainFolder:
    def test_refuses_a_search_folder(self, capsys, tmp_path, fake_train):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "state.json").write_text("{}")
        status, err = train(capsys, folder)
        assert_one_line(
            status,
            err,
            f"--output_dir={folder}",
            str(folder),
            "search (state.json)",
            "another --output_dir",
            "--overwrite",
        )
        assert os.listdir(folder) == ["state.json"]
        assert not fake_train

    def test_overwrite_replaces_a_search(
        self, capsys, tmp_path, tiny_digits, fake_train
    ):
        folder = tmp_path / "run"
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "state.json").write_text("{}")
        status, err = train(capsys, folder, "--overwrite")
        assert status == 0, err
        assert fake_train == [[LOCK_FILE]]
        assert sorted(os.listdir(folder)) == ["model.keras", "results.json"]

    def test_overwrite_keeps_files_train_did_not_write(
        self, capsys, tmp_path, tiny_digits, fake_train
    ):
        folder = tmp_path / "run"
        folder.mkdir()
        for name in ("model.keras", "history.json", "notes.txt"):
            (folder / name).write_text("old")
        (folder / "results.json").write_text('{"keras_swn_version": "0"}')
        status, err = train(capsys, folder, "--overwrite")
        assert status == 0, err
        assert fake_train == [[LOCK_FILE, MANIFEST_FILE, "notes.txt"]]
        assert (folder / "notes.txt").read_text() == "old"
        assert not (folder / "history.json").exists()

    def test_overwrite_refuses_a_model_keras_swn_did_not_write(
        self, capsys, tmp_path, tiny_digits, fake_train
    ):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "model.keras").write_text("someone else's")
        status, err = train(capsys, folder, "--overwrite")
        assert_one_line(
            status, err, f"--output_dir={folder}", "keras_swn did not write"
        )
        assert (folder / "model.keras").read_text() == "someone else's"
        assert not fake_train

    def test_folder_in_use(self, capsys, tmp_path, tiny_digits, fake_train):
        folder = tmp_path / "run"
        folder.mkdir()
        lock = f"{os.getpid()} {socket.gethostname()} search\n"
        (folder / LOCK_FILE).write_text(lock)
        status, err = train(capsys, folder, "--overwrite")
        assert_one_line(
            status,
            err,
            f"--output_dir={folder}",
            f"process {os.getpid()}",
            "in use by another search",
        )
        assert not fake_train
        assert (folder / LOCK_FILE).read_text() == lock

    def test_stale_temp_files_are_removed(
        self, capsys, tmp_path, tiny_digits, fake_train
    ):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / ".tmp-abcd1234.keras").write_text("half")
        status, err = train(capsys, folder)
        assert status == 0, err
        assert fake_train == [[LOCK_FILE]]


class TestSearchFolder:
    def test_refuses_a_train_result(self, capsys, tmp_path, tiny_digits):
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / "model.keras").write_text("trained")
        (folder / "results.json").write_text("{}")
        status, err = run_cli(
            capsys,
            "search",
            "--members=10-1",
            "--noplots",
            f"--output_dir={folder}",
        )
        assert_one_line(
            status,
            err,
            f"--output_dir={folder}",
            "result of a `train` run",
            "Pass --overwrite to start over, or another --output_dir.",
        )
        assert (folder / "model.keras").read_text() == "trained"

    def test_folder_in_use(self, capsys, tmp_path, tiny_digits):
        folder = tmp_path / "run"
        folder.mkdir()
        lock = f"{os.getpid()} {socket.gethostname()} search\n"
        (folder / LOCK_FILE).write_text(lock)
        status, err = run_cli(
            capsys,
            "search",
            "--members=10-1",
            "--noplots",
            f"--output_dir={folder}",
        )
        assert_one_line(
            status,
            err,
            str(folder),
            f"in use by another search (process {os.getpid()})",
        )
        assert os.listdir(folder) == [LOCK_FILE]

    def test_other_flags_name_the_changed_keys(
        self, capsys, tmp_path, tiny_digits
    ):
        from keras_swn.io.store import ProjectStore
        from keras_swn.models import WideResNet
        from keras_swn.search import SearchConfig

        folder = tmp_path / "run"
        config = SearchConfig(
            members=[WideResNet(10, 2), WideResNet(10, 1)],
            input_shape=(8, 8, 1),
            num_classes=10,
            budget=223_456,
        )
        ProjectStore(folder).write_state(config.to_dict(), None, {})
        status, err = run_cli(
            capsys,
            "search",
            "--members=10-1",
            "--budget=100000",
            "--noplots",
            f"--output_dir={folder}",
        )
        assert_one_line(
            status,
            err,
            "budget: saved 223456, now 100000",
            "members: saved [WRN-10-2, WRN-10-1], now [WRN-10-1]",
            "--batch_size: saved 128, now 64",
            "Pass --overwrite to start over",
        )


class TestPolicyOfOtherMembers:
    @pytest.fixture
    def policy(self, tmp_path):
        from keras_swn.cli.inputs import PlannedWideResNet
        from keras_swn.cli.inputs import layer_specs
        from keras_swn.policy.sharing_policy import SharingPolicy

        specs = layer_specs([PlannedWideResNet(16, 2)], (8, 8, 1))
        path = tmp_path / "policy.json"
        SharingPolicy.from_bins(specs, 4).save(path)
        return str(path)

    @pytest.mark.parametrize("command", ["plan", "train"])
    def test_without_budget(self, capsys, tmp_path, policy, command):
        args = [f"--output_dir={tmp_path / 'o'}"] if command == "train" else []
        status, err = run_cli(
            capsys, command, "--members=10-1", f"--policy={policy}", *args
        )
        assert_one_line(
            status,
            err,
            f"--policy={policy}",
            "--members=10-1",
            "made for other members",
            "[16]",
            "[9]",
        )
        assert not (tmp_path / "o").exists()

    def test_plan_with_its_own_members(self, capsys, policy):
        status = cli.execute(
            [
                "keras-swn",
                "plan",
                "--json",
                "--members=16-2",
                f"--policy={policy}",
                "--input_shape=8,8,1",
            ]
        )
        assert status == 0
        assert json.loads(capsys.readouterr().out)["config"]["policy"] == policy


def search(capsys, folder, *args):
    return run_cli(
        capsys,
        "search",
        "--members=10-1",
        "--noplots",
        "--epochs=1",
        "--search_epochs=1",
        f"--output_dir={folder}",
        *args,
    )


USER_FILES = {"notes.txt": "mine", "mydata/data.csv": "1,2"}


def plant_user_files(folder):
    for name, text in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


class TestFolderSafety:
    @pytest.mark.parametrize("text", ["", "  "])
    @pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
    @pytest.mark.parametrize("command", ["search", "train"])
    def test_empty_output_dir(
        self,
        capsys,
        tmp_path,
        monkeypatch,
        fake_train,
        text,
        overwrite,
        command,
    ):
        monkeypatch.chdir(tmp_path)
        plant_user_files(tmp_path)
        run = search if command == "search" else train
        status, err = run(capsys, text, *overwrite)
        assert_one_line(status, err, "--output_dir=", "not an empty one")
        assert sorted(os.listdir(tmp_path)) == ["mydata", "notes.txt"]
        assert (tmp_path / "notes.txt").read_text() == "mine"
        assert not fake_train

    @pytest.mark.parametrize("command", ["search", "train"])
    def test_output_dir_that_cannot_be_created(
        self, capsys, tmp_path, fake_train, command
    ):
        run = search if command == "search" else train
        (tmp_path / "file").write_text("")
        for folder, reason in (
            ("/proc/keras_swn_x", "No such file or directory"),
            (tmp_path / "file" / "sub", "Not a directory"),
            (tmp_path / ("d" * 300), "name is too long"),
        ):
            status, err = run(capsys, folder)
            assert_one_line(status, err, f"--output_dir={folder}", reason)
        assert not fake_train

    @pytest.mark.parametrize("command", ["search", "train"])
    def test_folder_of_user_files(
        self, capsys, tmp_path, tiny_digits, fake_train, command
    ):
        folder = tmp_path / "run"
        plant_user_files(folder)
        run = search if command == "search" else train
        status, err = run(capsys, folder)
        assert_one_line(
            status,
            err,
            f"--output_dir={folder}",
            "keras_swn did not write (mydata/, notes.txt)",
            "pass --allow_existing_files to run there anyway",
        )
        assert sorted(os.listdir(folder)) == ["mydata", "notes.txt"]
        assert not fake_train

    def test_train_allow_existing_files(
        self, capsys, tmp_path, tiny_digits, fake_train
    ):
        folder = tmp_path / "run"
        plant_user_files(folder)
        status, err = train(capsys, folder, "--allow_existing_files")
        assert status == 0, err
        assert fake_train == [[LOCK_FILE, "mydata", "notes.txt"]]

    def test_overwrite_refuses_the_current_directory(
        self, capsys, tmp_path, monkeypatch, fake_train
    ):
        (tmp_path / "state.json").write_text("{}")
        monkeypatch.chdir(tmp_path)
        for run in (search, train):
            status, err = run(capsys, ".", "--overwrite")
            assert_one_line(status, err, "current directory")
        assert os.listdir(tmp_path) == ["state.json"]

    def test_finished_search_damaged_then_overwritten(
        self, capsys, tmp_path, tiny_digits
    ):
        # One real tiny search; then its files damaged, one by one.
        folder = tmp_path / "run"
        status, err = search(capsys, folder)
        assert status == 0, err
        results = (folder / "results.json").read_text()
        (folder / "results.json").write_text(results[:20])
        status, err = search(capsys, folder)
        assert_one_line(
            status,
            err,
            f"{folder / 'results.json'} is damaged",
            "Pass --overwrite to start over, or another --output_dir.",
        )
        (folder / "results.json").write_text(results)
        state = json.loads((folder / "state.json").read_text())
        state["oracle"]["cursor"] = 99
        (folder / "state.json").write_text(json.dumps(state))
        status, err = search(capsys, folder)
        assert_one_line(
            status,
            err,
            f"{folder / 'state.json'} is damaged",
            "Invalid oracle state",
            "--overwrite",
        )
        model = folder / "model.keras"
        model.write_bytes(model.read_bytes()[:500])
        status, err = run_cli(
            capsys, "evaluate", f"--model_dir={folder}", "--dataset=digits"
        )
        assert_one_line(
            status, err, f"--model_dir={folder}", f"{model} is not a readable"
        )
        # --overwrite: what keras_swn wrote goes, the user's files stay.
        plant_user_files(folder)
        listed = set(
            json.loads((folder / MANIFEST_FILE).read_text())["entries"]
        )
        assert {"state.json", "model.keras", "checkpoints/"} <= listed
        status, err = search(capsys, folder, "--overwrite")
        assert status == 0, err
        for name, text in USER_FILES.items():
            assert (folder / name).read_text() == text
        assert (folder / "state.json").exists()  # the new search's
