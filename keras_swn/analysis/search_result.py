"""`SearchResult`: the grouping and coefficient-share map a search returns.

Immutable and JSON-serialisable (`to_dict`, `from_dict`). No Keras import.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Mapping
from typing import Sequence

import numpy as np

from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.types import Groups
from keras_swn.types import LayerKey
from keras_swn.validation import check_format

_FORMAT = "keras_swn.SearchResult"
_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
    """What the search returns: a grouping and a coefficient-share map.

    Attributes:
        threshold: float, the threshold at which the budget was met
            (under the `"split"` schedule: the weakest link of the last
            split made).
        iterations: int, groupings tried (1 when the first one fits).
        need: int, the budget measure at `threshold` (the proxy `need`,
            or the exact one-template total with `budget_check="exact"`).
        budget: int, the budget the search ran under.
        groups: `groups[member][layer_id]`, the learned group of every
            layer; ids are consecutive from 0.
        partners: `{(member, layer_id): (partner member, partner layer
            id)}`, hard coefficient sharing for the students (F2).
        similarity: `{bin: (member-0 layer ids ascending, matrix)}`, the
            member-0 similarity matrix of every bin, for plots.
        history: `((threshold, need), ...)`, one entry per grouping
            tried.
        clustering: str, the clustering rule used.
        budget_check: str, `"proxy"` or `"exact"`.
        signal: str, the similarity signal used.

    Examples:
        >>> specs = [keras_swn.LayerSpec(0, i, "conv2d", (4, 4, 3, 3))
        ...          for i in range(3)]
        >>> g = np.ones((4, 4, 3, 3))
        >>> grads = {(0, 0): g, (0, 1): g, (0, 2): -g}  # layer 2 disagrees
        >>> result = keras_swn.analysis.search_groups(
        ...     specs, [[0, 0, 0]], grads, budget=1000, schedule="step")
        >>> result.num_groups, result.history
        (2, ((0.1, 288),))
        >>> result.similarity[0][1].tolist()  # the member-0 matrix of bin 0
        [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
        >>> result.to_policy(specs).groups
        ((1, 1, 0),)
    """

    threshold: float
    iterations: int
    need: int
    budget: int
    groups: Groups
    partners: Mapping[LayerKey, LayerKey]
    similarity: Mapping[int, tuple[tuple[int, ...], np.ndarray]]
    history: tuple[tuple[float, int], ...] = ()
    clustering: str = "connected_components"
    budget_check: str = "proxy"
    signal: str = "gradient"

    @property
    def num_groups(self) -> int:
        return len({g for row in self.groups for g in row})

    def __post_init__(self) -> None:
        sims = {}
        for b in sorted(self.similarity):
            ids, mat = self.similarity[b]
            mat = np.array(mat, dtype=np.float64)
            mat.setflags(write=False)
            sims[int(b)] = (tuple(int(i) for i in ids), mat)
        normal = {
            "similarity": sims,
            "groups": tuple(tuple(int(g) for g in r) for r in self.groups),
            "partners": dict(sorted(self.partners.items())),
            "history": tuple(self.history),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def to_policy(
        self, specs: Sequence[LayerSpec], *, chain_sort: str = "stable"
    ) -> SharingPolicy:
        """The `SharingPolicy` of the final model.

        Member 0 owns its coefficient vectors; every student layer in
        `partners` reads its partner's vector at every width level the
        partner reaches (followed to the final owner).

        Args:
            specs: every shared layer of every member.
            chain_sort: the chain order the policy's slots are defined
                for (recorded in the policy).

        Returns:
            A [`SharingPolicy`][keras_swn.SharingPolicy].
        """
        return SharingPolicy.from_partners(
            specs, self.groups, self.partners, chain_sort=chain_sort
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (`from_dict` reads it back exactly)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "threshold": self.threshold,
            "iterations": self.iterations,
            "need": self.need,
            "budget": self.budget,
            "groups": [list(r) for r in self.groups],
            "partners": [[*k, *v] for k, v in self.partners.items()],
            "similarity": [
                {
                    "bin": b,
                    "layer_ids": list(ids),
                    "matrix": np.asarray(mat).tolist(),
                }
                for b, (ids, mat) in self.similarity.items()
            ],
            "history": [[t, n] for t, n in self.history],
            "clustering": self.clustering,
            "budget_check": self.budget_check,
            "signal": self.signal,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchResult":
        """Rebuild a `SearchResult` from `to_dict` output.

        Args:
            d: a mapping as written by `to_dict`.

        Returns:
            The [`SearchResult`][keras_swn.analysis.SearchResult].

        Raises:
            ValueError: on another format or version.
        """
        check_format(
            d, format=_FORMAT, versions=(_VERSION,), what="search result"
        )
        similarity = {}
        for entry in d.get("similarity", []):
            ids = tuple(int(i) for i in entry["layer_ids"])
            mat = np.asarray(entry["matrix"], dtype=np.float64)
            similarity[int(entry["bin"])] = (
                ids,
                mat.reshape(len(ids), len(ids)),
            )
        return cls(
            threshold=float(d["threshold"]),
            iterations=int(d["iterations"]),
            need=int(d["need"]),
            budget=int(d["budget"]),
            groups=d["groups"],
            partners={
                (int(a), int(b)): (int(c), int(e))
                for a, b, c, e in d.get("partners", [])
            },
            similarity=similarity,
            history=tuple((float(t), int(n)) for t, n in d.get("history", [])),
            clustering=str(d.get("clustering", "connected_components")),
            budget_check=str(d.get("budget_check", "proxy")),
            signal=str(d.get("signal", "gradient")),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchResult):
            return NotImplemented
        if (
            self.threshold,
            self.iterations,
            self.need,
            self.budget,
            self.groups,
            dict(self.partners),
            self.history,
            self.clustering,
            self.budget_check,
            self.signal,
        ) != (
            other.threshold,
            other.iterations,
            other.need,
            other.budget,
            other.groups,
            dict(other.partners),
            other.history,
            other.clustering,
            other.budget_check,
            other.signal,
        ):
            return False
        if list(self.similarity) != list(other.similarity):
            return False
        return all(
            self.similarity[b][0] == other.similarity[b][0]
            and np.array_equal(self.similarity[b][1], other.similarity[b][1])
            for b in self.similarity
        )

    __hash__ = None  # type: ignore[assignment]
