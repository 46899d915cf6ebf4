"""`TemplateBank`: the one layer that owns every template and coefficient."""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any
from typing import Collection
from typing import Iterator
from typing import Mapping
from typing import Sequence
from typing import cast

import keras
import numpy as np
from keras import ops

from keras_swn.api_export import swn_export
from keras_swn.bank import initial_values
from keras_swn.bank import layout
from keras_swn.bank.bank_config import TEMPLATE_FAN_IN
from keras_swn.bank.bank_config import BankConfig
from keras_swn.bank.batched import ROW_MATMUL_MIN_SEG
from keras_swn.bank.batched import BatchedComposer
from keras_swn.bank.initial_values import level_fan_in
from keras_swn.bank.initial_values import use_gains
from keras_swn.policy.layer_spec import LayerSpec
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.probe import active_probe
from keras_swn.types import BankKey
from keras_swn.types import LayerKey
from keras_swn.validation import check_instance

__all__ = [
    "TEMPLATE_FAN_IN",
    "TemplateBank",
    "coefficient_probe_key",
    "is_coefficient",
    "level_fan_in",
    "use_gains",
]


def _key(key: Sequence[int]) -> LayerKey:
    """A layer key given as any sequence (a JSON list), as a tuple."""
    return cast(LayerKey, tuple(key))


#: The name of the coefficient variable of bank `(g, w)`.
_COEFFICIENTS = re.compile(r"coefficients_g\d+_w\d+")


def is_coefficient(variable: Any) -> bool:
    """Whether `variable` is a coefficient matrix of a `TemplateBank`
    (by its name, `coefficients_g{g}_w{w}`: a bank's layer path may
    differ between models).

    Args:
        variable: a `keras.Variable`.

    Returns:
        bool.
    """
    return _COEFFICIENTS.fullmatch(str(variable.name)) is not None


def coefficient_probe_key(bank, key: LayerKey, width: int) -> tuple:
    """The probe-scope key of the coefficient use of one slot."""
    return ("coefficients", id(bank), int(key[0]), int(key[1]), int(width))


class _KernelCache:
    """The kernels of the innermost active `TemplateBank.composed` scope
    (a plain object: Keras does not track its contents).

    One stack per thread: `tf.distribute.MirroredStrategy` traces each
    replica in its own thread, and a cross-replica step inside the
    forward pass (a synchronized BatchNorm) interleaves them; a shared
    stack let one replica read the kernels another composed, and lose
    their gradients.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def stack(self) -> list[dict]:
        """The calling thread's stack of composed kernels."""
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def __deepcopy__(self, memo: dict) -> "_KernelCache":
        return _KernelCache()

    def __reduce__(self) -> tuple:
        return (_KernelCache, ())


@swn_export
class TemplateBank(keras.layers.Layer):
    """Shared trainable templates and coefficients; composes layer kernels.

    The bank turns a [`BankPlan`][keras_swn.BankPlan] into variables. For every
    bank `(g, w)` (group `g`, width level `w`) it holds one flat float32
    template vector of `P(g, w)` parameters, viewed as `K(g, w)` templates of
    `seg(g, w)` parameters each (each template's pieces held in HWIO order, so
    that composing needs no transpose:
    [`storage_order`][keras_swn.bank.layout.storage_order]; files hold the OIHW
    order), and one coefficient matrix whose rows are the coefficient vectors of
    the slots that own one (hard-shared slots read their owner's row).
    `kernel(key)` mixes each level's templates with the layer's coefficients (a
    SuperWeight) and concatenates the SuperWeights along the output and input
    channels, returning the kernel in Keras layout (HWIO for convolutions, `(in,
    out)` for dense), cast to the requested compute dtype. Every shape is a
    Python int fixed at build time, so composition compiles under XLA.

    Initialisation, chosen by `template_fan_in`:

    - `"kernel"` (default): every composed kernel starts with the scale of
      He-normal for its **own** fan-in `in * kh * kw`, whatever levels it
      is stacked from and whoever else reads them. The templates of a
      level are drawn from N(0, 2 / fan_in_level), the fan-in of the chain
      shape that introduced the level; every coefficient row starts with
      unit norm; and each use of a level by a layer is multiplied by the
      fixed gain `sqrt(fan_in_level / fan_in_layer)` (1 for the layer that
      introduced the level). The gain is a Python constant folded into the
      `1 x K` coefficient row, so it costs nothing and keeps every shape
      static.
    - `"layer"`: templates as above, orthogonal coefficient rows, no gain.
      A layer that reads a level introduced by a narrower shape (the stem
      corner, a 1x1 shortcut level) starts too large; rows of an `n x K`
      orthogonal matrix with `n > K` have norm about `sqrt(K / n)`, so
      some banks start too small.
    - `9`: the reference's N(0, 2/9) for every template entry with
      orthogonal coefficient rows and no gain; composed kernels start 1.4x
      to 11x the He-normal scale of their fan-in.

    Coefficients are rows of an orthogonal `(layers of the member in the
    bank) x K` matrix, one matrix per `(group, width, member)`, rows in
    ascending layer id (normalised to unit norm under `"kernel"`). Every
    draw is seeded from `seed` and the identity of the variable, so the
    same seed gives the same initial values on every backend, and every
    template entry is initialised (the reference leaves the tail of banks
    whose size is not a multiple of 9 uninitialised).

    Args:
        specs: every shared layer ([`LayerSpec`][keras_swn.LayerSpec] or its
            dict form).
        policy: [`SharingPolicy`][keras_swn.SharingPolicy] (or its dict form).
        budget: int, the template budget (bank parameters only).
        bank_size: int, the maximum number of templates a layer mixes
            (`K` cap, 1 to 8).
        template_fan_in: `"kernel"` (default), `"layer"` or `9` (the
            reference), see above.
        chain_sort: `None` (default: the policy's chain order), `"stable"` or
            `"reference"`; see
            [`BankPlan.create`][keras_swn.bank.plan.BankPlan.create].
        on_over_budget: `"raise"` or `"report"` (F6).
        seed: int or None, the root seed of every initial value.
        bank_config: a [`keras_swn.BankConfig`][] (or its
            dict form) holding all of `budget` ... `seed`, instead of passing
            them one by one. The layer keeps it as `bank_config` (a seed drawn
            if it has none; `chain_sort` as given, the plan's order is
            `chain_sort`).

    Examples:
        >>> specs = [keras_swn.LayerSpec(0, 0, "conv2d", (8, 3, 3, 3)),
        ...          keras_swn.LayerSpec(0, 1, "conv2d", (8, 8, 3, 3))]
        >>> policy = keras_swn.SharingPolicy(groups=[[0, 0]])
        >>> bank = keras_swn.TemplateBank(specs, policy, budget=2000, seed=0)
        >>> bank.build()
        >>> tuple(bank.kernel((0, 1)).shape)
        (3, 3, 8, 8)
    """

    # Made by `build`.
    templates: dict[BankKey, keras.Variable]
    coefficients: dict[BankKey, keras.Variable]

    def __init__(
        self,
        specs: Sequence[LayerSpec | Mapping],
        policy: SharingPolicy | Mapping,
        budget: int | None = None,
        *,
        bank_size: int = 8,
        template_fan_in: int | str = "kernel",
        chain_sort: str | None = None,
        on_over_budget: str = "raise",
        seed: int | None = None,
        bank_config: BankConfig | Mapping | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # A `BankConfig` passed whole (what `SWNModel` does) is kept as is,
        # so the model and its bank hold the same object.
        config = BankConfig.from_arguments(locals())
        if config.seed is None:
            config = config.resolved()
        self.bank_config = config
        self.specs = tuple(
            s if isinstance(s, LayerSpec) else LayerSpec.from_dict(s)
            for s in specs
        )
        if isinstance(policy, Mapping):
            policy = SharingPolicy.from_dict(policy)
        self.policy = check_instance("policy", policy, SharingPolicy)
        self.plan = config.plan(self.specs, policy)
        self._gains = {
            key: use_gains(self.plan, key, config.template_fan_in)
            for key in self.plan.layers
        }
        # Static lookup tables: coefficient row of every owner slot.
        self._rows: dict[BankKey, dict[LayerKey, int]] = {}
        for m, l, w in self.plan.owner_slots:
            g = self.plan.layers[(m, l)].group
            rows = self._rows.setdefault((g, w), {})
            rows[(m, l)] = len(rows)
        self._batched = BatchedComposer(
            self.plan,
            self._rows,
            self._gains,
            self.policy.owner,
            # PyTorch runs eagerly: each extra matmul is a Python-level op,
            # and one matmul per window measured faster there.
            row_matmul_min_seg=(
                None
                if keras.backend.backend() == "torch"
                else ROW_MATMUL_MIN_SEG
            ),
        )
        self._kernel_cache = _KernelCache()

    # The bank options, read from `bank_config` (read-only).
    budget = property(lambda self: self.bank_config.budget)
    bank_size = property(lambda self: self.bank_config.bank_size)
    template_fan_in = property(lambda self: self.bank_config.template_fan_in)
    on_over_budget = property(lambda self: self.bank_config.on_over_budget)
    seed = property(lambda self: cast(int, self.bank_config.seed))

    @property
    def chain_sort(self) -> str:
        """The plan's chain order (`chain_sort=None`: the policy's)."""
        return self.plan.chain_sort

    # ------------------------------------------------------------------
    def build(self, input_shape=None):
        if self.built:
            return
        self.templates = {}
        self.coefficients = {}
        for (g, w), bank in self.plan.banks.items():
            self.templates[(g, w)] = self.add_weight(
                name=f"templates_g{g}_w{w}",
                shape=(bank.size,),
                initializer=self._template_init(g, w),
                dtype="float32",
            )
        for (g, w), rows in self._rows.items():
            k = self.plan.banks[(g, w)].templates
            self.coefficients[(g, w)] = self.add_weight(
                name=f"coefficients_g{g}_w{w}",
                shape=(len(rows), k),
                initializer=self._coefficient_init(g, w),
                dtype="float32",
            )
        self.built = True

    def _template_init(self, g: int, w: int):
        value = initial_values.templates(
            self.plan, (g, w), self.template_fan_in, self.seed
        )
        return lambda shape, dtype=None: ops.convert_to_tensor(value, dtype)

    def _coefficient_init(self, g: int, w: int):
        value = initial_values.coefficients(
            self.plan,
            (g, w),
            self._rows[(g, w)],
            self.template_fan_in,
            self.seed,
        )
        return lambda shape, dtype=None: ops.convert_to_tensor(value, dtype)

    @property
    def coefficient_rows(self) -> dict:
        """Which row of each coefficient variable holds which slot's vector.

        `{(group, width): {owner (member, layer_id): row}}`."""
        return {key: dict(rows) for key, rows in self._rows.items()}

    # ------------------------------------------------------------------
    def storage_order(self, group: int, width: int) -> np.ndarray:
        """How bank `(group, width)` is stored: `stored = oihw[order]`.

        Each template's pieces are held in HWIO order, so composing needs no
        transpose ([`keras_swn.bank.layout`][]);
        `layout.to_oihw(values, order)` gives the spec's OIHW order back, the
        order files hold.

        Args:
            group: int, the group.
            width: int, the width level.

        Returns:
            An int64 array of the bank's size.
        """
        return layout.bank_storage_order(self.plan, (group, width))

    def _check_key(self, key: LayerKey) -> LayerKey:
        key = _key(key)
        if not self.built:
            raise AttributeError(
                "The bank has no variables yet. Call `bank.build()` first."
            )
        if key not in self.plan.layers:
            raise KeyError(
                f"Unknown layer key {key}. Expected one of "
                f"{sorted(self.plan.layers)[:8]}..."
            )
        return key

    def kernel_oihw(self, key: LayerKey):
        """The composed kernel of layer `key` in OIHW layout, float32.

        Args:
            key: `(member, layer_id)` of the layer.

        Returns:
            kernel (Tensor): the `(out, in, kh, kw)` kernel.

        Raises:
            AttributeError: before the bank is built.
            KeyError: if the bank has no such layer.
        """
        kernel = self.kernel(key)
        if self.plan.layers[_key(key)].kind == "dense":
            kernel = ops.reshape(kernel, (1, 1) + tuple(kernel.shape))
        return ops.transpose(kernel, (3, 2, 0, 1))

    def compose_all(self, keys: Collection[LayerKey] | None = None) -> dict:
        """Every layer's kernel (or those of `keys`), batched.

        Per bank and template window, one matmul of all the coefficient
        rows that read it with the templates (a SuperWeight read by several
        slots computed once); every kernel is then cut from the results by
        static slices and assembled in Keras layout. Active coefficient
        probes are added to their slots' rows.

        Args:
            keys: the `(member, layer_id)` keys to compose; None: all.

        Returns:
            `{key: kernel}`, float32, in the layout of `kernel(key)`.
        """
        if keys is None:
            keys = self.plan.layers
        keys = sorted(self._check_key(key) for key in keys)
        return self._batched.compose(ops, self, keys, self._probe)

    def _probe(self, key: LayerKey, width: int) -> Any:
        """The active coefficient probe of one slot, or None."""
        return active_probe(coefficient_probe_key(self, key, width))

    @contextlib.contextmanager
    def composed(
        self, members: Collection[int] | None = None
    ) -> Iterator[dict]:
        """A scope in which `kernel(key)` reads kernels composed once.

        Composed by `compose_all`, for the layers of `members` (None: all
        members).

        [`SWNModel.call`][keras_swn.models.swn_model.SWNModel.call] runs its
        members in this scope, so that a forward pass composes every kernel in
        one batched pass. Layers outside the scope, or not composed in it,
        compose per layer as before.

        Args:
            members: the member indices to compose, or None for all.

        Yields:
            The composed kernels, by layer key.
        """
        keys = [
            key
            for key in self.plan.layers
            if members is None or key[0] in members
        ]
        kernels = self.compose_all(keys)
        self._kernel_cache.stack.append(kernels)
        try:
            yield kernels
        finally:
            self._kernel_cache.stack.pop()

    def kernel(self, key: LayerKey, dtype: Any = None) -> Any:
        """The composed kernel of layer `key` in Keras layout.

        Inside a `composed` scope, the kernel composed by that scope's
        batched pass.

        Args:
            key: `(member, layer_id)` of the layer.
            dtype: the dtype to cast to (a layer's compute dtype); the
                variables stay float32.

        Returns:
            HWIO `(kh, kw, in, out)` for a convolution, `(in, out)` for a
            dense layer.
        """
        cache = self._kernel_cache.stack
        kernel = cache[-1].get(_key(key)) if cache else None
        if kernel is None:
            kernel = self._kernel_per_layer(key)
        if dtype is not None and dtype != "float32":
            kernel = ops.cast(kernel, dtype)
        return kernel

    def _kernel_per_layer(self, key: LayerKey) -> Any:
        """`kernel(key)`, float32, composed on its own: the batched pass
        over the rows of this one layer."""
        key = self._check_key(key)
        return self._batched.compose(
            ops, self, [key], self._probe, own_rows=True
        )[key]

    def kernel_shape(self, key: LayerKey) -> tuple[int, ...]:
        """The Keras-layout shape of `kernel(key)`.

        Args:
            key: `(member, layer_id)` of the layer.

        Returns:
            `(kh, kw, in, out)`, or `(in, out)` for a dense layer.
        """
        out, inp, kh, kw = self.plan.layers[_key(key)].shape
        if self.plan.layers[_key(key)].kind == "dense":
            return (inp, out)
        return (kh, kw, inp, out)

    # ------------------------------------------------------------------
    # Files hold the templates in the spec's OIHW order, whatever the order
    # in memory, so that files do not depend on `keras_swn.bank.layout`.
    def _own_variables(self) -> list:
        """The variables in the order Keras saves a layer's own."""
        return self._trainable_variables + self._non_trainable_variables

    def _template_slots(self) -> dict[int, BankKey]:
        """`{index of a template variable in the saved list: its bank}`."""
        ids = {id(v): key for key, v in self.templates.items()}
        return {
            i: ids[id(v)]
            for i, v in enumerate(self._own_variables())
            if id(v) in ids
        }

    def save_own_variables(self, store) -> None:
        """Write the variables as Keras does, the templates in OIHW order."""
        slots = self._template_slots()
        for i, variable in enumerate(self._own_variables()):
            value = ops.convert_to_numpy(variable)
            if i in slots:
                value = layout.to_oihw(value, self.storage_order(*slots[i]))
            store[str(i)] = value

    def load_own_variables(self, store) -> None:
        """Read the variables written by `save_own_variables`.

        Templates are in OIHW order, the order of every file keras_swn has
        written."""
        values = {key: store[key] for key in store.keys()}
        for i, (g, w) in self._template_slots().items():
            value = values.get(str(i))
            if value is not None and np.shape(value) == (
                self.plan.banks[(g, w)].size,
            ):
                values[str(i)] = layout.to_storage(
                    value, self.storage_order(g, w)
                )
        super().load_own_variables(values)

    def compute_output_shape(self, input_shape=None):
        return None

    def get_config(self):
        return {
            **super().get_config(),
            "specs": [s.to_dict() for s in self.specs],
            "policy": self.policy.to_dict(),
            "bank_config": self.bank_config.to_dict(),
        }
