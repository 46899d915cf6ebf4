"""`SWNModel`, member builders and architectures."""

from keras_swn.models.member_builder import LayerFactory
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.models.rebuild import clone_swn_model
from keras_swn.models.swn_model import SWNModel
from keras_swn.models.weight_decay import decayed_variables
from keras_swn.models.wide_resnet import WideResNet

__all__ = [
    "LayerFactory",
    "MemberBuilder",
    "SWNModel",
    "WideResNet",
    "clone_swn_model",
    "decayed_variables",
]
