"""`SharingPolicy`: validation, slot ownership, JSON round trips."""

import json
import os

import pytest

from keras_swn import LayerSpec
from keras_swn import SharingPolicy
from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.policy.chains import layer_levels


def _specs():
    return wide_resnet_layer_specs(16, 4, member=0) + wide_resnet_layer_specs(
        16, 2, member=1
    )


class TestSharingPolicy:
    def test_owner_defaults_to_the_slot_itself(self):
        policy = SharingPolicy(
            groups=[[0, 0], [0, 0]], coefficient_owners={(1, 0, 0): (0, 0)}
        )
        assert policy.owner((1, 0, 0)) == (0, 0)
        assert policy.owner((1, 1, 0)) == (1, 1)
        assert policy.num_members == 2 and policy.num_groups == 1
        assert policy.layers_in_group(0) == [(0, 0), (0, 1), (1, 0), (1, 1)]

    def test_self_ownership_is_dropped(self):
        policy = SharingPolicy(
            groups=[[0]], coefficient_owners={(0, 0, 0): (0, 0)}
        )
        assert policy.coefficient_owners == {}

    def test_one_vector_per_bank(self):
        specs = _specs()
        policy = SharingPolicy.from_bins(specs, 4, coefficients="per_bank")
        levels = layer_levels(specs, policy.groups)
        owners = {}
        for (m, l), n in levels.items():
            for w in range(n):
                g = policy.groups[m][l]
                owners.setdefault((g, w), set()).add(policy.owner((m, l, w)))
        assert all(len(o) == 1 for o in owners.values())

    def test_from_partners_follows_chains_and_levels(self):
        specs = _specs()
        groups = SharingPolicy.from_bins(specs, 4).groups
        partners = {(1, l): (0, l) for l in range(16)}
        policy = SharingPolicy.from_partners(specs, groups, partners)
        levels = layer_levels(specs, groups)
        for (m, l, w), owner in policy.coefficient_owners.items():
            assert m == 1 and owner == (0, l)
            assert w < levels[(0, l)] and w < levels[(1, l)]
        with pytest.raises(ValueError, match="partners"):
            SharingPolicy.from_partners(specs, groups, {(1, 99): (0, 0)})

    def test_json_round_trip_and_atomic_save(self, tmp_path):
        policy = SharingPolicy.from_bins(_specs(), 4)
        assert SharingPolicy.from_json(policy.to_json()) == policy
        path = tmp_path / "sub" / "policy.json"
        policy.save(path)
        assert SharingPolicy.load(path) == policy
        assert os.listdir(path.parent) == ["policy.json"]
        assert hash(policy) == hash(SharingPolicy.load(path))

    @pytest.mark.parametrize(
        "text,match",
        [
            ('{"format": "keras_swn.Shar', "Invalid sharing policy JSON"),
            ("[1, 2]", "expected a JSON object"),
            (
                '{"format": "keras_swn.SharingPolicy", "version": 9}',
                "Received: version=9",
            ),
            (
                '{"format": "keras_swn.SharingPolicy", "version": 1}',
                'missing "groups"',
            ),
            (
                '{"format": "keras_swn.SharingPolicy", "version": 1, '
                '"groups": [[0]], "coefficient_owners": [[0, 0]]}',
                "coefficient_owners",
            ),
        ],
    )
    def test_bad_json(self, text, match):
        with pytest.raises(ValueError, match=match):
            SharingPolicy.from_json(text)

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="Received: groups=\\(\\)"):
            SharingPolicy(groups=[])
        with pytest.raises(ValueError, match="non-negative"):
            SharingPolicy(groups=[[0, -1]])
        with pytest.raises(ValueError, match="does not exist"):
            SharingPolicy(groups=[[0]], coefficient_owners={(0, 0, 0): (3, 0)})
        with pytest.raises(ValueError, match="same group"):
            SharingPolicy(
                groups=[[0, 1]], coefficient_owners={(0, 1, 0): (0, 0)}
            )
        with pytest.raises(ValueError, match="itself shared"):
            SharingPolicy(
                groups=[[0, 0, 0]],
                coefficient_owners={(0, 2, 0): (0, 1), (0, 1, 0): (0, 0)},
            )
        with pytest.raises(ValueError, match="coefficients='x'"):
            SharingPolicy.from_bins(_specs(), 4, coefficients="x")

    def test_layer_spec_validation(self):
        with pytest.raises(ValueError, match="Received: kind='conv3d'"):
            LayerSpec(0, 0, "conv3d", (1, 1, 1, 1))
        with pytest.raises(
            ValueError, match="Received: shape=\\(1, 1, 3, 3\\)"
        ):
            LayerSpec(0, 0, "dense", (1, 1, 3, 3))
        spec = LayerSpec(0, 1, "conv2d", (8, 4, 3, 3), "c")
        assert (
            LayerSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
        )


class TestChainSort:
    """The policy records the chain order its slots are defined for."""

    def test_recorded_by_every_constructor(self):
        specs = _specs()
        groups = SharingPolicy.from_bins(specs, 4).groups
        for sort in ("stable", "reference"):
            for coefficients in ("per_bank", "per_layer"):
                policy = SharingPolicy.from_bins(
                    specs, 4, coefficients=coefficients, chain_sort=sort
                )
                assert policy.chain_sort == sort
            partners = {(1, l): (0, l) for l in range(16)}
            policy = SharingPolicy.from_partners(
                specs, groups, partners, chain_sort=sort
            )
            assert policy.chain_sort == sort
        assert SharingPolicy(groups=[[0]]).chain_sort == "stable"

    def test_part_of_equality_and_json(self):
        stable = SharingPolicy(groups=[[0, 0]])
        reference = SharingPolicy(groups=[[0, 0]], chain_sort="reference")
        assert stable != reference and hash(stable) != hash(reference)
        data = json.loads(reference.to_json())
        assert data["version"] == 2 and data["chain_sort"] == "reference"
        assert SharingPolicy.from_json(reference.to_json()) == reference

    def test_version_1_is_read_as_stable(self):
        text = (
            '{"format": "keras_swn.SharingPolicy", "version": 1, '
            '"groups": [[0, 0], [0, 0]], '
            '"coefficient_owners": [[1, 0, 0, 0, 0]]}'
        )
        policy = SharingPolicy.from_json(text)
        assert policy.chain_sort == "stable"
        assert policy.owner((1, 0, 0)) == (0, 0)

    def test_unknown_chain_sort(self):
        with pytest.raises(ValueError, match="Received: chain_sort='numpy'"):
            SharingPolicy(groups=[[0]], chain_sort="numpy")
        text = (
            '{"format": "keras_swn.SharingPolicy", "version": 2, '
            '"groups": [[0]], "chain_sort": "numpy"}'
        )
        with pytest.raises(ValueError, match="chain_sort='numpy'"):
            SharingPolicy.from_json(text)

    def test_check_chain_sort(self):
        shared = SharingPolicy(
            groups=[[0, 0]],
            coefficient_owners={(0, 1, 0): (0, 0)},
            chain_sort="reference",
        )
        assert shared.check_chain_sort() == "reference"
        assert shared.check_chain_sort("reference") == "reference"
        with pytest.raises(
            ValueError,
            match="defined for chain_sort='reference'.*"
            "Received: chain_sort='stable'",
        ):
            shared.check_chain_sort("stable")
        with pytest.raises(ValueError, match="Received: chain_sort='x'"):
            shared.check_chain_sort("x")
        # Without owners the policy names no slot: either order fits.
        soft = SharingPolicy(groups=[[0, 0]])
        assert soft.check_chain_sort("reference") == "reference"
