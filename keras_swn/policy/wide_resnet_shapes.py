"""Moved to `keras_swn.models.wide_resnet_shapes` (architecture code).

Re-exported here so that `keras_swn.policy.wide_resnet_shapes` keeps
working for its importers until they switch.
"""

from keras_swn.models.wide_resnet_shapes import wide_resnet_layer_specs
from keras_swn.models.wide_resnet_shapes import wide_resnet_param_counts

__all__ = ["wide_resnet_layer_specs", "wide_resnet_param_counts"]
