"""Signing reports: the version is frozen, stored as a valid DICOM SR, and the study leaves the worklist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from sqlalchemy import func, select

from radai.app import Radai
from radai.archive.models import Instance
from radai.worklist import service
from radai.worklist.models import Report, ReportStatus
from radai.worklist.queue import WorklistFilter, worklist_page
from radai.worklist.signing import sign_report
from tests.worklist.helpers import (
    NODULE,
    PNEUMONIA,
    Scored,
    add_findings,
    dciodvfy_errors,
    store_study,
    study_pk,
)


def _value(item: Any) -> Any:
    if item.ValueType == "TEXT":
        return item.TextValue
    if item.ValueType == "CODE":
        return item.ConceptCodeSequence[0].CodeMeaning
    if item.ValueType == "NUM":
        return float(item.MeasuredValueSequence[0].NumericValue)
    return item.ValueType


def _content(ds: Any) -> dict[str, list[Any]]:
    """Concept name meaning → values (containers as "CONTAINER"), through the whole content tree."""
    out: dict[str, list[Any]] = {}

    def walk(items: Any) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning
            out.setdefault(name, []).append(_value(item))
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(ds.ContentSequence)
    return out


def _worklist(radai: Radai) -> list[str]:
    with radai.db.session() as s:
        page = worklist_page(s, settings=radai.settings.worklist, filters=WorklistFilter(), limit=50)
    return [i.study_instance_uid for i in page.items]


def test_signing_stores_a_valid_sr_and_takes_the_study_off_the_worklist(radai: Radai, tmp_path: Path) -> None:
    uid = store_study(radai, "sign-1", patient_id="PAT-77", name="Roe^Rita", InstitutionName="North")
    pk = study_pk(radai, uid)
    pos, neg = add_findings(radai, uid, [Scored(PNEUMONIA, 0.83, "urgent"), Scored(NODULE, 0.05)])
    with radai.db.transaction() as s:
        service.open_study(s, study_pk=pk, reader="rad")
        service.record_verdict(s, finding_id=pos, reader="rad", verdict="agree")
        service.record_verdict(s, finding_id=neg, reader="rad", verdict="uncertain")
        service.add_missed_finding(s, study_pk=pk, reader="rad", code_value="36118008",
                                   code_scheme="SCT", code_meaning="Pneumothorax", model_id=None)
    assert uid in _worklist(radai)

    report = sign_report(db=radai.db, archive=radai.archive, study_instance_uid=uid, reader="rad",
                         text="Right lower lobe consolidation.\nSmall apical pneumothorax.")
    assert report.status == ReportStatus.SIGNED and report.version == 1 and report.signed_by == "rad"
    assert uid not in _worklist(radai), "a signed study leaves the worklist"

    data = radai.archive.read(str(report.sop_instance_uid))
    assert dciodvfy_errors(data, tmp_path / "dciodvfy") == []
    ds = dcmread(DicomBytesIO(data))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert (ds.StudyInstanceUID, ds.PatientID, str(ds.PatientName)) == (uid, "PAT-77", "Roe^Rita")
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "VERIFIED")
    assert str(ds.VerifyingObserverSequence[0].VerifyingObserverName) == "rad"
    assert ds.VerifyingObserverSequence[0].VerifyingOrganization == "North"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    content = _content(ds)
    assert content["Findings"] == ["CONTAINER"] and "Addendum" not in content
    assert content["Finding"][0] == "Right lower lobe consolidation.\nSmall apical pneumothorax."
    assert content["Reader verdict on AI result"] == [  # finding order, then missed findings
        "Reader agrees with AI result", "Reader uncertain about AI result", "Finding not reported by AI"]
    assert content["Probability"] == [0.83, 0.05]
    assert content["Pneumonia"] == ["Present"] and content["Nodule"] == ["Absent"]
    assert "Pneumothorax" in content["Finding"]
    # The report row and its frozen verdicts match the object.
    with radai.db.session() as s:
        row = s.get(Report, report.id)
        assert row is not None and [v.verdict for v in row.verdicts] == ["agree", "uncertain", "missed"]
        assert s.scalar(select(Instance.source).where(Instance.sop_instance_uid == report.sop_instance_uid)) \
            == "result", "stored as a result object, never routed to a model"


def test_signed_reports_are_read_only_and_an_addendum_is_a_new_version(radai: Radai, tmp_path: Path) -> None:
    uid = store_study(radai, "sign-2")
    pk = study_pk(radai, uid)
    fid, = add_findings(radai, uid, [Scored(PNEUMONIA, 0.7, "urgent")])
    with radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid, reader="rad", verdict="agree")
    first = sign_report(db=radai.db, archive=radai.archive, study_instance_uid=uid, reader="rad",
                        text="Pneumonia.")
    with pytest.raises(service.ReportLocked):
        sign_report(db=radai.db, archive=radai.archive, study_instance_uid=uid, reader="rad", text="Changed")
    with pytest.raises(service.ReportLocked), radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid, reader="rad", verdict="disagree")

    with radai.db.transaction() as s:
        service.start_addendum(s, study_pk=pk, author="rad")
        service.record_verdict(s, finding_id=fid, reader="rad", verdict="disagree")
    second = sign_report(db=radai.db, archive=radai.archive, study_instance_uid=uid, reader="rad",
                         text="Addendum: on review of the lateral view, no consolidation.")
    assert second.version == 2 and second.sop_instance_uid != first.sop_instance_uid
    ds = dcmread(DicomBytesIO(radai.archive.read(str(second.sop_instance_uid))))
    assert dciodvfy_errors(radai.archive.read(str(second.sop_instance_uid)), tmp_path / "v2") == []
    assert ds.InstanceNumber == 2 and ds.SeriesInstanceUID == first.series_instance_uid
    predecessor = ds.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert predecessor.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.sop_instance_uid
    sections = _content(ds)
    assert sections["Addendum"] == ["CONTAINER"] and "Findings" not in sections
    with radai.db.session() as s:
        kept = s.get(Report, first.id)
        assert kept is not None and kept.text == "Pneumonia." and kept.verdicts[0].verdict == "agree"
        assert [g.verdict for g in service.ground_truth(s)] == ["disagree"]


def test_a_report_cannot_be_signed_without_text_and_nothing_is_written(radai: Radai) -> None:
    uid = store_study(radai, "sign-3")
    with pytest.raises(service.InvalidEntry, match="text must not be empty"):
        sign_report(db=radai.db, archive=radai.archive, study_instance_uid=uid, reader="rad", text="  \n")
    with pytest.raises(service.InvalidEntry, match="control characters"):
        sign_report(db=radai.db, archive=radai.archive, study_instance_uid=uid, reader="rad", text="a\x00b")
    with pytest.raises(service.StudyNotFound):
        sign_report(db=radai.db, archive=radai.archive, study_instance_uid="1.2.3.4", reader="rad", text="x")
    with radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Report)) == 0
        assert s.scalar(select(func.count()).select_from(Instance)) == 1, "no SR was stored"
    assert uid in _worklist(radai)
