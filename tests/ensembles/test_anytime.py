"""Tests of anytime prediction: subsets, ranking, budgets, plots."""

import os

import numpy as np
import pytest

import keras_swn
from keras_swn.ensembles import anytime_curve
from keras_swn.ensembles import best_subset
from keras_swn.ensembles import evaluate_ensemble
from keras_swn.ensembles import member_flops
from keras_swn.ensembles import member_probabilities
from keras_swn.ensembles import predict_within_budget
from keras_swn.ensembles import ranked_subsets
from keras_swn.models import WideResNet


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _probs(m, n=40, c=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    probs = []
    for i in range(m):
        logits = rng.normal(size=(n, c))
        # Member i is right on a growing share of examples.
        right = rng.random(n) < 0.3 + 0.15 * i
        logits[right, y[right]] += 3.0
        probs.append(_softmax(logits))
    return probs, y


class TestRanking:
    @pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
    def test_every_non_empty_subset(self, m):
        subsets = ranked_subsets(list(range(1, m + 1)))
        assert len(subsets) == 2**m - 1
        assert len(set(subsets)) == len(subsets)
        assert all(s == tuple(sorted(s)) and s for s in subsets)

    def test_order_and_ties(self):
        # Totals: (0,)=1 (1,)=1 (2,)=2 (0,1)=2 (0,2)=3 (1,2)=3 (0,1,2)=4.
        assert ranked_subsets([1, 1, 2]) == [
            (0,),
            (1,),
            (2,),  # ties on FLOPs: the smaller subset first
            (0, 1),
            (0, 2),  # then member indices
            (1, 2),
            (0, 1, 2),
        ]

    def test_curve(self):
        probs, y = _probs(3)
        curve = anytime_curve(probs, y, [300, 100, 200])
        assert len(curve.subsets) == 7
        assert curve.subsets[:3] == ((1,), (2,), (0,))
        assert list(curve.flops) == sorted(curve.flops)
        for s, a in zip(curve.subsets, curve.accuracy):
            mean = np.mean([probs[i] for i in s], axis=0)
            assert a == np.mean(np.argmax(mean, -1) == y)
        assert curve.flops[-1] == 600
        assert curve.member_flops == (300.0, 100.0, 200.0)

    def test_pareto(self):
        # Hand-made accuracies through one-hot probabilities.
        y = np.zeros(10, dtype=int)

        def member(correct):
            p = np.tile([0.0, 1.0], (10, 1))
            p[:correct] = [1.0, 0.0]
            return p

        # Member accuracies 0.2, 0.6, 0.4 with FLOPs 1, 2, 3.
        curve = anytime_curve([member(2), member(6), member(4)], y, [1, 2, 3])
        on_front = {s for s, p in zip(curve.subsets, curve.pareto) if p}
        assert (0,) in on_front and (1,) in on_front
        assert (2,) not in on_front  # costlier than (1,), less accurate
        accs = curve.accuracies()
        best = max(accs.values())
        assert any(accs[s] == best for s in on_front)

    def test_table_dict_plot(self, tmp_path):
        probs, y = _probs(3)
        curve = anytime_curve(probs, y, [300, 100, 200], names="abc")
        text = str(curve)
        assert "0+1+2" in text and "600" in text and "1=b" in text
        d = curve.to_dict()
        assert len(d["subsets"]) == 7
        assert d["subsets"][0]["members"] == [1]
        path = tmp_path / "curve.png"
        assert curve.plot(path) == str(path)
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.listdir(tmp_path) == ["curve.png"]  # no temp file left

    def test_plot_failure_leaves_nothing(self, tmp_path, monkeypatch):
        from matplotlib.figure import Figure

        probs, y = _probs(2)
        curve = anytime_curve(probs, y, [1, 2])

        def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(Figure, "savefig", broken)
        with pytest.raises(OSError, match="disk full"):
            curve.plot(tmp_path / "sub" / "curve.png")
        assert os.listdir(tmp_path / "sub") == []

    def test_bad_flops(self):
        probs, y = _probs(2)
        with pytest.raises(
            ValueError, match="Expected one value per member \\(2\\)"
        ):
            anytime_curve(probs, y, [1, 2, 3])
        with pytest.raises(ValueError, match="argument `flops_per_member`"):
            anytime_curve(probs, y, [1, -2])


class TestBestSubset:
    def test_from_curve(self):
        probs, y = _probs(3)
        curve = anytime_curve(probs, y, [300, 100, 200])
        for budget in (100, 250, 350, 450, 1000):
            choice = best_subset(curve, flops_budget=budget)
            fits = [
                (a, -f)
                for s, f, a in zip(curve.subsets, curve.flops, curve.accuracy)
                if f <= budget
            ]
            assert choice.flops <= budget
            assert (choice.accuracy, -choice.flops) == max(fits)

    def test_from_mapping(self):
        accs = {(0,): 0.9, (1,): 0.8, (0, 1): 0.95}
        assert best_subset(accs, [200, 100], flops_budget=99.0 + 1).members == (
            1,
        )
        assert best_subset(accs, [200, 100], flops_budget=250).members == (0,)
        assert best_subset(accs, [200, 100], flops_budget=300).members == (
            0,
            1,
        )

    def test_tie_goes_to_cheaper(self):
        accs = {(0,): 0.9, (1,): 0.9, (0, 1): 0.9}
        choice = best_subset(accs, [200, 100], flops_budget=1000)
        assert choice.members == (1,)

    def test_flops_only(self):
        choice = best_subset(None, [300, 100, 200], flops_budget=450)
        # The subset that uses most of the budget (0+1 = 400; 0+2 = 500
        # does not fit).
        assert choice.flops == 400
        assert choice.members == (0, 1)
        assert choice.accuracy is None

    def test_nothing_fits(self):
        with pytest.raises(
            ValueError,
            match=r"No member subset fits `flops_budget`: the cheapest member "
            r"\(member 1\) costs 100 FLOPs\. Received: flops_budget=50",
        ):
            best_subset(None, [300, 100], flops_budget=50)

    def test_needs_flops(self):
        with pytest.raises(ValueError, match="Argument `flops`"):
            best_subset({(0,): 1.0}, flops_budget=1)


# `model`: the shared two-member model (tests/conftest.py).


def _spy(monkeypatch, model, allowed):
    """Record `predict` calls; fail on any call of an excluded member."""
    called = []
    for i, net in enumerate(model.members):
        if i in allowed:
            original = net.predict

            def predict(*args, _i=i, _orig=original, **kwargs):
                called.append(_i)
                return _orig(*args, **kwargs)

            monkeypatch.setattr(net, "predict", predict)
        else:

            def refuse(*args, _i=i, **kwargs):
                raise AssertionError(f"member {_i} must not run")

            monkeypatch.setattr(net, "predict", refuse)
            monkeypatch.setattr(net, "call", refuse)
    return called


@pytest.mark.backend_sensitive
class TestPredictWithinBudget:
    def test_runs_only_chosen_members(self, model, monkeypatch):
        x = np.random.default_rng(0).random((6, 8, 8, 3), dtype=np.float32)
        expected = _softmax(model.members[1].predict(x, verbose=0))
        cost1 = member_flops(model, 1).inference_macs
        cost0 = member_flops(model, 0).inference_macs
        assert cost1 < cost0
        called = _spy(monkeypatch, model, allowed={1})
        probs = predict_within_budget(model, x, flops_budget=cost0 - 1)
        assert called == [1]
        np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-7)

    def test_with_curve(self, model, monkeypatch):
        x = np.random.default_rng(1).random((6, 8, 8, 3), dtype=np.float32)
        # A curve that says member 0 alone is the best ensemble.
        probs = [np.eye(10)[[0] * 6], np.eye(10)[[1] * 6]]
        curve = anytime_curve(probs, [0] * 6, [10.0, 5.0])
        assert best_subset(curve, flops_budget=100).members == (0,)
        expected = _softmax(model.members[0].predict(x, verbose=0))
        called = _spy(monkeypatch, model, allowed={0})
        out = predict_within_budget(model, x, flops_budget=100, curve=curve)
        assert called == [0]
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)

    def test_all_members_mean(self, model):
        x = np.random.default_rng(2).random((5, 8, 8, 3), dtype=np.float32)
        manual = np.mean(
            [_softmax(m.predict(x, verbose=0)) for m in model.members], axis=0
        )
        out = predict_within_budget(model, x, flops_budget=1e12)
        np.testing.assert_allclose(out, manual, rtol=1e-6, atol=1e-7)

    def test_nothing_fits(self, model):
        cheapest = member_flops(model, 1).inference_macs
        with pytest.raises(
            ValueError,
            match=rf"the cheapest member \(member 1\) costs {cheapest:,} "
            r"FLOPs\. Received: flops_budget=10",
        ):
            predict_within_budget(
                model, np.zeros((1, 8, 8, 3)), flops_budget=10
            )

    def test_model_predict_is_keras_predict(self, model):
        """Anytime prediction lives here, not in `SWNModel.predict`: the
        cheapest member alone, as the moved model test checked."""
        x = np.random.default_rng(3).random((4, 8, 8, 3), dtype=np.float32)
        cheap = member_flops(model, 1).inference_macs
        probs = predict_within_budget(model, x, flops_budget=cheap)
        logits = model.members[1].predict(x, verbose=0)
        np.testing.assert_allclose(
            probs, _softmax(logits), rtol=1e-5, atol=1e-6
        )
        outputs = model.predict(x, verbose=0)
        assert [o.shape for o in outputs] == [(4, 10)] * len(model.members)
        with pytest.raises(TypeError, match="flops_budget"):
            model.predict(x, flops_budget=cheap, verbose=0)

    def test_bad_curve(self, model):
        curve = anytime_curve([np.eye(2)], [0, 1], [1.0])
        with pytest.raises(ValueError, match="argument `curve`"):
            predict_within_budget(
                model, np.zeros((1, 8, 8, 3)), flops_budget=10, curve=curve
            )


def test_heterogeneous_ensemble_end_to_end(tmp_path):
    """Three members of different depth and width: fit, evaluate, curve."""
    model = keras_swn.SWNModel(
        members=[WideResNet(16, 1), WideResNet(10, 2), WideResNet(10, 1)],
        input_shape=(8, 8, 3),
        num_classes=10,
        budget=250_000,
        seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    model.compile(optimizer="sgd")
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    result = evaluate_ensemble(model, x, y, batch_size=16)
    assert result.names == ("WRN-16-1", "WRN-10-2", "WRN-10-1")
    assert len(result.members) == 3
    assert 0.0 <= result.ensemble.top1 <= 1.0
    assert result.ensemble.top5 is not None
    assert "ensemble" in str(result)

    reports = [member_flops(model, i) for i in range(3)]
    curve = anytime_curve(
        member_probabilities(model, x, batch_size=16),
        y,
        reports,
        names=result.names,
    )
    assert len(curve.subsets) == 7
    assert curve.subsets[0] == (2,)  # WRN-10-1 is the cheapest
    assert curve.accuracies()[(0, 1, 2)] == result.ensemble.top1
    curve.plot(tmp_path / "anytime.png")
    assert (tmp_path / "anytime.png").stat().st_size > 1000

    # The model form computes the same curve from the model and the data.
    direct = anytime_curve(model, x, y, batch_size=16)
    assert direct.names == result.names
    assert direct.subsets == curve.subsets
    assert direct.accuracy == curve.accuracy
    assert direct.member_flops == tuple(
        float(r.inference_macs) for r in reports
    )
    with pytest.raises(ValueError, match="`y`"):
        anytime_curve(model, x)
    with pytest.raises(ValueError, match="`y`"):
        evaluate_ensemble(model, x)


class TestOneInputConvention:
    """Probabilities or a model: both functions take both."""

    def test_flops_positional_or_keyword(self):
        probs, y = _probs(3)
        a = anytime_curve(probs, y, [300, 100, 200])
        b = anytime_curve(probs, y, flops_per_member=[300, 100, 200])
        assert a == b
        assert a.subsets[0] == (1,)

    def test_flops_missing_or_twice(self):
        probs, y = _probs(2)
        with pytest.raises(ValueError, match="flops_per_member"):
            anytime_curve(probs, y)
        with pytest.raises(ValueError, match="once"):
            anytime_curve(probs, y, [1, 2], flops_per_member=[1, 2])

    def test_evaluate_ensemble_from_probabilities(self):
        probs, y = _probs(3)
        result = evaluate_ensemble(probs, y, names=["a", "b", "c"])
        assert result.names == ("a", "b", "c")
        expected = np.mean(np.argmax(np.mean(probs, axis=0), axis=-1) == y)
        assert result.ensemble.top1 == pytest.approx(expected)
        with pytest.raises(ValueError, match="labels second"):
            evaluate_ensemble(probs, y, y)

    def test_plot_dpi(self, tmp_path):
        probs, y = _probs(2)
        curve = anytime_curve(probs, y, [2, 1])
        small = curve.plot(tmp_path / "a.png")
        large = curve.plot(tmp_path / "b.png", dpi=200)
        assert os.path.getsize(large) > os.path.getsize(small)
