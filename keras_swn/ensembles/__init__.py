"""Ensembles: evaluation, FLOPs per member, anytime prediction.

See the algorithm page, [Evaluation and anytime prediction][anytime].
"""

from keras_swn.ensembles.anytime import AnytimeCurve
from keras_swn.ensembles.anytime import anytime_curve
from keras_swn.ensembles.anytime import ranked_subsets
from keras_swn.ensembles.evaluation import EnsembleEvaluation
from keras_swn.ensembles.evaluation import Metrics
from keras_swn.ensembles.evaluation import ensemble_metrics
from keras_swn.ensembles.evaluation import evaluate_ensemble
from keras_swn.ensembles.evaluation import expected_calibration_error
from keras_swn.ensembles.evaluation import member_probabilities
from keras_swn.ensembles.flops import FlopsReport
from keras_swn.ensembles.flops import LayerFlops
from keras_swn.ensembles.flops import member_flops
from keras_swn.ensembles.subsets import SubsetChoice
from keras_swn.ensembles.subsets import best_subset
from keras_swn.ensembles.subsets import predict_within_budget

__all__ = [
    "AnytimeCurve",
    "EnsembleEvaluation",
    "FlopsReport",
    "LayerFlops",
    "Metrics",
    "SubsetChoice",
    "anytime_curve",
    "best_subset",
    "ensemble_metrics",
    "evaluate_ensemble",
    "expected_calibration_error",
    "member_flops",
    "member_probabilities",
    "predict_within_budget",
    "ranked_subsets",
]
