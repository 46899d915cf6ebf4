"""`SharingPolicy`: which layers share which templates and coefficients."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any
from typing import Mapping
from typing import Sequence
from typing import cast

import numpy as np

from keras_swn.io.atomic import atomic_write_text
from keras_swn.io.atomic import parse_json
from keras_swn.policy.bins import initial_bins
from keras_swn.policy.chains import CHAIN_SORTS
from keras_swn.policy.chains import layer_levels
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.types import BankKey
from keras_swn.types import Groups
from keras_swn.types import GroupsLike
from keras_swn.types import LayerKey
from keras_swn.types import Slot
from keras_swn.validation import check_choice
from keras_swn.validation import check_format
from keras_swn.validation import invalid_argument

_FORMAT = "keras_swn.SharingPolicy"
#: Version 2 records `chain_sort`; version 1 files are read as "stable".
_VERSION = 2
_VERSIONS = (1, 2)


def _as_groups(groups: GroupsLike) -> Groups:
    return tuple(tuple(row) for row in groups)


def _group_id(value: Any) -> int:
    """A group id: an integer (a Python or NumPy int, or an integral float
    read from JSON), never a bool, a fraction or a non-finite number."""
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(value)
    if value != int(value):
        raise ValueError(value)
    return int(value)


@dataclasses.dataclass(frozen=True)
class SharingPolicy:
    """Which templates and which coefficients every shared layer reads.

    A policy has two levels:

    - **Groups** (SuperWeight clusters): `groups[member][layer_id]` is the
      group whose banks the layer draws its templates from. Layers of one
      group are stacked into one chain of width levels.
    - **Coefficient slots**: every `(member, layer_id, width)` of a layer
      that reaches that width level of its group reads one coefficient
      vector. By default a slot owns its vector; `coefficient_owners` maps a
      slot to the `(member, layer_id)` whose vector (at the same width) it
      reads instead: that is *hard* sharing. Owners always own their own
      slot. Keys are layer identities, never list positions (fix F2).

    Which width levels a layer reaches, and therefore which slots exist, depends
    on the order of the stacking chain, `chain_sort`; the policy records it, and
    a [`BankPlan`][keras_swn.BankPlan] with another chain order refuses a policy
    that names slots (see `check_chain_sort`).

    Policies come from initial bins (`from_bins`), from a search, from the
    refine step, or by hand, and round-trip through JSON.

    Args:
        groups: per member, the group id of each shared layer, in layer-id
            order.
        coefficient_owners: mapping from a slot `(member, layer_id, width)`
            to the owner `(member, layer_id)` whose vector it reads. Slots
            not listed own their vector.
        chain_sort: `"stable"` (default) or `"reference"`, the chain order
            the slots are defined for (see
            `keras_swn.policy.chains.stacking_chains`).

    Examples:
        >>> policy = keras_swn.SharingPolicy(groups=[[0, 0], [0, 0]],
        ...     coefficient_owners={(1, 0, 0): (0, 0)})
        >>> policy.owner((1, 0, 0)), policy.owner((1, 1, 0))
        ((0, 0), (1, 1))
    """

    groups: Groups
    coefficient_owners: Mapping[Slot, LayerKey] = dataclasses.field(
        default_factory=dict
    )
    chain_sort: str = "stable"

    def __post_init__(self) -> None:
        check_choice("chain_sort", self.chain_sort, CHAIN_SORTS)
        try:
            groups = tuple(
                tuple(_group_id(g) for g in row) for row in self.groups
            )
        except (TypeError, ValueError, OverflowError):
            raise invalid_argument(
                "groups", "Expected a list of lists of ints.", self.groups
            ) from None
        if not groups or any(len(r) == 0 for r in groups):
            raise invalid_argument(
                "groups",
                "Expected at least one member with at least one layer.",
                groups,
            )
        if min(min(r) for r in groups) < 0:
            raise invalid_argument(
                "groups", "Group ids must be non-negative.", groups
            )
        owners: dict[Slot, LayerKey] = {}
        for given_slot, given_owner in dict(self.coefficient_owners).items():
            slot = cast(Slot, tuple(int(v) for v in given_slot))
            owner = cast(LayerKey, tuple(int(v) for v in given_owner))
            if len(slot) != 3 or len(owner) != 2:
                raise invalid_argument(
                    "coefficient_owners",
                    "Expected (member, layer_id, width) -> (member, layer_id).",
                    self.coefficient_owners,
                    shown=f"{slot} -> {owner}",
                )
            for m, l in (slot[:2], owner):
                if not (0 <= m < len(groups) and 0 <= l < len(groups[m])):
                    raise invalid_argument(
                        "coefficient_owners",
                        f"Layer (member={m}, layer_id={l}) does not exist.",
                        self.coefficient_owners,
                        shown=f"{slot} -> {owner}",
                    )
            if groups[slot[0]][slot[1]] != groups[owner[0]][owner[1]]:
                raise invalid_argument(
                    "coefficient_owners",
                    "A slot can only share with a layer of the same group.",
                    self.coefficient_owners,
                    shown=f"{slot} -> {owner}",
                )
            if owner != slot[:2]:
                owners[slot] = owner
        for slot, owner in owners.items():
            if (*owner, slot[2]) in owners:
                raise invalid_argument(
                    "coefficient_owners",
                    f"Owner slot {(*owner, slot[2])} is itself shared. Point "
                    f"{slot} at the final owner.",
                    self.coefficient_owners,
                    shown=f"{slot} -> {owner}",
                )
        object.__setattr__(self, "groups", groups)
        object.__setattr__(
            self, "coefficient_owners", dict(sorted(owners.items()))
        )

    # ------------------------------------------------------------------
    @property
    def num_members(self) -> int:
        return len(self.groups)

    @property
    def num_groups(self) -> int:
        """Number of distinct group ids in use."""
        return len({g for row in self.groups for g in row})

    def group_of(self, member: int, layer_id: int) -> int:
        """The group of one layer.

        Args:
            member: the member index.
            layer_id: the layer id within that member.

        Returns:
            The group id.
        """
        return self.groups[member][layer_id]

    def owner(self, slot: Slot) -> LayerKey:
        """The `(member, layer_id)` whose coefficient vector `slot` reads.

        Args:
            slot: a `(member, layer_id, width)` coefficient slot.

        Returns:
            The owner's `(member, layer_id)`: the slot's own layer when it
            shares with nobody.
        """
        slot = cast(Slot, tuple(slot))
        return self.coefficient_owners.get(slot, (slot[0], slot[1]))

    def layers_in_group(self, group: int) -> list[LayerKey]:
        """All `(member, layer_id)` of a group, ascending.

        Args:
            group: the group id.

        Returns:
            A list of `(member, layer_id)` tuples.
        """
        return [
            (m, l)
            for m, row in enumerate(self.groups)
            for l, g in enumerate(row)
            if g == group
        ]

    def check_chain_sort(self, chain_sort: str | None = None) -> str:
        """The chain order a plan of this policy uses.

        Args:
            chain_sort: `None` (the policy's own), `"stable"` or
                `"reference"`.

        Returns:
            The chain order.

        Raises:
            ValueError: on an unknown `chain_sort`, or one that differs
                from the policy's when the policy names coefficient slots
                (`coefficient_owners`): those slots were defined for the
                policy's chain order. A policy without owners names no
                slot and fits either order.

        Examples:
            >>> policy = keras_swn.SharingPolicy(groups=[[0, 0]],
            ...     coefficient_owners={(0, 1, 0): (0, 0)})
            >>> policy.check_chain_sort()
            'stable'
        """
        if chain_sort is None:
            return self.chain_sort
        check_choice("chain_sort", chain_sort, CHAIN_SORTS)
        if chain_sort != self.chain_sort and self.coefficient_owners:
            raise invalid_argument(
                "chain_sort",
                "The policy's coefficient slots are defined for "
                f"chain_sort={self.chain_sort!r} (which width levels a "
                "layer reaches depends on the chain order). Build the "
                f"policy with chain_sort={chain_sort!r}, or plan with "
                f"chain_sort={self.chain_sort!r}.",
                chain_sort,
            )
        return chain_sort

    # ------------------------------------------------------------------
    @classmethod
    def from_bins(
        cls,
        specs: Sequence[LayerSpec],
        num_bins: int,
        *,
        coefficients: str = "per_bank",
        chain_sort: str = "stable",
    ) -> "SharingPolicy":
        """The search-phase policy: groups are the initial bins.

        Args:
            specs: every shared layer of every member.
            num_bins: the reference's `param_group_bins` (B).
            coefficients: `"per_bank"` (the search-phase model: one
                coefficient vector per bank, read by every layer of every
                member that uses the bank) or `"per_layer"` (every slot owns
                its vector: pure soft sharing).
            chain_sort: the order of the stacking chain; it decides which
                layers reach which width level. Recorded in the policy.

        Returns:
            A [`SharingPolicy`][keras_swn.SharingPolicy].
        """
        groups = initial_bins(specs, num_bins)
        if coefficients == "per_layer":
            return cls(groups=groups, chain_sort=chain_sort)
        if coefficients != "per_bank":
            raise invalid_argument(
                "coefficients",
                "Expected 'per_bank' or 'per_layer'.",
                coefficients,
            )
        return cls.one_vector_per_bank(specs, groups, chain_sort=chain_sort)

    @classmethod
    def one_vector_per_bank(
        cls,
        specs: Sequence[LayerSpec],
        groups: GroupsLike,
        *,
        chain_sort: str = "stable",
    ) -> "SharingPolicy":
        """Every slot of a bank reads the vector of the bank's first user.

        Args:
            specs: every shared layer of every member.
            groups: `groups[member][layer_id]`, the group of every layer.
            chain_sort: the order of the stacking chain, recorded.

        Returns:
            A [`SharingPolicy`][keras_swn.SharingPolicy].
        """
        levels = layer_levels(specs, groups, chain_sort=chain_sort)
        first: dict[BankKey, LayerKey] = {}
        owners: dict[Slot, LayerKey] = {}
        for key in sorted(levels):
            g = groups[key[0]][key[1]]
            for w in range(levels[key]):
                owner = first.setdefault((g, w), key)
                owners[(*key, w)] = owner
        return cls(
            groups=_as_groups(groups),
            coefficient_owners=owners,
            chain_sort=chain_sort,
        )

    @classmethod
    def from_partners(
        cls,
        specs: Sequence[LayerSpec],
        groups: GroupsLike,
        partners: Mapping[LayerKey, LayerKey],
        *,
        chain_sort: str = "stable",
    ) -> "SharingPolicy":
        """Hard-share each layer's vectors with a partner layer.

        A layer listed in `partners` reads its partner's vector at every
        width level the partner reaches too, and owns its vector at the
        levels the partner lacks. Partners that are themselves mapped are
        followed to their final owner.

        Args:
            specs: every shared layer of every member.
            groups: `groups[member][layer_id]`, the group of every layer.
            partners: `{(member, layer_id): (partner member, partner
                layer_id)}`.
            chain_sort: the order of the stacking chain, recorded.

        Returns:
            A [`SharingPolicy`][keras_swn.SharingPolicy].

        Raises:
            ValueError: if a layer of `partners` does not exist.
        """
        levels = layer_levels(specs, groups, chain_sort=chain_sort)
        for key, partner in partners.items():
            for k in (tuple(key), tuple(partner)):
                if k not in levels:
                    raise invalid_argument(
                        "partners",
                        f"Layer {k} does not exist.",
                        partners,
                        shown=f"{tuple(key)} -> {tuple(partner)}",
                    )

        def final(key: LayerKey, w: int) -> LayerKey:
            seen = set()
            while key in partners and key not in seen:
                seen.add(key)
                nxt = cast(LayerKey, tuple(partners[key]))
                if levels.get(nxt, 0) <= w:
                    break
                key = nxt
            return key

        owners: dict[Slot, LayerKey] = {}
        for given in sorted(partners):
            key = cast(LayerKey, tuple(given))
            for w in range(levels[key]):
                owner = final(key, w)
                if owner != key:
                    owners[(*key, w)] = owner
        return cls(
            groups=_as_groups(groups),
            coefficient_owners=owners,
            chain_sort=chain_sort,
        )

    # ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-serialisable data (`from_dict` reads it)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "groups": [list(r) for r in self.groups],
            "coefficient_owners": [
                [*slot, *owner]
                for slot, owner in self.coefficient_owners.items()
            ],
            "chain_sort": self.chain_sort,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SharingPolicy":
        """Read `to_dict` output; a version-1 policy is `"stable"`.

        Args:
            d: a mapping as written by `to_dict`.

        Returns:
            The [`SharingPolicy`][keras_swn.SharingPolicy].

        Raises:
            ValueError: on another format or version, or invalid contents.
        """
        version = check_format(
            d, format=_FORMAT, versions=_VERSIONS, what="sharing policy"
        )
        chain_sort = d.get("chain_sort", "stable") if version > 1 else "stable"
        try:
            owners = {
                (int(a), int(b), int(c)): (int(e), int(f))
                for a, b, c, e, f in d.get("coefficient_owners", [])
            }
        except (TypeError, ValueError):
            raise ValueError(
                "Invalid sharing policy: `coefficient_owners` must be a list "
                "of [member, layer_id, width, owner_member, owner_layer_id]."
                f" Received: {str(d.get('coefficient_owners'))[:200]}"
            ) from None
        if "groups" not in d:
            raise ValueError(
                'Invalid sharing policy: missing "groups". '
                f"Received keys: {sorted(d)}"
            )
        return cls(
            groups=d["groups"], coefficient_owners=owners, chain_sort=chain_sort
        )

    def to_json(self, indent: int | None = None) -> str:
        """The policy as a JSON string.

        Args:
            indent: `json.dumps` indentation; `None` for one line.

        Returns:
            The JSON text (`from_json` reads it back).
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "SharingPolicy":
        """Parse a policy from `to_json` output.

        Args:
            text: the JSON text.

        Returns:
            The [`SharingPolicy`][keras_swn.SharingPolicy].

        Raises:
            ValueError: on invalid JSON, another format or version, or
                invalid contents.
        """
        return cls.from_dict(parse_json(text, "sharing policy"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the policy as JSON, atomically (no half-written file).

        Args:
            path: the file to write (`load` reads it back).
        """
        atomic_write_text(path, self.to_json(indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SharingPolicy":
        """Read a policy written by `save`.

        Args:
            path: the JSON file.

        Returns:
            The [`SharingPolicy`][keras_swn.SharingPolicy].

        Raises:
            OSError: when the file cannot be read.
            ValueError: when it does not hold a valid policy.
        """
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def _identity(self) -> tuple[Any, ...]:
        return (
            self.groups,
            tuple(self.coefficient_owners.items()),
            self.chain_sort,
        )

    def __hash__(self) -> int:
        return hash(self._identity())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SharingPolicy):
            return NotImplemented
        return self._identity() == other._identity()
