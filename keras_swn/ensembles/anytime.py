"""Anytime prediction: every member subset ranked by FLOPs.

See the algorithm page, *Evaluation and anytime prediction*.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any
from typing import Mapping
from typing import NamedTuple
from typing import Sequence

import numpy as np

from keras_swn.ensembles.evaluation import member_names
from keras_swn.ensembles.evaluation import member_probabilities
from keras_swn.ensembles.flops import member_flops
from keras_swn.io_utils import atomic_write
from keras_swn.validation import check_probabilities

Subset = tuple[int, ...]


def _flops_value(value: Any, name: str) -> float:
    value = getattr(value, "total", value)  # a FlopsReport
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = -1.0
    if not out >= 0 or not np.isfinite(out):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected non-negative "
            f"numbers (or FlopsReports). Received: {name} containing "
            f"{value!r}"
        )
    return out


def _check_flops(flops_per_member: Sequence[Any], name: str) -> tuple:
    try:
        values = list(flops_per_member)
    except TypeError:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one FLOPs value "
            f"per member. Received: {name}={flops_per_member!r}"
        ) from None
    if not values:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected at least one "
            f"member. Received: {name}={flops_per_member!r}"
        )
    return tuple(_flops_value(v, name) for v in values)


def ranked_subsets(flops_per_member: Sequence[Any]) -> list[Subset]:
    """Every non-empty subset of members, cheapest first.

    Sorted by total FLOPs, then by size, then by member indices
    (lexicographic), so the order is total and deterministic.

    Args:
        flops_per_member: one FLOPs value (or `FlopsReport`) per member.

    Returns:
        A list of `2**M - 1` sorted tuples of member indices.

    Examples:
        >>> keras_swn.ensembles.ranked_subsets([3, 1, 2])
        [(1,), (2,), (0,), (1, 2), (0, 1), (0, 2), (0, 1, 2)]
    """
    flops = _check_flops(flops_per_member, "flops_per_member")
    m = len(flops)
    subsets = [
        s for r in range(1, m + 1) for s in itertools.combinations(range(m), r)
    ]
    return sorted(subsets, key=lambda s: (sum(flops[i] for i in s), len(s), s))


def _pareto(flops: Sequence[float], accuracy: Sequence[float]) -> tuple:
    """Points no other point beats (cheaper or equal, and more accurate).

    Sweep in order of FLOPs (more accurate first among equal FLOPs): a
    point is on the front when it is strictly more accurate than every
    point before it. Of exact duplicates only the first is kept.
    """
    order = sorted(range(len(flops)), key=lambda i: (flops[i], -accuracy[i], i))
    front = [False] * len(flops)
    best = -np.inf
    for i in order:
        if accuracy[i] > best:
            front[i] = True
            best = accuracy[i]
    return tuple(front)


@dataclasses.dataclass(frozen=True)
class AnytimeCurve:
    """Accuracy of every member subset against its total FLOPs.

    The reference's anytime evaluation (see the algorithm page, *Evaluation and
    anytime prediction*): no early exit and no fixed member order; each of the
    `2**M - 1` non-empty subsets of members is an ensemble (mean of its members'
    softmaxes), ranked by the sum of its members' FLOPs.

    Attributes:
        subsets: tuple of member-index tuples, ranked (FLOPs, size,
            indices).
        flops: tuple of float, the total FLOPs of each subset.
        accuracy: tuple of float, the top-1 accuracy of each subset.
        pareto: tuple of bool, whether each subset is on the Pareto front
            (no other subset is at most as costly and more accurate).
        member_flops: tuple of float, one per member.
        names: tuple of str, one per member.
    """

    subsets: tuple[Subset, ...]
    flops: tuple[float, ...]
    accuracy: tuple[float, ...]
    pareto: tuple[bool, ...]
    member_flops: tuple[float, ...]
    names: tuple[str, ...]

    @property
    def num_members(self) -> int:
        return len(self.member_flops)

    def accuracies(self) -> dict[Subset, float]:
        """`{subset: accuracy}`."""
        return dict(zip(self.subsets, self.accuracy))

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "member_flops": list(self.member_flops),
            "subsets": [
                {
                    "members": list(s),
                    "flops": f,
                    "accuracy": a,
                    "pareto": p,
                }
                for s, f, a, p in zip(
                    self.subsets, self.flops, self.accuracy, self.pareto
                )
            ],
        }

    def __str__(self) -> str:
        rows = [("rank", "members", "FLOPs", "top-1 %", "pareto")]
        for r, (s, f, a, p) in enumerate(
            zip(self.subsets, self.flops, self.accuracy, self.pareto)
        ):
            rows.append(
                (
                    str(r + 1),
                    "+".join(str(i) for i in s),
                    f"{f:,.0f}",
                    f"{100 * a:.2f}",
                    "*" if p else "",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [
            "members: "
            + ", ".join(
                f"{i}={n} ({f:,.0f} FLOPs)"
                for i, (n, f) in enumerate(zip(self.names, self.member_flops))
            )
        ]
        for j, row in enumerate(rows):
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 1 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths))
                ).rstrip()
            )
            if j == 0:
                lines.append("-" * (sum(widths) + 8))
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike, *, title: str | None = None) -> str:
        """Write the accuracy-vs-FLOPs plot as a PNG (atomically).

        Every subset is a dot; single members are marked and labelled;
        the Pareto front is drawn as a step line.

        Args:
            path: the PNG file to write.
            title: optional plot title.

        Returns:
            str, `path`.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = os.fspath(path)
        fig = Figure(figsize=(6.4, 4.4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        flops = np.asarray(self.flops)
        acc = 100 * np.asarray(self.accuracy)
        ax.scatter(flops, acc, s=16, color="0.6", label="member subsets")
        front = [i for i, p in enumerate(self.pareto) if p]
        front.sort(key=lambda i: flops[i])
        ax.step(
            flops[front],
            acc[front],
            where="post",
            color="C0",
            marker="o",
            label="Pareto front",
        )
        singles = [i for i, s in enumerate(self.subsets) if len(s) == 1]
        ax.scatter(
            flops[singles],
            acc[singles],
            s=60,
            marker="D",
            color="C3",
            zorder=3,
            label="single members",
        )
        for i in singles:
            (m,) = self.subsets[i]
            ax.annotate(
                self.names[m],
                (flops[i], acc[i]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
            )
        ax.set_xlabel("FLOPs per image (multiply-adds)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(title or "Anytime prediction: member subsets")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = atomic_write(
            path,
            lambda tmp: fig.savefig(tmp, format="png", dpi=100),
            suffix=".png",
        )
        return path


def anytime_curve(
    probs_per_member: Sequence[np.ndarray] | np.ndarray,
    y: np.ndarray,
    flops_per_member: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
) -> AnytimeCurve:
    """Rank every non-empty member subset by FLOPs, with its accuracy.

    Args:
        probs_per_member: one `(n, num_classes)` probability array per
            member (e.g. from `member_probabilities` on validation data).
        y: `(n,)` integer labels (or one-hot).
        flops_per_member: one FLOPs value (or `FlopsReport`, whose
            `total` is used) per member.
        names: optional member names.

    Returns:
        An `AnytimeCurve` of `2**M - 1` subsets.

    Raises:
        ValueError: if the number of FLOPs values differs from the number
            of members, or on bad arrays.

    Examples:
        >>> p0 = np.array([[0.9, 0.1], [0.6, 0.4]])
        >>> p1 = np.array([[0.2, 0.8], [0.1, 0.9]])
        >>> curve = keras_swn.ensembles.anytime_curve(
        ...     [p0, p1], [0, 1], [200, 100])
        >>> curve.subsets, curve.accuracy
        (((1,), (0,), (0, 1)), (0.5, 0.5, 1.0))
    """
    probs, labels = check_probabilities(probs_per_member, y)
    flops = _check_flops(flops_per_member, "flops_per_member")
    m = probs.shape[0]
    if len(flops) != m:
        raise ValueError(
            "Invalid value for argument `flops_per_member`. Expected one "
            f"value per member ({m}). Received: {len(flops)} values"
        )
    names = member_names(names, m)
    subsets = ranked_subsets(flops)
    totals, accuracy = [], []
    for s in subsets:
        mean = probs[list(s)].mean(axis=0)
        totals.append(float(sum(flops[i] for i in s)))
        accuracy.append(float(np.mean(np.argmax(mean, axis=-1) == labels)))
    return AnytimeCurve(
        subsets=tuple(subsets),
        flops=tuple(totals),
        accuracy=tuple(accuracy),
        pareto=_pareto(totals, accuracy),
        member_flops=flops,
        names=names,
    )


class SubsetChoice(NamedTuple):
    """The subset `best_subset` chose.

    Attributes:
        members: tuple of member indices, ascending.
        flops: float, their total FLOPs.
        accuracy: float or None, the subset's accuracy on the data the
            curve was computed on (None when chosen by FLOPs alone).
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
        curve_or_accuracies: an `AnytimeCurve`, a `{subset: accuracy}`
            mapping (subsets as tuples of member indices; subsets it
            lacks are not considered), or None.
        flops: one FLOPs value per member; required unless an
            `AnytimeCurve` is given (whose FLOPs are then used).
        flops_budget: the most FLOPs the chosen members may cost together.

    Returns:
        A `SubsetChoice`.

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
        raise ValueError(
            "Argument `flops` (one FLOPs value per member) is required "
            "unless an `AnytimeCurve` is given. Received: flops=None"
        )
    member_costs = _check_flops(flops, "flops")
    try:
        budget = float(flops_budget)
    except (TypeError, ValueError):
        budget = np.nan
    if np.isnan(budget):
        raise ValueError(
            "Invalid value for argument `flops_budget`. Expected a number. "
            f"Received: flops_budget={flops_budget!r}"
        )
    if accuracies is not None:
        accuracies = {
            tuple(sorted(int(i) for i in s)): float(a)
            for s, a in accuracies.items()
        }
        bad = [s for s in accuracies if not s or max(s) >= len(member_costs)]
        if bad:
            raise ValueError(
                "Invalid value for argument `curve_or_accuracies`: subsets "
                f"{bad[:3]} name members outside [0, {len(member_costs)}). "
                f"Received: {len(member_costs)} FLOPs values in `flops`"
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
        raise ValueError(
            "No member subset fits `flops_budget`: the cheapest member "
            f"(member {cheapest}) costs {member_costs[cheapest]:,.0f} FLOPs. "
            f"Received: flops_budget={flops_budget!r}"
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

    Chooses the subset with `best_subset`, then runs only its members
    (the others are not computed at all) and returns the mean of their
    softmax probabilities. With a `curve` (an `AnytimeCurve` computed on
    validation data), the subset with the best validation accuracy that
    fits wins, with the curve's FLOPs per member. Without one, FLOPs are
    `member_flops(model, i).inference_macs` (per image, kernel
    composition excluded) and the subset that uses the most of the
    budget wins (see `best_subset`).

    Args:
        model: an `SWNModel`.
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
    """
    num = len(model.members)
    if curve is not None:
        if not isinstance(curve, AnytimeCurve) or curve.num_members != num:
            raise ValueError(
                "Invalid value for argument `curve`. Expected an "
                f"`AnytimeCurve` over the model's {num} members. Received: "
                f"curve={type(curve).__name__} with "
                f"{getattr(curve, 'num_members', '?')} members"
            )
        choice = best_subset(curve, flops_budget=flops_budget)
    else:
        costs = [member_flops(model, i).inference_macs for i in range(num)]
        choice = best_subset(None, costs, flops_budget=flops_budget)
    probs = member_probabilities(
        model, x, members=choice.members, batch_size=batch_size
    )
    return np.mean(probs, axis=0)
