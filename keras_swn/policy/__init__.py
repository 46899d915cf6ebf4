"""Pure descriptions of what is shared with what (no Keras)."""

from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy

__all__ = ["LayerSpec", "SharingPolicy"]
