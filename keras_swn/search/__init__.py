"""The search object: SuperWeight clusters, final training and refine.

`SearchAndRefine` runs the whole pipeline of swn-algorithm.md (Appendix A)
with the surface of a KerasTuner tuner; `PhaseOracle` is its pure,
JSON-resumable phase state machine; `ReferenceSGD` and
`step_learning_rate` are the reference's training recipe (§5).
"""

from keras_swn.search.optim import ReferenceSGD
from keras_swn.search.optim import make_optimizer
from keras_swn.search.optim import step_learning_rate
from keras_swn.search.oracle import Phase
from keras_swn.search.oracle import PhaseOracle
from keras_swn.search.oracle import Sharing
from keras_swn.search.oracle import Step
from keras_swn.search.search_and_refine import SearchAndRefine

__all__ = [
    "Phase",
    "PhaseOracle",
    "ReferenceSGD",
    "SearchAndRefine",
    "Sharing",
    "Step",
    "make_optimizer",
    "step_learning_rate",
]
