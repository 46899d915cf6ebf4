"""The `keras-swn` commands end to end: plan, errors, help, train, search
and the recipe flags (fixtures: `tests/cli/conftest.py`)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_swn import cli
from keras_swn.data import load_digits_dataset
from keras_swn.models.wide_resnet_shapes import wide_resnet_param_counts
from keras_swn.policy.sharing_policy import SharingPolicy

README_FLAGS = [
    "--members=28-7,28-4,16-7,16-4",
    "--budget=18000000",
    "--bins=4",
    "--num_classes=100",
]


def run_cli(*args):
    return cli.execute(["keras-swn", *args])


def plan_json(capsys, *args):
    assert run_cli("plan", "--json", *args) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1, out  # one JSON object
    return json.loads(out)


class TestPlan:
    def test_readme_configuration(self, capsys):
        report = plan_json(capsys, *README_FLAGS)
        assert report["bank_total"] == 17_997_568
        assert report["coefficient_scalars"] == 143
        assert report["trainable_total"] == 18_168_607
        members = {
            m["name"]: (m["conv_params_unshared"], m["params_unshared"])
            for m in report["members"]
        }
        assert members == {
            "WRN-28-7": (17_868_464, 17_925_940),
            "WRN-28-4": (5_839_280, 5_872_180),
            "WRN-16-7": (8_385_200, 8_436_404),
            "WRN-16-4": (2_742_704, 2_772_020),
        }
        for bank in report["banks"]:
            assert {"group", "width", "seg", "templates", "params"} <= set(bank)
        assert sum(b["params"] for b in report["banks"]) == 17_997_568

    def test_other_configuration_is_self_consistent(self, capsys):
        members = [(16, 2), (10, 1)]
        report = plan_json(
            capsys,
            "--members=16-2,10-1",
            "--budget=250000",
            "--bins=3",
            "--num_classes=10",
            "--input_shape=28,28,1",
        )
        assert report["bank_total"] <= 250_000
        assert report["bank_total"] == sum(b["params"] for b in report["banks"])
        counts = [
            wide_resnet_param_counts(d, w, in_channels=1, num_classes=10)
            for d, w in members
        ]
        bn_and_heads = sum(c["bn"] + c["head"] for c in counts)
        assert report["trainable_total"] == (
            report["bank_total"] + report["coefficient_scalars"] + bn_and_heads
        )
        assert [m["params_unshared"] for m in report["members"]] == [
            c["total"] for c in counts
        ]
        assert report["config"]["bins"] == 3

    def test_default_budget_is_largest_member(self, capsys):
        report = plan_json(capsys, "--members=16-2,10-1")
        largest = wide_resnet_param_counts(16, 2, num_classes=100)["conv"]
        assert report["budget"] == largest
        assert report["bank_total"] <= largest

    def test_table(self, capsys):
        assert run_cli("plan", *README_FLAGS) == 0
        out = capsys.readouterr().out
        assert "Template banks" in out
        assert "17,997,568" in out
        assert "18,168,607" in out


class TestErrors:
    @pytest.mark.parametrize(
        "args, rc, text",
        [
            (["plan", "--members=16x4"], 2, "--members=16x4"),
            (["plan", "--members=15-4"], 2, "--members=15-4"),
            (["plan", "--budget=-5"], 2, "--budget=-5"),
            (["plan", "--budget=1000"], 2, "--budget=1000"),
            (["train", "--members=16x4"], 2, "--members=16x4"),
            (["train", "--learning_rate=0"], 2, "--learning_rate=0"),
            (["frobnicate"], 2, "unknown command 'frobnicate'"),
            ([], 2, "no command given"),
        ],
    )
    def test_bad_flags(self, capsys, args, rc, text):
        assert run_cli(*args) == rc
        err = capsys.readouterr().err
        assert text in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err

    def test_missing_data_writes_nothing(self, capsys, tmp_path):
        out = tmp_path / "run"
        missing = tmp_path / "missing.npz"
        rc = run_cli("train", f"--data={missing}", f"--output_dir={out}")
        assert rc == 2
        err = capsys.readouterr().err
        assert f"--data={missing}" in err
        assert not out.exists()

    def test_missing_policy(self, capsys, tmp_path):
        rc = run_cli("plan", f"--policy={tmp_path / 'nope.json'}")
        assert rc == 2
        assert "--policy=" in capsys.readouterr().err

    def test_console_entry_point(self):
        # One real process: flag errors exit non-zero without a traceback.
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run(
            [sys.executable, "-m", "keras_swn.cli", "plan", "--members=16x4"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 2
        assert "--members=16x4" in proc.stderr
        assert "Traceback" not in proc.stderr


class TestHelp:
    def test_help_per_command(self, capsys):
        assert run_cli("plan", "--help") == 0
        out = capsys.readouterr().out
        assert "--budget" in out and "--sharing" not in out
        assert run_cli("search", "--help") == 0
        out = capsys.readouterr().out
        assert "--sharing" in out and "--json" not in out

    def test_helpfull_lists_every_command(self, capsys):
        assert run_cli("--helpfull") == 0
        out = capsys.readouterr().out
        for name in ("plan", "train", "search", "evaluate"):
            assert f"usage: keras-swn {name}" in out

    def test_flag_of_another_command(self, capsys):
        assert run_cli("plan", "--sharing=soft") == 2
        assert "--sharing" in capsys.readouterr().err

    def test_space_separated_values(self, capsys):
        report = plan_json(capsys, "--members", "16-2,10-1", "--bins", "3")
        assert report["config"]["bins"] == 3


class TestTrain:
    def test_train_writes_files_and_reloads(self, capsys, tmp_path):
        out = tmp_path / "run"
        rc = run_cli(
            "train",
            "--members=10-1",
            "--budget=60000",
            "--epochs=1",
            "--batch_size=128",
            "--progress=none",
            f"--output_dir={out}",
        )
        stdout = capsys.readouterr().out
        assert rc == 0
        assert "Template banks" in stdout
        assert "ensemble" in stdout
        assert f"Output folder: {out.resolve()}" in stdout
        names = sorted(os.listdir(out))
        assert names == [
            ".keras_swn_manifest.json",  # what the run wrote
            "budget_report.json",
            "history.json",
            "model.keras",
            "policy.json",
            "results.json",
        ]
        results = json.loads((out / "results.json").read_text())
        history = json.loads((out / "history.json").read_text())
        report = json.loads((out / "budget_report.json").read_text())
        policy = SharingPolicy.load(out / "policy.json")
        assert results["members"] == ["WRN-10-1"]
        assert results["budget"] == 60_000
        assert report["bank_total"] <= 60_000
        assert len(history["loss"]) == 1
        assert "val_ensemble_accuracy" in history

        model = keras.models.load_model(out / "model.keras")
        assert model.policy == policy
        model.compile()
        _, (x_val, y_val) = load_digits_dataset(seed=0)
        evaluation = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
        np.testing.assert_allclose(
            evaluation["ensemble_accuracy"],
            results["val_ensemble_accuracy"],
            atol=1e-6,
        )
        np.testing.assert_allclose(
            evaluation["loss"], results["val_loss"], rtol=1e-4
        )


class TestSearch:
    def test_search_then_evaluate(self, capsys, tmp_path, tiny_digits):
        out = tmp_path / "run"
        args = [
            "search",
            "--members=10-1",
            "--search_epochs=1",
            "--epochs=2",
            "--refine_after=1",
            "--batch_size=16",
            "--run_eagerly",
            "--noplots",
            "--progress=none",
            f"--output_dir={out}",
        ]
        assert run_cli(*args) == 0
        stdout = capsys.readouterr().out
        assert f"Output folder: {out.resolve()}" in stdout
        assert "Results summary" in stdout and "ensemble" in stdout
        for name in [
            "model.keras",
            "policy.json",
            "search_result.json",
            "refine.json",
            "budget_report.json",
            "budget_report.txt",
            "results.json",
            "history.json",
            "state.json",
        ]:
            assert (out / name).exists(), name
        results = json.loads((out / "results.json").read_text())
        # The default budget forces real clustering.
        search = json.loads((out / "search_result.json").read_text())
        groups0 = search["groups"][0]
        assert len(set(groups0)) < len(groups0)
        assert results["budget"] == search["budget"]

        # Rerunning the same command finds the finished search.
        stamp = os.stat(out / "model.keras").st_mtime_ns
        assert run_cli(*args) == 0
        assert "Results summary" in capsys.readouterr().out
        assert os.stat(out / "model.keras").st_mtime_ns == stamp

        assert run_cli("evaluate", f"--model_dir={out}") == 0
        stdout = capsys.readouterr().out
        line = [t for t in stdout.splitlines() if "ensemble" in t][0]
        np.testing.assert_allclose(
            float(line.split()[-1]), results["val_ensemble_accuracy"], atol=1e-4
        )

    @pytest.mark.parametrize(
        "args, text",
        [
            (["search", "--refine_after=5", "--epochs=3"], "--refine_after=5"),
            (["search", "--dataset=cifar10"], "--dataset=cifar10"),
            (["search", "--sharing=shared"], "--sharing"),
            (["evaluate"], "--model_dir"),
            (["evaluate", "--model_dir=/nonexistent"], "--model_dir"),
        ],
    )
    def test_bad_flags(self, capsys, args, text, tmp_path):
        # Flags are per command: only `search` takes --output_dir.
        out = [f"--output_dir={tmp_path / 'x'}"] if args[0] == "search" else []
        rc = run_cli(*args, *out)
        assert rc == 2
        err = capsys.readouterr().err
        assert text in err
        assert "Traceback" not in err
        assert not (tmp_path / "x").exists()


class TestRecipeFlags:
    def search(self, tmp_path, *args):
        return run_cli(
            "search",
            "--members=10-1",
            "--progress=none",
            f"--output_dir={tmp_path / 'run'}",
            *args,
        )

    def test_defaults(self, tmp_path, fake_search, tiny_digits):
        assert self.search(tmp_path) == 0
        (search,) = fake_search.calls
        assert search.options["template_fan_in"] is None  # library default
        assert search.options["budget_check"] is None
        assert search.run["learning_rate"] == 0.05
        assert search.run["schedule"] is None
        assert search.run["milestones"] is None
        assert search.run["gamma"] is None
        assert search.run["weight_decay"] == 5e-4

    @pytest.mark.parametrize(
        "args, options, run",
        [
            (
                [
                    "--schedule=cosine",
                    "--learning_rate=0.2",
                    "--weight_decay=1e-4",
                    "--template_fan_in=layer",
                    "--budget_check=proxy",
                ],
                {"template_fan_in": "layer", "budget_check": "proxy"},
                {
                    "schedule": "cosine",
                    "learning_rate": 0.2,
                    "weight_decay": 1e-4,
                    "milestones": None,
                    "gamma": None,
                },
            ),
            (
                ["--milestones=0.5,0.75", "--gamma=0.5", "--template_fan_in=9"],
                {"template_fan_in": 9},
                {"schedule": None, "milestones": (0.5, 0.75), "gamma": 0.5},
            ),
            (
                ["--schedule=step", "--milestones=3,6", "--weight_decay=0"],
                {},
                {"schedule": "step", "milestones": (3, 6), "weight_decay": 0},
            ),
            (
                ["--milestones="],
                {},
                {"milestones": ()},  # a constant learning rate
            ),
            (
                ["--reference_compatible", "--template_fan_in=9"],
                {"reference_compatible": True, "template_fan_in": 9},
                {"schedule": None, "milestones": None},
            ),
        ],
    )
    def test_passed_through(
        self, tmp_path, fake_search, tiny_digits, args, options, run
    ):
        assert self.search(tmp_path, *args) == 0
        (search,) = fake_search.calls
        for key, value in options.items():
            assert search.options[key] == value, key
            assert type(search.options[key]) is type(value), key
        for key, value in run.items():
            assert search.run[key] == value, key

    @pytest.mark.parametrize(
        "args, rc, text",
        [
            (["--schedule=linear"], 2, "--schedule"),
            (["--template_fan_in=8"], 2, "--template_fan_in"),
            (["--milestones=a,b"], 2, "--milestones"),
            (["--milestones=0.5,3"], 2, "--milestones=0.5,3"),
            (["--milestones=-1"], 2, "--milestones=-1"),
            (["--schedule=cosine", "--milestones=5"], 2, "--milestones=5"),
            (["--schedule=cosine", "--gamma=0.5"], 2, "--gamma=0.5"),
            (["--gamma=0"], 2, "--gamma=0"),
            (["--weight_decay=-1"], 2, "--weight_decay=-1"),
            (
                ["--reference_compatible", "--schedule=cosine"],
                2,
                "--schedule=cosine",
            ),
            (
                ["--reference_compatible", "--template_fan_in=kernel"],
                2,
                "--template_fan_in=kernel",
            ),
            (
                ["--reference_compatible", "--budget_check=exact"],
                2,
                "--budget_check=exact",
            ),
        ],
    )
    def test_bad_flags(self, capsys, tmp_path, fake_search, args, rc, text):
        assert self.search(tmp_path, *args) == rc
        err = capsys.readouterr().err
        assert text in err
        assert "Traceback" not in err
        assert not fake_search.calls
        assert not (tmp_path / "run").exists()

    def test_search_budget_error_before_training(
        self, capsys, tmp_path, tiny_digits
    ):
        rc = self.search(tmp_path, "--budget=1000", "--search_epochs=1")
        assert rc == 2
        err = capsys.readouterr().err
        assert "Invalid value for flag --budget=1000: Expected at least" in err
        assert "argument" not in err and "Received" not in err
        assert not (tmp_path / "run").exists()

    def test_train_schedule_decay_and_fan_in(self, tmp_path, tiny_digits):
        out = tmp_path / "train"
        rc = run_cli(
            "train",
            "--members=10-1",
            "--budget=60000",
            "--epochs=3",
            "--batch_size=16",
            "--learning_rate=0.1",
            "--schedule=cosine",
            "--weight_decay=0",
            "--template_fan_in=layer",
            "--progress=none",
            f"--output_dir={out}",
        )
        assert rc == 0
        history = json.loads((out / "history.json").read_text())
        results = json.loads((out / "results.json").read_text())
        np.testing.assert_allclose(
            history["learning_rate"], [0.1, 0.075, 0.025], rtol=1e-6
        )
        assert results["schedule"] == "cosine"
        assert results["weight_decay"] == 0
        assert results["template_fan_in"] == "layer"
        model = keras.models.load_model(out / "model.keras")
        assert model.template_fan_in == "layer"
        assert model.optimizer.l2 == 0

    def test_train_default_step_fractions(self, tmp_path, tiny_digits):
        out = tmp_path / "train"
        rc = run_cli(
            "train",
            "--members=10-1",
            "--budget=60000",
            "--epochs=4",
            "--batch_size=16",
            "--learning_rate=0.1",
            "--progress=none",
            f"--output_dir={out}",
        )
        assert rc == 0
        history = json.loads((out / "history.json").read_text())
        results = json.loads((out / "results.json").read_text())
        np.testing.assert_allclose(
            history["learning_rate"], [0.1, 0.1, 0.02, 0.004], rtol=1e-6
        )
        assert results["milestones"] == [0.3, 0.6, 0.8]
        assert results["gamma"] == 0.2
        assert results["weight_decay"] == 5e-4
        assert results["template_fan_in"] == "kernel"
