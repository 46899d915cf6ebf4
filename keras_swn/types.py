"""Type aliases shared across `keras_swn`.

One place for the keys the algorithm indexes everything by, so that every
module means the same thing by them.
"""

from __future__ import annotations

from typing import Sequence

#: `(member, layer_id)`: the identity of one shared layer.
LayerKey = tuple[int, int]

#: `(member, layer_id, width level)`: one coefficient slot of a layer.
Slot = tuple[int, int, int]

#: `(group, width level)`: one template bank.
BankKey = tuple[int, int]

#: `(out, in, kh, kw)`: a kernel shape in the OIHW layout, or one piece of
#: a width-level increment (whose `out` may be zero or negative).
OIHW = tuple[int, int, int, int]

#: `groups[member][layer_id]`, the group (or bin) id of every shared layer,
#: as stored (tuples).
Groups = tuple[tuple[int, ...], ...]

#: `groups[member][layer_id]` as accepted from a caller (any sequences).
GroupsLike = Sequence[Sequence[int]]
