"""Every example under `examples/` runs top to bottom in smoke mode.

Each file runs in its own subprocess on TensorFlow with
`KERAS_SWN_EXAMPLE_SMOKE=1` (tiny data, one epoch). Examples listed
here must exist: a missing one fails.
"""

import os
import subprocess
import sys

import keras
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXAMPLES = [
    "quickstart.py",
    "search_and_refine.py",
    "ensemble_anytime.py",
    "export_deploy.py",
    "distributed.py",
    "tune_budget.py",
    "search_distributed.py",
    "keras_applications.py",
]
_HEADER = (
    "Title:",
    "Author:",
    "Date created:",
    "Last modified:",
    "Description:",
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="examples run once, on TensorFlow, in a subprocess",
)


def _path(name):
    path = os.path.join(_ROOT, "examples", name)
    assert os.path.exists(path), f"examples/{name} is missing"
    return path


@pytest.mark.parametrize("name", _EXAMPLES)
def test_example_has_a_keras_io_header(name):
    with open(_path(name), encoding="utf-8") as f:
        source = f.read()
    assert source.startswith('"""\nTitle: ')
    header = source.split('"""')[1]
    for field in _HEADER:
        assert f"\n{field} " in header, field


@pytest.mark.slow
@pytest.mark.parametrize("name", _EXAMPLES)
def test_example_runs_in_smoke_mode(name, tmp_path):
    path = _path(name)
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "KERAS_SWN_EXAMPLE_SMOKE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "MPLBACKEND": "Agg",
    }
    out = subprocess.run(
        [sys.executable, path],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-4000:])
