"""Tests for `keras_swn.models.wide_resnet_shapes` (§1.2, §1.7, §6)."""

import json
import pathlib

import pytest

from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.models.wide_resnet_shapes import wide_resnet_param_counts

DATA = pathlib.Path(__file__).parents[1] / "data"

# swn-algorithm.md §1.7, "Parameter counts of unshared members" (100 classes).
UNSHARED_TABLE = [
    (28, 7, 17_868_464, 17_925_940),
    (28, 4, 5_839_280, 5_872_180),
    (16, 7, 8_385_200, 8_436_404),
    (16, 4, 2_742_704, 2_772_020),
    (28, 3, 3_286_704, 3_311_412),
    (28, 10, 36_454_832, 36_536_884),
]


class TestLayerSpecs:
    def test_wrn_28_ids_and_shortcuts(self):
        specs = wide_resnet_layer_specs(28, 7)
        assert len(specs) == 28
        assert [s.layer_id for s in specs] == list(range(28))
        assert [s.layer_id for s in specs if s.kernel_key == "1 1"] == [
            3,
            12,
            21,
        ]
        assert specs[0].shape == (16, 3, 3, 3) and specs[0].name == "stem"
        assert specs[1].shape == (112, 16, 3, 3)
        assert specs[3].shape == (112, 16, 1, 1)
        assert specs[10].shape == (224, 112, 3, 3)
        assert specs[12].shape == (224, 112, 1, 1)
        assert specs[27].shape == (448, 448, 3, 3)

    def test_wrn_16_ids_and_shortcuts(self):
        specs = wide_resnet_layer_specs(16, 4, member=3)
        assert len(specs) == 16
        assert all(s.member == 3 for s in specs)
        assert [s.layer_id for s in specs if s.kernel_key == "1 1"] == [
            3,
            8,
            13,
        ]

    def test_names(self):
        names = [s.name for s in wide_resnet_layer_specs(16, 4)]
        assert names[:7] == [
            "stem",
            "stage1_block1_conv1",
            "stage1_block1_conv2",
            "stage1_block1_shortcut",
            "stage1_block2_conv1",
            "stage1_block2_conv2",
            "stage2_block1_conv1",
        ]
        assert names[-1] == "stage3_block2_conv2"
        assert len(set(names)) == len(names)

    def test_width_one_has_no_stage1_shortcut(self):
        specs = wide_resnet_layer_specs(16, 1)
        assert len(specs) == 15
        assert "stage1_block1_shortcut" not in [s.name for s in specs]
        assert specs[3].name == "stage1_block2_conv1"

    def test_in_channels(self):
        assert wide_resnet_layer_specs(10, 2, in_channels=1)[0].shape == (
            16,
            1,
            3,
            3,
        )

    @pytest.mark.parametrize("depth", [27, 4, 9, 12])
    def test_bad_depth(self, depth):
        with pytest.raises(ValueError, match=rf"`depth`.*depth={depth}"):
            wide_resnet_layer_specs(depth, 4)

    @pytest.mark.parametrize("width", [0, -1, 2.5])
    def test_bad_width(self, width):
        with pytest.raises(ValueError, match=rf"`width`.*width={width}"):
            wide_resnet_layer_specs(16, width)

    def test_bad_in_channels(self):
        with pytest.raises(ValueError, match=r"`in_channels`.*in_channels=0"):
            wide_resnet_layer_specs(16, 4, in_channels=0)


class TestParamCounts:
    @pytest.mark.parametrize("depth,width,conv,total", UNSHARED_TABLE)
    def test_unshared_table(self, depth, width, conv, total):
        counts = wide_resnet_param_counts(depth, width, num_classes=100)
        assert counts["conv"] == conv
        assert counts["total"] == total
        assert counts["total"] == counts["conv"] + counts["bn"] + counts["head"]
        assert counts["conv"] == sum(
            s.numel for s in wide_resnet_layer_specs(depth, width)
        )

    def test_reference_values_readme(self):
        with open(DATA / "reference_values_readme.json", encoding="utf-8") as f:
            ref = json.load(f)
        bn = head = 0
        for name, expected in ref["unshared"].items():
            depth, width = (int(v) for v in name.split("-")[1:])
            counts = wide_resnet_param_counts(depth, width, num_classes=100)
            assert counts["conv"] == expected["conv"]
            assert counts["total"] == expected["total"]
            bn += counts["bn"]
            head += counts["head"]
        breakdown = ref["search_phase"]["trainable_breakdown"]
        assert bn == breakdown["bn"] == 29_696
        assert head == breakdown["classifier"] == 141_200

    def test_head_and_bn(self):
        counts = wide_resnet_param_counts(16, 4, num_classes=10)
        assert counts["head"] == 256 * 10 + 10
        # bn1 + bn2 per block plus the head BN, gamma and beta each.
        assert counts["bn"] == 2 * (
            (16 + 64)
            + (64 + 64)
            + (64 + 128)
            + (128 + 128)
            + (128 + 256)
            + (256 + 256)
            + 256
        )

    def test_bad_num_classes(self):
        with pytest.raises(ValueError, match=r"`num_classes`.*num_classes=0"):
            wide_resnet_param_counts(16, 4, num_classes=0)

    def test_bad_depth(self):
        with pytest.raises(ValueError, match=r"`depth`.*depth=20"):
            wide_resnet_param_counts(20, 4, num_classes=10)
