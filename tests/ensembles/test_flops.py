"""Tests of `member_flops`: hand-computed multiply-adds of a tiny WRN."""

import pytest

from keras_swn.ensembles import member_flops


def _conv(rows, cols, kh, kw, cin, cout):
    return rows * cols * kh * kw * cin * cout


def _wrn_macs(depth, width, size, in_channels=3, num_classes=10):
    """The CIFAR WRN's conv and dense MACs, from the architecture (§6)."""
    n = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    total = _conv(size, size, 3, 3, in_channels, widths[0])  # stem
    cin = widths[0]
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        for block in range(n):
            s = stride if block == 0 else 1
            size = size // s  # padding 1 keeps sizes; stride halves them
            cout = widths[stage]
            total += _conv(size, size, 3, 3, cin, cout)  # conv1
            total += _conv(size, size, 3, 3, cout, cout)  # conv2
            if cin != cout or s != 1:
                total += _conv(size, size, 1, 1, cin, cout)  # shortcut
            cin = cout
    return total + cin * num_classes  # head


# `model`: the shared two-member model (tests/conftest.py).


class TestMemberFlops:
    def test_wrn_10_1_by_hand(self, model):
        # WRN-10-1 on 8x8: stem 8*8*9*3*16; stage 1 (8x8, 16->16) two
        # 3x3 convs, no shortcut; stage 2 (4x4, 16->32) and stage 3
        # (2x2, 32->64) with 1x1 shortcuts; head 64*10.
        expected = (
            8 * 8 * 9 * 3 * 16
            + 2 * 8 * 8 * 9 * 16 * 16
            + 4 * 4 * 9 * 16 * 32
            + 4 * 4 * 9 * 32 * 32
            + 4 * 4 * 16 * 32
            + 2 * 2 * 9 * 32 * 64
            + 2 * 2 * 9 * 64 * 64
            + 2 * 2 * 32 * 64
            + 64 * 10
        )
        assert expected == 781_952 == _wrn_macs(10, 1, 8)
        report = member_flops(model, 1)
        assert report.inference_macs == expected
        assert report.total == expected
        assert len(report.layers) == 10  # 9 shared convs + head
        assert sum(f.shared for f in report.layers) == 9
        assert report.layers[-1].name == "head"
        assert report.layers[-1].macs == 640

    def test_wrn_10_2_by_formula(self, model):
        assert member_flops(model, 0).inference_macs == _wrn_macs(10, 2, 8)

    def test_other_input_shape(self, model):
        report = member_flops(model, 1, input_shape=(16, 16, 3))
        assert report.inference_macs == _wrn_macs(10, 1, 16)
        assert report.input_shape == (16, 16, 3)
        # The model itself is unchanged.
        assert member_flops(model, 1).inference_macs == _wrn_macs(10, 1, 8)

    def test_compose_macs(self, model):
        plan = model.bank.plan
        expected = 0
        for (m, _), recipe in plan.layers.items():
            if m == 1:
                for w in range(recipe.num_levels):
                    bank = plan.banks[(recipe.group, w)]
                    expected += bank.templates * bank.seg
        report = member_flops(model, 1)
        assert report.compose_macs == expected > 0
        assert report.compose_reference == expected / 2
        assert report.reference_total == (report.inference_macs + expected / 2)

    def test_report_prints_and_dicts(self, model):
        report = member_flops(model, 1)
        text = str(report)
        assert "stage3_block1_shortcut" in text and "781,952" in text
        d = report.to_dict()
        assert d["inference_macs"] == 781_952
        assert len(d["layers"]) == 10

    @pytest.mark.parametrize("bad", [-1, 2, "0", 1.0, True])
    def test_bad_member(self, model, bad):
        with pytest.raises(
            ValueError,
            match=r"Invalid value for argument `member`\. Expected an int in "
            r"\[0, 2\)\. Received: member=",
        ):
            member_flops(model, bad)


def test_depthwise_and_separable_counted():
    """Unshared depthwise and separable convolutions of a converted model
    count their own multiply-adds; the shared dense layer's bank reads
    "dense" in the budget report."""
    import warnings

    import keras

    import keras_swn
    from keras_swn.models import KerasMember
    from keras_swn.models.keras_member import ConversionNotice

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.SeparableConv2D(
        12, 3, strides=2, padding="same", name="sep"
    )(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, name="hidden")(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    net = keras.Model(inputs, outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionNotice)
        member = KerasMember(net)
    model = keras_swn.SWNModel.from_keras(
        [member], budget=1000, num_bins=1, seed=0
    )
    report = member_flops(model, 0)
    by_name = {f.name: f for f in report.layers}
    assert by_name["dw"].kind == "depthwise_conv2d"
    assert by_name["dw"].macs == 8 * 8 * 3 * 3 * 8
    assert by_name["sep"].kind == "separable_conv2d"
    assert by_name["sep"].macs == 4 * 4 * (3 * 3 * 8 + 8 * 12)
    assert not by_name["dw"].shared and not by_name["sep"].shared
    expected = (
        8 * 8 * 9 * 3 * 8
        + 8 * 8 * 9 * 8
        + 4 * 4 * (9 * 8 + 8 * 12)
        + 12 * 16
        + 16 * 10
    )
    assert report.inference_macs == expected
    budget = model.budget_report()
    kinds = {g.kind for g in budget.groups}
    assert "dense" in kinds and "conv2d" in kinds
    dense_rows = [
        line for line in str(budget).splitlines() if " dense " in line
    ]
    assert dense_rows and "1x1" not in "".join(dense_rows)
    assert budget.to_dict()["groups"][0]["kind"] in ("conv2d", "dense")
