"""Ensemble evaluation: accuracy, NLL, calibration and diversity."""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from typing import Sequence

import numpy as np

from keras_swn.io.atomic import format_rows
from keras_swn.validation import check_probabilities
from keras_swn.validation import invalid_argument

ECE_BINS = 15
"""The number of equal-width confidence bins of the expected calibration
error."""

_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class Metrics:
    """The metrics of one predictor (a member or the ensemble).

    Attributes:
        top1: float, top-1 accuracy in [0, 1].
        top5: float or None, top-5 accuracy (None with fewer than 5
            classes).
        nll: float, the mean negative log-likelihood of the true class
            (probabilities clipped below at 1e-12).
        ece: float, the expected calibration error over 15 equal-width
            confidence bins.

    Examples:
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> result = keras_swn.ensembles.evaluate_ensemble([p], [0, 1, 1])
        >>> metrics = result.members[0]
        >>> round(metrics.top1, 4), metrics.top5, round(metrics.nll, 4)
        (0.6667, None, 0.4149)
    """

    top1: float
    top5: float | None
    nll: float
    ece: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class EnsembleEvaluation:
    """The evaluation of every member and of their ensemble.

    The ensemble prediction is the mean of the member softmax probabilities (the
    reference sums them: same argmax; see the algorithm page, [Evaluation and
    anytime prediction][anytime]; the mean keeps NLL and ECE meaningful).

    Attributes:
        names: tuple of str, one name per member.
        members: tuple of [`Metrics`][keras_swn.ensembles.Metrics], one per
            member.
        ensemble: `Metrics` of the mean of the member probabilities.
        disagreement: `(M, M)` tuple of tuples, the fraction of examples on
            which the top-1 predictions of members `i` and `j` differ.
        mean_disagreement: float, the mean over pairs `i < j` (NaN with one
            member).
        diversity: float, `mean_disagreement / (1 - ensemble.top1)` (the
            reference's "diversity"); NaN with one member or when the
            ensemble makes no error.
        num_examples: int.
        num_classes: int.

    Examples:
        >>> p0 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> p1 = np.array([[0.7, 0.3], [0.4, 0.6], [0.3, 0.7]])
        >>> result = keras_swn.ensembles.evaluate_ensemble(
        ...     [p0, p1], [0, 1, 1], names=["a", "b"])
        >>> result.names, result.num_examples, result.num_classes
        (('a', 'b'), 3, 2)
        >>> result.members[1].top1, result.ensemble.top1
        (1.0, 1.0)
        >>> round(result.mean_disagreement, 4)
        0.3333
    """

    names: tuple[str, ...]
    members: tuple[Metrics, ...]
    ensemble: Metrics
    disagreement: tuple[tuple[float, ...], ...]
    mean_disagreement: float
    diversity: float
    num_examples: int
    num_classes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "members": [m.to_dict() for m in self.members],
            "ensemble": self.ensemble.to_dict(),
            "disagreement": [list(r) for r in self.disagreement],
            "mean_disagreement": self.mean_disagreement,
            "diversity": self.diversity,
            "num_examples": self.num_examples,
            "num_classes": self.num_classes,
            "ece_bins": ECE_BINS,
        }

    def __str__(self) -> str:
        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.2f}"

        rows = [("", "top-1 %", "top-5 %", "NLL", f"ECE({ECE_BINS}) %")]
        labelled = [
            (f"member {i} ({n})", m)
            for i, (n, m) in enumerate(zip(self.names, self.members))
        ] + [("ensemble", self.ensemble)]
        for label, m in labelled:
            rows.append(
                (label, pct(m.top1), pct(m.top5), f"{m.nll:.4f}", pct(m.ece))
            )
        lines = format_rows(rows, right={1, 2, 3, 4})
        lines.append(
            f"mean pairwise disagreement: {self.mean_disagreement:.4f}, "
            f"diversity (disagreement / ensemble error): "
            f"{self.diversity:.4f}"
        )
        lines.append(
            f"{self.num_examples} examples, {self.num_classes} classes"
        )
        return "\n".join(lines)


def member_names(names: Sequence[str] | None, m: int) -> tuple[str, ...]:
    """`names` as a tuple of `m` strings (default `member_i`)."""
    if names is None:
        names = [f"member_{i}" for i in range(m)]
    names = tuple(str(s) for s in names)
    if len(names) != m:
        raise invalid_argument("names", f"Expected {m} names.", names)
    return names


def expected_calibration_error(
    probs: np.ndarray, y: np.ndarray, *, num_bins: int = ECE_BINS
) -> float:
    """The expected calibration error of one probability array.

    Confidence is the largest probability; examples fall into `num_bins`
    equal-width bins `(lo, hi]` of [0, 1]; the ECE is
    `sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|`
    (Guo et al., 2017).

    Args:
        probs: `(n, num_classes)` probabilities.
        y: `(n,)` integer labels.
        num_bins: int, the number of bins (default 15).

    Returns:
        float in [0, 1].

    Examples:
        One confident right answer (0.9) and one confident wrong one (0.8):

        >>> probs = np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> ece = keras_swn.ensembles.expected_calibration_error(probs, [0, 0])
        >>> round(ece, 4)  # (|1 - 0.9| + |0 - 0.8|) / 2
        0.45
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y)
    confidence = probs.max(axis=-1)
    correct = (np.argmax(probs, axis=-1) == y).astype(np.float64)
    # Bin b holds confidences in (b / num_bins, (b + 1) / num_bins].
    bins = np.clip(
        np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1
    )
    ece = 0.0
    n = len(y)
    for b in range(num_bins):
        mask = bins == b
        if mask.any():
            ece += (
                mask.sum()
                / n
                * abs(correct[mask].mean() - confidence[mask].mean())
            )
    return float(ece)


def _metrics(probs: np.ndarray, y: np.ndarray) -> Metrics:
    n, num_classes = probs.shape
    top1 = float(np.mean(np.argmax(probs, axis=-1) == y))
    top5 = None
    if num_classes >= 5:
        # Stable sort on -p: among tied probabilities the lower class wins.
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :5]
        top5 = float(np.mean(np.any(order == y[:, None], axis=-1)))
    p_true = probs[np.arange(n), y]
    nll = float(np.mean(-np.log(np.maximum(p_true, _EPS))))
    return Metrics(top1, top5, nll, expected_calibration_error(probs, y))


def ensemble_metrics(
    probs_per_member: Sequence[np.ndarray] | np.ndarray,
    y: np.ndarray,
    *,
    names: Sequence[str] | None = None,
) -> EnsembleEvaluation:
    """Member and ensemble metrics from probability arrays (pure NumPy).

    Args:
        probs_per_member: one `(num_examples, num_classes)` array of class
            probabilities per member (or an `(M, n, C)` array).
        y: `(num_examples,)` integer labels (or one-hot).
        names: optional member names (default `"member_i"`).

    Returns:
        An [`EnsembleEvaluation`][keras_swn.ensembles.EnsembleEvaluation].

    Raises:
        ValueError: on arrays of the wrong shape or labels out of range.

    Examples:
        >>> p0 = np.array([[0.9, 0.1], [0.2, 0.8]])
        >>> p1 = np.array([[0.6, 0.4], [0.7, 0.3]])
        >>> result = keras_swn.ensembles.ensemble_metrics([p0, p1], [0, 1])
        >>> result.members[0].top1, result.ensemble.top1
        (1.0, 1.0)
        >>> result.mean_disagreement
        0.5
    """
    probs, labels = check_probabilities(probs_per_member, y)
    m, n, c = probs.shape
    names = member_names(names, m)
    members = tuple(_metrics(p, labels) for p in probs)
    ensemble = _metrics(probs.mean(axis=0), labels)
    preds = np.argmax(probs, axis=-1)
    dis = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            dis[i, j] = np.mean(preds[i] != preds[j]) if n else 0.0
    if m > 1:
        mean_dis = float(dis[np.triu_indices(m, 1)].mean())
    else:
        mean_dis = math.nan
    error = 1.0 - ensemble.top1
    diversity = mean_dis / error if m > 1 and error > 0 else math.nan
    return EnsembleEvaluation(
        names=names,
        members=members,
        ensemble=ensemble,
        disagreement=tuple(tuple(float(v) for v in r) for r in dis),
        mean_disagreement=mean_dis,
        diversity=diversity,
        num_examples=n,
        num_classes=c,
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """A numerically stable softmax over the last axis, in NumPy."""
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def member_probabilities(
    model: Any,
    x: Any,
    *,
    members: Sequence[int] | None = None,
    batch_size: int = 128,
) -> list[np.ndarray]:
    """The softmax probabilities of some members (only those are run).

    Args:
        model: an [`SWNModel`][keras_swn.SWNModel].
        x: inputs accepted by `keras.Model.predict`.
        members: member indices to run (default: all).
        batch_size: int, the prediction batch size.

    Returns:
        A list of `(n, num_classes)` float64 arrays, in `members` order.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> probs = keras_swn.ensembles.member_probabilities(
        ...     model, np.ones((4, 8, 8, 3)))
        >>> len(probs), probs[0].shape
        (1, (4, 10))
        >>> bool(np.allclose(probs[0].sum(axis=1), 1.0))
        True
    """
    if members is None:
        members = range(len(model.members))
    return [
        softmax(model.members[i].predict(x, batch_size=batch_size, verbose=0))
        for i in members
    ]


def is_model(value: Any) -> bool:
    """Whether `value` is an ensemble model (an `SWNModel`), not arrays.

    Args:
        value: an `SWNModel`, or probability arrays.

    Returns:
        bool, True when `value` has `members` and `predict`.
    """
    return hasattr(value, "members") and hasattr(value, "predict")


def evaluate_ensemble(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 128,
    names: Sequence[str] | None = None,
) -> EnsembleEvaluation:
    """Evaluate every member of an ensemble and their mean prediction.

    Reports per member and for the ensemble (the mean of the member
    softmaxes): top-1, top-5 (with at least 5 classes), NLL, ECE over 15
    equal-width bins, and the pairwise top-1 disagreement and "diversity"
    (mean disagreement / ensemble error; see the algorithm page,
    [Evaluation and anytime prediction][anytime]).

    Takes either of the two inputs a user has at hand, like
    [`anytime_curve`][keras_swn.ensembles.anytime_curve]:

    - `evaluate_ensemble(model, x, y)`: an [`SWNModel`][keras_swn.SWNModel] and
      data; every member is run on `x`;
    - `evaluate_ensemble(probs, y)`: probabilities already computed (one `(n,
      num_classes)` array per member, e.g. from
      [`member_probabilities`][keras_swn.ensembles.member_probabilities]); the
      second argument is then the labels.

    Args:
        model: an `SWNModel`, or one probability array per member (a list
            of `(n, num_classes)` arrays or an `(M, n, num_classes)` array).
        x: the inputs when `model` is a model; the labels when it is
            probabilities.
        y: integer labels (or one-hot) when `model` is a model; leave it
            out with probabilities.
        batch_size: int, the prediction batch size.
        names: optional member names (default: the members' builder
            names, or `"member_i"` for probabilities).

    Returns:
        An [`EnsembleEvaluation`][keras_swn.ensembles.EnsembleEvaluation] (print
        it for a table).

    Raises:
        ValueError: when `y` is missing for a model or given with
            probabilities, or on arrays of the wrong shape.

    Examples:
        From probabilities:

        >>> p0 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> p1 = np.array([[0.7, 0.3], [0.4, 0.6], [0.3, 0.7]])
        >>> result = keras_swn.ensembles.evaluate_ensemble([p0, p1], [0, 1, 1])
        >>> result.members[0].top1, result.members[1].top1
        (0.6666666666666666, 1.0)
        >>> result.ensemble.top1
        1.0

        From a model and data (every member is run):

        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)] * 2,
        ...     input_shape=(8, 8, 1), num_classes=10, budget=60_000, seed=0)
        >>> (x, y), _ = keras_swn.data.load_digits_dataset()
        >>> result = keras_swn.ensembles.evaluate_ensemble(
        ...     model, x[:16], y[:16])
        >>> result.names, result.num_examples
        (('WRN-10-1', 'WRN-10-1'), 16)
    """
    if is_model(model):
        if y is None:
            raise invalid_argument(
                "y",
                "Argument `y` (the labels) is required when the first "
                "argument is a model: evaluate_ensemble(model, x, y).",
                y,
            )
        probs = member_probabilities(model, x, batch_size=batch_size)
        if names is None:
            names = [
                getattr(b, "name", type(b).__name__)
                for b in model.member_builders
            ]
        return ensemble_metrics(probs, y, names=names)
    if y is not None:
        raise invalid_argument(
            "y",
            "With probabilities, pass the labels second: "
            "evaluate_ensemble(probs, y).",
            y,
            shown=f"a third argument y of type {type(y).__name__}",
        )
    return ensemble_metrics(model, x, names=names)
