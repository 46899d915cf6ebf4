"""Refine step: break hard coefficient sharing where gradients disagree.

Pure NumPy: from the per-slot accumulated gradients on the coefficient
vectors, every hard-sharing set (the slots that read one owner's vector)
is partitioned by gradient cosine; blocks other than the owner's get a new
owner. The result is a new `SharingPolicy` plus the copies the model
rebuild performs. No Keras import.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Mapping
from typing import Sequence

import numpy as np

from keras_swn.analysis.partition import CLUSTERINGS
from keras_swn.analysis.partition import threshold_blocks
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.types import BankKey
from keras_swn.types import LayerKey
from keras_swn.types import Slot
from keras_swn.validation import check_choice
from keras_swn.validation import check_instance
from keras_swn.validation import check_real
from keras_swn.validation import invalid_argument


@dataclasses.dataclass(frozen=True)
class RefineResult:
    """Result of `refine_partition`.

    Attributes:
        policy: the refined [`SharingPolicy`][keras_swn.SharingPolicy] (same
            groups, new owners).
        copies: `{new owner slot: old owner slot}`, both `(member,
            layer_id, width)`: before training resumes, each new owner's
            vector is set to the old owner's current value (fix F3: one
            variable per block, updated by all its members).
        pair_cosines: `{(group, width): ((slot_a, slot_b, cosine), ...)}`,
            every pair of slots that shared one vector, `slot_a < slot_b`,
            sorted; banks without a shared pair are absent.
        vectors_before: int, distinct coefficient vectors before.
        vectors_after: int, distinct coefficient vectors after.
        threshold: float, the cosine threshold used.
        clustering: str, the partition rule used.

    Examples:
        >>> policy = keras_swn.SharingPolicy(groups=[[0], [0]],
        ...     coefficient_owners={(1, 0, 0): (0, 0)})
        >>> grads = {(0, 0, 0): np.array([1., 0.]),
        ...          (1, 0, 0): np.array([0., 1.])}
        >>> result = keras_swn.analysis.refine_partition(policy, grads)
        >>> result.num_new_vectors, result.threshold
        (1, 0.9)
        >>> result.pair_cosines  # orthogonal gradients: the pair is split
        {(0, 0): (((0, 0, 0), (1, 0, 0), 0.0),)}
    """

    policy: SharingPolicy
    copies: Mapping[Slot, Slot]
    pair_cosines: Mapping[BankKey, tuple[tuple[Slot, Slot, float], ...]]
    vectors_before: int
    vectors_after: int
    threshold: float
    clustering: str

    @property
    def num_new_vectors(self) -> int:
        """Vectors created by the refine step (`len(copies)`)."""
        return len(self.copies)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (the policy, copies and cosines)."""
        return {
            "policy": self.policy.to_dict(),
            "copies": [[*new, *old] for new, old in self.copies.items()],
            "pair_cosines": [
                {"bank": list(bank), "pairs": [[*a, *b, c] for a, b, c in ps]}
                for bank, ps in self.pair_cosines.items()
            ],
            "vectors_before": self.vectors_before,
            "vectors_after": self.vectors_after,
            "threshold": self.threshold,
            "clustering": self.clustering,
        }


def _vector_cosine(a: np.ndarray, b: np.ndarray) -> float:
    na = float(np.linalg.norm(a))
    nb = float(np.linalg.norm(b))
    if not na > 0.0 or not nb > 0.0:
        return 0.0
    return float(min(1.0, max(-1.0, float(np.dot(a, b)) / (na * nb))))


def _partition(
    entries: Sequence[Slot],
    cos: Mapping[tuple[Slot, Slot], float],
    threshold: float,
    clustering: str,
) -> list[list[Slot]]:
    """Blocks of one hard-sharing set; `entries` sorted ascending.

    Each unordered pair is listed once, `x < y` in entry order (member by
    member, member 0 first, ascending layer id).
    """
    n = len(entries)
    pairs = [
        (cos[(entries[x], entries[y])], x, y)
        for x in range(n)
        for y in range(x + 1, n)
    ]
    blocks = threshold_blocks(n, pairs, threshold, clustering)
    return sorted(
        ([entries[x] for x in block] for block in blocks),
        key=lambda blk: blk[0],
    )


def refine_partition(
    policy: SharingPolicy,
    coefficient_grads: Mapping[Any, Any],
    *,
    threshold: float = 0.9,
    clustering: str = "connected_components",
    levels: Mapping[LayerKey, int] | None = None,
) -> RefineResult:
    """Partition every hard-sharing set by coefficient-gradient cosine.

    A hard-sharing set is the set of slots `(member, layer_id, width)` that
    read one owner's vector (`policy.owner(slot)`), the owner's own slot
    included; it lies in one bank `(group, width)`. For every set with two
    or more slots, the cosine of every pair of accumulated gradients is
    computed, and the set is partitioned: pairs with cosine strictly above
    `threshold` stay together.

    - `clustering="connected_components"` (default, F4): the blocks are the
      connected components of those pairs.
    - `clustering="reference"`: the reference's greedy label rule, with
      each unordered pair listed once, entries in the order member by
      member (member 0 first), ascending layer id; pairs stably sorted by
      cosine and popped from the top, `label[later] = label[earlier]`
      while the cosine is above the threshold.

    The block holding the current owner keeps it. Every other block
    (singletons included) gets a new owner, its smallest slot, whose
    vector starts as a copy of the old owner's value (`copies`). Sets of
    one slot, and banks without a shared pair, are unchanged.

    Args:
        policy: the current [`SharingPolicy`][keras_swn.SharingPolicy].
        coefficient_grads: `{(member, layer_id, width): K-vector}`, each
            slot's gradient on the vector it reads, accumulated over the
            refine pass and kept per slot even when the vector is shared.
            Every slot of a set with two or more slots needs an entry.
        threshold: float, the cosine threshold (reference default 0.5,
            README 0.9).
        clustering: `"connected_components"` (default) or `"reference"`.
        levels: optional `{(member, layer_id): number of width levels}`
            (`keras_swn.policy.chains.layer_levels`), which lists every
            slot. Without it, the slots are those of `coefficient_grads` and of
            `policy.coefficient_owners` (with their owners); it only
            changes `vectors_before`/`vectors_after`.

    Returns:
        A [`RefineResult`][keras_swn.analysis.RefineResult].

    Raises:
        ValueError: on an unknown `clustering`, a non-finite `threshold`, a
            missing or non-finite gradient for a shared slot, gradients of
            different lengths inside one set, or a slot beyond `levels`.

    Examples:
        >>> policy = SharingPolicy(groups=[[0], [0]],
        ...     coefficient_owners={(1, 0, 0): (0, 0)})
        >>> grads = {(0, 0, 0): np.array([1., 0.]),
        ...          (1, 0, 0): np.array([0., 1.])}
        >>> r = refine_partition(policy, grads)
        >>> r.copies, r.vectors_before, r.vectors_after
        ({(1, 0, 0): (0, 0, 0)}, 1, 2)
    """
    check_instance("policy", policy, SharingPolicy)
    check_choice("clustering", clustering, CLUSTERINGS)
    threshold = check_real("threshold", threshold)
    grads: dict[Slot, Any] = {}
    for slot, value in coefficient_grads.items():
        key = tuple(int(v) for v in slot)
        if len(key) != 3:
            raise invalid_argument(
                "coefficient_grads",
                "Expected keys (member, layer_id, width).",
                coefficient_grads,
                shown=f"key={slot!r}",
            )
        grads[key] = value

    # Every known slot, sorted.
    if levels is not None:
        slots = sorted(
            (int(m), int(lid), w)
            for (m, lid), n in levels.items()
            for w in range(int(n))
        )
        known = set(slots)
        for s in list(policy.coefficient_owners) + list(grads):
            if s not in known:
                raise invalid_argument(
                    "levels",
                    f"Slot {s} is beyond the width levels given in `levels` "
                    f"(layer {s[:2]} has {levels.get(s[:2], 0)} levels).",
                    levels,
                    shown=f"levels[{s[:2]}]={levels.get(s[:2])}",
                )
    else:
        pool = set(grads) | set(policy.coefficient_owners)
        pool |= {(*o, s[2]) for s, o in policy.coefficient_owners.items()}
        slots = sorted(pool)

    # Hard-sharing sets: owner slot -> member slots (ascending).
    sets: dict[Slot, list[Slot]] = {}
    for s in slots:
        owner = (*policy.owner(s), s[2])
        sets.setdefault(owner, []).append(s)
    for owner, members in sets.items():
        if owner not in members:  # the owner's own slot is not listed
            if levels is not None:
                raise invalid_argument(
                    "policy",
                    f"Slots {members} read the vector of {owner}, but layer "
                    f"{owner[:2]} has only {levels.get(owner[:2], 0)} width "
                    "levels in `levels`.",
                    policy,
                    shown=f"coefficient owners {members} -> {owner}",
                )
            members.append(owner)
            members.sort()

    owners = dict(policy.coefficient_owners)
    copies: dict[Slot, Slot] = {}
    pair_cosines: dict[BankKey, list[tuple[Slot, Slot, float]]] = {}
    for owner in sorted(sets):
        members = sets[owner]
        if len(members) < 2:
            continue
        missing = [s for s in members if s not in grads]
        if missing:
            raise invalid_argument(
                "coefficient_grads",
                f"No gradient for slots {missing}, which share the vector "
                f"of {owner}.",
                coefficient_grads,
                shown=f"coefficient_grads with keys {sorted(grads)[:20]}",
            )
        vectors = {}
        for s in members:
            v = np.asarray(grads[s], dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(v)):
                raise invalid_argument(
                    "coefficient_grads",
                    "Expected finite values.",
                    coefficient_grads,
                    shown=f"the gradient of slot {s} containing NaN or "
                    "infinite values",
                )
            vectors[s] = v
        sizes = sorted({v.size for v in vectors.values()})
        if len(sizes) != 1:
            raise invalid_argument(
                "coefficient_grads",
                f"Slots sharing the vector of {owner} need gradients of one "
                "length.",
                coefficient_grads,
                shown=f"gradients of lengths {sizes}",
            )
        cos: dict[tuple[Slot, Slot], float] = {}
        bank = (policy.groups[owner[0]][owner[1]], owner[2])
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                c = _vector_cosine(vectors[a], vectors[b])
                cos[(a, b)] = c
                pair_cosines.setdefault(bank, []).append((a, b, c))
        for block in _partition(members, cos, threshold, clustering):
            if owner in block:
                continue
            new = block[0]
            copies[new] = owner
            for s in block:
                if s == new:
                    owners.pop(s, None)
                else:
                    owners[s] = new[:2]

    new_policy = SharingPolicy(
        groups=policy.groups,
        coefficient_owners=owners,
        chain_sort=policy.chain_sort,
    )

    every = sorted(set(slots) | set(sets))

    def count(p: SharingPolicy) -> int:
        return len({(*p.owner(s), s[2]) for s in every})

    return RefineResult(
        policy=new_policy,
        copies=dict(sorted(copies.items())),
        pair_cosines={
            bank: tuple(sorted(ps)) for bank, ps in sorted(pair_cosines.items())
        },
        vectors_before=count(policy),
        vectors_after=count(new_policy),
        threshold=threshold,
        clustering=clustering,
    )
