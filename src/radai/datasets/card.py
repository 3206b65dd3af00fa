"""The dataset card: what a dataset version is, where it comes from, and what is in it.

The text parts (purpose, source, inclusion criteria, label method and verification) are
written by the curator; the counts are computed when the version is frozen: studies
and instances, modalities, labels per finding (present / absent / uncertain / none),
label methods, and the distribution of sex, age band, manufacturer and institution —
the subgroups validation reports break results down by (radai.quality.inputs).

Ages come from Patient's Age (0010,1010, an AS value such as ``005Y``) or, when it is
absent, from Patient's Birth Date (0010,0030) and Study Date (0008,0020) (PS3.5 §6.2 AS
and DA). Bands are whole years; the first bands are narrow because paediatric datasets
are common.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from radai.quality.inputs import AGE_BAND, INSTITUTION, MANUFACTURER, SEX, SUBGROUP_ATTRIBUTES, UNKNOWN

#: Age bands in whole years: (first, last) with ``None`` for open-ended.
AGE_BANDS: tuple[tuple[int, int | None], ...] = (
    (0, 4), (5, 9), (10, 17), (18, 39), (40, 64), (65, 79), (80, None))
_AS = re.compile(r"^(\d{3})([DWMY])$")
_DAYS_PER_YEAR = 365.2425
#: Card text fields that must be filled before a version can be frozen.
REQUIRED_TEXT = ("purpose", "source", "inclusion_criteria", "label_method")
TEXT_FIELDS = ("purpose", "source", "inclusion_criteria", "label_method", "label_verification")
#: Card text field -> heading.
TEXT_TITLES = {"purpose": "Purpose", "source": "Source", "inclusion_criteria": "Inclusion criteria",
               "label_method": "Label method", "label_verification": "Label verification"}
_SUBGROUP_TITLES = {SEX: "Sex", AGE_BAND: "Age band (years)", MANUFACTURER: "Manufacturer",
                    INSTITUTION: "Institution"}


def age_in_years(patient_age: str, birth_date: str, study_date: str) -> float | None:
    """The patient's age at the study in years, or None when it cannot be known."""
    found = _AS.match(patient_age.strip())
    if found:
        n, unit = int(found.group(1)), found.group(2)
        return {"D": n / _DAYS_PER_YEAR, "W": 7 * n / _DAYS_PER_YEAR, "M": n / 12, "Y": float(n)}[unit]
    born, seen = _date(birth_date), _date(study_date)
    if born is None or seen is None or seen < born:
        return None
    return (seen - born).days / _DAYS_PER_YEAR


def _date(value: str) -> date | None:
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def age_band(years: float | None) -> str:
    """The band of an age in years, e.g. ``5-9`` or ``80+``; ``unknown`` for None."""
    if years is None:
        return UNKNOWN
    whole = int(years)
    for first, last in AGE_BANDS:
        if last is None:
            return f"{first}+"
        if first <= whole <= last:
            return f"{first}-{last}"
    return UNKNOWN


def sex_value(patient_sex: str) -> str:
    """Patient's Sex (0010,0040) as a subgroup value: M, F, O or ``unknown``."""
    value = patient_sex.strip().upper()
    return value if value in ("M", "F", "O") else UNKNOWN


def distribution(values: Iterable[str]) -> dict[str, int]:
    """Count per value, ``unknown`` last."""
    counts = Counter(values)
    return {v: counts[v] for v in sorted(counts, key=lambda v: (v == UNKNOWN, v))}


def build_card(*, name: str, version: int, description: str, text: Mapping[str, str],
               studies: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The card of a version from its manifest's study entries (see radai.datasets.manifest)."""
    label_counts = []
    for f in findings:
        tally: Counter[str] = Counter()
        for study in studies:
            label = next((lab for lab in study["labels"]
                          if lab["scheme"] == f["scheme"] and lab["value"] == f["value"]), None)
            tally[label["label"] if label else "unlabelled"] += 1
        label_counts.append({**f, "present": tally["present"], "absent": tally["absent"],
                             "uncertain": tally["uncertain"], "unlabelled": tally["unlabelled"]})
    methods = Counter(lab["method"] for study in studies for lab in study["labels"])
    return {
        "name": name,
        "version": version,
        "description": description,
        **{field: text.get(field, "") for field in TEXT_FIELDS},
        "n_studies": len(studies),
        "n_instances": sum(len(s["instances"]) for s in studies),
        "modalities": distribution(m for s in studies for m in s["modalities"]),
        "findings": label_counts,
        "label_methods": dict(sorted(methods.items())),
        "subgroups": {attr: distribution(s["subgroups"].get(attr, UNKNOWN) for s in studies)
                      for attr in SUBGROUP_ATTRIBUTES},
    }


def card_markdown(card: Mapping[str, Any], *, manifest_sha256: str | None = None) -> str:
    """The card as a Markdown document."""
    lines = [f"# Dataset card: {card['name']} version {card['version']}", ""]
    if card.get("description"):
        lines += [str(card["description"]), ""]
    if manifest_sha256:
        lines += [f"Manifest SHA-256: `{manifest_sha256}`", ""]
    for field in TEXT_FIELDS:
        lines += [f"## {TEXT_TITLES[field]}", "", str(card.get(field) or "(not stated)"), ""]
    lines += ["## Contents", "", f"- Studies: {card['n_studies']}", f"- Instances: {card['n_instances']}",
              "- Modalities: " + (", ".join(f"{k} ({v})" for k, v in card["modalities"].items()) or "none"),
              ""]
    lines += ["## Labels", "", "| Finding | Code | Present | Absent | Uncertain | Unlabelled |",
              "|---|---|---:|---:|---:|---:|"]
    for f in card["findings"]:
        lines.append(f"| {_cell(f['meaning'])} | {_cell(f['scheme'])} {_cell(f['value'])} | {f['present']} "
                     f"| {f['absent']} | {f['uncertain']} | {f['unlabelled']} |")
    methods = ", ".join(f"{_cell(k)} ({v})" for k, v in card["label_methods"].items())
    lines += ["", "Label methods: " + (methods or "none"), ""]
    for attr in SUBGROUP_ATTRIBUTES:
        counts = card["subgroups"].get(attr)
        if not counts:
            continue
        lines += [f"## {_SUBGROUP_TITLES.get(attr, attr)}", "", "| Value | Studies |", "|---|---:|"]
        lines += [f"| {_cell(k)} | {v} |" for k, v in counts.items()]
        lines.append("")
    return "\n".join(lines)


def _cell(value: object) -> str:
    # Keeps table cells intact: a pipe or line break in curator text would split the row.
    return str(value).replace("|", "\\|").replace("\n", " ")
