"""The phase oracle of `SearchAndRefine`: a pure, resumable state machine.

`SearchAndRefine` has the shape of a KerasTuner tuner (style-guide.md,
"The search object in the KerasTuner shape"): this module is its
**oracle**, the policy that says what runs next, kept apart from the
runner that builds and fits `SWNModel`s. Instead of trials it walks the
phases of swn-algorithm.md Appendix A:

```
search_training (epochs 0 .. search_epochs-1)   # §2.1-§2.2
clustering                                      # §2.3-§2.6
training (epochs 0 .. refine_after-1)           # §3.1
refine                                          # §3.2
training (epochs refine_after .. epochs-1)
finish                                          # evaluate, save the model
done
```

Which phases run is fixed by the sharing regime (§3.3, named explicitly):

- `"learned"`: search; final training starts from the learned groups,
  member 0 soft, students hard-shared with their partner layer; refine
  at `refine_after`.
- `"learned_no_refine"`: as `"learned"`, never refined.
- `"bins_hard"`: no search; the initial bins, every bank one hard-shared
  vector; refine at `refine_after`.
- `"soft"`: search; every layer its own coefficients; no refine.

The oracle's whole state is a JSON-serialisable dict (`get_state` /
`set_state`), so a search killed at any moment resumes from the last
completed step. No Keras import.
"""

from __future__ import annotations

import copy
import enum
import json
import math
from typing import Any
from typing import Mapping
from typing import NamedTuple

from keras_swn.io_utils import parse_json

_FORMAT = "keras_swn.PhaseOracle"
_VERSION = 1


class Phase(str, enum.Enum):
    """A phase of the pipeline (its value is the JSON spelling)."""

    SEARCH_TRAINING = "search_training"
    CLUSTERING = "clustering"
    TRAINING = "training"
    REFINE = "refine"
    FINISH = "finish"
    DONE = "done"

    def __str__(self) -> str:
        return self.value


class Sharing(str, enum.Enum):
    """The sharing regimes of swn-algorithm.md §3.3, named explicitly."""

    LEARNED = "learned"
    LEARNED_NO_REFINE = "learned_no_refine"
    BINS_HARD = "bins_hard"
    SOFT = "soft"

    def __str__(self) -> str:
        return self.value

    @property
    def searches(self) -> bool:
        """Whether the regime runs the search (§2)."""
        return self is not Sharing.BINS_HARD

    @property
    def refines(self) -> bool:
        """Whether the regime runs the refine step (§3.2)."""
        return self in (Sharing.LEARNED, Sharing.BINS_HARD)


SHARINGS = tuple(s.value for s in Sharing)


class Step(NamedTuple):
    """One unit of work: a phase, and the epoch for the training phases.

    Attributes:
        phase: the `Phase`.
        epoch: int, the 0-based epoch of a training phase (the epoch index
            of the whole final training for `Phase.TRAINING`); `None` for
            the other phases.
    """

    phase: Phase
    epoch: int | None = None

    def to_json(self) -> list:
        return [self.phase.value, self.epoch]

    @classmethod
    def from_json(cls, value: Any) -> "Step":
        phase, epoch = value
        return cls(Phase(phase), None if epoch is None else int(epoch))

    def __str__(self) -> str:
        if self.epoch is None:
            return self.phase.value
        return f"{self.phase.value} epoch {self.epoch + 1}"


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an int >= "
            f"{minimum}. Received: {name}={value!r}"
        )
    return int(value)


def check_sharing(sharing: object) -> Sharing:
    """The `Sharing` named by `sharing`; `ValueError` if unknown."""
    try:
        return Sharing(sharing)
    except ValueError:
        raise ValueError(
            "Invalid value for argument `sharing`. Expected one of "
            f"{SHARINGS}. Received: sharing={sharing!r}"
        ) from None


def schedule(
    sharing: str | Sharing,
    search_epochs: int,
    epochs: int,
    refine_after: int | None,
) -> tuple[Step, ...]:
    """Every step of a search, in order, ending with `FINISH` and `DONE`.

    Args:
        sharing: the regime (see the module docstring).
        search_epochs: int >= 0, epochs of the search-phase model (§2.2);
            must be 0 for `"bins_hard"`, which has no search.
        epochs: int >= 1, epochs of the final training.
        refine_after: the number of final-training epochs before the
            refine step (1 <= refine_after < epochs) for the regimes that
            refine; ignored (may be `None`) for the others.

    Raises:
        ValueError: naming the argument and its value.
    """
    regime = check_sharing(sharing)
    search_epochs = _check_int("search_epochs", search_epochs, 0)
    epochs = _check_int("epochs", epochs, 1)
    steps: list[Step] = []
    if regime.searches:
        steps += [Step(Phase.SEARCH_TRAINING, e) for e in range(search_epochs)]
        steps.append(Step(Phase.CLUSTERING))
    elif search_epochs:
        raise ValueError(
            "Invalid value for argument `search_epochs`: "
            f"sharing={regime.value!r} runs no search; pass search_epochs=0 "
            f"or another regime. Received: search_epochs={search_epochs}"
        )
    if regime.refines:
        if (
            isinstance(refine_after, bool)
            or not isinstance(refine_after, int)
            or not 1 <= refine_after < epochs
        ):
            raise ValueError(
                "Invalid value for argument `refine_after`. Expected an int "
                f"with 1 <= refine_after < epochs={epochs} (sharing="
                f"{regime.value!r} refines; use sharing='learned_no_refine' "
                f"for no refine). Received: refine_after={refine_after!r}"
            )
        steps += [Step(Phase.TRAINING, e) for e in range(refine_after)]
        steps.append(Step(Phase.REFINE))
        steps += [Step(Phase.TRAINING, e) for e in range(refine_after, epochs)]
    else:
        steps += [Step(Phase.TRAINING, e) for e in range(epochs)]
    steps.append(Step(Phase.FINISH))
    steps.append(Step(Phase.DONE))
    return tuple(steps)


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


class PhaseOracle:
    """The phase state machine of `SearchAndRefine` (pure, JSON state).

    The oracle holds the ordered steps of a search (`schedule`) and a
    cursor: `current()` is the next step to run, `complete(step, ...)`
    records its outcome and moves on. Outcomes are kept as JSON values:
    per-epoch logs (`history`), one summary per finished phase
    (`phase_log`), and named artifacts (`artifacts`: file names, the
    current policy as a dict, ...), so that the runner can rebuild its
    state after a restart from `get_state()` alone.

    Args:
        sharing: the regime: `"learned"`, `"learned_no_refine"`,
            `"bins_hard"` or `"soft"` (swn-algorithm.md §3.3).
        search_epochs: int >= 0, epochs of search training (§2.2).
        epochs: int >= 1, epochs of the final training.
        refine_after: int, final-training epochs before refine (§3.2);
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
        self.refine_after = (
            int(refine_after) if self.sharing.refines else refine_after
        )
        self.cursor = 0
        self.history: dict[str, list[dict]] = {
            Phase.SEARCH_TRAINING.value: [],
            Phase.TRAINING.value: [],
        }
        self.phase_log: list[dict] = []
        self.artifacts: dict[str, Any] = {}

    # ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.current().phase is Phase.DONE

    @property
    def phase(self) -> Phase:
        """The phase of the next step."""
        return self.current().phase

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
            artifacts: named JSON values to store (replacing older ones
                of the same name).

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
            for key, value in artifacts.items():
                self.artifacts[str(key)] = _jsonable(value)
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
            "artifacts": copy.deepcopy(self.artifacts),
        }

    def set_state(self, state: Mapping) -> None:
        """Restore `get_state()` output (validates it first)."""
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise ValueError(
                "Invalid oracle state: expected a JSON object with "
                f'"format": "{_FORMAT}". Received: {str(state)[:200]}'
            )
        if state.get("version") != _VERSION:
            raise ValueError(
                "Unsupported oracle state version. Expected "
                f"{_VERSION}. Received: version={state.get('version')!r}"
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
        self.artifacts = copy.deepcopy(dict(state["artifacts"]))

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
