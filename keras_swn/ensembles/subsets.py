"""Choosing the member subset that fits a FLOPs budget, and running it.

See the algorithm page, [Evaluation and anytime prediction][anytime].
"""

from __future__ import annotations

from typing import Any
from typing import Mapping
from typing import NamedTuple
from typing import Sequence

import numpy as np

from keras_swn.ensembles.anytime import AnytimeCurve
from keras_swn.ensembles.anytime import Subset
from keras_swn.ensembles.anytime import _check_flops
from keras_swn.ensembles.anytime import ranked_subsets
from keras_swn.ensembles.evaluation import member_probabilities
from keras_swn.ensembles.flops import member_flops
from keras_swn.validation import invalid_argument


class SubsetChoice(NamedTuple):
    """The subset `best_subset` chose.

    Attributes:
        members: tuple of member indices, ascending.
        flops: float, their total FLOPs.
        accuracy: float or None, the subset's accuracy on the data the
            curve was computed on (None when chosen by FLOPs alone).

    Examples:
        >>> choice = keras_swn.ensembles.best_subset(
        ...     {(0,): 0.9, (1,): 0.8, (0, 1): 0.95}, [200, 100],
        ...     flops_budget=300)
        >>> choice.members, choice.flops, choice.accuracy
        ((0, 1), 300.0, 0.95)
    """

    members: Subset
    flops: float
    accuracy: float | None


def best_subset(
    curve_or_accuracies: AnytimeCurve | Mapping[Subset, float] | None,
    flops: Sequence[Any] | None = None,
    *,
    flops_budget: float,
) -> SubsetChoice:
    """The most accurate member subset whose total FLOPs fit a budget.

    Among subsets with total FLOPs `<= flops_budget`, picks the highest
    accuracy; ties go to the cheaper subset, then to the earlier one in
    the ranking (size, then member indices). Without accuracies
    (`curve_or_accuracies=None`), total FLOPs stand in for accuracy: the
    subset that uses the most of the budget wins, which assumes that
    more ensemble compute means a better ensemble.

    Args:
        curve_or_accuracies: an
            [`AnytimeCurve`][keras_swn.ensembles.AnytimeCurve], a `{subset:
            accuracy}` mapping (subsets as tuples of member indices; subsets it
            lacks are not considered), or None.
        flops: one FLOPs value per member; required unless an
            `AnytimeCurve` is given (whose FLOPs are then used).
        flops_budget: the most FLOPs the chosen members may cost together.

    Returns:
        A [`SubsetChoice`][keras_swn.ensembles.SubsetChoice].

    Raises:
        ValueError: when no subset fits `flops_budget` (naming the
            cheapest member's cost), or on bad arguments.

    Examples:
        >>> keras_swn.ensembles.best_subset(
        ...     {(0,): 0.9, (1,): 0.8, (0, 1): 0.95}, [200, 100],
        ...     flops_budget=250)
        SubsetChoice(members=(0,), flops=200.0, accuracy=0.9)
    """
    if isinstance(curve_or_accuracies, AnytimeCurve):
        if flops is None:
            flops = curve_or_accuracies.member_flops
        accuracies: Mapping[Subset, float] | None = (
            curve_or_accuracies.accuracies()
        )
    else:
        accuracies = curve_or_accuracies
    if flops is None:
        raise invalid_argument(
            "flops",
            "Argument `flops` (one FLOPs value per member) is required "
            "unless an `AnytimeCurve` is given.",
            flops,
        )
    member_costs = _check_flops(flops, "flops")
    try:
        budget = float(flops_budget)
    except (TypeError, ValueError):
        budget = np.nan
    if np.isnan(budget):
        raise invalid_argument(
            "flops_budget", "Expected a number.", flops_budget
        )
    if accuracies is not None:
        accuracies = {
            tuple(sorted(int(i) for i in s)): float(a)
            for s, a in accuracies.items()
        }
        bad = [s for s in accuracies if not s or max(s) >= len(member_costs)]
        if bad:
            raise invalid_argument(
                "curve_or_accuracies",
                f"Subsets {bad[:3]} name members outside "
                f"[0, {len(member_costs)}).",
                curve_or_accuracies,
                shown=f"{len(member_costs)} FLOPs values in `flops`",
            )
    best: tuple | None = None
    for rank, s in enumerate(ranked_subsets(member_costs)):
        cost = float(sum(member_costs[i] for i in s))
        if cost > budget:
            continue
        if accuracies is None:
            score = cost
        elif s in accuracies:
            score = accuracies[s]
        else:
            continue
        key = (-score, cost, rank)
        if best is None or key < best[0]:
            best = (
                key,
                SubsetChoice(s, cost, None if accuracies is None else score),
            )
    if best is None:
        cheapest = int(np.argmin(member_costs))
        raise invalid_argument(
            "flops_budget",
            "No member subset fits `flops_budget`: the cheapest member "
            f"(member {cheapest}) costs {member_costs[cheapest]:,.0f} FLOPs.",
            flops_budget,
        )
    return best[1]


def predict_within_budget(
    model: Any,
    x: Any,
    *,
    flops_budget: float,
    curve: AnytimeCurve | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Ensemble probabilities from the best member subset within a budget.

    Chooses the subset with [`best_subset`][keras_swn.ensembles.best_subset],
    then runs only its members (the others are not computed at all) and returns
    the mean of their softmax probabilities. With a `curve` (an
    [`AnytimeCurve`][keras_swn.ensembles.AnytimeCurve] computed on validation
    data), the subset with the best validation accuracy that fits wins, with the
    curve's FLOPs per member. Without one, FLOPs are `member_flops(model,
    i).inference_macs` (per image, kernel composition excluded) and the subset
    that uses the most of the budget wins (see `best_subset`).

    Args:
        model: an [`SWNModel`][keras_swn.SWNModel].
        x: input array.
        flops_budget: the most FLOPs per image the chosen members may cost
            together.
        curve: optional `AnytimeCurve` over the model's members.
        batch_size: int, the prediction batch size.

    Returns:
        `(n, num_classes)` float64 NumPy array of probabilities.

    Raises:
        ValueError: when no member fits `flops_budget`, or when `curve`
            does not match the model's members.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 2),
        ...              keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 1), num_classes=10, budget=250_000, seed=0)
        >>> (x, y), (x_val, y_val) = keras_swn.data.load_digits_dataset()
        >>> curve = keras_swn.ensembles.anytime_curve(
        ...     model, x_val[:32], y_val[:32])
        >>> cheapest = min(curve.member_flops)
        >>> probs = keras_swn.ensembles.predict_within_budget(
        ...     model, x[:4], flops_budget=cheapest, curve=curve)
        >>> probs.shape  # only the member that fits was run
        (4, 10)
    """
    num = len(model.members)
    if curve is not None:
        if not isinstance(curve, AnytimeCurve) or curve.num_members != num:
            raise invalid_argument(
                "curve",
                f"Expected an `AnytimeCurve` over the model's {num} members.",
                curve,
                shown=f"curve={type(curve).__name__} with "
                f"{getattr(curve, 'num_members', '?')} members",
            )
        choice = best_subset(curve, flops_budget=flops_budget)
    else:
        costs = [member_flops(model, i).inference_macs for i in range(num)]
        choice = best_subset(None, costs, flops_budget=flops_budget)
    probs = member_probabilities(
        model, x, members=choice.members, batch_size=batch_size
    )
    return np.mean(probs, axis=0)
