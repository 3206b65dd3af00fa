"""What the inference engine asks of a loaded model (the contract between
``radai.models`` and ``radai.inference``).

A model package's manifest says what the model accepts and what it outputs; the
registry turns a package into a :class:`LoadedModel`. The executor then, for each task:
selects the instances the model accepts, prepares each into an input array (pixel
pipeline), runs batches of inputs from one or more tasks through :meth:`infer`, turns a
task's output rows into study-level :class:`FindingScore` values with :meth:`score`,
and asks :meth:`explain` for a heatmap per positive finding. Every step may raise a
:class:`ModelDefect`, whose category is the technical-defect taxonomy of
ARCHITECTURE.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from pydicom.dataset import Dataset


class DefectCategory(enum.StrEnum):
    """Technical defect categories (the Moscow experiment's taxonomy)."""

    #: Wrong modality, body part or series, missing tags, wrong image count, unreadable pixels.
    INPUT_NOT_SUITED = "input_not_suited"
    #: Model not loaded, timeout, resources exhausted.
    SERVICE_UNAVAILABLE = "service_unavailable"
    #: The model itself failed.
    MODEL_ERROR = "model_error"


class ModelDefect(Exception):
    """A task cannot produce findings; ``reason`` is for people and holds no patient data."""

    def __init__(self, category: DefectCategory, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason
        #: Whether trying again later may succeed (service unavailable: yes; bad input: no).
        self.retryable = retryable


@dataclass(frozen=True)
class Code:
    """A coded concept (PS3.3 §8.8): code value, coding scheme designator, code meaning."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class FindingScore:
    """One finding of a model for one study (or series)."""

    code: Code
    label: str
    #: 0..1
    probability: float
    #: The model's operating point for this finding.
    threshold: float
    positive: bool
    #: Urgency of a positive finding (from the manifest): e.g. "routine", "urgent", "critical".
    urgency: str = "routine"
    #: Index into the inputs of the task whose image carries the finding (for heatmaps/SC).
    input_index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceRef:
    """What selection sees of a stored instance (from the index, no file read)."""

    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    modality: str
    body_part_examined: str
    view_position: str
    series_description: str
    rows: int | None
    columns: int | None
    number_of_frames: int | None


class LoadedModel(Protocol):
    """A model ready to run; see the module docstring for the order of calls."""

    @property
    def model_id(self) -> str:
        """The manifest's id."""

    @property
    def version(self) -> str:
        """The manifest's version."""

    def select(self, instances: list[InstanceRef]) -> list[InstanceRef]:
        """The instances of a study (or series) this model takes as inputs.

        Raises ModelDefect(INPUT_NOT_SUITED) if none fits (wrong modality, image count…).
        """

    def prepare(self, ds: Dataset) -> np.ndarray:
        """One input array from a dataset (pixel pipeline); ModelDefect if unreadable."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs, one row per input row; ModelDefect(MODEL_ERROR) on failure."""

    def score(self, outputs: np.ndarray) -> list[FindingScore]:
        """Study-level findings from the output rows of one task's inputs."""

    def explain(self, inputs: np.ndarray, finding: FindingScore) -> np.ndarray:
        """A heatmap in 0..1 over ``inputs[finding.input_index]``'s rows and columns."""
