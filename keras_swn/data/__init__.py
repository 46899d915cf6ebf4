"""Datasets: an embedded default that needs no network, and `.npz` files.

`load_digits_dataset` reads the real 8x8 digits that ship inside
scikit-learn's wheel; `load_npz` reads arrays a user provides. Both return
NumPy arrays `((x_train, y_train), (x_val, y_val))` ready for `model.fit`.
TFDS pipelines (CIFAR-10/100 with the augmentation of swn-algorithm.md §5)
live in their own modules of this package.
"""

from keras_swn.data.embedded import load_digits_dataset
from keras_swn.data.embedded import load_npz
from keras_swn.data.embedded import stratified_split

__all__ = [
    "load_digits_dataset",
    "load_npz",
    "stratified_split",
]
