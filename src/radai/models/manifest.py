"""Model package manifests (``model.yaml``).

A model package is a folder holding ``model.yaml`` and the files it names. The manifest
says who made the model and what for (id, version, vendor, intended use, licence), which
studies it accepts (``scope``), how pixels become its input (``input``), what its output
columns mean (``outputs``: findings coded in SNOMED CT where a concept exists, PS3.3
§8.8 code triplets), how it runs (``runtime``), what it needs (``resources``), what its
maker claims (``claimed_metrics``) and the lifecycle state it starts in.

Every field is checked when the manifest is loaded; a bad one raises
:class:`ManifestError` whose message names the file and the field, e.g.
``model.yaml: outputs.findings.0.threshold: must be between 0 and 1``. The format is
documented with examples in ``docs/model-packages.md``.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from radai.models.api import Code

#: Ids are used in file paths and URLs: lower-case letters, digits, dot, dash, underscore.
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Versions likewise (PEP 440 and SemVer strings fit).
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,31}$")
#: Code String values (PS3.5 Table 6.2-1, CS): upper-case letters, digits, space, underscore.
_CS = re.compile(r"^[A-Z0-9 _]{1,16}$")


class ManifestError(ValueError):
    """An invalid model package; the message names the file and the field."""


class LifecycleState(enum.StrEnum):
    """Where a model version stands: only LIVE models receive clinical studies."""

    DRAFT = "draft"
    VALIDATED = "validated"
    APPROVED = "approved"
    LIVE = "live"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cs_list(values: list[str], what: str) -> list[str]:
    out = []
    for v in values:
        value = v.strip().upper()
        if not _CS.match(value):
            raise ValueError(f"{what} {v!r} is not a DICOM code string (A-Z, 0-9, space, _; 16 at most)")
        out.append(value)
    return out


class Scope(_Part):
    """Which images the model accepts, matched on DICOM attributes of each instance.

    ``modalities`` (Modality (0008,0060)), ``body_parts`` (Body Part Examined
    (0018,0015), PS3.16 CID 4031 defined terms), ``views`` (View Position (0018,5101))
    and ``sop_classes`` (SOP Class UIDs); an empty list accepts any value.
    """

    modalities: list[str] = Field(min_length=1)
    body_parts: list[str] = Field(default_factory=list)
    views: list[str] = Field(default_factory=list)
    sop_classes: list[str] = Field(default_factory=list)
    #: Whether an instance with an empty Body Part Examined is accepted (many scanners
    #: leave it empty; routing rules may then narrow the choice).
    missing_body_part: Literal["accept", "refuse"] = "refuse"
    #: Whether an instance with an empty View Position is accepted.
    missing_view: Literal["accept", "refuse"] = "accept"

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, v: list[str]) -> list[str]:
        return _cs_list(v, "modality")

    @field_validator("body_parts")
    @classmethod
    def _body_parts(cls, v: list[str]) -> list[str]:
        return _cs_list(v, "body part")

    @field_validator("views")
    @classmethod
    def _views(cls, v: list[str]) -> list[str]:
        return _cs_list(v, "view")

    @field_validator("sop_classes")
    @classmethod
    def _sop_classes(cls, v: list[str]) -> list[str]:
        for uid in v:
            if not re.match(r"^[0-9]+(\.[0-9]+)*$", uid) or len(uid) > 64:
                raise ValueError(f"{uid!r} is not a UID")
        return v


class ScaleNormalisation(_Part):
    """``x / divisor + offset`` (e.g. divisor 255 for 0..1)."""

    kind: Literal["scale"]
    divisor: float = Field(default=255.0, gt=0)
    offset: float = 0.0


class MeanStdNormalisation(_Part):
    """``(x / divisor - mean[c]) / std[c]`` per channel (ImageNet style)."""

    kind: Literal["mean_std"]
    mean: list[float] = Field(min_length=1, max_length=3)
    std: list[float] = Field(min_length=1, max_length=3)
    divisor: float = Field(default=255.0, gt=0)

    @field_validator("std")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("every std must be greater than 0")
        return v


class MinusOneOneNormalisation(_Part):
    """``x / 127.5 - 1`` (Keras ``preprocess_input`` of Xception, Inception, MobileNet)."""

    kind: Literal["minus_one_one"]


Normalisation = Annotated[
    ScaleNormalisation | MeanStdNormalisation | MinusOneOneNormalisation,
    Field(discriminator="kind"),
]


class FixedWindow(_Part):
    """An explicit linear window in modality units (PS3.3 §C.11.2.1.2)."""

    center: float
    width: float = Field(ge=1)


class InputSpec(_Part):
    """How a DICOM image becomes the model's input array (see radai.models.preprocess)."""

    dimensions: Literal["2D", "3D"] = "2D"
    #: [rows, columns] of the model input.
    size: tuple[int, int]
    channels: Literal[1, 3]
    layout: Literal["NHWC", "NCHW"]
    dtype: Literal["float32"] = "float32"
    normalisation: Normalisation
    #: ``none``: stored values untouched (exact for 8-bit images); ``dataset``: the
    #: dataset's VOI LUT or window when it has one, else 8-bit stored values untouched,
    #: else the value range; ``minmax``: the frame's value range; or a fixed window.
    windowing: Literal["none", "dataset", "minmax"] | FixedWindow = "dataset"
    resize: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = "bilinear"
    #: Which frame of a multi-frame image (``all`` only for 3D models).
    frames: Literal["first", "middle", "all"] = "first"
    min_images: int = Field(default=1, ge=1)
    #: More candidates than this are thinned to evenly spaced ones.
    max_images: int = Field(default=16, ge=1, le=10000)

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not all(1 <= s <= 8192 for s in v):
            raise ValueError("rows and columns must be between 1 and 8192")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        if self.frames == "all" and self.dimensions != "3D":
            raise ValueError("frames: all is only for 3D models")
        if self.min_images > self.max_images:
            raise ValueError("min_images is greater than max_images")
        norm = self.normalisation
        if isinstance(norm, MeanStdNormalisation) and self.channels not in (len(norm.mean), 1):
            raise ValueError("normalisation.mean needs one value per channel")
        if isinstance(norm, MeanStdNormalisation) and len(norm.mean) != len(norm.std):
            raise ValueError("normalisation.mean and normalisation.std differ in length")
        return self


class CodeSpec(_Part):
    """A coded concept (PS3.3 §8.8): value, coding scheme designator, meaning."""

    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=64)

    def to_code(self) -> Code:
        """The API's :class:`~radai.models.api.Code`."""
        return Code(self.value, self.scheme, self.meaning)


class Finding(_Part):
    """One output column that is a finding."""

    code: CodeSpec
    label: str = Field(min_length=1, max_length=64)
    #: Column of the output row holding this finding's score.
    index: int = Field(ge=0)
    #: Operating point: a probability at or above it is positive.
    threshold: float
    urgency: Literal["routine", "urgent", "critical"] = "routine"

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("must be between 0 and 1")
        return v


class Outputs(_Part):
    """What the output rows mean.

    ``softmax``/``sigmoid``: the model already outputs probabilities (exclusive classes
    or independent ones); ``logits_softmax``/``logits_sigmoid``: raw logits that radai
    turns into probabilities.
    """

    kind: Literal["softmax", "sigmoid", "logits_softmax", "logits_sigmoid"]
    #: Number of output columns.
    classes: int = Field(ge=1, le=100000)
    findings: list[Finding] = Field(min_length=1)
    #: Labels of the other columns (e.g. the negative class), for people only.
    other_labels: dict[int, str] = Field(default_factory=dict)
    #: How a study's score comes from its images' scores.
    aggregate: Literal["max", "mean"] = "max"

    @model_validator(mode="after")
    def _indices(self) -> Outputs:
        seen: set[int] = set()
        for i, f in enumerate(self.findings):
            if f.index >= self.classes:
                raise ValueError(f"findings.{i}.index {f.index} is not below classes ({self.classes})")
            if f.index in seen:
                raise ValueError(f"findings.{i}.index {f.index} is used twice")
            seen.add(f.index)
        return self


class KerasSource(_Part):
    """The runtime file is made at first use from a Keras 3 model (exported to ONNX)."""

    kind: Literal["keras"]
    #: The ``.keras`` file (same resolution rules as ``runtime.file``).
    file: str = Field(min_length=1)


class Runtime(_Part):
    """How the model runs.

    ``file`` is relative to the package folder, or ``pkg:DIST/PATH`` for a file shipped
    inside an installed Python package (found without importing it). ``onnx`` runs in
    ONNX Runtime on CPU; ``torch`` runs in PyTorch (CUDA when available): a ``.pt2``
    ``torch.export`` program, or an ``.onnx`` graph converted with onnx2torch;
    ``python`` calls ``entry_point`` (``module:function``) which returns a LoadedModel.
    """

    kind: Literal["onnx", "torch", "python"]
    file: str | None = None
    input_name: str | None = None
    output_name: str | None = None
    entry_point: str | None = None
    #: Where ``file`` comes from when it is built at first use (cached by content hash).
    source: KerasSource | None = None
    #: Heatmaps: ``auto`` is Grad-CAM on torch, occlusion sensitivity on ONNX.
    explain: Literal["auto", "gradcam", "occlusion", "none"] = "auto"
    #: Occlusion: the image is covered by a grid of this many patches per side.
    occlusion_grid: int = Field(default=8, ge=2, le=32)

    @model_validator(mode="after")
    def _consistent(self) -> Runtime:
        if self.kind == "python":
            if not self.entry_point or not re.match(r"^[\w.]+:[\w.]+$", self.entry_point):
                raise ValueError("a python runtime needs entry_point: 'module:function'")
        elif not self.file and not self.source:
            raise ValueError(f"a {self.kind} runtime needs file (or source)")
        if self.explain == "gradcam" and self.kind == "onnx":
            raise ValueError("explain: gradcam needs the torch runtime")
        return self


class Resources(_Part):
    """What one model instance needs and how the executor should feed it."""

    device: Literal["cpu", "gpu", "auto"] = "auto"
    memory_mb: int = Field(default=1024, ge=16)
    max_batch_size: int = Field(default=16, ge=1, le=4096)
    batch_timeout_ms: int = Field(default=50, ge=0, le=60000)
    concurrency: int = Field(default=1, ge=1, le=256)
    timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=20)


class ClaimedMetrics(_Part):
    """What the maker reports (checked later by validation runs on local data)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    auc: float | None = Field(default=None, ge=0, le=1)
    sensitivity: float | None = Field(default=None, ge=0, le=1)
    specificity: float | None = Field(default=None, ge=0, le=1)
    accuracy: float | None = Field(default=None, ge=0, le=1)
    dataset: str | None = None
    notes: str | None = None


class Lifecycle(_Part):
    """The state a new installation starts in (later changes live in the registry)."""

    state: LifecycleState = LifecycleState.DRAFT


class Manifest(_Part):
    """A model package's ``model.yaml``."""

    id: str
    version: str
    name: str = Field(min_length=1, max_length=128)
    vendor: str = Field(min_length=1, max_length=128)
    intended_use: str = Field(min_length=1)
    #: Free text; may say "licence unknown — research use only".
    licence: str = Field(min_length=1, max_length=256)
    description: str = ""
    scope: Scope
    input: InputSpec
    outputs: Outputs
    runtime: Runtime
    resources: Resources = Field(default_factory=Resources)
    claimed_metrics: ClaimedMetrics = Field(default_factory=ClaimedMetrics)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be 1-64 lower-case letters, digits, '.', '-' or '_'")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: Any) -> str:
        text = str(v)
        if not _VERSION.match(text):
            raise ValueError("must be 1-32 letters, digits, '.', '+', '-' or '_'")
        return text

    @property
    def ref(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON values (what the registry stores)."""
        return self.model_dump(mode="json")


def parse_manifest(data: Any, *, where: str = "model.yaml") -> Manifest:
    """Validate manifest data (already parsed YAML/JSON); ManifestError names the field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: must be a mapping of fields")
    if "version" in data and isinstance(data["version"], int | float):
        data = {**data, "version": str(data["version"])}
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_describe(exc, where)) from None


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``path`` (a ``model.yaml`` or the package folder holding one)."""
    if path.is_dir():
        path = path / "model.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read ({type(exc).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"{path.name}: not valid YAML{where}") from None
    return parse_manifest(data, where=path.name)


def _describe(exc: ValidationError, where: str) -> str:
    errors = []
    for err in exc.errors():
        # Discriminated unions and literal-or-model unions add type names to the path.
        loc = [str(p) for p in err["loc"] if not _is_type_tag(str(p))]
        errors.append((".".join(loc) or "manifest", err))
    # A value that may be a word or a mapping (windowing) fails both ways; report the
    # failure of the form that was given.
    fields = [f for f, _ in errors]
    errors = [(f, e) for f, e in errors
              if not (e["type"] == "literal_error" and any(o.startswith(f + ".") for o in fields))
              and not (e["type"] in ("model_type", "dict_type")
                       and any(o == f and x["type"] == "literal_error" for o, x in errors))]
    lines = []
    for field, err in errors:
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{where}: {field}: {msg}")
    return "; ".join(dict.fromkeys(lines))


def _is_type_tag(part: str) -> bool:
    return part in {"scale", "mean_std", "minus_one_one", "FixedWindow"} or part.startswith(
        ("literal[", "function-")) or "[" in part
