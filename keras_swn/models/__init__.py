"""`SWNModel`, member builders and architectures."""

from keras_swn.lazy import export_names

export_names(
    globals(),
    {
        "LayerFactory": "keras_swn.models.member_builder",
        "MemberBuilder": "keras_swn.models.member_builder",
        "SWNModel": "keras_swn.models.swn_model",
        "WideResNet": "keras_swn.models.wide_resnet",
        "clone_swn_model": "keras_swn.models.rebuild",
        "decayed_variables": "keras_swn.models.weight_decay",
    },
)
