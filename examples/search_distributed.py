"""
Title: Run the SuperWeight search on TPUs, GPUs or several CPU devices
Author: keras_swn contributors
Date created: 2026/11/30
Last modified: 2026/11/30
Description: SearchAndRefine under a tf.distribute strategy or a
keras.distribution, every phase included.
Accelerator: TPU
"""

"""
## Introduction

`keras_swn.search.SearchAndRefine` takes the object Keras itself uses for
scale-out, as its `distribution` argument:

* **TensorFlow:** a `tf.distribute` strategy. Every model of the search
  (the search model, the final model, the refined rebuild) is built and
  compiled in the strategy's scope, so each `fit` splits the global batch
  over the replicas.
* **JAX:** a `keras.distribution` distribution such as `DataParallel`. It
  is the global distribution while the search runs, so every train step
  is one SPMD program over the devices.

The gradient capture of the clustering phase and the refine pass read the
full-batch gradient, as on one device. The distribution is not part of the
saved configuration: a search started on a TPU resumes on a workstation.

This script looks for a TPU, then GPUs, and otherwise falls back to two
logical CPU devices (change with `KERAS_SWN_CPU_DEVICES`), which runs the
same code path as a multi-accelerator machine. Set
`KERAS_SWN_EXAMPLE_SMOKE=1` for a run of about a minute on a CPU.
"""

"""
## Setup

Devices must be configured before TensorFlow or JAX initialise them, so
this comes first.
"""

import os
import tempfile

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

import keras  # noqa: E402

from keras_swn.data import load_digits_dataset  # noqa: E402
from keras_swn.models import WideResNet  # noqa: E402
from keras_swn.search import SearchAndRefine  # noqa: E402

"""
## Choosing the distribution

On TensorFlow, a TPU if the cluster resolver finds one (`tpu="local"` on a
TPU VM, or the `TPU_NAME` of a TPU node), otherwise `MirroredStrategy`
over the GPUs, otherwise over logical CPU devices. On JAX, `DataParallel`
over every device of the default platform.
"""


def tensorflow_strategy():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and CPU_DEVICES > 1:
        # Before anything initialises the devices (the TPU probe does):
        # the CPU split is only used if no TPU is found.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * CPU_DEVICES
        )
    for tpu in ("local", None):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=tpu
            )
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError):
            continue
        print("Found a TPU: using TPUStrategy.")
        return tf.distribute.TPUStrategy(resolver)
    if gpus:
        print(f"Found {len(gpus)} GPU(s): using MirroredStrategy.")
        return tf.distribute.MirroredStrategy()
    print(
        "No TPU or GPU found: falling back to MirroredStrategy over "
        f"{CPU_DEVICES} logical CPU device(s)."
    )
    devices = [f"/cpu:{i}" for i in range(CPU_DEVICES)]
    return tf.distribute.MirroredStrategy(devices)


def jax_distribution():
    import jax

    devices = keras.distribution.list_devices()
    platform = jax.default_backend()
    if len(devices) < 2:
        print(f"One {platform.upper()} device: searching without one.")
        return None, 1
    print(f"DataParallel over {len(devices)} {platform.upper()} devices.")
    return keras.distribution.DataParallel(devices=devices), len(devices)


if BACKEND == "tensorflow":
    distribution = tensorflow_strategy()
    replicas = distribution.num_replicas_in_sync
    on_tpu = type(distribution).__name__.startswith("TPU")
elif BACKEND == "jax":
    distribution, replicas = jax_distribution()
    on_tpu = False
else:
    print(f"The {BACKEND!r} backend has no Keras distribution API.")
    distribution, replicas, on_tpu = None, 1, False

"""
## The input pipeline

The global batch is the per-replica batch times the number of replicas.
On TensorFlow the data is a `tf.data` pipeline of `(x, y)` batches with
`drop_remainder=True`, so every batch has the static shape XLA compiles
for (a TPU needs it), prefetched to overlap the host and the devices. The
search uses batches as given, so the pipeline shuffles itself. On JAX the
search takes the NumPy arrays, shuffles them per epoch from its `seed`,
and `DataParallel` shards each batch; the arrays are cut to whole global
batches so that every batch splits evenly over the devices.
"""

(x_train, y_train), (x_val, y_val) = load_digits_dataset(seed=0)
if SMOKE:
    x_train, y_train = x_train[:256], y_train[:256]
    x_val, y_val = x_val[:128], y_val[:128]
global_batch = 16 * replicas
print(f"{replicas} replica(s), global batch {global_batch}")


def pipeline(x, y, shuffle):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=0, reshuffle_each_iteration=True)
    data = data.batch(global_batch, drop_remainder=True)
    return data.prefetch(tf.data.AUTOTUNE)


def whole_batches(x, y):
    n = len(x) // global_batch * global_batch
    return x[:n], y[:n]


if BACKEND == "tensorflow":
    train_data = pipeline(x_train, y_train, shuffle=True)
    validation_data = pipeline(x_val, y_val, shuffle=False)
else:
    train_data = whole_batches(x_train, y_train)
    validation_data = whole_batches(x_val, y_val)

"""
## The search

The same call as on one device, plus `distribution`. On a TPU the train
steps are compiled with XLA (`jit_compile=True`). `SearchAndRefine` does
not expose `steps_per_execution` (it runs `fit` one epoch at a time and
checkpoints after each), so every step is one host round trip.
"""

search = SearchAndRefine(
    members=[WideResNet(10, 1)],
    input_shape=x_train.shape[1:],
    num_classes=10,
    budget=80_000,
    num_bins=2,
    batch_size=global_batch,
    seed=0,
    directory=tempfile.mkdtemp(),
    project_name="digits_distributed",
    plots=False,
    jit_compile=True if on_tpu else "auto",
    distribution=distribution,
)
search.search(
    train_data,
    validation_data,
    search_epochs=1 if SMOKE else 4,
    epochs=2 if SMOKE else 20,
    refine_after=1 if SMOKE else 2,
    verbose=2,
)
search.results_summary()

"""
## The result

`get_best_models` reloads the final model under the same distribution.
"""

model = search.get_best_models()[0]
groups = search.results()["groups"]
print(f"{groups} groups; {model.count_params():,} parameters")
