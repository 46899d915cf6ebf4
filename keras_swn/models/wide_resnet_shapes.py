"""Shared-layer shapes and parameter counts of the CIFAR Wide ResNet.

The architecture of `keras_swn.models.WideResNet` (pre-activation basic
blocks, channels `[16, 16k, 32k, 64k]`), enumerated without building a
model. Pure Python: no Keras import.
"""

from __future__ import annotations

from typing import Iterator

from keras_swn.bank.budget_report import MemberBudget
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.types import OIHW
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument


def _check_depth(depth: object) -> int:
    value = check_int("depth", depth, minimum=10)
    if (value - 4) % 6 != 0:
        raise invalid_argument(
            "depth",
            "Expected depth - 4 to be divisible by 6 (10, 16, 22, 28, 34, "
            "40, ...).",
            depth,
        )
    return value


def _blocks(
    depth: int, width: int, in_channels: int
) -> Iterator[tuple[int, int, int, int]]:
    """Yield `(stage, block, in, out)` for every residual block."""
    n = (depth - 4) // 6
    channels = [16, 16 * width, 32 * width, 64 * width]
    for s in range(1, 4):
        for b in range(1, n + 1):
            cin = channels[s - 1] if b == 1 else channels[s]
            yield s, b, cin, channels[s]


def wide_resnet_layer_specs(
    depth: int, width: int, *, member: int = 0, in_channels: int = 3
) -> list[LayerSpec]:
    """The shared conv layers of one CIFAR WRN-`depth`-`width`.

    Layer ids follow construction order: the stem is 0, then for every
    block conv1, conv2, and the 1x1 projection shortcut when the block
    changes the channel count. With `width > 1` a member has exactly
    `depth` shared layers.

    Args:
        depth: int, the network depth; `depth - 4` divisible by 6, >= 10.
        width: int, the widening factor k, >= 1.
        member: int, the member index written into every spec.
        in_channels: int, the channels of the input image.

    Returns:
        A list of `LayerSpec`, in layer-id order; shapes are OIHW.

    Raises:
        ValueError: on a bad `depth`, `width`, `member` or `in_channels`.

    Examples:
        >>> specs = wide_resnet_layer_specs(16, 4)
        >>> len(specs), specs[0].shape, specs[3].name
        (16, (16, 3, 3, 3), 'stage1_block1_shortcut')
    """
    depth = _check_depth(depth)
    width = check_int("width", width, minimum=1)
    member = check_int("member", member, minimum=0)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    specs = [LayerSpec(member, 0, "conv2d", (16, in_channels, 3, 3), "stem")]

    def add(shape: OIHW, name: str) -> None:
        specs.append(LayerSpec(member, len(specs), "conv2d", shape, name))

    for s, b, cin, cout in _blocks(depth, width, in_channels):
        prefix = f"stage{s}_block{b}"
        add((cout, cin, 3, 3), f"{prefix}_conv1")
        add((cout, cout, 3, 3), f"{prefix}_conv2")
        if cin != cout:
            add((cout, cin, 1, 1), f"{prefix}_shortcut")
    return specs


def wide_resnet_param_counts(
    depth: int, width: int, *, in_channels: int = 3, num_classes: int
) -> dict[str, int]:
    """Trainable parameters of one unshared WRN-`depth`-`width`.

    Args:
        depth: int, the network depth; `depth - 4` divisible by 6, >= 10.
        width: int, the widening factor k, >= 1.
        in_channels: int, the channels of the input image.
        num_classes: int, the classifier outputs.

    Returns:
        A dict with `conv` (every conv kernel, no bias), `bn` (gamma and
        beta of every BatchNorm: two per block and the head BN), `head`
        (dense weights and bias) and `total` (their sum).

    Examples:
        >>> wide_resnet_param_counts(16, 4, num_classes=100)["total"]
        2772020
    """
    depth = _check_depth(depth)
    width = check_int("width", width, minimum=1)
    in_channels = check_int("in_channels", in_channels, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    conv = sum(
        s.numel
        for s in wide_resnet_layer_specs(depth, width, in_channels=in_channels)
    )
    bn = 0
    for _, _, cin, cout in _blocks(depth, width, in_channels):
        bn += 2 * cin + 2 * cout  # bn1 (before conv1), bn2 (before conv2)
    final = 64 * width
    bn += 2 * final  # head BN
    head = final * num_classes + num_classes
    return {"conv": conv, "bn": bn, "head": head, "total": conv + bn + head}


def wide_resnet_member_budget(
    name: str, depth: int, width: int, *, in_channels: int, num_classes: int
) -> MemberBudget:
    """The `MemberBudget` of a WRN (its unshared parameter counts).

    Args:
        name: str, the member's name in budget reports.
        depth: int, `6n + 4`.
        width: int, the widening factor.
        in_channels: int, the input channels.
        num_classes: int, the classes of the head.

    Returns:
        A `MemberBudget`: convolution and total parameters unshared, and the
        BatchNorm and head parameters every member keeps.
    """
    counts = wide_resnet_param_counts(
        depth, width, in_channels=in_channels, num_classes=num_classes
    )
    return MemberBudget(
        name=name,
        conv_params_unshared=counts["conv"],
        params_unshared=counts["total"],
        unshared_trainable=counts["bn"] + counts["head"],
    )
