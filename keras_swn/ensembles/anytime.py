"""Anytime prediction: every member subset ranked by FLOPs.

See the algorithm page, [Evaluation and anytime prediction][anytime].
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any
from typing import Sequence

import numpy as np

from keras_swn.ensembles.evaluation import member_names
from keras_swn.ensembles.evaluation import member_probabilities
from keras_swn.ensembles.flops import member_flops
from keras_swn.io.atomic import atomic_write
from keras_swn.validation import check_probabilities
from keras_swn.validation import invalid_argument

Subset = tuple[int, ...]


def _flops_value(value: Any, name: str) -> float:
    value = getattr(value, "total", value)  # a FlopsReport
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = -1.0
    if not out >= 0 or not np.isfinite(out):
        raise invalid_argument(
            name,
            "Expected non-negative numbers (or FlopsReports).",
            value,
            shown=f"{name} containing {value!r}",
        )
    return out


def _check_flops(flops_per_member: Sequence[Any], name: str) -> tuple:
    try:
        values = list(flops_per_member)
    except TypeError:
        raise invalid_argument(
            name, "Expected one FLOPs value per member.", flops_per_member
        ) from None
    if not values:
        raise invalid_argument(
            name, "Expected at least one member.", flops_per_member
        )
    return tuple(_flops_value(v, name) for v in values)


def ranked_subsets(flops_per_member: Sequence[Any]) -> list[Subset]:
    """Every non-empty subset of members, cheapest first.

    Sorted by total FLOPs, then by size, then by member indices
    (lexicographic), so the order is total and deterministic.

    Args:
        flops_per_member: one FLOPs value (or
            [`FlopsReport`][keras_swn.ensembles.FlopsReport]) per member.

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

    The reference's anytime evaluation (see the algorithm page, [Evaluation and
    anytime prediction][anytime]): no early exit and no fixed member order; each
    of the `2**M - 1` non-empty subsets of members is an ensemble (mean of its
    members' softmaxes), ranked by the sum of its members' FLOPs.

    Attributes:
        subsets: tuple of member-index tuples, ranked (FLOPs, size,
            indices).
        flops: tuple of float, the total FLOPs of each subset.
        accuracy: tuple of float, the top-1 accuracy of each subset.
        pareto: tuple of bool, whether each subset is on the Pareto front
            (no other subset is at most as costly and more accurate).
        member_flops: tuple of float, one per member.
        names: tuple of str, one per member.

    Examples:
        >>> p0 = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> p1 = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6]])
        >>> curve = keras_swn.ensembles.anytime_curve(
        ...     [p0, p1], [0, 1, 1], [200, 100], names=["big", "small"])
        >>> print(curve)
        members: 0=big (200 FLOPs), 1=small (100 FLOPs)
        rank  members  FLOPs  top-1 %  pareto
        -------------------------------------
           1  1          100    66.67       *
           2  0          200    66.67
           3  0+1        300   100.00       *
        >>> curve.accuracies()[(0, 1)]
        1.0
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

    def plot(
        self,
        path: str | os.PathLike,
        *,
        title: str | None = None,
        dpi: int = 100,
    ) -> str:
        """Write the accuracy-vs-FLOPs plot as a PNG (atomically).

        Every subset is a dot; single members are marked and labelled;
        the Pareto front is drawn as a step line.

        Args:
            path: the PNG file to write.
            title: optional plot title.
            dpi: int, dots per inch (the figure is 6.4 x 4.4 inches; 200
                gives a sharp image on high-density screens).

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
        from matplotlib.ticker import EngFormatter

        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.set_xlabel("FLOPs per image (multiply-adds)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(title or "Anytime prediction: member subsets")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = atomic_write(
            path,
            lambda tmp: fig.savefig(tmp, format="png", dpi=dpi),
            suffix=".png",
        )
        return path


def anytime_curve(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    flops_per_member: Sequence[Any] | None = None,
    names: Sequence[str] | None = None,
    batch_size: int = 128,
) -> AnytimeCurve:
    """Rank every non-empty member subset by FLOPs, with its accuracy.

    Takes either of the two inputs a user has at hand, like
    [`evaluate_ensemble`][keras_swn.ensembles.evaluate_ensemble]:

    - `anytime_curve(model, x, y)`: an [`SWNModel`][keras_swn.SWNModel] and
      validation data; every member is run once on `x`, and each member's FLOPs
      are `member_flops(model, i).inference_macs` (per image, kernel composition
      excluded) unless `flops_per_member` is given;
    - `anytime_curve(probs, y, flops)`: probabilities already computed (one `(n,
      num_classes)` array per member, e.g. from
      [`member_probabilities`][keras_swn.ensembles.member_probabilities]), the
      labels and one FLOPs value per member (the third argument, or
      `flops_per_member=`).

    Args:
        model: an `SWNModel`, or one probability array per member (a list
            of `(n, num_classes)` arrays or an `(M, n, num_classes)` array).
        x: the inputs when `model` is a model; the labels when it is
            probabilities.
        y: the labels (integers or one-hot) when `model` is a model; the
            FLOPs per member when it is probabilities.
        flops_per_member: one FLOPs value (or
            [`FlopsReport`][keras_swn.ensembles.FlopsReport], whose `total` is
            used) per member; optional with a model.
        names: optional member names (default: the members' builder
            names, or `"member_i"` for probabilities).
        batch_size: int, the prediction batch size (model input only).

    Returns:
        An [`AnytimeCurve`][keras_swn.ensembles.AnytimeCurve] of `2**M - 1`
        subsets.

    Raises:
        ValueError: if the number of FLOPs values differs from the number
            of members, if the labels or FLOPs are missing, or on bad
            arrays.

    Examples:
        From probabilities, labels and FLOPs:

        >>> p0 = np.array([[0.9, 0.1], [0.6, 0.4]])
        >>> p1 = np.array([[0.2, 0.8], [0.1, 0.9]])
        >>> curve = keras_swn.ensembles.anytime_curve(
        ...     [p0, p1], [0, 1], [200, 100])
        >>> curve.subsets, curve.accuracy
        (((1,), (0,), (0, 1)), (0.5, 0.5, 1.0))

        From a model and data (the FLOPs are counted from the layers):

        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 2),
        ...              keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 1), num_classes=10, budget=250_000, seed=0)
        >>> (x, y), _ = keras_swn.data.load_digits_dataset()
        >>> curve = keras_swn.ensembles.anytime_curve(model, x[:16], y[:16])
        >>> curve.names, curve.subsets
        (('WRN-10-2', 'WRN-10-1'), ((1,), (0,), (0, 1)))
    """
    from keras_swn.ensembles.evaluation import is_model

    if is_model(model):
        if y is None:
            raise invalid_argument(
                "y",
                "Argument `y` (the labels) is required when the first "
                "argument is a model: anytime_curve(model, x, y).",
                y,
            )
        num = len(model.members)
        probs_per_member = member_probabilities(model, x, batch_size=batch_size)
        labels = y
        if flops_per_member is None:
            flops_per_member = [
                member_flops(model, i).inference_macs for i in range(num)
            ]
        if names is None:
            names = [
                getattr(b, "name", type(b).__name__)
                for b in model.member_builders
            ]
    else:
        probs_per_member, labels = model, x
        if flops_per_member is None:
            flops_per_member = y
        elif y is not None:
            raise invalid_argument(
                "flops_per_member",
                "Pass the FLOPs per member once: anytime_curve(probs, y, "
                "flops) or anytime_curve(probs, y, flops_per_member=...).",
                flops_per_member,
                shown=f"both, and a third argument of type {type(y).__name__}",
            )
        if flops_per_member is None:
            raise invalid_argument(
                "flops_per_member",
                "Argument `flops_per_member` is required with "
                "probabilities: anytime_curve(probs, y, flops).",
                flops_per_member,
            )
    probs, labels = check_probabilities(probs_per_member, labels)
    flops = _check_flops(flops_per_member, "flops_per_member")
    m = probs.shape[0]
    if len(flops) != m:
        raise invalid_argument(
            "flops_per_member",
            f"Expected one value per member ({m}).",
            flops_per_member,
            shown=f"{len(flops)} values",
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
