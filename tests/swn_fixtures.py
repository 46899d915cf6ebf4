"""Helpers the test modules share (importable: `tests/` is on `sys.path`
because it holds a `conftest.py`).

- `reference_values()` / `readme_specs()`: the README's reference sizing
  values and its four-member ensemble;
- `digits()` / `make_search()`: real 8x8 digits and a small
  `SearchAndRefine` for the search tests;
- `FULL_PHASES`: the phase log of a search that refines.
"""

import json
import pathlib

from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.search import SearchAndRefine

DATA = pathlib.Path(__file__).parent / "data"
README_MEMBERS = [(28, 7), (28, 4), (16, 7), (16, 4)]
FULL_PHASES = [
    "search_training",
    "clustering",
    "training",
    "refine",
    "training",
    "finish",
]


def reference_values():
    """`tests/data/reference_values_readme.json`, parsed."""
    with open(DATA / "reference_values_readme.json", encoding="utf-8") as f:
        return json.load(f)


def readme_specs():
    """Every layer spec of the README's WRN-28-7/28-4/16-7/16-4 ensemble."""
    return [
        s
        for m, (d, w) in enumerate(README_MEMBERS)
        for s in wide_resnet_layer_specs(d, w, member=m)
    ]


def digits(n_train=32, n_val=16):
    """The first `n_train` / `n_val` real 8x8 digits (train, validation)."""
    (x, y), (xv, yv) = load_digits_dataset(seed=0)
    return (x[:n_train], y[:n_train]), (xv[:n_val], yv[:n_val])


def make_search(directory, members, project="p", **options):
    """A `SearchAndRefine` of WRN `(depth, width)` members on 8x8x1
    digits in `directory/project`, batch 16; `options` override."""
    options = {"batch_size": 16, **options}
    return SearchAndRefine(
        [WideResNet(d, w) for d, w in members],
        (8, 8, 1),
        10,
        directory=str(directory),
        project_name=project,
        **options,
    )


def tiny_swn_model():
    """A one-member WRN-10-1 `SWNModel` on 8x8x1 inputs (budget 80,000)."""
    from keras_swn import SWNModel

    return SWNModel(
        members=[WideResNet(10, 1)],
        input_shape=(8, 8, 1),
        num_classes=10,
        budget=80_000,
        seed=0,
    )


def cli_status(capsys, *args):
    """Run `keras-swn *args` in this process: `(exit status, stderr)`."""
    from keras_swn import cli

    status = cli.execute(["keras-swn", *args])
    return status, capsys.readouterr().err.strip()


def assert_one_line(status, err, *fragments):
    """A CLI error: exit 2, one line on stderr holding every fragment, no
    traceback."""
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
