"""Training an `SWNModel` with the reference recipe.

`TrainingRecipe` with `ReferenceSGD` and `step_learning_rate` is the reference's
training recipe (see the algorithm page, [Training recipe][recipe]), the one
`keras_swn.search.SearchAndRefine` trains every phase with; `train_and_save`
trains a fixed-policy `SWNModel` with it (`keras-swn train`) and
`load_and_evaluate` reloads a saved one. `DataSource` is training or validation
data as both read it. The public names are also exported from
`keras_swn.search`.
"""

from keras_swn.training.data import DataSource
from keras_swn.training.optim import ReferenceSGD
from keras_swn.training.optim import learning_rate_at
from keras_swn.training.optim import make_optimizer
from keras_swn.training.optim import step_learning_rate
from keras_swn.training.recipe import TrainingRecipe
from keras_swn.training.train import load_and_evaluate
from keras_swn.training.train import train_and_save

__all__ = [
    "DataSource",
    "ReferenceSGD",
    "TrainingRecipe",
    "learning_rate_at",
    "load_and_evaluate",
    "make_optimizer",
    "step_learning_rate",
    "train_and_save",
]
