"""`BudgetReport`: where the parameters of an SWN ensemble go.

Banks, coefficients and the unshared per-member parts (BatchNorm, heads),
deduplicated across members, next to the unshared member sizes. Pure
Python: no Keras import.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Mapping
from typing import Sequence

from keras_swn.bank.plan import BankPlan
from keras_swn.bank.plan import BankSpec
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument


@dataclasses.dataclass(frozen=True)
class MemberBudget:
    """Parameter counts of one member network.

    Args:
        name: str, a display name, e.g. `"WRN-28-7"`.
        conv_params_unshared: int, the member's shared-layer kernels if they
            were stored (no sharing).
        params_unshared: int, all parameters of the member without sharing.
        unshared_trainable: int, the member's own trainable parameters that
            are never shared (BatchNorm and classifier), counted in the
            trainable total.

    Examples:
        One per member in a model's [`BudgetReport`][keras_swn.BudgetReport]:

        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> member = model.budget_report().members[0]
        >>> member.name, member.conv_params_unshared, member.params_unshared
        ('WRN-10-1', 76720, 77850)
    """

    name: str
    conv_params_unshared: int
    params_unshared: int
    unshared_trainable: int

    def __post_init__(self) -> None:
        for field in (
            "conv_params_unshared",
            "params_unshared",
            "unshared_trainable",
        ):
            value = check_int(field, getattr(self, field), minimum=0)
            object.__setattr__(self, field, value)

    @classmethod
    def from_counts(
        cls, name: str, counts: Mapping[str, int]
    ) -> "MemberBudget":
        """From a dict with `conv`, `bn`, `head` and `total` keys.

        Args:
            name: the member's name.
            counts: parameter counts of the member built without sharing,
                e.g. from `wide_resnet_param_counts`.

        Returns:
            The [`MemberBudget`][keras_swn.MemberBudget].

        Examples:
            >>> from keras_swn.models.wide_resnet_shapes import (
            ...     wide_resnet_param_counts)
            >>> counts = wide_resnet_param_counts(16, 4, num_classes=100)
            >>> MemberBudget.from_counts("WRN-16-4", counts).unshared_trainable
            29316
        """
        return cls(
            name=name,
            conv_params_unshared=int(counts["conv"]),
            params_unshared=int(counts["total"]),
            unshared_trainable=int(counts["bn"]) + int(counts["head"]),
        )


@dataclasses.dataclass(frozen=True)
class GroupBudget:
    """One group (SuperWeight cluster) in a `BudgetReport`.

    Args:
        group: int, the group id.
        kernel: `(kh, kw)` of the group's kernels.
        levels: int, the width levels (banks) of the group.
        layers: int, the `(member, layer)` pairs in the group.
        params: int, the parameters of all the group's banks.
        kind: str, `"conv2d"` or `"dense"` (a group holds one kind).
    """

    group: int
    kernel: tuple[int, int]
    levels: int
    layers: int
    params: int
    kind: str = "conv2d"

    @property
    def kernel_label(self) -> str:
        """`"3x3"` for a convolution group, `"dense"` for a dense one."""
        if self.kind == "dense":
            return "dense"
        return f"{self.kernel[0]}x{self.kernel[1]}"


@dataclasses.dataclass(frozen=True)
class BudgetReport:
    """Where the trainable parameters of an SWN ensemble go.

    The budget counts template banks only; coefficients, BatchNorm and
    heads come on top (see the algorithm page, [Budget and template
    allocation][budget]). Totals are deduplicated: a bank or a shared
    coefficient vector counts once, however many members read it.

    Attributes:
        budget: int, the template budget.
        bank_total: int, parameters of all banks.
        coefficient_scalars: int, parameters of all distinct coefficient
            vectors.
        coefficient_vectors: int, distinct coefficient vectors.
        banks: every `BankSpec`, ascending `(group, width)`.
        groups: one `GroupBudget` per group, ascending.
        members: one [`MemberBudget`][keras_swn.MemberBudget] per member, in
            member order.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 1), num_classes=10, budget=60_000, seed=0)
        >>> report = model.budget_report()  # print(report) for the table
        >>> report.budget, report.bank_total, report.trainable_total
        (60000, 59968, 61139)
        >>> report.members[0].conv_params_unshared  # the kernels unshared
        76432
    """

    budget: int
    bank_total: int
    coefficient_scalars: int
    coefficient_vectors: int
    banks: tuple[BankSpec, ...]
    groups: tuple[GroupBudget, ...]
    members: tuple[MemberBudget, ...]

    @classmethod
    def create(
        cls, plan: BankPlan, members: Sequence[MemberBudget]
    ) -> "BudgetReport":
        """Summarise a `BankPlan` with the members' unshared counts.

        Args:
            plan: the [`BankPlan`][keras_swn.BankPlan].
            members: one [`MemberBudget`][keras_swn.MemberBudget] per member of
                the plan, in order.

        Raises:
            ValueError: if `members` does not have one entry per member.
        """
        members = tuple(members)
        if len(members) != plan.num_members or not all(
            isinstance(m, MemberBudget) for m in members
        ):
            raise invalid_argument(
                "members",
                "Expected one MemberBudget per member of the plan "
                f"({plan.num_members}).",
                members,
                shown=f"{len(members)} entries",
            )
        groups = []
        for g, chain in plan.chains.items():
            groups.append(
                GroupBudget(
                    group=g,
                    kernel=chain.kernel,
                    levels=len(chain.levels),
                    layers=sum(1 for r in plan.layers.values() if r.group == g),
                    params=sum(
                        b.size for b in plan.banks.values() if b.group == g
                    ),
                    kind=next(
                        r.kind for r in plan.layers.values() if r.group == g
                    ),
                )
            )
        return cls(
            budget=plan.budget,
            bank_total=plan.bank_total,
            coefficient_scalars=plan.coefficient_scalars,
            coefficient_vectors=plan.coefficient_vectors,
            banks=tuple(plan.banks.values()),
            groups=tuple(groups),
            members=members,
        )

    @property
    def over_budget(self) -> int:
        """`bank_total - budget` if positive, else 0."""
        return max(0, self.bank_total - self.budget)

    @property
    def unshared_trainable(self) -> int:
        """BatchNorm and head parameters of all members."""
        return sum(m.unshared_trainable for m in self.members)

    @property
    def trainable_total(self) -> int:
        """Banks + coefficients + every member's BatchNorm and head."""
        return (
            self.bank_total + self.coefficient_scalars + self.unshared_trainable
        )

    @property
    def conv_params_unshared(self) -> int:
        """Sum of the members' conv parameters without sharing."""
        return sum(m.conv_params_unshared for m in self.members)

    @property
    def params_unshared(self) -> int:
        """Sum of the members' parameters without sharing."""
        return sum(m.params_unshared for m in self.members)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-serialisable data."""
        return {
            "budget": self.budget,
            "bank_total": self.bank_total,
            "over_budget": self.over_budget,
            "coefficient_scalars": self.coefficient_scalars,
            "coefficient_vectors": self.coefficient_vectors,
            "unshared_trainable": self.unshared_trainable,
            "trainable_total": self.trainable_total,
            "params_unshared": self.params_unshared,
            "banks": [
                {
                    "group": b.group,
                    "width": b.width,
                    "seg": b.seg,
                    "templates": b.templates,
                    "params": b.size,
                    "users": b.users,
                }
                for b in self.banks
            ],
            "groups": [
                {
                    "group": g.group,
                    "kernel": list(g.kernel),
                    "kind": g.kind,
                    "levels": g.levels,
                    "layers": g.layers,
                    "params": g.params,
                }
                for g in self.groups
            ],
            "members": [
                {
                    "name": m.name,
                    "conv_params_unshared": m.conv_params_unshared,
                    "params_unshared": m.params_unshared,
                    "unshared_trainable": m.unshared_trainable,
                }
                for m in self.members
            ],
        }

    def __str__(self) -> str:
        lines = ["Template banks"]
        head = (
            f"{'group':>5} {'width':>5} {'kernel':>6} {'seg':>11} "
            f"{'K':>3} {'params':>13} {'users':>5}"
        )
        lines += [head, "-" * len(head)]
        kernels = {g.group: g.kernel_label for g in self.groups}
        for b in self.banks:
            lines.append(
                f"{b.group:>5} {b.width:>5} {kernels[b.group]:>6} {b.seg:>11,} "
                f"{b.templates:>3} {b.size:>13,} {b.users:>5}"
            )
        lines.append("")
        lines.append("Members (without sharing)")
        head = f"{'member':<12} {'conv params':>13} {'all params':>13}"
        lines += [head, "-" * len(head)]
        for m in self.members:
            lines.append(
                f"{m.name:<12} {m.conv_params_unshared:>13,} "
                f"{m.params_unshared:>13,}"
            )
        lines.append(
            f"{'sum':<12} {self.conv_params_unshared:>13,} "
            f"{self.params_unshared:>13,}"
        )
        lines.append("")
        lines.append("Totals (deduplicated)")
        rows = [
            ("budget (banks only)", self.budget),
            ("bank total", self.bank_total),
            ("over budget", self.over_budget),
            (
                f"coefficients ({self.coefficient_vectors:,} vectors)",
                self.coefficient_scalars,
            ),
            ("BatchNorm + heads", self.unshared_trainable),
            ("trainable total", self.trainable_total),
        ]
        width = max(len(r[0]) for r in rows)
        for label, value in rows:
            lines.append(f"{label:<{width}} {value:>13,}")
        return "\n".join(lines)
