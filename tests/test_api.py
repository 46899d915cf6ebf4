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
