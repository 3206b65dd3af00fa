"""Routing rules (``[routing]`` in radai.toml, or a YAML file).

A rule matches DICOM attributes of a study and its series and names the models that
get the study. Conditions of one rule must all hold (AND); a list condition holds when
the value is one of the list (case-insensitive; ``""`` in the list accepts an empty
value); a regular-expression condition holds when the pattern is found anywhere in
the value (``re.search``, case-insensitive). Series-level conditions (Modality,
Body Part Examined, View Position, Series Description, calling AE title, Institution
Name) must hold for one and the same series. Every rule that matches applies, so one
study can go to several models.

In radai.toml::

    [[routing.rules]]
    name = "chest-radiograph"
    per = "study"                     # or "series": one task per matching series
    models = ["pneumonia-peds"]       # "ID" or "ID@VERSION", or {id = …, version = …}
    [routing.rules.match]
    modality = ["CR", "DX"]
    body_part_examined = ["CHEST"]

The same in a YAML file (``routing.rules_file``) is a mapping with a ``rules`` list.
When no rule is configured anywhere, :data:`DEFAULT_RULES` apply (set
``default_rules = false`` to route nothing).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Rule names appear in the API, logs and task rows: short, no spaces.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Part):
    """A model a rule routes to: its id and, optionally, one version.

    Without a version the study goes to every *live* version of the id.
    """

    id: str = Field(min_length=1, max_length=64)
    version: str | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            model_id, _, version = data.partition("@")
            return {"id": model_id.strip(), "version": version.strip() or None}
        return data

    @property
    def ref(self) -> str:
        """``id`` or ``id@version``."""
        return f"{self.id}@{self.version}" if self.version else self.id


def _upper_list(values: list[str]) -> list[str]:
    return [v.strip().upper() for v in values]


class Match(_Part):
    """The conditions of a rule; an absent condition always holds."""

    #: Modality (0008,0060) of a series, any of.
    modality: list[str] = Field(default_factory=list)
    #: Body Part Examined (0018,0015) of a series, any of (PS3.16 CID 4031 terms).
    body_part_examined: list[str] = Field(default_factory=list)
    #: View Position (0018,5101) of a series, any of.
    view_position: list[str] = Field(default_factory=list)
    #: Calling AE title of the association that sent the series, any of.
    calling_ae_title: list[str] = Field(default_factory=list)
    #: Regular expression searched in Study Description (0008,1030).
    study_description: str | None = None
    #: Regular expression searched in Series Description (0008,103E).
    series_description: str | None = None
    #: Regular expression searched in Institution Name (0008,0080) of a series.
    institution_name: str | None = None

    @field_validator("modality", "body_part_examined", "view_position")
    @classmethod
    def _code_strings(cls, values: list[str]) -> list[str]:
        # Code String values (PS3.5 Table 6.2-1) are upper case; compare them so.
        return _upper_list(values)

    @field_validator("calling_ae_title")
    @classmethod
    def _aets(cls, values: list[str]) -> list[str]:
        return [v.strip() for v in values]


#: Match fields holding regular expressions.
REGEX_FIELDS = ("study_description", "series_description", "institution_name")


class Rule(_Part):
    """One routing rule."""

    name: str
    #: ``study``: one task for the study; ``series``: one task per matching series.
    per: Literal["study", "series"] = "study"
    match: Match = Field(default_factory=Match)
    models: list[ModelRef] = Field(min_length=1)
    #: A disabled rule is kept in the configuration but never applies.
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _regexes(self) -> Rule:
        for field in REGEX_FIELDS:
            pattern = getattr(self.match, field)
            if pattern is None:
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"rule {self.name!r}: match.{field} is not a valid regular expression ({exc})"
                ) from None
        return self


#: The rules that apply when none is configured, so that a fresh installation routes
#: the built-in models' studies (``make demo``): chest radiographs (CR/DX, Body Part
#: Examined CHEST) to the paediatric pneumonia model, and MR of the brain or head to
#: the brain tumour model. They ask for the body part because both models' scopes do
#: (a study without it would only become an "input not suited" defect).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="chest-radiograph", per="study",
         match=Match(modality=["CR", "DX"], body_part_examined=["CHEST"]),
         models=[ModelRef(id="pneumonia-peds")]),
    Rule(name="brain-mri", per="study",
         match=Match(modality=["MR"], body_part_examined=["BRAIN", "HEAD"]),
         models=[ModelRef(id="brain-tumor-mri")]),
)


class RoutingSettings(BaseModel):
    """``[routing]``: the rules, inline and/or from a YAML file."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    #: A YAML file with a ``rules`` list (same fields as ``[[routing.rules]]``).
    rules_file: Path | None = None
    #: Use :data:`DEFAULT_RULES` when no rule is configured.
    default_rules: bool = True

    @model_validator(mode="after")
    def _load_file_and_check_names(self) -> RoutingSettings:
        if self.rules_file is not None:
            self.rules = [*self.rules, *load_rules_file(self.rules_file)]
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule {rule.name!r} is defined twice")
            seen.add(rule.name)
        return self

    def effective_rules(self) -> list[Rule]:
        """The enabled rules that apply: configured ones, else the defaults."""
        configured = self.rules or (list(DEFAULT_RULES) if self.default_rules else [])
        return [r for r in configured if r.enabled]

    @property
    def using_defaults(self) -> bool:
        """Whether the embedded default rules apply."""
        return not self.rules and self.default_rules


def load_rules_file(path: Path) -> list[Rule]:
    """Rules from a YAML file; ValueError names the file and the rule."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"rules file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"rules file {path} cannot be read ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"rules file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ValueError(f"rules file {path} must be a mapping with a 'rules' list")
    rules = []
    for i, item in enumerate(data["rules"]):
        label = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            rules.append(Rule.model_validate(item))
        except ValidationError as exc:
            raise ValueError(f"rules file {path}: rule {label!r}: {_first_error(exc)}") from None
    return rules


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "rule"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
