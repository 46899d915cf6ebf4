"""The hand-written public API surface (style guide, convention 1)."""

import importlib

import keras
import pytest

import keras_swn

#: The public names of each package: a new public name fails this test
#: until it is added here on purpose.
PUBLIC = {
    "keras_swn": [
        "BankConfig",
        "BankPlan",
        "BudgetReport",
        "LayerSpec",
        "MemberBudget",
        "SWNModel",
        "SharingPolicy",
        "TemplateBank",
        "__version__",
        "analysis",
        "callbacks",
        "clone_swn_model",
        "data",
        "ensembles",
        "export",
        "layers",
        "models",
        "search",
    ],
    "keras_swn.models": [
        "KerasMember",
        "LayerFactory",
        "MemberBuilder",
        "SWNModel",
        "WideResNet",
        "clone_swn_model",
        "decayed_variables",
    ],
    "keras_swn.layers": ["SuperWeightConv2D", "SuperWeightDense"],
    "keras_swn.ensembles": [
        "AnytimeCurve",
        "EnsembleEvaluation",
        "FlopsReport",
        "LayerFlops",
        "Metrics",
        "SubsetChoice",
        "anytime_curve",
        "best_subset",
        "ensemble_metrics",
        "evaluate_ensemble",
        "expected_calibration_error",
        "member_flops",
        "member_probabilities",
        "predict_within_budget",
        "ranked_subsets",
    ],
    "keras_swn.callbacks": ["KernelGradientCapture", "StopOnNonFiniteLoss"],
    "keras_swn.export": ["to_keras"],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_surface(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package])
    for name in module.__all__:
        assert hasattr(module, name), name


def test_internals_are_not_public():
    """Internals stay importable from their modules, not the packages."""
    from keras_swn.ensembles import evaluation
    from keras_swn.ensembles import flops

    for package, name in [
        (keras_swn.layers, "probe_scope"),
        (keras_swn.ensembles, "ECE_BINS"),
        (keras_swn.ensembles, "compose_macs"),
    ]:
        assert not hasattr(package, name), name
    assert evaluation.ECE_BINS == 15
    assert callable(flops.compose_macs)


def test_models_do_not_import_ensembles():
    """Anytime prediction is `keras_swn.ensembles.predict_within_budget`;
    `keras_swn.models` does not depend on `keras_swn.ensembles`."""
    import pathlib

    root = pathlib.Path(keras_swn.models.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith(("import ", "from ")):
                assert "ensembles" not in line, (path, line)


def test_public_keras_classes_are_registered():
    for cls in [
        keras_swn.TemplateBank,
        keras_swn.SWNModel,
        keras_swn.layers.SuperWeightConv2D,
        keras_swn.layers.SuperWeightDense,
        keras_swn.models.WideResNet,
        keras_swn.models.MemberBuilder,
    ]:
        name = keras.saving.get_registered_name(cls)
        assert name == f"keras_swn>{cls.__name__}"
        assert keras.saving.get_registered_object(name) is cls


def test_search_surface():
    """`keras_swn.search` exports the user-facing names; the phase machine
    (`Phase`, `Step`, `PhaseOracle`, ...) stays in its own modules."""
    import keras_swn.search as search
    from keras_swn.search import oracle

    assert sorted(search.__all__) == [
        "ReferenceSGD",
        "RunConfig",
        "SearchAndRefine",
        "SearchConfig",
        "TrainingRecipe",
        "learning_rate_at",
        "load_and_evaluate",
        "make_optimizer",
        "step_learning_rate",
        "train_and_save",
    ]
    assert set(search.__all__) <= set(dir(search))
    for name in ("Phase", "PhaseOracle", "Sharing", "Step"):
        assert not hasattr(search, name), name
        assert hasattr(oracle, name), name
