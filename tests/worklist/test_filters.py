"""Worklist filters, search, AI result states, reading states and paging."""

from __future__ import annotations

from radai.app import Radai
from radai.worklist import service
from radai.worklist.models import ReadingStatus
from radai.worklist.queue import WorklistFilter, worklist_page
from radai.worklist.schemas import AiResult
from tests.worklist.helpers import (
    NODULE,
    PNEUMONIA,
    Scored,
    add_defect,
    add_findings,
    add_pending,
    route_nowhere,
    store_study,
    study_pk,
)


def _uids(radai: Radai, limit: int = 100, offset: int = 0, **filters: object) -> list[str]:
    with radai.db.session() as s:
        page = worklist_page(s, settings=radai.settings.worklist,
                             filters=WorklistFilter(**filters), limit=limit, offset=offset)  # type: ignore[arg-type]
    return [i.study_instance_uid for i in page.items]


def test_ai_results_and_filters(radai: Radai) -> None:
    positive = store_study(radai, "f-pos", modality="CR", patient_id="A-100", name="Smith^Anna",
                           InstitutionName="North Hospital", AccessionNumber="ACC-001")
    add_findings(radai, positive, [Scored(PNEUMONIA, 0.91, "urgent")])
    negative = store_study(radai, "f-neg", modality="DX", patient_id="B-200", name="Jones^Bob",
                           InstitutionName="South Clinic", AccessionNumber="ACC-002")
    add_findings(radai, negative, [Scored(PNEUMONIA, 0.12)])
    defect = store_study(radai, "f-def", modality="CT", patient_id="C-300", name="Brown^Carl")
    add_defect(radai, defect, "no image of the chest in the study")
    pending = store_study(radai, "f-pend", modality="MR", patient_id="D-400", name="Anna^Dora")
    add_pending(radai, pending)
    not_routed = store_study(radai, "f-nr", modality="US", patient_id="E-500", name="White^Eve")
    route_nowhere(radai, not_routed)
    unstable = store_study(radai, "f-new", modality="CR", patient_id="F-600", name="Green^Fay")

    with radai.db.session() as s:
        items = {i.study_instance_uid: i for i in worklist_page(
            s, settings=radai.settings.worklist, filters=WorklistFilter(), limit=100).items}
    assert {uid: i.ai_result for uid, i in items.items()} == {
        positive: AiResult.POSITIVE, negative: AiResult.NEGATIVE, defect: AiResult.DEFECT,
        pending: AiResult.PENDING, not_routed: AiResult.NOT_ROUTED, unstable: AiResult.PENDING}
    assert items[defect].defects[0].category == "input_not_suited"
    assert items[defect].defects[0].reason == "no image of the chest in the study"
    assert items[pending].pending_models == ["test-model@1.0"]
    badge = items[positive].findings[0]
    assert (badge.label, badge.probability, badge.positive) == ("pneumonia", 0.91, True)

    assert _uids(radai, ai_result=AiResult.POSITIVE) == [positive]
    assert _uids(radai, ai_result=AiResult.DEFECT) == [defect]
    assert _uids(radai, ai_result=AiResult.NOT_ROUTED) == [not_routed]
    assert set(_uids(radai, ai_result=AiResult.PENDING)) == {pending, unstable}
    assert set(_uids(radai, modality="cr")) == {positive, unstable}
    assert _uids(radai, modality="DX") == [negative]
    assert _uids(radai, institution="South Clinic") == [negative]
    # Search: words of the name in any order, or the start of Patient ID or Accession Number.
    assert set(_uids(radai, search="anna")) == {positive, pending}
    assert _uids(radai, search="anna smith") == [positive]
    assert _uids(radai, search="C-3") == [defect]
    assert _uids(radai, search="ACC-002") == [negative]
    assert _uids(radai, search="100%") == []
    assert _uids(radai, search="^") == []


def test_reading_states_and_paging(radai: Radai) -> None:
    uids = [store_study(radai, f"s-{i}", patient_id=f"S-{i}") for i in range(5)]
    for uid in uids:
        add_findings(radai, uid, [Scored(NODULE, 0.2)])
    with radai.db.transaction() as s:
        service.open_study(s, study_pk=study_pk(radai, uids[0]), reader="rad")
        service.mark_signed(s, study_pk=study_pk(radai, uids[1]), reader="rad")
    open_ = _uids(radai)
    assert set(open_) == set(uids) - {uids[1]}, "a signed study leaves the worklist"
    assert _uids(radai, statuses=(ReadingStatus.IN_REVIEW,)) == [uids[0]]
    assert _uids(radai, statuses=(ReadingStatus.SIGNED,)) == [uids[1]]
    assert set(_uids(radai, statuses=(ReadingStatus.UNREAD,))) == set(uids[2:])
    pages = [_uids(radai, limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 0]
    assert [uid for page in pages for uid in page] == open_
