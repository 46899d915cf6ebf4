"""Bad input to the `keras-swn` command: one line on stderr naming the
flag, exit status 2, no traceback, and nothing written."""

import os

import numpy as np
import pytest
from swn_fixtures import assert_one_line
from swn_fixtures import cli_status as run


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1)).astype("float32")
    y = np.arange(40) % 10

    def write(name, **arrays):
        path = tmp_path / name
        np.savez(path, **{"x": x, "y": y, **arrays})
        return str(path)

    return write


def test_negative_seed_names_seed(capsys, tmp_path):
    status, err = run(
        capsys, "search", "--seed", "-1", "--output_dir", str(tmp_path / "o")
    )
    assert_one_line(status, err, "--seed=-1")
    assert not (tmp_path / "o").exists()


def test_npy_renamed_npz(capsys, tmp_path):
    path = tmp_path / "fake.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((4, 8, 8, 1)))
    status, err = run(capsys, "search", "--data", str(path))
    assert_one_line(status, err, "--data=", "not an .npz archive")


def test_nan_pixel_in_data(capsys, tmp_path, data):
    x = np.random.default_rng(0).random((40, 8, 8, 1)).astype("float32")
    x[0, 0, 0, 0] = np.nan
    status, err = run(
        capsys,
        "search",
        "--data",
        data("nan.npz", x=x),
        "--output_dir",
        str(tmp_path / "o"),
    )
    assert status == 2 and "Traceback" not in err
    assert "non-finite" in err, err


def test_one_stray_label(capsys, tmp_path, data):
    y = np.arange(40) % 10
    y[5] = 100_000
    status, err = run(capsys, "search", "--data", data("stray.npz", y=y))
    assert_one_line(status, err, "--data=", "stray label", "100000")


def test_model_dir_that_is_another_file(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    status, err = run(capsys, "evaluate", "--model_dir", str(path))
    assert_one_line(status, err, "--model_dir=", "not a readable .keras")


def test_truncated_model(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"PK\x03\x04trunc")
    status, err = run(capsys, "evaluate", "--model_dir", str(tmp_path / "run"))
    assert_one_line(status, err, "--model_dir=", "damaged, truncated")


def test_missing_model_dir(capsys, tmp_path):
    status, err = run(
        capsys, "evaluate", "--model_dir", str(tmp_path / "nothing")
    )
    assert_one_line(status, err, "--model_dir=", "No such folder")


def test_output_dir_that_is_a_file(capsys, tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    status, err = run(capsys, "train", "--output_dir", str(path))
    assert_one_line(status, err, "--output_dir=", "not a file")
    assert path.read_text() == ""
    assert os.listdir(tmp_path) == ["file"]


# ----------------------------------------------------------------------
# Issue 20: the data checks and flag combinations


def test_empty_npz(capsys, tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 8, 8, 1), "float32"), y=np.zeros(0, int))
    status, err = run(
        capsys,
        "search",
        "--data",
        str(path),
        "--output_dir",
        str(tmp_path / "o"),
    )
    assert_one_line(status, err, "--data=", "no examples")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rows", [1, 2])
def test_npz_too_small_for_the_split(capsys, tmp_path, rows):
    path = tmp_path / "small.npz"
    np.savez(path, x=np.zeros((rows, 8, 8, 1), "float32"), y=np.arange(rows))
    status, err = run(capsys, "search", "--data", str(path))
    assert_one_line(status, err, "--data=", f"holds {rows} examples")


def test_channels_first_npz_names_the_transpose(capsys, tmp_path, data):
    x = np.random.default_rng(0).random((40, 1, 8, 8)).astype("float32")
    path = data("chw.npz", x=x)
    status, err = run(capsys, "search", "--data", path)
    assert_one_line(
        status, err, "--data=", "(1, 8, 8)", "channels-first", "transpose"
    )


def test_string_labels_npz(capsys, data):
    y = np.array(["cat", "dog"] * 20)
    status, err = run(capsys, "search", "--data", data("str.npz", y=y))
    assert_one_line(status, err, "--data=", "integer class labels")


def test_dataset_and_data_are_exclusive(capsys, data):
    status, err = run(
        capsys, "search", "--dataset", "digits", "--data", data("d.npz")
    )
    assert_one_line(status, err, "--dataset=digits", "not both")


def test_binary_policy_file(capsys, tmp_path):
    path = tmp_path / "policy.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    status, err = run(
        capsys,
        "train",
        "--policy",
        str(path),
        "--output_dir",
        str(tmp_path / "o"),
    )
    assert_one_line(status, err, "--policy=", "binary")
    assert "codec" not in err


def test_same_message_as_the_python_api(capsys, tmp_path, data):
    """The CLI and `SearchAndRefine.search` run the same check."""
    from keras_swn.data_checks import check_arrays

    x = np.random.default_rng(0).random((40, 8, 8, 1)).astype("float32")
    x[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError) as e:
        check_arrays(x[:32], np.arange(32) % 10, "train_data")
    status, err = run(
        capsys,
        "search",
        "--data",
        data("inf.npz", x=x),
        "--output_dir",
        str(tmp_path / "o"),
    )
    assert status == 2, err
    expected = str(e.value).split(". ", 1)[1].split(" Received")[0]
    assert expected in err, (expected, err)
