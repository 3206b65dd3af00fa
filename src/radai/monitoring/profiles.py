"""Input profiles: the metadata of what each ended task read, recorded once.

For every ended task (done or technical defect, clinical or validation) one
:class:`~radai.monitoring.models.TaskInputProfile` row holds the attributes input drift
compares and the site it came from. They come from the archive index (series:
Manufacturer, BodyPartExamined, Modality, InstitutionName, the calling AE title;
instance: Rows, Columns; study: Patient's Age; patient: Patient's Sex and Birth Date)
and, for Pixel Spacing, which the index does not hold, from the header of the input
file (read up to the pixel data, never the pixels).

The input is the image carrying the task's first finding (the image the model read),
or for a task without findings (a defect) the first non-result image of its series or
study. Profiling reads in one session and writes in a short transaction of its own with
a conditional insert, so that files are never read while the SQLite write lock is
held, and several radai processes profiling at once write each row once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from radai.archive.models import Instance, Patient, Series, Study
from radai.archive.storage import FileStorage
from radai.db import Database, utcnow
from radai.inference.models import FINAL, Finding, InferenceTask
from radai.monitoring.models import TaskInputProfile

log = logging.getLogger(__name__)

#: Instances radai made itself (result objects) are never model inputs.
RESULT_SOURCE = "result"
#: Age String (PS3.5 Table 6.2-1, AS): nnnD, nnnW, nnnM or nnnY.
_AGE = re.compile(r"^(\d{3})([DWMY])$")
_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def age_in_years(patient_age: str, *, birth_date: str = "", study_date: str = "") -> float | None:
    """Patient's Age (0010,1010, an AS value such as ``045Y``) in years; when it is absent
    or malformed, the years from Patient's Birth Date to Study Date (both DA); else None."""
    found = _AGE.match(patient_age.strip())
    if found:
        return round(int(found.group(1)) * _UNIT_YEARS[found.group(2)], 3)
    born, seen = _date(birth_date), _date(study_date)
    if born is None or seen is None or seen < born:
        return None
    return round((seen - born).days / 365.25, 3)


def _date(value: str) -> date | None:
    value = value.strip()
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


@dataclass(frozen=True)
class _Source:
    task: InferenceTask
    instance: Instance | None
    series: Series | None
    study: Study
    patient: Patient
    last_input_received_at: datetime | None


def profile_pending(db: Database, storage: FileStorage, *, limit: int) -> int:
    """Profile up to ``limit`` ended tasks that have no profile yet; returns how many were written."""
    with db.session() as s:
        sources = _sources(s, limit)
    rows = [_profile(src, storage) for src in sources]
    if not rows:
        return 0
    written = 0
    with db.transaction() as s:
        insert = _insert(s)
        for row in rows:
            inserted = s.execute(insert(TaskInputProfile).values(**row)
                                 .on_conflict_do_nothing(index_elements=["task_pk"])
                                 .returning(TaskInputProfile.id)).scalar_one_or_none()
            written += inserted is not None
    return written


def _insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


def _sources(s: Session, limit: int) -> list[_Source]:
    tasks = list(s.scalars(
        select(InferenceTask)
        .outerjoin(TaskInputProfile, TaskInputProfile.task_pk == InferenceTask.id)
        .where(TaskInputProfile.id.is_(None), InferenceTask.state.in_(FINAL))
        .order_by(InferenceTask.id).limit(limit)))
    out = []
    for task in tasks:
        study = s.get(Study, task.study_pk)
        assert study is not None
        patient = s.get(Patient, study.patient_pk)
        assert patient is not None
        instance = _input_instance(s, task)
        series = s.get(Series, instance.series_pk) if instance is not None else (
            s.get(Series, task.series_pk) if task.series_pk is not None else None)
        last = s.scalar(
            select(func.max(Instance.received_at)).join(Series, Series.id == Instance.series_pk)
            .where(Series.study_pk == task.study_pk, Instance.source != RESULT_SOURCE,
                   Instance.received_at <= task.created_at))
        out.append(_Source(task, instance, series, study, patient, last))
    return out


def _input_instance(s: Session, task: InferenceTask) -> Instance | None:
    uid = s.scalar(select(Finding.sop_instance_uid)
                   .where(Finding.task_pk == task.id, Finding.sop_instance_uid != "")
                   .order_by(Finding.id).limit(1))
    if uid:
        found = s.scalar(select(Instance).where(Instance.sop_instance_uid == uid))
        if found is not None:
            return found
    q = (select(Instance).join(Series, Series.id == Instance.series_pk)
         .where(Series.study_pk == task.study_pk, Instance.source != RESULT_SOURCE,
                Instance.received_at <= task.created_at))
    if task.series_pk is not None:
        q = q.where(Series.id == task.series_pk)
    return s.scalar(q.order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
                    .limit(1))


def _profile(src: _Source, storage: FileStorage) -> dict[str, Any]:
    notes = []
    spacing = None
    if src.instance is None:
        notes.append("no input instance")
    else:
        spacing, note = _pixel_spacing(storage, src.instance.path)
        if note:
            notes.append(note)
    se, inst, st, pt = src.series, src.instance, src.study, src.patient
    return {
        "task_pk": src.task.id,
        "model_id": src.task.model_id,
        "model_version": src.task.model_version,
        "institution": se.institution_name if se else "",
        "calling_ae": se.source_ae_title if se else "",
        "modality": se.modality if se else "",
        "manufacturer": se.manufacturer if se else "",
        "body_part": se.body_part_examined if se else "",
        "rows": inst.rows if inst else None,
        "columns": inst.columns if inst else None,
        "pixel_spacing_mm": spacing,
        "patient_age_years": age_in_years(st.patient_age, birth_date=pt.patient_birth_date,
                                          study_date=st.study_date),
        "patient_sex": pt.patient_sex.strip().upper()[:16],
        "last_input_received_at": src.last_input_received_at,
        "note": "; ".join(notes)[:128],
        "profiled_at": utcnow(),
    }


def _pixel_spacing(storage: FileStorage, relative_path: str) -> tuple[float | None, str]:
    """Row spacing in mm from Pixel Spacing, else Imager Pixel Spacing (PS3.3 §10.7.1.3)."""
    try:
        ds = dcmread(storage.path(relative_path), stop_before_pixels=True,
                     specific_tags=["PixelSpacing", "ImagerPixelSpacing"])
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return None, "file header unreadable"
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row_spacing = float(value[0] if hasattr(value, "__len__") and len(value) else value)
        except (TypeError, ValueError, IndexError):
            return None, f"{keyword} is not a number"
        if row_spacing > 0:
            return row_spacing, ""
        return None, f"{keyword} is not positive"
    return None, ""
