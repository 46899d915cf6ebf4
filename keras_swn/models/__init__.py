"""`SWNModel`, member builders and architectures."""

from typing import TYPE_CHECKING

from keras_swn.lazy import export_names

# The exports below, imported statically for type checkers only (keep the
# two lists equal).
if TYPE_CHECKING:
    from keras_swn.models.keras_member import KerasMember
    from keras_swn.models.member_builder import LayerFactory
    from keras_swn.models.member_builder import MemberBuilder
    from keras_swn.models.rebuild import clone_swn_model
    from keras_swn.models.swn_model import SWNModel
    from keras_swn.models.weight_decay import decayed_variables
    from keras_swn.models.wide_resnet import WideResNet

export_names(
    globals(),
    {
        "KerasMember": "keras_swn.models.keras_member",
        "LayerFactory": "keras_swn.models.member_builder",
        "MemberBuilder": "keras_swn.models.member_builder",
        "SWNModel": "keras_swn.models.swn_model",
        "WideResNet": "keras_swn.models.wide_resnet",
        "clone_swn_model": "keras_swn.models.rebuild",
        "decayed_variables": "keras_swn.models.weight_decay",
    },
)
