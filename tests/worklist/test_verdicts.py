"""Verdicts, missed findings and ground truth labels (radai.worklist.service), on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from radai.app import Radai
from radai.worklist import service
from radai.worklist.models import MISSED, Report, ReportStatus, Verdict, VerdictValue
from tests.worklist.helpers import NODULE, PNEUMONIA, Scored, add_findings, store_study, study_pk


def _sign(radai: Radai, pk: int, reader: str, text: str) -> Report:
    """Sign the report's snapshot only (the DICOM object is covered in test_reports)."""
    with radai.db.transaction() as s:
        draft = service.save_draft(s, study_pk=pk, author=reader, text=text)
        service.snapshot_verdicts(s, report=draft, reader=reader)
        draft.status = ReportStatus.SIGNED.value
        draft.signed_by = reader
        draft.signed_at = draft.updated_at
        service.mark_signed(s, study_pk=pk, reader=reader)
        return draft


def test_a_verdict_per_finding_and_reader_replaced_on_change_of_mind(radai: Radai) -> None:
    uid = store_study(radai, "v1")
    fid, = add_findings(radai, uid, [Scored(PNEUMONIA, 0.9, "urgent")])
    with radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid, reader="ann", verdict="agree")
    with radai.db.transaction() as s:
        first = service.record_verdict(s, finding_id=fid, reader="ann", verdict="agree")
        stamp = first.updated_at
    with radai.db.transaction() as s:
        again = service.record_verdict(s, finding_id=fid, reader="ann", verdict=VerdictValue.AGREE)
        assert again.updated_at == stamp, "the same verdict twice changes nothing"
        service.record_verdict(s, finding_id=fid, reader="bob", verdict="uncertain")
    with radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid, reader="ann", verdict="disagree")
    with radai.db.session() as s:
        rows = {v.reader: v.verdict for v in s.scalars(select(Verdict))}
        assert rows == {"ann": "disagree", "bob": "uncertain"}
        assert service.verdicts_of_reader(s, study_pk=study_pk(radai, uid), reader="ann") == {
            fid: VerdictValue.DISAGREE}


def test_bad_verdicts_are_refused_and_nothing_is_written(radai: Radai) -> None:
    uid = store_study(radai, "v2")
    other = store_study(radai, "v2-other")
    fid, = add_findings(radai, uid, [Scored(PNEUMONIA, 0.2)])
    with pytest.raises(service.InvalidEntry, match="verdict must be one of"), radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid, reader="ann", verdict="maybe")
    with pytest.raises(service.FindingNotFound), radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid + 1000, reader="ann", verdict="agree")
    with pytest.raises(service.FindingNotFound), radai.db.transaction() as s:
        service.record_verdict(s, finding_id=fid, reader="ann", verdict="agree",
                               study_pk=study_pk(radai, other))
    with radai.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Verdict)) == 0


def test_ground_truth_is_the_latest_signed_report(radai: Radai) -> None:
    uid = store_study(radai, "g1")
    pk = study_pk(radai, uid)
    pos, neg = add_findings(radai, uid, [Scored(PNEUMONIA, 0.8, "urgent"), Scored(NODULE, 0.1)])
    with radai.db.transaction() as s:
        service.record_verdict(s, finding_id=pos, reader="ann", verdict="agree")
        service.record_verdict(s, finding_id=neg, reader="ann", verdict="disagree")
        service.record_verdict(s, finding_id=pos, reader="bob", verdict="disagree")
        code = service.free_text_code("  Rib   fracture ")
        service.add_missed_finding(s, study_pk=pk, reader="ann", code_value=code[0],
                                   code_scheme=code[1], code_meaning=code[2])
        service.add_missed_finding(s, study_pk=pk, reader="ann", code_value=code[0],
                                   code_scheme=code[1], code_meaning=code[2])
    first = _sign(radai, pk, "ann", "Consolidation right lower lobe.")
    with radai.db.session() as s:
        labels = service.ground_truth(s)
    assert [(g.finding_id, g.verdict, g.truth) for g in labels] == [
        (pos, "agree", True), (neg, "disagree", True), (None, MISSED, True)]
    assert {g.reader for g in labels} == {"ann"}, "the signer's verdicts, not another reader's"
    assert labels[2].code_meaning == "Rib fracture" and labels[2].code_scheme == "99RADAI-FT"
    assert all(g.report_version == 1 and g.study_instance_uid == uid for g in labels)

    # Signed: the working verdicts are locked until an addendum is opened.
    with pytest.raises(service.ReportLocked), radai.db.transaction() as s:
        service.record_verdict(s, finding_id=pos, reader="ann", verdict="disagree")
    with radai.db.transaction() as s:
        assert service.start_addendum(s, study_pk=pk, author="ann").version == 2
        service.record_verdict(s, finding_id=pos, reader="ann", verdict="uncertain")
    with radai.db.session() as s:
        assert next(g.verdict for g in service.ground_truth(s)) == "agree", "drafts are not labels"
    _sign(radai, pk, "ann", "Addendum: compared with priors.")
    with radai.db.session() as s:
        labels = service.ground_truth(s, model_id="test-model", include_missed=False)
        assert [(g.verdict, g.truth, g.report_version) for g in labels] == [
            ("uncertain", None, 2), ("disagree", True, 2)]
        # The first version's snapshot is unchanged by the addendum.
        kept = s.get(Report, first.id)
        assert kept is not None and [v.verdict for v in kept.verdicts] == ["agree", "disagree", MISSED]
        working = service.reader_verdicts(s, model_id="test-model")
        assert sorted((v.reader, v.finding_id, v.verdict.value) for v in working) == [
            ("ann", pos, "uncertain"), ("ann", neg, "disagree"), ("bob", pos, "disagree")]
        assert working[-1].verdict is VerdictValue.UNCERTAIN, "latest change last"
