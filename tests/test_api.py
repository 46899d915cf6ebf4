"""The hand-written public API surface (style guide, convention 1)."""

import keras

import keras_swn


def test_public_surface():
    for name in [
        "BankPlan",
        "BudgetReport",
        "LayerSpec",
        "SWNModel",
        "SharingPolicy",
        "TemplateBank",
        "clone_swn_model",
        "layers",
        "models",
        "__version__",
    ]:
        assert hasattr(keras_swn, name), name
    assert keras_swn.layers.SuperWeightConv2D
    assert keras_swn.layers.SuperWeightDense
    assert keras_swn.models.WideResNet
    assert set(keras_swn.__all__) <= set(dir(keras_swn))


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
