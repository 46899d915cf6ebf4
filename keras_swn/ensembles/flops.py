"""`member_flops`: the per-image inference cost of one SWN member."""

from __future__ import annotations

import dataclasses
import math
from typing import Any
from typing import Sequence

import keras

from keras_swn.io.atomic import format_rows
from keras_swn.layers.super_weight_conv2d import SuperWeightConv2D
from keras_swn.layers.super_weight_dense import SuperWeightDense
from keras_swn.validation import check_index

_CONV = (SuperWeightConv2D, keras.layers.Conv2D)
_DENSE = (SuperWeightDense, keras.layers.Dense)
#: Unshared depthwise and separable convolutions (kept as they are by
#: `KerasMember`): counted from their own kernels.
_DEPTHWISE = (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


@dataclasses.dataclass(frozen=True)
class LayerFlops:
    """The multiply-adds of one counted layer.

    Args:
        name: str, the layer's name in the member.
        kind: str, `"conv2d"`, `"dense"`, `"depthwise_conv2d"` or
            `"separable_conv2d"` (the last two unshared).
        kernel_shape: the kernel shape in Keras layout (HWIO or `(in, out)`;
            a separable convolution's depthwise kernel).
        output_shape: the layer's output shape for one image (no batch).
        macs: int, the multiply-adds for one image.
        shared: bool, whether the kernel is composed from the bank.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> stem = keras_swn.ensembles.member_flops(model, 0).layers[0]
        >>> stem.name, stem.kind, stem.kernel_shape, stem.output_shape
        ('stem', 'conv2d', (3, 3, 3, 16), (8, 8, 16))
        >>> stem.macs, stem.shared  # 8 * 8 * 16 outputs of 3 * 3 * 3 MACs each
        (27648, True)
    """

    name: str
    kind: str
    kernel_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int
    shared: bool


@dataclasses.dataclass(frozen=True)
class FlopsReport:
    """The cost of one member: inference per image, and kernel composition.

    Conventions (as fvcore, which the reference uses; see the algorithm page,
    [Evaluation and anytime prediction][anytime]): one multiply-add counts as
    one FLOP; only convolutions and dense layers are counted; BatchNorm,
    activations, pooling and residual additions are ignored.

    `inference_macs` is the per-image cost of the convolutions and dense
    layers. `compose_macs` is the cost of composing the member's shared
    kernels from the templates, once per forward pass whatever the batch
    size: for every shared layer and every width level `w` it uses, the
    template mix `c @ T` costs `K(g, w) * seg(g, w)` multiply-adds (the
    concatenations of [Kernel assembly][kernel-assembly] are free). The
    reference counts the
    element-wise multiply and sum of weight generation at half the
    element count; `compose_reference` approximates that figure as half
    the elements of the mixed templates, `K * seg / 2` per layer and
    level, i.e. `compose_macs / 2`.

    Attributes:
        member: int, the member index.
        name: str, the member's name.
        input_shape: the shape of one input image.
        layers: tuple of [`LayerFlops`][keras_swn.ensembles.LayerFlops], in
            graph order.
        inference_macs: int, per-image multiply-adds of convs and denses.
        compose_macs: int, multiply-adds of one kernel composition.
        compose_reference: float, the reference's count of the same work.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> report = keras_swn.ensembles.member_flops(model, 0)
        >>> report.input_shape, len(report.layers)
        ((8, 8, 3), 10)
        >>> report.inference_macs, report.compose_macs, report.compose_reference
        (781952, 96640, 48320.0)
    """

    member: int
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerFlops, ...]
    inference_macs: int
    compose_macs: int
    compose_reference: float

    @property
    def total(self) -> int:
        """Per-image inference multiply-adds (`inference_macs`)."""
        return self.inference_macs

    @property
    def reference_total(self) -> float:
        """`inference_macs + compose_reference`: one image, batch of 1.

        Comparable to the reference's fvcore count, which traces one
        image and so charges it the whole kernel composition.
        """
        return self.inference_macs + self.compose_reference

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "inference_macs": self.inference_macs,
            "compose_macs": self.compose_macs,
            "compose_reference": self.compose_reference,
            "layers": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "kernel_shape": list(f.kernel_shape),
                    "output_shape": list(f.output_shape),
                    "macs": f.macs,
                    "shared": f.shared,
                }
                for f in self.layers
            ],
        }

    def __str__(self) -> str:
        rows = [("layer", "kind", "output", "MACs")]
        rows += [
            (f.name, f.kind, "x".join(map(str, f.output_shape)), f"{f.macs:,}")
            for f in self.layers
        ]
        lines = [
            f"Member {self.member} ({self.name}), input {self.input_shape}"
        ] + format_rows(rows, right={3})
        lines.append(f"inference MACs per image: {self.inference_macs:,}")
        lines.append(f"kernel composition MACs per step: {self.compose_macs:,}")
        lines.append(
            f"kernel composition, reference count: {self.compose_reference:,}"
        )
        return "\n".join(lines)


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape[1:])


def member_flops(
    model: Any, member: int, *, input_shape: Sequence[int] | None = None
) -> FlopsReport:
    """Count the per-image multiply-adds of one member from layer shapes.

    Walks the member's functional graph (top-level layers): a convolution
    costs `out_rows * out_cols * kernel.size` multiply-adds (a kernel of
    `kh * kw * in/groups * out` elements), a depthwise convolution
    `out_rows * out_cols * kh * kw * in * multiplier`, a separable one its
    depthwise and pointwise parts, a dense layer `in * out` per output
    position. One multiply-add counts as one FLOP, as in fvcore;
    BatchNorm, activations, pooling and additions are not counted
    (see the algorithm page, [Evaluation and anytime prediction][anytime]). No
    forward pass runs; the output sizes come
    from the graph's shape inference. The cost of composing the kernels
    (`compose_macs`, `compose_reference`) is reported separately; see
    [`FlopsReport`][keras_swn.ensembles.FlopsReport].

    Args:
        model: an [`SWNModel`][keras_swn.SWNModel].
        member: int, the member index.
        input_shape: optional shape of one input (e.g. `(32, 32, 3)`);
            None uses the shape the model was built for.

    Returns:
        A `FlopsReport`.

    Raises:
        ValueError: if `member` is not a member index.

    Examples:
        >>> model = keras_swn.SWNModel(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 3), num_classes=10, budget=60_000, seed=0)
        >>> keras_swn.ensembles.member_flops(model, 0).inference_macs
        781952
    """
    member = check_index("member", member, len(model.members))
    net = model.members[member]
    counted = [
        layer
        for layer in net.layers
        if isinstance(layer, _CONV + _DENSE + _DEPTHWISE)
    ]
    own_shape = tuple(int(d) for d in net.inputs[0].shape[1:])
    input_shape = (
        own_shape if input_shape is None else tuple(int(d) for d in input_shape)
    )
    if input_shape == own_shape:
        outputs = [layer.output for layer in counted]
    else:
        # Re-trace the graph on the new input with fresh layers (the
        # shared layers keep reading the same bank; nothing runs).
        clone = keras.models.clone_model(
            net,
            input_tensors=keras.Input(input_shape, dtype=net.inputs[0].dtype),
        )
        outputs = [clone.get_layer(layer.name).output for layer in counted]
    layers = []
    for layer, out in zip(counted, outputs):
        out_shape = _shape(out)
        shared = isinstance(layer, (SuperWeightConv2D, SuperWeightDense))
        if shared:
            kernel_shape = tuple(layer.bank.kernel_shape(layer.layer_key))
        elif isinstance(layer, keras.layers.SeparableConv2D):
            kernel_shape = tuple(int(d) for d in layer.depthwise_kernel.shape)
        else:
            kernel_shape = tuple(int(d) for d in layer.kernel.shape)
        if isinstance(layer, _DENSE):
            kind = "dense"
            positions = math.prod(out_shape[:-1])
        else:
            kind = "conv2d"
            positions = out_shape[0] * out_shape[1]
        macs = positions * math.prod(kernel_shape)
        if isinstance(layer, keras.layers.SeparableConv2D):
            kind = "separable_conv2d"
            macs += positions * math.prod(layer.pointwise_kernel.shape)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kind = "depthwise_conv2d"
        layers.append(
            LayerFlops(layer.name, kind, kernel_shape, out_shape, macs, shared)
        )
    compose = compose_macs(model, member)
    return FlopsReport(
        member=member,
        name=net.name,
        input_shape=input_shape,
        layers=tuple(layers),
        inference_macs=sum(f.macs for f in layers),
        compose_macs=compose,
        compose_reference=compose / 2,
    )


def compose_macs(model: Any, member: int) -> int:
    """Multiply-adds of composing every shared kernel of `member` once.

    For each shared layer and each width level `w` it uses, the template
    mix `c @ T` over `K(g, w)` templates of `seg(g, w)` parameters costs
    `K * seg` multiply-adds.

    Args:
        model: an `SWNModel`.
        member: int, the member index.

    Returns:
        int, the multiply-adds.
    """
    member = check_index("member", member, len(model.members))
    plan = model.bank.plan
    total = 0
    for (m, _), recipe in plan.layers.items():
        if m != member:
            continue
        for w in range(recipe.num_levels):
            bank = plan.banks[(recipe.group, w)]
            total += bank.templates * bank.seg
    return total
