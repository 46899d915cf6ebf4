"""`keras-swn search`/`train` defaults: output folder, resume and
--overwrite, epochs, progress output, TFDS flags, the plots check."""

import os
import sys

import pytest

from keras_swn import cli
from keras_swn.cli import inputs
from keras_swn.io_utils import LOCK_FILE


def run_cli(*args):
    return cli.execute(["keras-swn", *args])


def search(*args):
    return run_cli("search", "--members=10-1", *args)


class TestOutputFolder:
    def test_default_is_the_same_folder_every_run(
        self, tmp_path, monkeypatch, fake_search, tiny_digits, capsys
    ):
        monkeypatch.chdir(tmp_path)
        assert search() == 0
        assert search() == 0
        first, second = fake_search.calls
        for call in (first, second):
            assert call.options["directory"] == str(tmp_path / "swn_runs")
            assert call.options["project_name"] == "search"
            assert call.options["overwrite"] is False
        out = capsys.readouterr().out
        assert f"Output folder: {tmp_path / 'swn_runs' / 'search'}" in out
        assert "the same command resumes it" in out
        assert "Interrupted" not in out

    def test_overwrite(self, tmp_path, fake_search, tiny_digits):
        assert search(f"--output_dir={tmp_path / 'r'}", "--overwrite") == 0
        (call,) = fake_search.calls
        assert call.options["overwrite"] is True

    def test_a_file_is_not_a_folder(self, tmp_path, capsys, fake_search):
        path = tmp_path / "file"
        path.write_text("")
        assert search(f"--output_dir={path}") == 2
        assert f"--output_dir={path}" in capsys.readouterr().err
        assert not fake_search.calls

    def test_train_refuses_a_trained_folder(
        self, tmp_path, monkeypatch, capsys
    ):
        monkeypatch.chdir(tmp_path)
        folder = tmp_path / "swn_runs" / "train"
        folder.mkdir(parents=True)
        (folder / "model.keras").write_text("old")
        assert run_cli("train", "--members=10-1") == 2
        err = capsys.readouterr().err
        assert "--output_dir=swn_runs/train" in err and "--overwrite" in err
        assert (folder / "model.keras").read_text() == "old"

    def test_train_overwrite_starts_clean(
        self, tmp_path, monkeypatch, tiny_digits, capsys
    ):
        from keras_swn.training import train as training

        seen = {}

        def fake_train(model, train, val, *, store, **kwargs):
            directory = store.project_dir
            exists = os.path.isdir(directory)
            seen["files"] = sorted(os.listdir(directory)) if exists else []
            seen["verbose"] = kwargs["verbose"]
            return {"val_member_accuracy": [0.5], "val_ensemble_accuracy": 0.5}

        monkeypatch.setattr(training, "_fit_and_write", fake_train)
        monkeypatch.chdir(tmp_path)
        folder = tmp_path / "swn_runs" / "train"
        folder.mkdir(parents=True)
        (folder / "model.keras").write_text("old")
        (folder / "results.json").write_text('{"keras_swn_version": "0"}')
        rc = run_cli("train", "--members=10-1", "--budget=60000", "--overwrite")
        assert rc == 0
        assert seen["files"] == [LOCK_FILE]  # held while training
        assert not (folder / LOCK_FILE).exists()
        assert seen["verbose"] == 2  # stdout is not a terminal here


class TestEpochs:
    @pytest.mark.parametrize("epochs", [1, 2, 3, 20, 40])
    def test_defaults_valid_for_any_epochs(
        self, tmp_path, fake_search, tiny_digits, epochs
    ):
        rc = search(f"--epochs={epochs}", f"--output_dir={tmp_path / 'r'}")
        assert rc == 0
        (call,) = fake_search.calls
        if epochs == 1:
            assert call.options["sharing"] == "learned_no_refine"
        else:
            assert call.options["sharing"] == "learned"
        assert call.run["refine_after"] is None  # the library's 5% rule
        assert call.run["search_epochs"] is None  # the library's 5% rule

    @pytest.mark.parametrize("epochs, refine_after", [(5, 4), (40, 10)])
    def test_reference_refine_after_within_the_run(
        self, tmp_path, fake_search, tiny_digits, epochs, refine_after
    ):
        rc = search(
            "--reference_compatible",
            "--template_fan_in=9",
            f"--epochs={epochs}",
            f"--output_dir={tmp_path}",
        )
        assert rc == 0
        assert fake_search.calls[0].run["refine_after"] == refine_after

    def test_epochs_one_says_so(
        self, tmp_path, fake_search, tiny_digits, capsys
    ):
        assert search("--epochs=1", f"--output_dir={tmp_path}") == 0
        assert "--sharing=learned_no_refine" in capsys.readouterr().out

    def test_bins_hard_runs_no_search_by_default(
        self, tmp_path, fake_search, tiny_digits
    ):
        rc = search("--sharing=bins_hard", f"--output_dir={tmp_path}")
        assert rc == 0
        # None: the library's default, 0 for the regimes that do not search
        assert fake_search.calls[0].run["search_epochs"] is None

    @pytest.mark.parametrize(
        "args, text",
        [
            (["--sharing=learned", "--epochs=1"], "--epochs=1"),
            (["--refine_after=3", "--epochs=3"], "--refine_after=3"),
            (
                ["--sharing=bins_hard", "--search_epochs=2"],
                "--search_epochs=2",
            ),
        ],
    )
    def test_inconsistent_flags(
        self, tmp_path, capsys, fake_search, args, text
    ):
        assert search(*args, f"--output_dir={tmp_path / 'r'}") == 2
        err = capsys.readouterr().err
        assert text in err
        assert "argument" not in err and "sharing=" not in err.replace(
            "--sharing=", ""
        )
        assert not fake_search.calls


class TestProgress:
    def test_epoch_lines_when_not_a_terminal(
        self, tmp_path, fake_search, tiny_digits
    ):
        assert search(f"--output_dir={tmp_path}") == 0
        assert fake_search.calls[0].run["verbose"] == 2

    def test_bar_on_a_terminal(
        self, tmp_path, fake_search, tiny_digits, monkeypatch
    ):
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
        assert search(f"--output_dir={tmp_path}") == 0
        assert fake_search.calls[0].run["verbose"] == 1

    @pytest.mark.parametrize("choice, verbose", [("bar", 1), ("none", 0)])
    def test_explicit(
        self, tmp_path, fake_search, tiny_digits, choice, verbose
    ):
        assert search(f"--progress={choice}", f"--output_dir={tmp_path}") == 0
        assert fake_search.calls[0].run["verbose"] == verbose


class TestTfds:
    def test_data_dir_and_download_reach_tfds(
        self, tmp_path, monkeypatch, fake_search
    ):
        from keras_swn.data import cifar

        calls = []

        def fake_load(name, **kwargs):
            calls.append((name, kwargs))
            return f"{name}:{kwargs['split']}"

        monkeypatch.setattr(cifar, "load_cifar", fake_load)
        monkeypatch.setattr(inputs, "module_available", lambda name: True)
        rc = search(
            "--dataset=cifar100",
            f"--data_dir={tmp_path / 'tfds'}",
            "--download",
            f"--output_dir={tmp_path / 'r'}",
        )
        assert rc == 0
        assert [c[1]["split"] for c in calls] == ["train", "test"]
        for name, kwargs in calls:
            assert name == "cifar100"
            assert kwargs["data_dir"] == str(tmp_path / "tfds")
            assert kwargs["download"] is True
        assert fake_search.calls[0].data == ("cifar100:train", "cifar100:test")

    def test_not_prepared_names_the_flags(
        self, tmp_path, monkeypatch, capsys, fake_search
    ):
        from keras_swn.data import cifar

        def missing(name, **kwargs):
            raise FileNotFoundError("no data")

        monkeypatch.setattr(cifar, "load_cifar", missing)
        monkeypatch.setattr(inputs, "module_available", lambda name: True)
        rc = search("--dataset=cifar10", f"--output_dir={tmp_path / 'r'}")
        assert rc == 2
        err = capsys.readouterr().err
        assert "--dataset=cifar10" in err
        assert "--download" in err and "--data_dir" in err
        assert "download=True" not in err

    def test_without_tensorflow_datasets(
        self, tmp_path, monkeypatch, capsys, fake_search
    ):
        monkeypatch.setattr(
            inputs, "module_available", lambda n: n != "tensorflow_datasets"
        )
        rc = search("--dataset=cifar10", f"--output_dir={tmp_path}")
        assert rc == 2
        assert "keras-swn[tfds]" in capsys.readouterr().err

    @pytest.mark.parametrize("flag", ["--data_dir=/tmp", "--download"])
    def test_only_for_tfds_datasets(self, tmp_path, capsys, flag):
        assert search(flag, f"--output_dir={tmp_path / 'r'}") == 2
        assert flag.split("=")[0] in capsys.readouterr().err


class TestPlots:
    def test_missing_matplotlib_fails_before_training(
        self, tmp_path, monkeypatch, capsys, fake_search, tiny_digits
    ):
        monkeypatch.setattr(
            inputs, "module_available", lambda name: name != "matplotlib"
        )
        assert search(f"--output_dir={tmp_path / 'r'}") == 2
        err = capsys.readouterr().err
        assert "--plots" in err and "--noplots" in err
        assert not fake_search.calls
        assert search("--noplots", f"--output_dir={tmp_path / 'r'}") == 0
        assert fake_search.calls[0].options["plots"] is False
