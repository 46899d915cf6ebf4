"""`LayerSpec`: one shared layer of one member network."""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Mapping
from typing import cast

from keras_swn.types import OIHW
from keras_swn.types import LayerKey
from keras_swn.validation import check_choice
from keras_swn.validation import invalid_argument

KINDS = ("conv2d", "dense")


@dataclasses.dataclass(frozen=True, order=True)
class LayerSpec:
    """One shared (composed) layer of one member network.

    Kernel shapes are stored in the PyTorch OIHW order `(out, in, kh, kw)`
    used throughout the algorithm specification; a dense kernel is
    `(units, in_features, 1, 1)`. The Keras layout (HWIO for convolutions,
    `(in, out)` for dense) is produced only when a kernel is composed.

    Args:
        member: int, index of the member network (0 is the deepest).
        layer_id: int, 0-based construction order of the shared layers
            within the member.
        kind: str, `"conv2d"` or `"dense"`.
        shape: tuple of 4 ints, the kernel shape `(out, in, kh, kw)`.
        name: str, the Keras layer name inside the member.

    Examples:
        >>> spec = keras_swn.LayerSpec(
        ...     member=0, layer_id=2, kind="conv2d", shape=(16, 8, 3, 3),
        ...     name="conv2")
        >>> spec.key, spec.numel
        ((0, 2), 1152)
        >>> keras_swn.LayerSpec.from_dict(spec.to_dict()) == spec
        True
    """

    member: int
    layer_id: int
    kind: str
    shape: OIHW
    name: str = ""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 4 or min(shape) < 1:
            raise invalid_argument(
                "shape",
                "Expected 4 strictly positive ints (out, in, kh, kw).",
                self.shape,
                shown=f"shape={self.shape}",
            )
        if self.kind == "dense" and shape[2:] != (1, 1):
            raise invalid_argument(
                "shape",
                "A dense kernel is (units, in_features, 1, 1).",
                self.shape,
                shown=f"shape={self.shape}",
            )
        object.__setattr__(self, "shape", shape)
        if self.member < 0 or self.layer_id < 0:
            name = "member" if self.member < 0 else "layer_id"
            raise invalid_argument(
                name,
                "Expected non-negative ints.",
                getattr(self, name),
                shown=f"member={self.member}, layer_id={self.layer_id}",
            )

    @property
    def key(self) -> LayerKey:
        """`(member, layer_id)`, the identity of the layer."""
        return (self.member, self.layer_id)

    @property
    def numel(self) -> int:
        """Number of kernel parameters."""
        out, inp, kh, kw = self.shape
        return out * inp * kh * kw

    @property
    def kernel_key(self) -> str:
        """The kernel-type key used to separate bins.

        `"kh kw"` for convolutions (sorted as strings, as the reference
        does) and `"dense"` for dense kernels, so the two never mix.
        """
        if self.kind == "dense":
            return "dense"
        return f"{self.shape[2]} {self.shape[3]}"

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-serialisable data (`from_dict` reads it)."""
        return {
            "member": self.member,
            "layer_id": self.layer_id,
            "kind": self.kind,
            "shape": list(self.shape),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LayerSpec":
        """Read `to_dict` output.

        Args:
            d: a mapping as written by `to_dict`.

        Returns:
            The [`LayerSpec`][keras_swn.LayerSpec].
        """
        return cls(
            member=int(d["member"]),
            layer_id=int(d["layer_id"]),
            kind=str(d["kind"]),
            shape=cast(OIHW, tuple(int(s) for s in d["shape"])),
            name=str(d.get("name", "")),
        )
