"""Importing labelled files into a draft: ``radai datasets import NAME LABELS.csv``.

The CSV (UTF-8, header row) has one row per file and finding::

    file,code,meaning,label,method,established_by
    scans/a.dcm,SCT:233604007,Pneumonia,present,radiologist consensus,reading panel 2024
    images/b.jpeg,SCT:233604007,Pneumonia,absent,,

``file`` is relative to the CSV's folder: a DICOM file, or a JPEG/PNG image that is
converted into DICOM as ``radai import --as-dicom`` does (radai.archive.convert), with
the image attribute columns of that command's CSV (``patient_id``, ``sex``,
``birth_date``, ``study_date``, ``modality``, ``body_part``, ``view_position``,
``institution``, ``study``…) taken from the file's first row. ``code`` is
``SCHEME:VALUE``; ``meaning`` may be left empty for a code the dataset already uses;
``method`` and ``established_by`` default to the command's options. A row with empty
``code`` and ``label`` imports the file without a label.

Every file is read (and every image converted) before anything is stored; if one
fails, nothing is stored and every failing line is named. The studies and labels then
go into the draft in one transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from radai.archive.convert import (
    CSV_COLUMNS,
    IMAGE_SUFFIXES,
    ConversionError,
    ImageAttributes,
    SopClassChoice,
    image_to_dataset,
)
from radai.archive.indexer import IndexOutcome
from radai.archive.parse import Rejection, parse_instance
from radai.archive.service import Archive
from radai.datasets.models import LabelValue
from radai.datasets.service import (
    Added,
    DatasetError,
    add_studies,
    code_for,
    draft_of,
    set_label,
    study_pks_for_uids,
)
from radai.db import Database
from radai.uids import new_uid

LABEL_COLUMNS = ("file", "code", "meaning", "label", "method", "established_by")


@dataclass(frozen=True)
class LabelRow:
    """One finding's label for a file's study."""

    line: int
    code: str
    meaning: str
    label: str
    method: str
    established_by: str


@dataclass
class ImportItem:
    """A file to import, its image attributes (for JPEG/PNG) and its labels."""

    path: Path
    line: int
    attributes: dict[str, str] = field(default_factory=dict)
    labels: list[LabelRow] = field(default_factory=list)


@dataclass
class ImportResult:
    """What an import did."""

    stored: int = 0
    duplicates: int = 0
    added: Added | None = None
    labels: int = 0
    #: Study Instance UID of each file's study, in file order.
    study_uids: list[str] = field(default_factory=list)


def read_import_csv(path: Path) -> list[ImportItem]:
    """The files and labels a CSV lists; DatasetError naming the line of the first problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({type(exc).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "file" not in header:
        raise DatasetError(f"{path}: the header has no 'file' column")
    unknown = [h for h in header if h not in LABEL_COLUMNS and h not in CSV_COLUMNS]
    if unknown:
        raise DatasetError(f"{path}: unknown column {unknown[0]!r}")
    items: dict[Path, ImportItem] = {}
    for line, row in enumerate(reader, start=2):
        values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        name = values.get("file", "")
        if not name:
            raise DatasetError(f"{path}: line {line}: the 'file' cell is empty")
        target = (path.parent / name).resolve()
        item = items.get(target)
        if item is None:
            attributes = {CSV_COLUMNS[k]: v for k, v in values.items()
                          if k in CSV_COLUMNS and k != "file" and v}
            item = items[target] = ImportItem(target, line, attributes)
        code, label = values.get("code", ""), values.get("label", "")
        if code or label:
            if not code or not label:
                raise DatasetError(f"{path}: line {line}: a label needs both 'code' and 'label'")
            item.labels.append(LabelRow(line, code, values.get("meaning", ""), label,
                                        values.get("method", ""), values.get("established_by", "")))
    if not items:
        raise DatasetError(f"{path}: lists no file")
    return list(items.values())


def _prepare(items: list[ImportItem], defaults: ImageAttributes,
             sop_class: SopClassChoice) -> tuple[list[bytes], list[str]]:
    """Each file's DICOM bytes and study UID, or DatasetError naming every line that fails."""
    problems: list[str] = []
    encoded: list[bytes] = []
    studies: list[str] = []
    groups: dict[str, tuple[str, str, int]] = {}
    for item in items:
        try:
            if item.path.suffix.lower() in IMAGE_SUFFIXES:
                attrs = replace(defaults, **item.attributes)
                key = attrs.study_key or f"file:{item.path}"
                study_uid, series_uid, count = groups.get(key, (new_uid(), new_uid(), 0))
                groups[key] = (study_uid, series_uid, count + 1)
                ds = image_to_dataset(item.path, attrs, sop_class=sop_class, study_uid=study_uid,
                                      series_uid=series_uid, instance_number=count + 1)
                buf = io.BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                data = buf.getvalue()
            else:
                if item.attributes:
                    raise DatasetError("image attribute columns apply to JPEG/PNG images only")
                data = item.path.read_bytes()
            parsed = parse_instance(data)
        except ConversionError as exc:
            problems.append(f"line {item.line}: {str(exc).removeprefix(f'{item.path}: ')}")
            continue
        except (DatasetError, Rejection) as exc:
            problems.append(f"line {item.line}: {exc}")
            continue
        except OSError as exc:
            problems.append(f"line {item.line}: the file cannot be read ({exc.strerror})")
            continue
        encoded.append(data)
        studies.append(parsed.study_instance_uid)
    if problems:
        raise DatasetError("nothing imported: " + "; ".join(problems))
    return encoded, studies


def import_labelled(*, db: Database, archive: Archive, name: str, items: list[ImportItem],
                    defaults: ImageAttributes, sop_class: SopClassChoice, method: str, established_by: str,
                    actor: str, on_file: Callable[[], None] | None = None) -> ImportResult:
    """Store the files in the archive, then add their studies and labels to the dataset's draft."""
    # A code's meaning may be given once in the file and left empty in its other rows.
    meanings: dict[str, str] = {}
    for item in items:
        for row in item.labels:
            if row.meaning:
                meanings.setdefault(row.code.strip(), row.meaning)
    items = [replace(item, labels=[replace(row, meaning=row.meaning or meanings.get(row.code.strip(), ""))
                                   for row in item.labels]) for item in items]
    with db.session() as s:
        # Refuse before anything is stored: a frozen version, a bad label.
        version = draft_of(s, name=name)
        for item in items:
            for row in item.labels:
                try:
                    code_for(s, version=version, code=row.code, meaning=row.meaning or None)
                    LabelValue(row.label.lower())
                except ValueError as exc:
                    raise DatasetError(f"line {row.line}: {_label_error(exc)}") from None
                if not (row.method or method).strip():
                    raise DatasetError(f"line {row.line}: the label's method is not given "
                                       "(a 'method' cell or the --label-method option)")
    encoded, studies = _prepare(items, defaults, sop_class)
    result = ImportResult(study_uids=studies)
    for data in encoded:
        try:
            outcome = archive.store(data, source="import")
        except Rejection as exc:
            raise DatasetError(f"the archive refused a file: {exc.message}") from None
        if outcome.outcome is IndexOutcome.STORED:
            result.stored += 1
        else:
            result.duplicates += 1
        if on_file is not None:
            on_file()
    with db.transaction() as s:
        version = draft_of(s, name=name)
        result.added = add_studies(s, version=version, study_pks=study_pks_for_uids(s, studies))
        for item, study_uid in zip(items, studies, strict=True):
            for row in item.labels:
                try:
                    code = code_for(s, version=version, code=row.code, meaning=row.meaning or None)
                    set_label(s, version=version, study=study_uid, code=code,
                              value=LabelValue(row.label.lower()), method=row.method or method,
                              established_by=row.established_by or established_by, actor=actor)
                except ValueError as exc:
                    raise DatasetError(f"line {row.line}: {_label_error(exc)}") from None
                result.labels += 1
    return result


def _label_error(exc: ValueError) -> str:
    return str(exc) if isinstance(exc, DatasetError) else "a label is present, absent or uncertain"


#: Columns of a labels CSV for studies already in a dataset (``radai datasets label --csv``).
STUDY_LABEL_COLUMNS = ("study", "code", "meaning", "label", "method", "established_by")


@dataclass(frozen=True)
class StudyLabelRow:
    """One label of a study named by its dataset key or Study Instance UID."""

    study: str
    row: LabelRow


def read_label_csv(path: Path) -> list[StudyLabelRow]:
    """Labels of studies already in the dataset: ``study`` (key or UID), ``code``, ``label``…"""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({type(exc).__name__})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in ("study", "code", "label") if c not in header]
    if missing:
        raise DatasetError(f"{path}: the header has no {missing[0]!r} column")
    unknown = [h for h in header if h not in STUDY_LABEL_COLUMNS]
    if unknown:
        raise DatasetError(f"{path}: unknown column {unknown[0]!r}")
    rows = []
    for line, raw in enumerate(reader, start=2):
        v = {k.strip().lower(): (x or "").strip() for k, x in raw.items() if k}
        if not v.get("study") or not v.get("code") or not v.get("label"):
            raise DatasetError(f"{path}: line {line}: 'study', 'code' and 'label' must not be empty")
        rows.append(StudyLabelRow(v["study"], LabelRow(line, v["code"], v.get("meaning", ""), v["label"],
                                                       v.get("method", ""), v.get("established_by", ""))))
    if not rows:
        raise DatasetError(f"{path}: lists no label")
    return rows
