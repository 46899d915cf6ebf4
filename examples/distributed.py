"""
Title: Train an SWN on TPUs, GPUs or several CPU devices
Author: keras_swn contributors
Date created: 2026/11/27
Last modified: 2026/11/27
Description: Data-parallel SWN training on TPUs, GPUs or CPU devices.
Accelerator: TPU
"""

"""
## Introduction

An `SWNModel` composes its kernels with `keras.ops` from shapes fixed at
build time, so it compiles with XLA and trains with the distribution
engines Keras already has:

* **TensorFlow:** build and compile the model inside a `tf.distribute`
  strategy scope: `TPUStrategy` on a Cloud TPU, `MirroredStrategy` on one
  machine with several GPUs.
* **JAX:** set `keras.distribution.DataParallel` before building the
  model; the train step runs as one SPMD program over all devices.
* **PyTorch:** Keras has no distribution API for this backend; the
  example trains on one device.

This script picks what the machine offers. On a plain CPU it says so and
falls back to data parallelism over **two logical CPU devices** (change
with `KERAS_SWN_CPU_DEVICES`), which exercises the same code path as a
multi-accelerator run. The global batch is the per-replica batch times
the number of replicas. Note that BatchNorm normalises each replica's
share of the batch on `tf.distribute` (as with unsynchronised BatchNorm in
PyTorch), while JAX `DataParallel` normalises over the global batch.

Set `KERAS_SWN_EXAMPLE_SMOKE=1` for a seconds-long smoke run.
"""

"""
## Setup

Device configuration must happen before TensorFlow or JAX initialise
their devices, so it comes first.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
BACKEND = os.environ["KERAS_BACKEND"]
SMOKE = os.environ.get("KERAS_SWN_EXAMPLE_SMOKE") == "1"
CPU_DEVICES = int(os.environ.get("KERAS_SWN_CPU_DEVICES", "2"))

if BACKEND == "jax" and CPU_DEVICES > 1:
    # Only affects the CPU platform: GPUs and TPUs are used as they are.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={CPU_DEVICES}"
    )

import keras
import numpy as np

import keras_swn
from keras_swn.data import load_digits_dataset
from keras_swn.models import WideResNet

"""
## Choosing a strategy

On TensorFlow: a TPU if a TPU cluster resolver finds one, otherwise the
GPUs, otherwise logical CPU devices. On JAX: all devices of the default
platform.
"""


def tensorflow_strategy():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        print("Found a TPU: using TPUStrategy.")
        return tf.distribute.TPUStrategy(resolver), True
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        pass
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        print(f"Found {len(gpus)} GPU(s): using MirroredStrategy.")
        return tf.distribute.MirroredStrategy(), True
    print(
        "No TPU or GPU found: falling back to MirroredStrategy over "
        f"{CPU_DEVICES} logical CPU device(s)."
    )
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * CPU_DEVICES
    )
    devices = [f"/cpu:{i}" for i in range(CPU_DEVICES)]
    return tf.distribute.MirroredStrategy(devices), False


def jax_distribution():
    import jax

    platform = jax.default_backend()
    devices = keras.distribution.list_devices()
    if platform == "cpu":
        print(
            f"No TPU or GPU found: falling back to {len(devices)} CPU "
            "device(s)."
        )
    else:
        print(f"Found {len(devices)} {platform.upper()} device(s).")
    if len(devices) < 2:
        print("One device: training without keras.distribution.")
        return 1
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    print(f"Using keras.distribution.DataParallel over {len(devices)} devices.")
    return len(devices)


"""
## Data and model

The bundled digits stand in for a real dataset; for CIFAR use
`keras_swn.data.load_cifar`, whose `tf.data` pipeline works with every
strategy. The per-replica batch is 32.
"""

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:128], y_train[:128]
    x_val, y_val = x_val[:64], y_val[:64]
keras.utils.set_random_seed(0)


def build_model():
    model = keras_swn.SWNModel(
        members=[WideResNet(16, 1), WideResNet(10, 1)],
        input_shape=x_train.shape[1:],
        num_classes=10,
        budget=100_000,
        seed=0,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        # XLA is the TPU path. On GPUs and CPUs "auto" lets Keras decide.
        jit_compile=True if accelerated == "tpu" else "auto",
    )
    return model


accelerated = None
if BACKEND == "tensorflow":
    strategy, found = tensorflow_strategy()
    replicas = strategy.num_replicas_in_sync
    accelerated = "tpu" if type(strategy).__name__.startswith("TPU") else found
    with strategy.scope():
        model = build_model()
elif BACKEND == "jax":
    replicas = jax_distribution()
    model = build_model()
else:
    print(
        f"The {BACKEND!r} backend has no Keras distribution API: training "
        "on one device."
    )
    replicas = 1
    model = build_model()

"""
## Train

The same `fit` call works in every case. Keras splits each global batch
across the replicas and averages the gradients.
"""

global_batch = 32 * replicas
print(f"{replicas} replica(s), global batch {global_batch}")
model.fit(
    x_train,
    y_train,
    batch_size=global_batch,
    epochs=1 if SMOKE else 6,
    validation_data=(x_val, y_val),
    verbose=2,
)
probabilities = model.predict_ensemble(x_val, verbose=0)
accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_val))
print(f"ensemble validation accuracy: {accuracy:.3f}")
