"""The vocabulary of a search: its phases, sharing regimes and steps.

A search walks the phases of the pipeline (see the algorithm page, [The
pipeline][pipeline]):

```
search_training (epochs 0 .. search_epochs-1)   # Search training
clustering                                      # Clustering
training (epochs 0 .. refine_after-1)           # Final training
refine                                          # Refine
training (epochs refine_after .. epochs-1)
finish                                          # evaluate, save the model
done
```

Which phases run is fixed by the sharing regime (*Sharing regimes*, named
explicitly):

- `"learned"`: search; final training starts from the learned groups,
  member 0 soft, students hard-shared with their partner layer; refine
  at `refine_after`.
- `"learned_no_refine"`: as `"learned"`, never refined.
- `"bins_hard"`: no search; the initial bins, every bank one hard-shared
  vector; refine at `refine_after`.
- `"soft"`: search; every layer its own coefficients; no refine.

Pure Python: no Keras import.
"""

from __future__ import annotations

import enum
from typing import Any
from typing import NamedTuple

from keras_swn.validation import check_choice
from keras_swn.validation import check_int
from keras_swn.validation import invalid_argument
from keras_swn.validation import naming


class _Named(str, enum.Enum):
    """A string enum that prints as its value (its JSON spelling)."""

    def __str__(self) -> str:
        return self.value


class Phase(_Named):
    """A phase of the pipeline (its value is the JSON spelling)."""

    SEARCH_TRAINING = "search_training"
    CLUSTERING = "clustering"
    TRAINING = "training"
    REFINE = "refine"
    FINISH = "finish"
    DONE = "done"

    @property
    def trains(self) -> bool:
        """Whether the phase is one `fit` epoch per step."""
        return self in (Phase.SEARCH_TRAINING, Phase.TRAINING)


class Sharing(_Named):
    """The sharing regimes of the algorithm page, named explicitly."""

    LEARNED = "learned"
    LEARNED_NO_REFINE = "learned_no_refine"
    BINS_HARD = "bins_hard"
    SOFT = "soft"

    @property
    def searches(self) -> bool:
        """Whether the regime runs the search."""
        return self is not Sharing.BINS_HARD

    @property
    def refines(self) -> bool:
        """Whether the regime runs the refine step."""
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


def check_sharing(sharing: object) -> Sharing:
    """The `Sharing` named by `sharing`; `ValueError` if unknown."""
    with naming("sharing"):
        return Sharing(check_choice("sharing", sharing, SHARINGS))


def schedule(
    sharing: str | Sharing,
    search_epochs: int,
    epochs: int,
    refine_after: int | None,
) -> tuple[Step, ...]:
    """Every step of a search, in order, ending with `FINISH` and `DONE`.

    Args:
        sharing: the regime (see the module docstring).
        search_epochs: int >= 0, epochs of the search-phase model;
            must be 0 for `"bins_hard"`, which has no search.
        epochs: int >= 1, epochs of the final training.
        refine_after: the number of final-training epochs before the
            refine step (1 <= refine_after < epochs) for the regimes that
            refine; ignored (may be `None`) for the others.

    Raises:
        ValueError: an `ArgumentError` naming the argument and its value.
    """
    regime = check_sharing(sharing)
    with naming("search_epochs"):
        search_epochs = check_int("search_epochs", search_epochs, minimum=0)
    with naming("epochs"):
        epochs = check_int("epochs", epochs, minimum=1)
    steps: list[Step] = []
    if regime.searches:
        steps += [Step(Phase.SEARCH_TRAINING, e) for e in range(search_epochs)]
        steps.append(Step(Phase.CLUSTERING))
    elif search_epochs:
        raise invalid_argument(
            "search_epochs",
            f"sharing={regime.value!r} runs no search; pass search_epochs=0 "
            "or another regime.",
            search_epochs,
        )
    if regime.refines:
        if (
            isinstance(refine_after, bool)
            or not isinstance(refine_after, int)
            or not 1 <= refine_after < epochs
        ):
            raise invalid_argument(
                "refine_after",
                f"Expected an int with 1 <= refine_after < epochs={epochs} "
                f"(sharing={regime.value!r} refines; use "
                "sharing='learned_no_refine' for no refine).",
                refine_after,
            )
        steps += [Step(Phase.TRAINING, e) for e in range(refine_after)]
        steps.append(Step(Phase.REFINE))
        steps += [Step(Phase.TRAINING, e) for e in range(refine_after, epochs)]
    else:
        steps += [Step(Phase.TRAINING, e) for e in range(epochs)]
    steps.append(Step(Phase.FINISH))
    steps.append(Step(Phase.DONE))
    return tuple(steps)
