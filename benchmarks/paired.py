"""Paired training for the benchmarks: data, schedule, evaluation, baselines.

Rows of a benchmark table are *paired* when every row of a seed trains on
the same batches in the same order with the same augmentation draws, so
that row-to-row differences are not data noise:

- `Data`: the images of an `.npz`; `Data.train(seed, batch_size)` a
  `tf.data` pipeline whose epoch `e` is a pure function of `(seed, e)`
  (pad 4 + random crop, random flip, per-channel standardisation:
  `keras_swn.data.augment_image`), `Data.validation` the evaluation one.
- `epoch_schedule`: the callback that sets, at the start of every epoch,
  the data order of that epoch and a cosine learning rate
  (`keras_swn.search.learning_rate_at`).
- `evaluate`: member and ensemble accuracy (the mean of the member
  softmaxes, `keras_swn.ensembles.evaluate_ensemble`).
- Baselines: `random_policy` (a random grouping of a searched row's group
  count), `plain_wrn` (`keras_swn.models.WideResNet` with stock,
  seeded He-normal `Conv2D`s, explicit channels allowed), its parameter
  count and `matched_width` (the width matching a parameter count).

Only the public API of keras_swn; TensorFlow for the pipelines.
"""

from __future__ import annotations

import numpy as np

#: Data-order ids of search-training epochs (`epoch_schedule`).
SEARCH_ORDER = 10_000
#: The augmentation of `Data.train`, in words.
AUGMENTATION = (
    "pad 4 + random crop, random horizontal flip, per-channel train mean/std"
)
#: What pairs the rows of a seed (the data of `Data.train` and
#: `epoch_schedule`; the initial values are the library's seeding).
PAIRING = (
    "epoch e of every row of a seed: the same order and augmentation draws "
    "(search epochs their own); same initial values for the members' own "
    "variables and for every template whose group id and shape match"
)


class Data:
    """The training and evaluation images, statistics and pipelines.

    Without `eval_path`: a stratified 80/20 split of `path` (`split_seed`,
    `keras_swn.data.load_npz`). With it: all of `path` trains and
    `eval_path` is the evaluation set. `subset=(n_train, n_val)`: a seeded
    random subset of each. `mean` and `std` are the training images'
    per-channel statistics (pixels scaled to [0, 1]).
    """

    def __init__(self, path, split_seed, subset=None, eval_path=None):
        from keras_swn.data import load_npz

        if eval_path:
            (x, y), (xv, yv) = _load_xy(path), _load_xy(eval_path)
        else:
            (x, y), (xv, yv) = load_npz(path, seed=split_seed)
        self.num_classes = int(max(y.max(), yv.max())) + 1
        if subset:  # a seeded random subset: the split may be ordered
            rng = np.random.default_rng(split_seed)
            keep = rng.permutation(len(x))[: subset[0]]
            keep_val = rng.permutation(len(xv))[: subset[1]]
            x, y, xv, yv = x[keep], y[keep], xv[keep_val], yv[keep_val]
        self.x, self.y, self.x_val, self.y_val = x, y, xv, yv
        self.input_shape = tuple(int(d) for d in x.shape[1:])
        scale = 255.0 if x.dtype == np.uint8 else 1.0
        pixels = x.reshape(-1, x.shape[-1]).astype(np.float64) / scale
        self.mean = [float(v) for v in pixels.mean(axis=0)]
        self.std = [float(v) for v in pixels.std(axis=0)]

    def train(self, seed: int, batch_size: int, outputs: int = 0):
        """`(dataset, epoch)`: augmented batches whose order and draws are
        a pure function of `(seed, epoch.value)` (a `tf.Variable` the
        schedule callback sets per epoch). `outputs` > 0 repeats the
        labels for a plain multi-output model."""
        import tensorflow as tf

        from keras_swn.data import augment_image

        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        x, y = tf.constant(self.x), tf.constant(self.y.astype(np.int32))
        n, root = len(self.y), tf.constant(seed, tf.int64)

        def one_epoch(_):
            e = epoch.read_value()
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([root, e])
            )
            draws = tf.random.stateless_uniform(
                [n], tf.stack([root + 7_919, e]), None, None, tf.int64
            )
            return tf.data.Dataset.from_tensor_slices((order, draws))

        def example(i, r):
            image = augment_image(
                tf.gather(x, i),
                tf.stack([r, root]),
                mean=self.mean,
                std=self.std,
                padding=4,
                cutout=0,
            )
            return image, tf.gather(y, i)

        ds = tf.data.Dataset.range(1).flat_map(one_epoch)
        ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size)
        if outputs:
            ds = ds.map(lambda x, y: (x, (y,) * outputs))
        return ds.prefetch(tf.data.AUTOTUNE), epoch

    def validation(self, batch_size: int):
        from keras_swn.data import make_dataset

        return make_dataset(
            self.x_val,
            self.y_val,
            batch_size=batch_size,
            training=False,
            normalization=(self.mean, self.std),
        )


def _load_xy(path):
    """`x` (as stored, e.g. uint8) and `y` (int) of an `.npz`, unsplit."""
    with np.load(path, allow_pickle=False) as f:
        return f["x"], f["y"].astype(np.int64).reshape(-1)


def trainable_params(model) -> int:
    """Trainable parameters of `model`, every variable counted once."""
    unique = {id(v): v for v in model.trainable_variables}.values()
    return sum(int(np.prod(v.shape)) for v in unique)


def evaluate(model, data: Data, batch_size: int):
    """`(member accuracies, ensemble accuracy)` of `model` on
    `data.validation`: the ensemble predicts the mean of the member
    softmaxes (one member: its own accuracy)."""
    from keras_swn.ensembles import evaluate_ensemble

    outputs = model.predict(data.validation(batch_size), verbose=0)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    probs = []
    for logits in outputs:
        z = np.asarray(logits, dtype=np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        probs.append(z / z.sum(axis=1, keepdims=True))
    result = evaluate_ensemble(probs, data.y_val)
    return [m.top1 for m in result.members], result.ensemble.top1


def epoch_schedule(learning_rate, epochs, epoch_var, search=None):
    """A Keras callback that sets, at the start of every epoch `e`, the
    learning rate (a cosine from `learning_rate` to 0 over `epochs`) and
    `epoch_var` (the data order of `Data.train`) to `e`; during the search
    training of `search` (a `SearchAndRefine`) the rate is the constant
    `learning_rate` and the order `SEARCH_ORDER + e`."""
    import keras

    from keras_swn.search import learning_rate_at

    class Schedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            phase = None if search is None else search.phase
            if phase is not None and str(phase) == "search_training":
                lr, order = learning_rate, SEARCH_ORDER + epoch
            else:
                lr = learning_rate_at(
                    epoch,
                    epochs,
                    schedule="cosine",
                    learning_rate=learning_rate,
                )
                order = epoch
            self.model.optimizer.learning_rate = lr
            epoch_var.assign(order)

    return Schedule()


def wrn_channels(width: float) -> list[int]:
    """`[16, 16 k, 32 k, 64 k]`, rounded, for a float widening factor."""
    return [16] + [max(1, int(round(c * width))) for c in (16, 32, 64)]


def plain_wrn_params(depth, channels, in_channels, num_classes) -> int:
    """Trainable parameters of the plain WRN of `channels`."""
    from keras_swn.models import WideResNet

    wrn = WideResNet(depth, channels=channels)
    return wrn.unshared_params((1, 1, in_channels), num_classes).params_unshared


def plain_wrn(depth, channels, input_shape, num_classes, *, seed, name=None):
    """`keras_swn.models.WideResNet(depth, channels=channels)` as a plain
    Keras model: stock `Conv2D` kernels (explicit `ZeroPadding2D`, as
    `keras_swn.export.to_keras` writes them), He-normal for their fan-in,
    the `i`-th convolution seeded `seed * 10_000 + i` and the head
    `seed * 10_000 + <number of convolutions>`."""
    import keras

    from keras_swn.models import LayerFactory
    from keras_swn.models import WideResNet

    def he_normal(s):
        mode = ("fan_in", "untruncated_normal")
        return keras.initializers.VarianceScaling(2.0, *mode, seed=s)

    class PlainLayers(LayerFactory):
        def conv2d(
            self, filters, kernel_size, *, strides=1, padding="valid", name=None
        ):
            explicit = not isinstance(padding, str)
            conv = keras.layers.Conv2D(
                filters,
                kernel_size,
                strides=strides,
                padding="valid" if explicit else padding,
                use_bias=False,
                name=name,
                kernel_initializer=he_normal(seed * 10_000 + len(self.created)),
            )
            self.created.append(("conv2d", name, conv))
            if not explicit:
                return conv
            pad = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")
            return lambda x: conv(pad(x))

    wrn = WideResNet(depth, channels=channels)
    head_seed = seed * 10_000 + len(wrn.layer_specs(input_shape))
    inputs = keras.Input(input_shape)
    outputs = wrn(inputs, PlainLayers(None, 0, head_seed), num_classes)
    return keras.Model(inputs, outputs, name=name)


def matched_width(depth, target, in_channels, num_classes):
    """The width `k` (step 0.01) whose plain WRN count is closest to
    `target`; returns `(k, channels, params)`."""
    best = None
    for i in range(1, 1601):
        k, channels = i / 100, wrn_channels(i / 100)
        params = plain_wrn_params(depth, channels, in_channels, num_classes)
        if best is None or abs(params - target) < abs(best[2] - target):
            best = (k, channels, params)
        if params > 2 * target:
            break
    return best


def random_policy(specs, bins, budget, counts, seed):
    """A random grouping of the layers `specs` (a control for the search).

    `counts[bin]` groups in every initial bin of member 0 (`bins`: the
    bins' `groups` table; every group gets a layer, the rest are drawn
    uniformly), the other members attached as the search attaches them
    (`keras_swn.analysis.attach_members`, random similarities); redrawn
    until the plan fits `budget`, at most 1000 times. `seed` seeds a
    `numpy` generator. Returns `(policy, draws)`.
    """
    import keras_swn
    from keras_swn.analysis import attach_members

    rng = np.random.default_rng(seed)
    by_bin = {}
    for lid, b in enumerate(bins[0]):
        by_bin.setdefault(b, []).append(lid)
    last = None
    for draw in range(1, 1001):
        member0, next_id = [0] * len(bins[0]), 0
        for b in sorted(by_bin):
            layers = list(rng.permutation(by_bin[b]))
            k = min(counts.get(b, 1), len(layers))
            labels = list(range(k)) + list(
                rng.integers(0, k, size=len(layers) - k)
            )
            for lid, label in zip(layers, labels):
                member0[int(lid)] = next_id + int(label)
            next_id += k
        attached = attach_members(
            specs, bins, member0, lambda a, b: float(rng.random())
        )
        policy = keras_swn.SharingPolicy.from_partners(
            specs, attached.groups, attached.partners
        )
        try:
            keras_swn.BankPlan.create(specs, policy, budget)
        except ValueError as e:
            last = e
            continue
        return policy, draw
    raise ValueError(
        f"No random grouping with {counts} groups per bin fits the budget "
        f"{budget:,} in 1000 draws; last: {last}"
    )


def same_partition(a, b) -> bool:
    """Whether two `groups` tables group the layers the same way."""
    mapping, back = {}, {}
    for ga, gb in zip(sum(map(list, a), []), sum(map(list, b), [])):
        if mapping.setdefault(ga, gb) != gb or back.setdefault(gb, ga) != ga:
            return False
    return True
