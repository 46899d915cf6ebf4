"""`SearchAndRefine`: the SWN pipeline as a KerasTuner-shaped search object.

The runner half of the Oracle/Tuner split (style-guide.md, conventions
15-17): `keras_swn.search.oracle.PhaseOracle` says which step runs next and
holds the JSON state; this module builds, fits and analyses the
`SWNModel`s and writes every file under `directory/project_name`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from typing import Any
from typing import Mapping
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_swn import seeding
from keras_swn.analysis.clustering import BUDGET_CHECKS
from keras_swn.analysis.clustering import CLUSTERINGS
from keras_swn.analysis.clustering import SCHEDULES
from keras_swn.analysis.clustering import SearchResult
from keras_swn.analysis.clustering import attach_members
from keras_swn.analysis.clustering import search_groups
from keras_swn.analysis.refine import refine_partition
from keras_swn.analysis.similarity import SIGNALS
from keras_swn.analysis.similarity import to_oihw
from keras_swn.bank.budget_report import BudgetReport
from keras_swn.bank.plan import BankPlan
from keras_swn.bank.plan import layer_levels
from keras_swn.bank.plan import need_proxy
from keras_swn.bank.plan import one_template_total
from keras_swn.io_utils import atomic_write
from keras_swn.io_utils import atomic_write_json
from keras_swn.io_utils import atomic_write_text
from keras_swn.models.member_builder import MemberBuilder
from keras_swn.models.rebuild import transfer_optimizer_state
from keras_swn.models.swn_model import SWNModel
from keras_swn.models.swn_model import clone_swn_model
from keras_swn.policy.bins import initial_bins
from keras_swn.policy.sharing_policy import SharingPolicy
from keras_swn.search import plots
from keras_swn.search.optim import REFERENCE_MILESTONES
from keras_swn.search.optim import ReferenceSGD
from keras_swn.search.optim import check_schedule
from keras_swn.search.optim import learning_rate_at
from keras_swn.search.oracle import Phase
from keras_swn.search.oracle import PhaseOracle
from keras_swn.search.oracle import Sharing
from keras_swn.search.oracle import Step
from keras_swn.search.oracle import check_sharing

_FORMAT = "keras_swn.SearchAndRefine"
_VERSION = 1
_STATE = "state.json"
_CHECKPOINTS = "checkpoints"
_PLOTS = "plots"
_MODEL = "model.keras"

#: The values of `template_fan_in` (the template initialisation).
TEMPLATE_FAN_IN = ("kernel", "layer", 9)
#: Defaults of `search()` as fractions of `epochs` outside reference mode:
#: the refine step after 10 of the reference's 200 epochs.
_REFINE_FRACTION = 0.05
_SEARCH_EPOCHS = 20
_REFERENCE_REFINE_AFTER = 10


def _fail(name: str, expected: str, value: Any) -> ValueError:
    return ValueError(
        f"Invalid value for argument `{name}`. {expected} "
        f"Received: {name}={value!r}"
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(name, f"Expected an int >= {minimum}.", value)
    if value < minimum:
        raise _fail(name, f"Expected an int >= {minimum}.", value)
    return int(value)


def _check_real(name: str, value: Any, *, positive: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(float(value))
        or (positive and not float(value) > 0)
    ):
        what = "a finite number > 0" if positive else "a finite real number"
        raise _fail(name, f"Expected {what}.", value)
    return float(value)


def _check_choice(name: str, value: Any, choices: Sequence) -> Any:
    if value not in choices:
        raise _fail(name, f"Expected one of {tuple(choices)}.", value)
    return value


def _floats(logs: Mapping | None) -> dict:
    return {
        str(k): float(ops.convert_to_numpy(v)) for k, v in (logs or {}).items()
    }


class _Data:
    """Training or validation data: arrays `(x, y)` or batches."""

    def __init__(self, data: Any, name: str):
        self.name = name
        self.x = self.y = self.dataset = None
        if (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and hasattr(data[0], "shape")
        ):
            self.x = np.asarray(data[0])
            self.y = np.asarray(data[1])
            if len(self.x) != len(self.y) or len(self.x) == 0:
                raise _fail(
                    name,
                    "Expected (x, y) arrays of the same non-zero length.",
                    f"(x of {len(self.x)}, y of {len(self.y)})",
                )
        elif data is None or isinstance(data, (str, bytes, Mapping)):
            raise _fail(
                name,
                "Expected a tuple of arrays (x, y), a tf.data.Dataset or an "
                "iterable of (x, y) batches.",
                type(data).__name__ if data is not None else None,
            )
        elif not hasattr(data, "__iter__"):
            raise _fail(
                name,
                "Expected a tuple of arrays (x, y), a tf.data.Dataset or an "
                "iterable of (x, y) batches.",
                type(data).__name__,
            )
        else:
            self.dataset = data

    @property
    def arrays(self) -> bool:
        return self.x is not None

    def permuted(self, seed: int, tag: str, *identity: int):
        """The arrays in a seeded order (a pure function of the ids)."""
        perm = seeding.rng_for(seed, tag, *identity).permutation(len(self.x))
        return self.x[perm], self.y[perm]

    def fit_kwargs(self, batch_size: int) -> dict:
        if self.arrays:
            return {"x": self.x, "y": self.y, "batch_size": batch_size}
        return {"x": self.dataset}

    def validation(self, batch_size: int):
        return (self.x, self.y) if self.arrays else self.dataset


def _own_variables(member) -> list:
    """A member's own trainable variables (BatchNorm, head, biases)."""
    found = []
    for layer in member.layers:
        if getattr(layer, "layer_key", None) is not None:
            bias = getattr(layer, "bias", None)
            if bias is not None and getattr(bias, "trainable", False):
                found.append(bias)
            continue
        found.extend(layer.trainable_variables)
    return found


def _transfer_optimizer_state(old: SWNModel, new: SWNModel) -> None:
    """Optimizer state of `old` into `new` after a refine rebuild (§3.2):
    `keras_swn.models.rebuild.transfer_optimizer_state`, plus the current
    learning rate (set per epoch by the search)."""
    transfer_optimizer_state(old, new)
    new.optimizer.learning_rate = float(
        ops.convert_to_numpy(old.optimizer.learning_rate)
    )


class _StepCallback(keras.callbacks.Callback):
    """Ends `fit` after one epoch and checkpoints it (state written)."""

    def __init__(self, runner: "SearchAndRefine", step: Step):
        super().__init__()
        self.runner = runner
        self.step = step

    def on_epoch_end(self, epoch, logs=None):
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        self.runner._complete_epoch(self.step, _floats(logs))
        self.model.stop_training = True


class SearchAndRefine:
    """Search SuperWeight clusters under a budget, train, refine: resumably.

    The whole SWN pipeline of swn-algorithm.md (Appendix A) behind the
    surface of a KerasTuner tuner:

    1. **Search training** (§2.1-§2.2): a model whose groups are the
       initial bins, one coefficient vector per bank hard-shared by every
       layer, trained for `search_epochs` on member 0 and the first member
       of each new depth (the others keep their BatchNorm and head at
       their initial values).
    2. **Clustering** (§2.3-§2.6): each shared layer's dL/dkernel on one
       batch (`capture_batches`) with BatchNorm in inference mode;
       member 0's layers clustered per bin by cosine similarity, the
       threshold lowered until the groups fit `budget`; the other members
       attached. The search model is then thrown away.
    3. **Final training** (§3.1): an `SWNModel` built afresh from the
       learned policy, trained for `epochs`.
    4. **Refine** (§3.2) after `refine_after` epochs: one inference-mode
       pass accumulates every coefficient slot's gradient; hard-shared
       vectors whose users disagree (cosine <= `refine_threshold`) are
       split; the model is rebuilt with its trained values and training
       goes on.

    Training uses the reference's optimizer (`keras_swn.search.ReferenceSGD`):
    SGD with Nesterov momentum 0.9 and coupled L2 weight decay on
    everything but the coefficients (once per shared variable). The
    learning rate is set at the start of every epoch by a schedule that
    fits the run: by default a step schedule whose milestones are 0.3, 0.6
    and 0.8 of `epochs` (the reference's epochs 60, 120 and 160 of 200),
    or a cosine with `search(schedule="cosine")` (see `search`).

    **The budget is checked before any training.** The constructor raises
    a `ValueError` naming `budget` when even the least-demanding grouping
    the search can return (every initial bin merged into one group) needs
    more template parameters than `budget`. With `budget_check="exact"`
    (the default) the threshold loop measures each grouping by its exact
    one-template total, so the grouping it returns always fits the plan
    built from it: with the default `clustering`, a search that starts
    never fails on the budget after its training. With `"proxy"` (the
    reference's `need`, selected by `reference_compatible=True`) the loop
    can stop at a grouping whose exact plan is over budget, which is then
    reported only after the search training.

    **Sharing regimes** (§3.3), named by `sharing`:
    `"learned"` (search; member 0 soft, students hard-shared with their
    matched layer; refine), `"learned_no_refine"`, `"bins_hard"` (no
    search: initial bins, every bank one hard-shared vector; refine) and
    `"soft"` (search; every layer its own coefficients; no refine).

    **State and resume.** After every epoch and every phase the state is
    written under `directory/project_name`: the model weights and the
    optimizer state (`checkpoints/*.npz`), the policy, the search and
    refine results, and `state.json` (the `PhaseOracle` state, the
    configuration and the history), written last and atomically. A new
    `SearchAndRefine` with the same arguments and `overwrite=False`
    resumes from the last completed epoch or phase. Data order is a pure
    function of `seed` and the epoch (arrays are shuffled by the search,
    not by `fit`), so on TensorFlow (CPU) a resumed search ends with the
    same policy and bit-identical weights as an uninterrupted one. On JAX
    and PyTorch the policy and the state restored at each checkpoint are
    identical as well; later weights agree to float tolerance wherever
    the backend's kernels are not bitwise deterministic. With a
    `tf.data.Dataset` or other iterable, resuming is exact only if the
    dataset yields the same batches every time it is iterated.

    Files: `policy.json`, `search_result.json`, `refine.json`,
    `budget_report.json` / `.txt`, `results.json`, `history.json`,
    `model.keras` (the final model; `get_best_models`), and
    `plots/*.png` (similarity heatmap per bin with the clusters boxed,
    layer -> group map, refine cosine histogram).

    Args:
        members: list of member builders, deepest first (e.g.
            `[keras_swn.models.WideResNet(28, 7), WideResNet(16, 4)]`).
        input_shape: the shape of one input, e.g. `(32, 32, 3)`.
        num_classes: int >= 2.
        budget: int > 0, the template budget (bank parameters only).
        directory: str, the parent folder of the project folder.
        project_name: str, the project folder name.
        overwrite: bool; True deletes an existing project folder first,
            False resumes it (its configuration must match).
        seed: int, the root seed of initial values, data order, the
            capture batch and the refine pass.
        num_bins: int, initial bins `B` (§1.3).
        threshold_schedule: which clustering thresholds the search tries:
            `"fill"` (the default: the least-merged grouping whose one
            template per bank takes at most `group_share` of the budget;
            the rest pays for more templates per bank) or `"step"` (the
            reference's: from `threshold_start` down by
            `threshold_decrement` until the grouping fits the budget;
            selected by `reference_compatible=True`).
        group_share: float in (0, 1], the share of the budget the groups
            may take under `"fill"` (0.5: about two templates per bank).
        threshold_start: float, the first clustering threshold of
            `"step"` (0.1).
        threshold_decrement: float > 0, the threshold step of `"step"`
            (0.05).
        clustering: `"connected_components"` (default) or `"reference"`.
        signal: `"gradient"` (default), `"gradient+weight"` or
            `"parameter"` (the SSN-style baseline, no gradient capture).
        capture_batches: int, batches of gradient capture (§2.3: 1).
        batch_size: int, the batch size of training, capture and refine
            (128).
        refine_threshold: float, the refine cosine threshold (README 0.9).
        coefficient_threshold: float or None: gate student coefficient
            sharing at search time (§2.5); also trains every member
            during the search.
        budget_check: the measure of the clustering threshold loop:
            `"exact"` (the default: the one-template total of the
            restacked groups, the measure the plan is built with) or
            `"proxy"` (the reference's `need`, the sum of each group's
            largest kernel, which ignores cropping waste; the default
            with `reference_compatible=True`). See "The budget is checked
            before any training" above.
        chain_sort: `"stable"` (default) or `"reference"` (§1.4).
        template_fan_in: the template initialisation, passed to
            `SWNModel`: `"kernel"` (the default: every composed kernel
            starts with the He-normal scale of its own fan-in), `"layer"`
            or `9` (the reference: every template entry N(0, 2/9),
            selected by `reference_compatible=True`).
        bank_size: int in 1..8.
        on_over_budget: `"raise"` (default) or `"report"`.
        sharing: the regime (see above), default `"learned"`.
        reference_compatible: bool; True selects `clustering="reference"`,
            `chain_sort="reference"`, `template_fan_in=9` and
            `budget_check="proxy"` (§0.6); passing another value for one
            of these as well is an error. It also makes the reference's
            schedule the default of `search` (step, milestones at epochs
            60, 120 and 160, refine after 10 epochs).
        plots: bool, write the PNG plots.
        jit_compile: passed to `compile` (`"auto"`).
        run_eagerly: passed to `compile` (False).

    Examples:
        >>> (x, y), (x_val, y_val) = (
        ...     keras_swn.data.load_digits_dataset(seed=0))
        >>> import tempfile
        >>> search = keras_swn.search.SearchAndRefine(
        ...     members=[keras_swn.models.WideResNet(10, 1)],
        ...     input_shape=(8, 8, 1), num_classes=10, budget=80_000,
        ...     directory=tempfile.mkdtemp(), project_name="digits",
        ...     sharing="learned_no_refine", batch_size=32, plots=False,
        ...     run_eagerly=True)
        >>> search.search((x[:64], y[:64]), (x_val[:32], y_val[:32]),
        ...               search_epochs=1, epochs=1, verbose=0)
        >>> search.policy.num_members
        1

        A stock KerasTuner tuner can drive it over budgets, thresholds or
        bins: override `run_trial` and return the metric.

        ```python
        import keras_tuner as kt

        class SWNTuner(kt.GridSearch):
            def run_trial(self, trial, train, val):
                hp = trial.hyperparameters
                search = keras_swn.search.SearchAndRefine(
                    members=[WideResNet(16, 4), WideResNet(10, 2)],
                    input_shape=(32, 32, 3), num_classes=10,
                    budget=hp.Choice("budget", [300_000, 600_000]),
                    threshold_start=hp.Choice("threshold", [0.1, 0.3]),
                    num_bins=hp.Choice("bins", [2, 4]),
                    directory=self.project_dir,
                    project_name=f"trial_{trial.trial_id}")
                search.search(train, val, search_epochs=5, epochs=30,
                              refine_after=5)
                return search.results()["val_ensemble_accuracy"]

        tuner = SWNTuner(
            objective=kt.Objective("val_ensemble_accuracy", "max"),
            directory="tuning", project_name="swn")
        tuner.search(train=(x, y), val=(x_val, y_val))
        ```
    """

    def __init__(
        self,
        members: Sequence[MemberBuilder],
        input_shape: Sequence[int],
        num_classes: int,
        *,
        budget: int,
        directory: str | os.PathLike = ".",
        project_name: str = "search_and_refine",
        overwrite: bool = False,
        seed: int = 0,
        num_bins: int = 4,
        threshold_schedule: str | None = None,
        group_share: float = 0.5,
        threshold_start: float = 0.1,
        threshold_decrement: float = 0.05,
        clustering: str | None = None,
        signal: str = "gradient",
        capture_batches: int = 1,
        batch_size: int = 128,
        refine_threshold: float = 0.9,
        coefficient_threshold: float | None = None,
        budget_check: str | None = None,
        chain_sort: str | None = None,
        template_fan_in: int | str | None = None,
        bank_size: int = 8,
        on_over_budget: str = "raise",
        sharing: str = "learned",
        reference_compatible: bool = False,
        plots: bool = True,
        jit_compile: bool | str = "auto",
        run_eagerly: bool = False,
    ):
        members = list(members) if isinstance(members, (list, tuple)) else []
        if not members or not all(
            isinstance(m, MemberBuilder) for m in members
        ):
            raise _fail(
                "members",
                "Expected a non-empty list of member builders such as "
                "keras_swn.models.WideResNet(16, 4).",
                members,
            )
        self.members = members
        try:
            self.input_shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise _fail(
                "input_shape", "Expected a tuple of ints.", input_shape
            ) from None
        self.num_classes = _check_int("num_classes", num_classes, 2)
        self.budget = _check_int("budget", budget, 1)
        self.seed = _check_int("seed", seed, 0)
        if not isinstance(overwrite, bool):
            raise _fail("overwrite", "Expected a bool.", overwrite)
        if (
            not isinstance(project_name, str)
            or not project_name
            or (os.sep in project_name)
        ):
            raise _fail(
                "project_name",
                "Expected a non-empty folder name.",
                project_name,
            )
        self.num_bins = _check_int("num_bins", num_bins, 1)
        self.threshold_start = _check_real("threshold_start", threshold_start)
        self.threshold_decrement = _check_real(
            "threshold_decrement", threshold_decrement, positive=True
        )
        self.signal = _check_choice("signal", signal, SIGNALS)
        self.capture_batches = _check_int("capture_batches", capture_batches, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.refine_threshold = _check_real(
            "refine_threshold", refine_threshold
        )
        self.coefficient_threshold = (
            None
            if coefficient_threshold is None
            else _check_real("coefficient_threshold", coefficient_threshold)
        )
        self.bank_size = _check_int("bank_size", bank_size, 1)
        if self.bank_size > 8:
            raise _fail("bank_size", "Expected an int in 1..8.", bank_size)
        self.on_over_budget = _check_choice(
            "on_over_budget", on_over_budget, ("raise", "report")
        )
        self.sharing = check_sharing(sharing)
        if not isinstance(reference_compatible, bool):
            raise _fail(
                "reference_compatible", "Expected a bool.", reference_compatible
            )
        self.reference_compatible = reference_compatible
        compatible = {
            "clustering": ("reference", clustering, "connected_components"),
            "chain_sort": ("reference", chain_sort, "stable"),
            "template_fan_in": (9, template_fan_in, "kernel"),
            "budget_check": ("proxy", budget_check, "exact"),
            "threshold_schedule": ("step", threshold_schedule, "fill"),
        }
        resolved = {}
        for name, (ref, given, default) in compatible.items():
            if reference_compatible:
                if given is not None and given != ref:
                    raise _fail(
                        name,
                        f"reference_compatible=True selects {name}={ref!r}; "
                        "pass one or the other.",
                        given,
                    )
                resolved[name] = ref
            else:
                resolved[name] = default if given is None else given
        self.clustering = _check_choice(
            "clustering", resolved["clustering"], CLUSTERINGS
        )
        self.chain_sort = _check_choice(
            "chain_sort", resolved["chain_sort"], ("stable", "reference")
        )
        self.budget_check = _check_choice(
            "budget_check", resolved["budget_check"], BUDGET_CHECKS
        )
        self.threshold_schedule = _check_choice(
            "threshold_schedule", resolved["threshold_schedule"], SCHEDULES
        )
        self.group_share = _check_real("group_share", group_share)
        if not 0 < self.group_share <= 1:
            raise _fail(
                "group_share", "Expected a number in (0, 1].", group_share
            )
        fan_in = resolved["template_fan_in"]
        if not any(
            type(fan_in) is type(v) and fan_in == v for v in TEMPLATE_FAN_IN
        ):
            raise _fail(
                "template_fan_in",
                "Expected one of 'kernel' (He-normal scale for every "
                "composed kernel), 'layer' or 9 (the reference).",
                fan_in,
            )
        self.template_fan_in = fan_in
        if self.signal != "gradient" and not self.sharing.searches:
            raise _fail(
                "signal",
                f"sharing={self.sharing.value!r} runs no search; leave "
                "`signal` at 'gradient'.",
                signal,
            )
        self.plots = bool(plots)
        if jit_compile not in (True, False, "auto"):
            raise _fail(
                "jit_compile", "Expected True, False or 'auto'.", jit_compile
            )
        self.jit_compile = jit_compile
        self.run_eagerly = bool(run_eagerly)

        self.specs = tuple(
            s
            for i, b in enumerate(self.members)
            for s in b.layer_specs(self.input_shape, member=i)
        )
        depths = [0] * len(self.members)
        for s in self.specs:
            depths[s.member] += 1
        seen: set[int] = set()
        self.search_members = []
        for m, d in enumerate(depths):
            if d not in seen or self.coefficient_threshold is not None:
                self.search_members.append(m)
            seen.add(d)
        if self.sharing.searches:
            self._check_search_budget()

        self.directory = os.fspath(directory)
        self.project_name = project_name
        self.project_dir = os.path.join(self.directory, project_name)
        self.oracle: PhaseOracle | None = None
        self._run: dict | None = None
        self._model: SWNModel | None = None
        self._model_key: Any = None
        self._phase_started: float | None = None
        if overwrite and os.path.isdir(self.project_dir):
            shutil.rmtree(self.project_dir)
        state = self._read_state()
        if state is not None:
            if state["config"] != self._config():
                raise ValueError(
                    f"The project folder {self.project_dir} holds a search "
                    "with another configuration "
                    f"({self._diff(state['config'], self._config())}). Pass "
                    "overwrite=True or another `project_name`. Received: "
                    f"overwrite={overwrite}"
                )
            self._run = state["run"]
            self.oracle = PhaseOracle.from_state(state["oracle"])

    def _check_search_budget(self) -> None:
        """Raise before any training if the search can never meet `budget`.

        The least-demanding grouping the search can return has every
        initial bin fully merged into one group (the other members attached
        as the search attaches them). If even that needs more than `budget`
        (one template per bank), the threshold loop, or the exact plan
        after it, would fail after the search training was spent.
        """
        bins = initial_bins(self.specs, self.num_bins)
        merged = attach_members(
            self.specs, bins, bins[0], lambda a, b: 0.0
        ).groups
        if self.budget_check == "proxy" and self.on_over_budget == "report":
            # Only the threshold loop (proxy `need`) can fail; the plan
            # after it reports instead of raising.
            minimum = need_proxy(self.specs, merged)
        else:
            minimum = one_template_total(
                self.specs, merged, chain_sort=self.chain_sort
            )
        if self.budget < minimum:
            raise ValueError(
                "Invalid value for argument `budget`. Expected at least "
                f"{minimum:,}: the least-demanding grouping the search can "
                f"return (each of the {self.num_bins} initial bins merged "
                "into one group, one template per bank) needs "
                f"{minimum:,} template parameters, so the search could never "
                f"meet budget={self.budget:,}. Raise `budget` or use fewer "
                f"initial bins (`num_bins`). Received: budget={self.budget}"
            )

    # ------------------------------------------------------------------
    # Configuration and state files
    def _config(self) -> dict:
        return {
            "members": [
                keras.saving.serialize_keras_object(m) for m in self.members
            ],
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "budget": self.budget,
            "seed": self.seed,
            "num_bins": self.num_bins,
            "threshold_schedule": self.threshold_schedule,
            "group_share": self.group_share,
            "threshold_start": self.threshold_start,
            "threshold_decrement": self.threshold_decrement,
            "clustering": self.clustering,
            "signal": self.signal,
            "capture_batches": self.capture_batches,
            "batch_size": self.batch_size,
            "refine_threshold": self.refine_threshold,
            "coefficient_threshold": self.coefficient_threshold,
            "budget_check": self.budget_check,
            "chain_sort": self.chain_sort,
            "template_fan_in": self.template_fan_in,
            "bank_size": self.bank_size,
            "on_over_budget": self.on_over_budget,
            "sharing": self.sharing.value,
            "reference_compatible": self.reference_compatible,
        }

    @staticmethod
    def _diff(old: Mapping, new: Mapping) -> str:
        keys = sorted(
            k for k in set(old) | set(new) if old.get(k) != new.get(k)
        )
        return "; ".join(
            f"{k}: saved {old.get(k)!r}, now {new.get(k)!r}" for k in keys
        )[:500]

    def _path(self, *parts: str) -> str:
        return os.path.join(self.project_dir, *parts)

    def _read_state(self) -> dict | None:
        path = self._path(_STATE)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("format") != _FORMAT or state.get("version") != _VERSION:
            raise ValueError(
                f"{path} is not a SearchAndRefine state (format "
                f"{state.get('format')!r}, version {state.get('version')!r})."
                " Pass overwrite=True or another `project_name`."
            )
        return state

    def _write_state(self) -> None:
        atomic_write_json(
            self._path(_STATE),
            {
                "format": _FORMAT,
                "version": _VERSION,
                "config": self._config(),
                "run": self._run,
                "oracle": self.oracle.get_state(),
            },
        )
        keep = self.oracle.artifacts.get("checkpoint")
        folder = self._path(_CHECKPOINTS)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name != keep and name.endswith(".npz"):
                    os.remove(os.path.join(folder, name))

    # ------------------------------------------------------------------
    # Checkpoints: every weight and every optimizer variable, in order.
    def _save_checkpoint(self, model: SWNModel, index: int) -> str:
        name = f"checkpoint-{index:05d}.npz"
        arrays = {}
        for i, w in enumerate(model.get_weights()):
            arrays[f"w{i:05d}"] = np.asarray(w)
        for i, v in enumerate(model.optimizer.variables):
            arrays[f"o{i:05d}"] = np.asarray(ops.convert_to_numpy(v))

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(self._path(_CHECKPOINTS, name), write, suffix=".npz")
        return name

    def _load_checkpoint(self, model: SWNModel, name: str) -> None:
        with np.load(self._path(_CHECKPOINTS, name)) as data:
            weights = [data[k] for k in sorted(data.files) if k[0] == "w"]
            opt = [data[k] for k in sorted(data.files) if k[0] == "o"]
        model.set_weights(weights)
        variables = model.optimizer.variables
        if len(variables) != len(opt):
            raise ValueError(
                f"Checkpoint {name} has {len(opt)} optimizer variables; the "
                f"model's optimizer has {len(variables)}."
            )
        for var, value in zip(variables, opt):
            var.assign(value)

    # ------------------------------------------------------------------
    # Models
    def _model_kwargs(self) -> dict:
        return dict(
            budget=self.budget,
            num_bins=self.num_bins,
            bank_size=self.bank_size,
            template_fan_in=self.template_fan_in,
            chain_sort=self.chain_sort,
            on_over_budget=self.on_over_budget,
            seed=self.seed,
        )

    def _compile(self, model: SWNModel, exclude=()) -> None:
        run = self._run
        optimizer = ReferenceSGD(
            run["learning_rate"],
            momentum=0.9,
            nesterov=True,
            l2=run["weight_decay"],
        )
        optimizer.exclude_from_l2(exclude)
        model.compile(
            optimizer=optimizer,
            jit_compile=self.jit_compile,
            run_eagerly=self.run_eagerly,
        )
        optimizer.build(model.trainable_variables)

    def _build_search_model(self) -> SWNModel:
        weights = [
            1.0 if m in self.search_members else 0.0
            for m in range(len(self.members))
        ]
        model = SWNModel(
            members=self.members,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            coefficient_sharing="per_bank",
            member_loss_weights=weights,
            name="search_phase_model",
            **self._model_kwargs(),
        )
        frozen = [
            v
            for m, w in enumerate(weights)
            if w == 0.0
            for v in _own_variables(model.members[m])
        ]
        for v in frozen:  # not run in training: no gradient, no update
            v.trainable = False
        self._compile(model, exclude=frozen)
        return model

    def _build_final_model(self, policy: SharingPolicy) -> SWNModel:
        model = SWNModel(
            members=self.members,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            policy=policy,
            **self._model_kwargs(),
        )
        self._compile(model)
        return model

    def _current_model(self, step: Step) -> SWNModel:
        """The model the step starts from (rebuilt after a restart)."""
        art = self.oracle.artifacts
        if step.phase in (Phase.SEARCH_TRAINING, Phase.CLUSTERING):
            key: Any = "search"
        else:
            key = ("final", json.dumps(art["policy"], sort_keys=True))
        if self._model is not None and self._model_key == key:
            return self._model
        if key == "search":
            model = self._build_search_model()
        else:
            model = self._build_final_model(
                SharingPolicy.from_dict(art["policy"])
            )
        if art.get("checkpoint") is not None:
            self._load_checkpoint(model, art["checkpoint"])
        self._model, self._model_key = model, key
        return model

    # ------------------------------------------------------------------
    # Logging
    def _log(self, text: str) -> None:
        if self._run and self._run.get("verbose", 1):
            print(f"[SearchAndRefine] {text}", flush=True)

    def _begin_phase(self, step: Step) -> None:
        steps = self.oracle.steps
        i = self.oracle.cursor
        first = i == 0 or steps[i - 1].phase is not step.phase
        if first or self._phase_started is None:
            self._phase_started = time.perf_counter()

    def _elapsed(self) -> float:
        start = self._phase_started or time.perf_counter()
        return round(time.perf_counter() - start, 3)

    # ------------------------------------------------------------------
    # The search loop
    def search(
        self,
        train_data: Any,
        validation_data: Any = None,
        *,
        search_epochs: int | None = None,
        epochs: int = 200,
        refine_after: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 0.1,
        schedule: str | None = None,
        milestones: Sequence[int] | Sequence[float] | None = None,
        gamma: float | None = None,
        weight_decay: float = 5e-4,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        verbose: int | str = 1,
    ) -> None:
        """Run (or resume) the pipeline; files go to the project folder.

        **Learning-rate schedule.** The rate is set at the start of every
        epoch by a schedule over the final training's `epochs`, one
        schedule across the refine step and the rebuild that follows it.
        By default the step schedule multiplies the rate by `gamma` at
        0.3, 0.6 and 0.8 of `epochs`, the reference's epochs 60, 120 and
        160 of 200 scaled to the run, so a short run anneals as a long one
        does. `schedule="cosine"` lowers the rate from `learning_rate`
        towards 0 over `epochs` instead. The search training replays the
        first epochs of the same schedule (search epoch `e` trains at the
        rate of final epoch `e`), as the reference does: its throwaway
        model trains at the opening rate, flat for the paper's 20 search
        epochs of a 200-epoch run, rather than being annealed before its
        gradients are captured. With `reference_compatible=True` the
        defaults are the reference's: the step schedule at the absolute
        epochs (60, 120, 160), and the refine step after 10 epochs.

        Args:
            train_data: `(x, y)` NumPy arrays (shuffled per epoch by the
                search, from `seed`), or a `tf.data.Dataset` / iterable of
                `(x, y)` batches (used as given).
            validation_data: the same forms, or None. Evaluated after every
                final-training epoch and at the end (`results()`).
            search_epochs: int >= 0, search-training epochs, or None: 20
                (the paper's) for the regimes that search, 0 for
                `sharing="bins_hard"`, which must have 0.
            epochs: int >= 1, final-training epochs (the paper: 200).
            refine_after: int, final-training epochs before the refine
                step, or None: 5% of `epochs`, rounded up (10 of 200, the
                paper's), and 10 with `reference_compatible=True`. Ignored
                by the regimes that do not refine.
            batch_size: int or None (the constructor's `batch_size`).
            learning_rate: float > 0, the initial learning rate (0.1).
            schedule: `"step"` or `"cosine"`, or None: `"step"`. Reference
                mode allows `"step"` only.
            milestones: for `"step"`, the epochs (ints >= 0, 0-based) or
                fractions of `epochs` (floats strictly between 0 and 1; a
                fraction `f` is the first epoch `e` with
                `e >= f * epochs`) at which the rate is multiplied by
                `gamma`. None: (0.3, 0.6, 0.8), or (60, 120, 160) with
                `reference_compatible=True`. Not used by `"cosine"`.
            gamma: float > 0, the factor of the step schedule, or None:
                0.2. Not used by `"cosine"`.
            weight_decay: float >= 0, the coupled L2 decay (5e-4).
            callbacks: Keras callbacks passed to every `fit` call (one
                call per epoch; `SearchAndRefine.phase` tells the phase).
            verbose: passed to `fit` (1: progress bars); 0 also silences
                the phase log.

        Raises:
            ValueError: on invalid arguments (naming the argument), on a
                resumed project whose run arguments differ, and when the
                budget cannot be met (`search_groups`; only possible after
                the search training with `budget_check="proxy"` or
                `clustering="reference"`, since the constructor rejects a
                budget that no grouping can meet).
        """
        if search_epochs is None:
            search_epochs = _SEARCH_EPOCHS if self.sharing.searches else 0
        if isinstance(search_epochs, bool) or not isinstance(
            search_epochs, int
        ):
            raise _fail("search_epochs", "Expected an int >= 0.", search_epochs)
        epochs = _check_int("epochs", epochs, 1)
        if refine_after is None and self.sharing.refines:
            if self.reference_compatible:
                refine_after = _REFERENCE_REFINE_AFTER
            else:
                refine_after = max(
                    1, math.ceil(round(_REFINE_FRACTION * epochs, 9))
                )
        batch_size = (
            self.batch_size
            if batch_size is None
            else _check_int("batch_size", batch_size, 1)
        )
        if self.reference_compatible:
            if schedule is not None and schedule != "step":
                raise _fail(
                    "schedule",
                    "reference_compatible=True selects schedule='step'; "
                    "pass one or the other.",
                    schedule,
                )
            if milestones is None:
                milestones = REFERENCE_MILESTONES
        schedule, milestones, gamma = check_schedule(
            "step" if schedule is None else schedule, milestones, gamma
        )
        run = {
            "search_epochs": int(search_epochs),
            "epochs": epochs,
            "refine_after": refine_after if self.sharing.refines else None,
            "batch_size": batch_size,
            "learning_rate": _check_real(
                "learning_rate", learning_rate, positive=True
            ),
            "schedule": schedule,
            "milestones": None if milestones is None else list(milestones),
            "gamma": gamma,
            "weight_decay": _check_real("weight_decay", weight_decay),
        }
        if run["weight_decay"] < 0:
            raise _fail("weight_decay", "Expected a float >= 0.", weight_decay)
        fresh = PhaseOracle(
            self.sharing,
            search_epochs=search_epochs,
            epochs=epochs,
            refine_after=refine_after,
        )
        train = _Data(train_data, "train_data")
        val = (
            None
            if validation_data is None
            else _Data(validation_data, "validation_data")
        )
        if self.oracle is not None and self._run is not None:
            saved = {k: v for k, v in self._run.items() if k != "verbose"}
            if saved != run:
                raise ValueError(
                    f"The project folder {self.project_dir} holds a search "
                    "run with other arguments "
                    f"({self._diff(saved, run)}). Pass overwrite=True to the "
                    "constructor or use another `project_name`."
                )
        else:
            self.oracle = fresh
        self._run = {**run, "verbose": verbose}
        self._callbacks = list(callbacks or [])
        self._train, self._val = train, val
        os.makedirs(self.project_dir, exist_ok=True)

        if self.oracle.cursor == 0 and "policy" not in self.oracle.artifacts:
            self._start()
        if self.oracle.cursor > 0 or self.oracle.done:
            self._log(f"resuming at {self.oracle.current()}")
        while not self.oracle.done:
            step = self.oracle.current()
            self._begin_phase(step)
            if step.phase is Phase.SEARCH_TRAINING:
                self._train_epoch(step)
            elif step.phase is Phase.CLUSTERING:
                self._cluster(step)
            elif step.phase is Phase.TRAINING:
                self._train_epoch(step)
            elif step.phase is Phase.REFINE:
                self._refine(step)
            elif step.phase is Phase.FINISH:
                self._finish(step)

    @property
    def phase(self) -> Phase | None:
        """The phase running now (or next), None before `search`."""
        return None if self.oracle is None else self.oracle.phase

    def _start(self) -> None:
        if self.sharing is Sharing.BINS_HARD:
            policy = SharingPolicy.from_bins(
                self.specs,
                self.num_bins,
                coefficients="per_bank",
                chain_sort=self.chain_sort,
            )
            self._check_plan(policy)
            self.oracle.artifacts["policy"] = policy.to_dict()
            policy.save(self._path("policy.json"))
        else:
            self._check_plan(
                SharingPolicy.from_bins(
                    self.specs,
                    self.num_bins,
                    coefficients="per_bank",
                    chain_sort=self.chain_sort,
                )
            )
        self._write_state()
        members = ", ".join(
            f"{getattr(m, 'name', type(m).__name__)}" for m in self.members
        )
        self._log(
            f"start: members {members}; budget {self.budget:,}; sharing "
            f"{self.sharing.value}; {len(self.oracle.steps) - 1} steps; "
            f"folder {os.path.abspath(self.project_dir)}"
        )

    def _check_plan(self, policy: SharingPolicy) -> BankPlan:
        return BankPlan.create(
            self.specs,
            policy,
            self.budget,
            bank_size=self.bank_size,
            chain_sort=self.chain_sort,
            on_over_budget=self.on_over_budget,
        )

    def _lr(self, step: Step) -> float:
        """The learning rate of a training step: the schedule over the
        final training's epochs (search epoch `e` replays final epoch
        `e`)."""
        run = self._run
        return learning_rate_at(
            step.epoch,
            run["epochs"],
            schedule=run["schedule"],
            learning_rate=run["learning_rate"],
            milestones=run["milestones"],
            gamma=run["gamma"],
        )

    def _train_epoch(self, step: Step) -> None:
        model = self._current_model(step)
        search = step.phase is Phase.SEARCH_TRAINING
        total = self.oracle.search_epochs if search else self.oracle.epochs
        model.optimizer.learning_rate = self._lr(step)
        batch_size = self._run["batch_size"]
        kwargs = self._train.fit_kwargs(batch_size)
        if self._train.arrays:
            x, y = self._train.permuted(
                self.seed, "epoch", 0 if search else 1, step.epoch
            )
            kwargs.update(x=x, y=y, shuffle=False)
        if not search and self._val is not None:
            kwargs["validation_data"] = self._val.validation(batch_size)
        verbose = self._run["verbose"]
        if verbose and step.epoch == 0:
            what = (
                f"members {self.search_members} train"
                if search
                else "all members train"
            )
            self._log(
                f"{step.phase.value}: {total} epochs ({what}); model has "
                f"{model.count_params():,} parameters"
            )
        model.fit(
            epochs=total,
            initial_epoch=step.epoch,
            callbacks=[_StepCallback(self, step), *self._callbacks],
            verbose=verbose,
            **kwargs,
        )
        if self.oracle.current() == step:  # fit ran no epoch
            raise RuntimeError(f"Training step {step} did not run.")

    def _complete_epoch(self, step: Step, logs: dict) -> None:
        name = self._save_checkpoint(self._model, self.oracle.cursor)
        last = self.oracle.is_last_of_phase(step)
        summary = None
        if last:
            summary = {"seconds": self._elapsed(), "last_logs": logs}
        self.oracle.complete(
            step,
            logs={**logs, "learning_rate": self._lr(step)},
            summary=summary,
            artifacts={"checkpoint": name},
        )
        self._write_state()
        if last:
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in logs.items() if "accuracy" in k
            )
            self._log(
                f"{step.phase.value} done: {step.epoch + 1} epochs; {shown} "
                f"({summary['seconds']:.1f} s)"
            )

    # ------------------------------------------------------------------
    def _capture(self, model: SWNModel) -> tuple[dict | None, dict | None]:
        """OIHW kernel gradients (and kernels) keyed by (member, layer)."""
        kinds = {s.key: s.kind for s in self.specs}
        gradients = weights = None
        batch_size = self._run["batch_size"]
        if self.signal in ("gradient", "gradient+weight"):
            if self._train.arrays:
                x, y = self._train.permuted(self.seed, "capture")
                n = self.capture_batches * batch_size
                raw = model.collect_kernel_gradients(
                    x[:n],
                    y[:n],
                    batches=self.capture_batches,
                    batch_size=batch_size,
                )
            else:
                raw = model.collect_kernel_gradients(
                    self._train.dataset, batches=self.capture_batches
                )
            gradients = {}
            for m, per_layer in enumerate(raw):
                keys = {
                    layer.name: tuple(layer.layer_key)
                    for layer in model.shared_layers(m)
                }
                for name, g in per_layer.items():
                    key = keys[name]
                    gradients[key] = to_oihw(g, kinds[key])
        if self.signal in ("gradient+weight", "parameter"):
            weights = {}
            for layer in model.shared_layers():
                key = tuple(layer.layer_key)
                weights[key] = to_oihw(
                    ops.convert_to_numpy(layer.kernel), kinds[key]
                )
        return gradients, weights

    def _cluster(self, step: Step) -> None:
        model = self._current_model(step)
        gradients, weights = self._capture(model)
        result = search_groups(
            self.specs,
            model.policy,
            gradients,
            self.budget,
            threshold_start=self.threshold_start,
            threshold_decrement=self.threshold_decrement,
            clustering=self.clustering,
            budget_check=self.budget_check,
            signal=self.signal,
            weights=weights,
            coefficient_threshold=self.coefficient_threshold,
            chain_sort=self.chain_sort,
            schedule=self.threshold_schedule,
            group_share=self.group_share,
        )
        if self.sharing is Sharing.SOFT:
            policy = SharingPolicy(groups=result.groups)
        else:
            policy = result.to_policy(self.specs, chain_sort=self.chain_sort)
        self._check_plan(policy)
        atomic_write_json(self._path("search_result.json"), result.to_dict())
        policy.save(self._path("policy.json"))
        if self.plots:
            plots.write_search_plots(result, self._path(_PLOTS))
            self._plot_groups(policy, result.partners)
        self._model = self._model_key = None  # the search model is dropped
        summary = {
            "seconds": self._elapsed(),
            "threshold": result.threshold,
            "thresholds_tried": result.iterations,
            "need": result.need,
            "groups": result.num_groups,
            "group_share_of_budget": result.need / self.budget,
        }
        self.oracle.complete(
            step,
            summary=summary,
            artifacts={
                "policy": policy.to_dict(),
                "checkpoint": None,
                "search_result": "search_result.json",
            },
        )
        self._write_state()
        self._write_budget_report(policy)
        self._log(
            f"clustering done: {result.num_groups} groups at threshold "
            f"{result.threshold:.3g} ({result.iterations} thresholds tried); "
            f"one template per bank takes {result.need:,} of the budget "
            f"{self.budget:,} ({result.need / self.budget:.0%}; the rest "
            f"goes to more templates per bank) ({summary['seconds']:.1f} s)"
        )

    def _refine(self, step: Step) -> None:
        model = self._current_model(step)
        batch_size = self._run["batch_size"]
        if self._train.arrays:
            x, y = self._train.permuted(self.seed, "refine")
            grads = model.collect_coefficient_gradients(
                x, y, batches=None, batch_size=batch_size
            )
        else:
            grads = model.collect_coefficient_gradients(
                self._train.dataset, batches=None
            )
        policy = model.policy
        levels = layer_levels(
            self.specs, policy.groups, chain_sort=self.chain_sort
        )
        result = refine_partition(
            policy,
            grads,
            threshold=self.refine_threshold,
            clustering=self.clustering,
            levels=levels,
        )
        if result.copies:
            new = model.refined(
                result.policy, copies=result.copies, compile=False
            )
            self._compile(new)
            _transfer_optimizer_state(model, new)
            model = new
        key = ("final", json.dumps(result.policy.to_dict(), sort_keys=True))
        self._model, self._model_key = model, key
        name = self._save_checkpoint(model, self.oracle.cursor)
        atomic_write_json(self._path("refine.json"), result.to_dict())
        result.policy.save(self._path("policy.json"))
        if self.plots:
            plots.save_figure(
                plots.plot_refine_cosines(
                    result.pair_cosines, self.refine_threshold
                ),
                self._path(_PLOTS, "refine_cosines.png"),
            )
            self._plot_groups(result.policy, None)
        summary = {
            "seconds": self._elapsed(),
            "vectors_before": result.vectors_before,
            "vectors_after": result.vectors_after,
            "pairs": sum(len(p) for p in result.pair_cosines.values()),
        }
        self.oracle.complete(
            step,
            summary=summary,
            artifacts={
                "policy": result.policy.to_dict(),
                "checkpoint": name,
                "refine": "refine.json",
            },
        )
        self._write_state()
        self._write_budget_report(result.policy)
        self._log(
            f"refine done: {summary['pairs']} shared pairs; coefficient "
            f"vectors {result.vectors_before} -> {result.vectors_after} "
            f"({summary['seconds']:.1f} s)"
        )

    def _finish(self, step: Step) -> None:
        model = self._current_model(step)
        evaluation = None
        if self._val is not None:
            batch_size = self._run["batch_size"]
            if self._val.arrays:
                evaluation = model.evaluate(
                    self._val.x,
                    self._val.y,
                    batch_size=batch_size,
                    verbose=0,
                    return_dict=True,
                )
            else:
                evaluation = model.evaluate(
                    self._val.dataset, verbose=0, return_dict=True
                )
            evaluation = _floats(evaluation)
        plain = clone_swn_model(model)
        atomic_write(self._path(_MODEL), plain.save, suffix=".keras")
        report = model.budget_report()
        results = self._results_dict(model, report, evaluation)
        atomic_write_json(self._path("results.json"), results)
        atomic_write_json(self._path("history.json"), self.oracle.history)
        self._write_budget_report(model.policy)
        if self.plots:
            self._plot_groups(model.policy, None)
        self.oracle.complete(
            step,
            summary={"seconds": self._elapsed()},
            artifacts={"results": "results.json", "model": _MODEL},
        )
        self._write_state()
        acc = results.get("val_ensemble_accuracy")
        self._log(
            "done: "
            + (
                f"validation ensemble accuracy {acc:.4f}; "
                if acc is not None
                else ""
            )
            + f"{results['groups']} groups; {report.trainable_total:,} "
            f"trainable parameters; model at {self._path(_MODEL)}"
        )

    def _results_dict(self, model, report, evaluation) -> dict:
        names = [getattr(m, "name", type(m).__name__) for m in self.members]
        log = {e["phase"]: e for e in self.oracle.phase_log}
        member_acc = None
        if evaluation is not None:
            member_acc = [
                evaluation.get(f"member_{i}_accuracy")
                for i in range(len(names))
            ]
        return {
            "members": names,
            "sharing": self.sharing.value,
            "budget": self.budget,
            "seed": self.seed,
            "backend": keras.backend.backend(),
            "val_loss": None if evaluation is None else evaluation.get("loss"),
            "val_member_accuracy": member_acc,
            "val_ensemble_accuracy": (
                None
                if evaluation is None
                else evaluation.get("ensemble_accuracy")
            ),
            "evaluation": evaluation,
            "groups": model.policy.num_groups,
            "groups_per_member": [list(r) for r in model.policy.groups],
            "threshold": log.get("clustering", {}).get("threshold"),
            "coefficient_vectors": report.coefficient_vectors,
            "parameters": {
                "budget": report.budget,
                "bank_total": report.bank_total,
                "coefficient_scalars": report.coefficient_scalars,
                "unshared_trainable": report.unshared_trainable,
                "trainable_total": report.trainable_total,
                "params_unshared": report.params_unshared,
            },
            "phases": self.oracle.phase_log,
            "options": self._config(),
            "run": {k: v for k, v in self._run.items() if k != "verbose"},
        }

    def _write_budget_report(self, policy: SharingPolicy) -> None:
        report = self._report_for(policy)
        atomic_write_json(self._path("budget_report.json"), report.to_dict())
        atomic_write_text(self._path("budget_report.txt"), f"{report}\n")

    def _report_for(self, policy: SharingPolicy) -> BudgetReport:
        return BudgetReport.create(
            self._check_plan(policy),
            [
                b.unshared_params(self.input_shape, self.num_classes)
                for b in self.members
            ],
        )

    def _plot_groups(self, policy: SharingPolicy, partners) -> None:
        hard = {
            slot[:2]: owner for slot, owner in policy.coefficient_owners.items()
        }
        names = [getattr(m, "name", type(m).__name__) for m in self.members]
        plots.save_figure(
            plots.plot_group_map(
                policy.groups, member_names=names, hard_shared=hard
            ),
            self._path(_PLOTS, "groups.png"),
        )

    # ------------------------------------------------------------------
    # The KerasTuner-shaped surface
    def _require_done(self, what: str) -> None:
        if self.oracle is None or not self.oracle.done:
            raise ValueError(
                f"`{what}` needs a finished search: call `search()` first "
                f"(project folder {self.project_dir})."
            )

    @property
    def policy(self) -> SharingPolicy | None:
        """The final `SharingPolicy` (learned, then refined); None before
        the clustering phase has run."""
        if self.oracle is None or "policy" not in self.oracle.artifacts:
            return None
        return SharingPolicy.from_dict(self.oracle.artifacts["policy"])

    def search_result(self) -> SearchResult | None:
        """The `SearchResult` of the clustering phase, if it ran."""
        path = self._path("search_result.json")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return SearchResult.from_dict(json.load(f))

    def budget_report(self) -> BudgetReport:
        """The `BudgetReport` of the current policy (the search-phase bins
        before clustering)."""
        policy = self.policy
        if policy is None:
            policy = SharingPolicy.from_bins(
                self.specs,
                self.num_bins,
                coefficients="per_bank",
                chain_sort=self.chain_sort,
            )
        return self._report_for(policy)

    def results(self) -> dict:
        """The contents of `results.json` (after `search`)."""
        self._require_done("results")
        with open(self._path("results.json"), encoding="utf-8") as f:
            return json.load(f)

    def results_summary(self) -> None:
        """Print validation accuracy per member and of the ensemble, the
        parameters and the groups (like KerasTuner's `results_summary`)."""
        self._require_done("results_summary")
        r = self.results()
        print("Results summary")
        print(f"Results in {os.path.abspath(self.project_dir)}")
        print(f"Sharing: {r['sharing']}; budget {r['budget']:,}")
        if r["val_ensemble_accuracy"] is not None:
            print("Validation accuracy")
            for name, acc in zip(r["members"], r["val_member_accuracy"]):
                print(f"  {name:<12} {acc:.4f}")
            print(f"  {'ensemble':<12} {r['val_ensemble_accuracy']:.4f}")
        else:
            print("Validation accuracy: no validation data")
        p = r["parameters"]
        print(
            f"Parameters: templates {p['bank_total']:,} (budget "
            f"{p['budget']:,}), coefficients {p['coefficient_scalars']:,}, "
            f"BatchNorm and heads {p['unshared_trainable']:,}; trainable "
            f"total {p['trainable_total']:,} (without sharing "
            f"{p['params_unshared']:,})"
        )
        thr = r["threshold"]
        print(
            f"Groups: {r['groups']}"
            + ("" if thr is None else f" (threshold {thr:.3g})")
            + f"; coefficient vectors {r['coefficient_vectors']}"
        )
        for name, row in zip(r["members"], r["groups_per_member"]):
            print(f"  {name:<12} {row}")

    def get_best_models(self, num_models: int = 1) -> list[SWNModel]:
        """The final model, reloaded from `model.keras` and compiled for
        evaluation (a list, as KerasTuner returns; the search has one
        result, so it holds one model whatever `num_models`)."""
        _check_int("num_models", num_models, 1)
        self._require_done("get_best_models")
        model = keras.models.load_model(self._path(_MODEL))
        model.compile()
        return [model]
