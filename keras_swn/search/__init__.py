"""The search object: SuperWeight clusters, final training and refine.

`SearchAndRefine` runs the whole pipeline (see the algorithm page, [The
pipeline][pipeline]) with the surface of a KerasTuner tuner; `SearchConfig` and
`RunConfig` are its validated configuration (what it searches, how it trains),
and `TrainingRecipe` with `ReferenceSGD` and `step_learning_rate` the
reference's training recipe (the algorithm page, [Training recipe][recipe]).
`train_and_save` trains a fixed-policy `SWNModel` with the same recipe;
`load_and_evaluate` reloads a saved one; these training names are defined
in `keras_swn.training` and re-exported here. The phase state machine
(`keras_swn.search.oracle.PhaseOracle`) and its vocabulary
(`keras_swn.search.phases`) are internals of the search.
`SWNTuner` (`keras_swn.search.tuner`), a KerasTuner tuner whose trials
are `SearchAndRefine` runs, is imported on first access: it needs
keras-tuner, which `import keras_swn` does not.
"""

from keras_swn.search.config import SearchConfig
from keras_swn.search.run_config import RunConfig
from keras_swn.search.search_and_refine import SearchAndRefine
from keras_swn.training.optim import ReferenceSGD
from keras_swn.training.optim import learning_rate_at
from keras_swn.training.optim import make_optimizer
from keras_swn.training.optim import step_learning_rate
from keras_swn.training.recipe import TrainingRecipe
from keras_swn.training.train import load_and_evaluate
from keras_swn.training.train import train_and_save

__all__ = [
    "ReferenceSGD",
    "RunConfig",
    "SearchAndRefine",
    "SearchConfig",
    "TrainingRecipe",
    "learning_rate_at",
    "load_and_evaluate",
    "make_optimizer",
    "step_learning_rate",
    "train_and_save",
]


def __getattr__(name):
    # `SWNTuner` imports keras_tuner (optional): loaded on first access.
    if name == "SWNTuner":
        from keras_swn.search.tuner import SWNTuner

        return SWNTuner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
