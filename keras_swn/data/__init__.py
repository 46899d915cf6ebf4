"""Datasets: an embedded default that needs no network, and `.npz` files.

[`load_digits_dataset`][keras_swn.data.load_digits_dataset] reads the real 8x8
digits shipped with keras_swn as package data;
[`load_npz`][keras_swn.data.load_npz] reads arrays a user provides. Both return
NumPy arrays `((x_train, y_train), (x_val, y_val))` ready for `model.fit`.
[`load_cifar`][keras_swn.data.load_cifar] (CIFAR-10/100 through TFDS) and
[`make_dataset`][keras_swn.data.make_dataset] (in-memory arrays) build `tf.data`
pipelines with the augmentation of the reference recipe (pad-and-crop, flip,
normalisation, Cutout).
"""

from keras_swn.data.augment import augment_image
from keras_swn.data.augment import normalize_image
from keras_swn.data.cifar import CIFAR10_MEAN
from keras_swn.data.cifar import CIFAR10_STD
from keras_swn.data.cifar import CIFAR100_MEAN
from keras_swn.data.cifar import CIFAR100_STD
from keras_swn.data.cifar import NORMALIZATION
from keras_swn.data.cifar import load_cifar
from keras_swn.data.cifar import make_dataset
from keras_swn.data.embedded import load_digits_dataset
from keras_swn.data.embedded import load_npz
from keras_swn.data.embedded import stratified_split

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "NORMALIZATION",
    "augment_image",
    "load_cifar",
    "load_digits_dataset",
    "load_npz",
    "make_dataset",
    "normalize_image",
    "stratified_split",
]
