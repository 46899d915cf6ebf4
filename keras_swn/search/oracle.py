"""The phase oracle of `SearchAndRefine`: a pure, resumable state machine.

[`SearchAndRefine`][keras_swn.search.SearchAndRefine] has the shape of a
KerasTuner tuner: this module is its **oracle**, the policy that says what runs
next, kept apart from the runner that builds and fits
[`SWNModel`][keras_swn.SWNModel]s. Instead of trials it walks the phases of
[`keras_swn.search.phases`][] (see the algorithm page,
[The pipeline][pipeline]).

The runner asks `next_task()`: the oracle answers with a
[`Task`][keras_swn.search.oracle.Task], the step to run and everything the
runner needs to run it (which model it starts from, the policy and checkpoint to
restore, how many epochs the `fit` spans, whether it opens or closes its phase).
The runner reports back with `complete(...)`. The oracle's whole state is typed
([`Artifacts`][keras_swn.search.oracle.Artifacts], the history, the phase log)
and round-trips through JSON (`get_state` / `set_state`), so a search killed at
any moment resumes from the last completed step. No Keras import.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import math
from typing import Any
from typing import Mapping
from typing import cast

from keras_swn.io.atomic import parse_json
from keras_swn.search.phases import Phase
from keras_swn.search.phases import Sharing
from keras_swn.search.phases import Step
from keras_swn.search.phases import check_sharing
from keras_swn.search.phases import schedule
from keras_swn.validation import check_format

__all__ = [
    "Artifacts",
    "Phase",
    "PhaseOracle",
    "Sharing",
    "Step",
    "Task",
    "model_key",
    "schedule",
]

_FORMAT = "keras_swn.PhaseOracle"
_VERSION = 1


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON types (floats kept finite or `None`)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Cannot store {value!r} in the oracle state (not JSON)."
        ) from None
    return f if math.isfinite(f) else None


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """What the completed steps produced, as JSON values.

    Attributes:
        policy: dict or None, the current
            [`SharingPolicy`][keras_swn.SharingPolicy] (`to_dict()`): the
            initial bins of `"bins_hard"`, then the learned (and later refined)
            policy; None before clustering.
        checkpoint: str or None, the checkpoint file of the current model
            (None: the model starts from its initial values).
        search_result: str or None, the clustering result file.
        refine: str or None, the refine result file.
        results: str or None, the results file.
        model: str or None, the final model file.
    """

    policy: dict | None = None
    checkpoint: str | None = None
    search_result: str | None = None
    refine: str | None = None
    results: str | None = None
    model: str | None = None

    def to_dict(self) -> dict:
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping) -> "Artifacts":
        return cls().updated(data)

    def updated(self, changes: Mapping[str, Any]) -> "Artifacts":
        """A copy with `changes` (artifact name -> JSON value) applied."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(map(str, changes)) - names)
        if unknown:
            raise ValueError(
                f"Unknown artifacts {unknown}; expected names in "
                f"{sorted(names)}."
            )
        return dataclasses.replace(
            self, **{str(k): _jsonable(v) for k, v in changes.items()}
        )


@dataclasses.dataclass(frozen=True)
class Task:
    """The next unit of work, as the oracle hands it to the runner.

    Attributes:
        step: the `Step` (phase and epoch).
        model: `"search"` (the throwaway search-phase model) or `"final"`
            (the model built from `policy`).
        policy: dict or None, the policy the final model is built from.
        checkpoint: str or None, the checkpoint to restore into a model
            built afresh.
        epochs: int or None, the `epochs` of the `fit` call of a training
            step (its phase's length); None for the other phases.
        first_of_phase: bool, the step opens its phase.
        last_of_phase: bool, the step closes its phase.
    """

    step: Step
    model: str
    policy: dict | None
    checkpoint: str | None
    epochs: int | None
    first_of_phase: bool
    last_of_phase: bool

    @property
    def phase(self) -> Phase:
        return self.step.phase

    @property
    def model_key(self) -> tuple:
        """Two tasks with the same key start from the same model object."""
        return model_key(self.model, self.policy)


def model_key(model: str, policy: Mapping | None) -> tuple:
    """The identity of a model: the search model, or one policy's model."""
    if model == "search":
        return ("search",)
    return ("final", json.dumps(policy, sort_keys=True))


class PhaseOracle:
    """The phase state machine of `SearchAndRefine` (pure, JSON state).

    The oracle holds the ordered steps of a search (`schedule`) and a
    cursor: `next_task()` says what runs next, `complete(step, ...)` records its
    outcome and moves on. Outcomes are kept as JSON values: per-epoch logs
    (`history`), one summary per finished phase (`phase_log`), and the
    [`Artifacts`][keras_swn.search.oracle.Artifacts] (file names, the current
    policy), so that the runner can rebuild its state after a restart from
    `get_state()` alone.

    Args:
        sharing: the regime: `"learned"`, `"learned_no_refine"`,
            `"bins_hard"` or `"soft"` (see the algorithm page, *Sharing
            regimes*).
        search_epochs: int >= 0, epochs of search training.
        epochs: int >= 1, epochs of the final training.
        refine_after: int, final-training epochs before refine;
            required by the regimes that refine.

    Examples:
        >>> oracle = PhaseOracle("learned", search_epochs=1, epochs=2,
        ...                      refine_after=1)
        >>> [str(s) for s in oracle.steps]
        ['search_training epoch 1', 'clustering', 'training epoch 1', \
'refine', 'training epoch 2', 'finish', 'done']
        >>> oracle.complete(oracle.current(), logs={"loss": 2.5})
        >>> str(oracle.current())
        'clustering'
        >>> PhaseOracle.from_state(oracle.get_state()) == oracle
        True
    """

    def __init__(
        self,
        sharing: str | Sharing,
        *,
        search_epochs: int,
        epochs: int,
        refine_after: int | None = None,
    ) -> None:
        self.sharing = check_sharing(sharing)
        self.steps = schedule(self.sharing, search_epochs, epochs, refine_after)
        self.search_epochs = int(search_epochs)
        self.epochs = int(epochs)
        # `schedule` has checked that a regime that refines has an int.
        self.refine_after = (
            int(cast(int, refine_after))
            if self.sharing.refines
            else refine_after
        )
        self.cursor = 0
        self.history: dict[str, list[dict]] = {
            Phase.SEARCH_TRAINING.value: [],
            Phase.TRAINING.value: [],
        }
        self.phase_log: list[dict] = []
        self.artifacts = Artifacts()

    # ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.current().phase is Phase.DONE

    @property
    def phase(self) -> Phase:
        """The phase of the next step."""
        return self.current().phase

    @property
    def fresh(self) -> bool:
        """Whether nothing ran yet (the runner has the search to start)."""
        return self.cursor == 0 and self.artifacts.policy is None

    def current(self) -> Step:
        """The next step to run (`Phase.DONE` once everything ran)."""
        return self.steps[self.cursor]

    def phases(self) -> tuple[Phase, ...]:
        """The distinct phases of this search, in order."""
        seen: list[Phase] = []
        for s in self.steps:
            if s.phase not in seen:
                seen.append(s.phase)
        return tuple(seen)

    def is_last_of_phase(self, step: Step) -> bool:
        """Whether `step` is the last step before the phase changes."""
        i = self.steps.index(step)
        return self.steps[i + 1].phase is not step.phase

    def next_task(self) -> Task | None:
        """The next unit of work, or None when the search is done."""
        if self.done:
            return None
        step = self.current()
        i = self.cursor
        searching = step.phase in (Phase.SEARCH_TRAINING, Phase.CLUSTERING)
        epochs = None
        if step.phase.trains:
            search = step.phase is Phase.SEARCH_TRAINING
            epochs = self.search_epochs if search else self.epochs
        return Task(
            step=step,
            model="search" if searching else "final",
            policy=None if searching else self.artifacts.policy,
            checkpoint=self.artifacts.checkpoint,
            epochs=epochs,
            first_of_phase=i == 0 or self.steps[i - 1].phase is not step.phase,
            last_of_phase=self.is_last_of_phase(step),
        )

    def start(self, *, policy: Mapping | None = None) -> None:
        """Record the policy a search starts from (`"bins_hard"`)."""
        if not self.fresh:
            raise ValueError("The search has already started.")
        self.artifacts = self.artifacts.updated({"policy": policy})

    def complete(
        self,
        step: Step,
        *,
        logs: Mapping[str, Any] | None = None,
        summary: Mapping[str, Any] | None = None,
        artifacts: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that `step` (the current one) finished, and move on.

        Args:
            step: must equal `current()`.
            logs: the epoch's metrics, for training steps (kept in
                `history[phase]`).
            summary: a JSON summary, appended to `phase_log` (with the
                phase name) when `step` is the last step of its phase.
            artifacts: [`Artifacts`][keras_swn.search.oracle.Artifacts] fields
                to set (name -> JSON value).

        Raises:
            ValueError: if `step` is not the current step.
        """
        expected = self.current()
        if tuple(step) != tuple(expected) or expected.phase is Phase.DONE:
            raise ValueError(
                f"Step {step} is not the current step ({expected}); steps "
                "complete in order."
            )
        if logs is not None:
            if step.phase.value not in self.history:
                raise ValueError(f"Phase {step.phase} has no epoch logs.")
            self.history[step.phase.value].append(
                {"epoch": step.epoch, **_jsonable(logs)}
            )
        if artifacts:
            self.artifacts = self.artifacts.updated(artifacts)
        if self.is_last_of_phase(step):
            self.phase_log.append(
                {"phase": step.phase.value, **_jsonable(summary or {})}
            )
        self.cursor += 1

    # ------------------------------------------------------------------
    def get_state(self) -> dict:
        """The whole state as a JSON-serialisable dict."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "sharing": self.sharing.value,
            "search_epochs": self.search_epochs,
            "epochs": self.epochs,
            "refine_after": self.refine_after,
            "cursor": self.cursor,
            "current": self.current().to_json(),
            "history": copy.deepcopy(self.history),
            "phase_log": copy.deepcopy(self.phase_log),
            "artifacts": self.artifacts.to_dict(),
        }

    def set_state(self, state: Mapping) -> None:
        """Restore `get_state()` output (validates it first)."""
        check_format(
            state, format=_FORMAT, versions=(_VERSION,), what="oracle state"
        )
        fresh = PhaseOracle(
            state["sharing"],
            search_epochs=state["search_epochs"],
            epochs=state["epochs"],
            refine_after=state["refine_after"],
        )
        cursor = state["cursor"]
        if (
            isinstance(cursor, bool)
            or not isinstance(cursor, int)
            or not 0 <= cursor < len(fresh.steps)
        ):
            raise ValueError(
                f"Invalid oracle state: cursor={cursor!r} is outside the "
                f"{len(fresh.steps)} steps."
            )
        if (
            "current" in state
            and Step.from_json(state["current"]) != (fresh.steps[cursor])
        ):
            raise ValueError(
                "Invalid oracle state: the cursor does not point at the "
                f"recorded step {state['current']}."
            )
        self.sharing = fresh.sharing
        self.steps = fresh.steps
        self.search_epochs = fresh.search_epochs
        self.epochs = fresh.epochs
        self.refine_after = fresh.refine_after
        self.cursor = cursor
        self.history = {
            k: [dict(e) for e in v] for k, v in state["history"].items()
        }
        self.phase_log = [dict(e) for e in state["phase_log"]]
        self.artifacts = Artifacts.from_dict(state["artifacts"])

    @classmethod
    def from_state(cls, state: Mapping) -> "PhaseOracle":
        """A new oracle from `get_state()` output."""
        oracle = cls(
            state.get("sharing", "learned"),
            search_epochs=int(state.get("search_epochs", 0))
            if state.get("sharing") != "bins_hard"
            else 0,
            epochs=int(state.get("epochs", 1)),
            refine_after=state.get("refine_after"),
        )
        oracle.set_state(state)
        return oracle

    def to_json(self) -> str:
        return json.dumps(self.get_state(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "PhaseOracle":
        return cls.from_state(parse_json(text, "oracle state"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PhaseOracle):
            return NotImplemented
        return self.get_state() == other.get_state()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"PhaseOracle(sharing={self.sharing.value!r}, "
            f"next={str(self.current())!r}, "
            f"step {self.cursor + 1}/{len(self.steps)})"
        )
