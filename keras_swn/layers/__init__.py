"""SuperWeight layers: kernels composed from a shared template bank."""

from keras_swn.layers.super_weight_conv2d import SuperWeightConv2D
from keras_swn.layers.super_weight_dense import SuperWeightDense

__all__ = ["SuperWeightConv2D", "SuperWeightDense"]
