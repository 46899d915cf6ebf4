"""Tests for the packaging metadata (`pyproject.toml`) and package data.

The extras must match what users run: each backend extra is enough for
`keras-swn search` (the digits are package data, matplotlib draws the
plots); library requirements are ranges, and the exact lock lives only
in `requirements/ci.txt`.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

import keras_swn

tomllib = pytest.importorskip("tomllib")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
BACKEND_EXTRAS = ("tensorflow", "tensorflow-cpu", "jax", "torch")

pytestmark = pytest.mark.skipif(
    not PYPROJECT.is_file(), reason="not a source checkout"
)


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def name_of(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def extra(name: str) -> list:
    return project()["optional-dependencies"][name]


class TestExtras:
    def test_every_extra_users_run(self):
        extras = set(project()["optional-dependencies"])
        assert {*BACKEND_EXTRAS, "tfds", "tuner", "docs", "test", "all"} <= (
            extras
        )

    @pytest.mark.parametrize("name", BACKEND_EXTRAS)
    def test_backend_extra_runs_the_search(self, name):
        names = {name_of(r) for r in extra(name)}
        assert name in names
        assert "matplotlib" in names  # the search's plots
        assert "scikit-learn" not in names  # the digits are package data

    def test_tensorflow_variants_never_together(self):
        for name, requirements in project()["optional-dependencies"].items():
            names = {name_of(r) for r in requirements}
            assert not {"tensorflow", "tensorflow-cpu"} <= names, name
        assert "keras-swn[tensorflow-cpu" not in str(extra("all"))

    def test_tfds_and_tuner(self):
        assert {name_of(r) for r in extra("tfds")} >= {
            "tensorflow-datasets",
            "importlib_resources",
        }
        assert {name_of(r) for r in extra("tuner")} >= {
            "keras-tuner",
            "tensorboard",
        }

    def test_all_names_every_other_extra(self):
        (requirement,) = extra("all")
        named = set(re.search(r"\[(.*)\]", requirement).group(1).split(","))
        assert named == {
            "tensorflow",
            "jax",
            "torch",
            "tfds",
            "tuner",
            "docs",
            "test",
        }


class TestRanges:
    def requirements(self) -> list:
        found = list(project()["dependencies"])
        for requirements in project()["optional-dependencies"].values():
            found += requirements
        return found

    def test_no_exact_pins(self):
        pinned = [r for r in self.requirements() if "==" in r]
        assert not pinned, "exact pins belong in requirements/ci.txt"

    def test_keras_is_capped(self):
        (keras,) = [
            r for r in project()["dependencies"] if name_of(r) == "keras"
        ]
        assert ">=3.12" in keras and "<3." in keras

    def test_lock_within_ranges(self):
        # The CI lock must satisfy the library ranges (keras and the
        # backends; the lock's exact versions are the tested ones).
        requirements = pytest.importorskip("packaging.requirements")
        Requirement = requirements.Requirement

        lock = {}
        for line in (ROOT / "requirements" / "ci.txt").read_text().split("\n"):
            line = line.split("#")[0].strip()
            if "==" in line:
                requirement = Requirement(line)
                lock[requirement.name.lower()] = next(
                    iter(requirement.specifier)
                ).version
        for text in self.requirements():
            requirement = Requirement(text)
            version = lock.get(requirement.name.lower())
            if version is not None:
                assert requirement.specifier.contains(version), text

    def test_test_extra_is_in_the_lock(self):
        # Every test dependency is installed by CI (pinned or not).
        requirements = pytest.importorskip("packaging.requirements")
        text = (ROOT / "requirements" / "ci.txt").read_text()
        locked = {
            requirements.Requirement(line).name.lower()
            for line in (t.split("#")[0].strip() for t in text.split("\n"))
            if line
        }
        for requirement in extra("test"):
            assert name_of(requirement).lower() in locked, requirement


class TestPackageData:
    def test_declared(self):
        config = tomllib.loads(PYPROJECT.read_text())
        package_data = config["tool"]["setuptools"]["package-data"]
        assert "py.typed" in package_data["keras_swn"]
        assert "digits.npz" in package_data["keras_swn.data"]
        package = pathlib.Path(keras_swn.__file__).parent
        assert (package / "py.typed").is_file()
        assert (package / "data" / "digits.npz").is_file()

    def test_metadata(self):
        meta = project()
        assert meta["urls"]
        assert "Typing :: Typed" in meta["classifiers"]
        assert meta["scripts"]["keras-swn"] == "keras_swn.cli:run"

    @pytest.mark.slow
    def test_wheel_holds_package_data(self, tmp_path):
        # Built from a copy of the checkout (nothing written into it) with
        # the installed setuptools, offline; the wheel users get must
        # carry the data files.
        pytest.importorskip("setuptools")
        source = tmp_path / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy(ROOT / name, source / name)
        shutil.copytree(
            ROOT / "keras_swn",
            source / "keras_swn",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(tmp_path),
                str(source),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PIP_NO_INDEX": "1"},
        )
        assert proc.returncode == 0, proc.stderr
        (wheel,) = tmp_path.glob("keras_swn-*.whl")
        names = set(zipfile.ZipFile(wheel).namelist())
        assert "keras_swn/py.typed" in names
        assert "keras_swn/data/digits.npz" in names
        assert "keras_swn/cli/__init__.py" in names
