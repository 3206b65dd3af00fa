"""The structured report: TID 1500 content, IHE AIR algorithm identity, write-then-read."""

from __future__ import annotations

import io

import highdicom as hd
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from radai.models.api import DefectCategory
from radai.results.common import Algorithm, to_part10
from radai.results.inputs import SourceImage
from radai.results.sr import DEFECT_CODES, defect_report, measurement_report
from radai.results.summary import conclusion_text
from tests.fixtures.data import with_new_uids
from tests.results.conftest import EFFUSION, PNEUMONIA, findings, source


def _read_back(ds: Dataset) -> hd.sr.Comprehensive3DSR:
    return hd.sr.srread(io.BytesIO(to_part10(ds)))


def _report(sr: hd.sr.Comprehensive3DSR) -> hd.sr.MeasurementReport:
    return hd.sr.MeasurementReport.from_sequence(sr.ContentSequence if "ValueType" not in sr
                                                 else [_root(sr)])


def _root(sr: Dataset) -> Dataset:
    root = Dataset()
    for kw in ("ValueType", "ConceptNameCodeSequence", "ContinuityOfContent",
               "ContentTemplateSequence", "ContentSequence"):
        if kw in sr:
            setattr(root, kw, getattr(sr, kw))
    return root


def _text_items(sr: Dataset, meaning: str) -> list[str]:
    found = []

    def walk(items: list[Dataset]) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "TEXT" and name == meaning:
                found.append(str(item.TextValue))
            walk(list(item.get("ContentSequence", [])))

    walk(list(sr.ContentSequence))
    return found


def test_report_holds_each_finding_as_evaluation_and_probability(chest: SourceImage,
                                                                 algorithm: Algorithm) -> None:
    scores = findings(0.87, 0.12)
    sr = measurement_report(sources=[chest.dataset], algorithm=algorithm, findings=scores,
                            conclusion=conclusion_text(scores))
    back = _read_back(sr)
    report = _report(back)
    groups = report.get_image_measurement_groups()
    assert len(groups) == 2
    by_type = {g.finding_type.value: g for g in groups}
    assert set(by_type) == {PNEUMONIA.value, EFFUSION.value}

    pneumonia = by_type[PNEUMONIA.value]
    evaluation = pneumonia.get_qualitative_evaluations()[0]
    assert evaluation.name.value == PNEUMONIA.value
    assert evaluation.value == hd.sr.CodedConcept("52101004", "SCT", "Present")
    assert by_type[EFFUSION.value].get_qualitative_evaluations()[0].value == \
        hd.sr.CodedConcept("272519000", "SCT", "Absent")
    probability = pneumonia.get_measurements()[0]
    assert probability.name.value == "122157"
    assert probability.value == pytest.approx(0.87)
    assert probability.unit.value == "{ratio}" and probability.unit.scheme_designator == "UCUM"

    group = pneumonia[0]
    assert _text_items(group, "Algorithm Name") == [algorithm.name[:64]]
    assert _text_items(group, "Algorithm Version") == ["0.3.0"]
    assert _text_items(group, "Algorithm Parameters") == ["operating point 0.500"]
    assert [str(s.referenced_sop_instance_uid) for s in pneumonia.source_images] == \
        [str(chest.dataset.SOPInstanceUID)]


def test_report_names_the_algorithm_as_ihe_air_requires(chest: SourceImage, algorithm: Algorithm) -> None:
    back = dcmread(io.BytesIO(to_part10(measurement_report(
        sources=[chest.dataset], algorithm=algorithm, findings=findings(), conclusion="x"))))
    equipment = back.ContributingEquipmentSequence[-1]
    purpose = equipment.PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning) == \
        ("Newcode1", "99IHE", "Processing Algorithm")
    assert equipment.Manufacturer == algorithm.vendor[:64]
    assert equipment.ManufacturerModelName == algorithm.name[:64]
    assert equipment.SoftwareVersions == "0.3.0"
    assert "99IHE" in {i.CodingSchemeDesignator for i in back.CodingSchemeIdentificationSequence}
    assert back.Manufacturer == "radai"
    assert back.VerificationFlag == "UNVERIFIED" and back.CompletionFlag == "COMPLETE"


def test_report_belongs_to_the_source_study_and_references_its_images(chest: SourceImage,
                                                                      algorithm: Algorithm) -> None:
    src = chest.dataset
    back = dcmread(io.BytesIO(to_part10(measurement_report(
        sources=[src], algorithm=algorithm, findings=findings(), conclusion="x"))))
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert back.StudyInstanceUID == src.StudyInstanceUID
    assert back.PatientID == src.PatientID and back.PatientName == src.PatientName
    assert back.AccessionNumber == src.AccessionNumber
    assert back.SeriesInstanceUID != src.SeriesInstanceUID
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0]
    refs = [r.ReferencedSOPInstanceUID for s in evidence.ReferencedSeriesSequence
            for r in s.ReferencedSOPSequence]
    assert refs == [src.SOPInstanceUID]


def test_conclusion_is_in_the_report_as_text(chest: SourceImage, algorithm: Algorithm) -> None:
    scores = findings(0.87, 0.12)
    sr = measurement_report(sources=[chest.dataset], algorithm=algorithm, findings=scores,
                            conclusion=conclusion_text(scores))
    texts = _text_items(_read_back(sr), "Conclusion")
    assert len(texts) == 1
    assert "pneumonia suspected" in texts[0] and "NOT FOR DIAGNOSIS" in texts[0]


def test_the_same_task_gives_the_same_document_uid(chest: SourceImage, algorithm: Algorithm) -> None:
    a = measurement_report(sources=[chest.dataset], algorithm=algorithm, findings=findings(),
                           conclusion="x")
    b = measurement_report(sources=[chest.dataset], algorithm=algorithm, findings=findings(0.9),
                           conclusion="y")
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    assert len(str(a.SOPInstanceUID)) <= 64
    other_version = Algorithm(algorithm.model_id, "0.4.0", algorithm.name, algorithm.vendor)
    c = measurement_report(sources=[chest.dataset], algorithm=other_version, findings=findings(),
                           conclusion="x")
    assert c.SOPInstanceUID != a.SOPInstanceUID


def test_defect_report_states_category_and_reason_instead_of_findings(chest: SourceImage,
                                                                      algorithm: Algorithm) -> None:
    sr = defect_report(sources=[chest.dataset], algorithm=algorithm,
                       category=DefectCategory.INPUT_NOT_SUITED, reason="no frontal chest radiograph")
    back = _read_back(sr)
    assert back.ConceptNameCodeSequence[0].CodeValue == codes.cid7021.ImagingMeasurementReport.value
    report = _report(back)
    assert report.get_image_measurement_groups() == []
    (conclusion,) = _text_items(back, "Conclusion")
    assert "did not analyse this study" in conclusion
    assert "not suited to the model" in conclusion and "no frontal chest radiograph" in conclusion
    coded = next(i for i in back.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning ==
             "Qualitative Evaluations").ContentSequence[0]
    assert coded.ConceptCodeSequence[0].CodeValue == DEFECT_CODES[DefectCategory.INPUT_NOT_SUITED].value
    assert "99RADAI" in {i.CodingSchemeDesignator for i in back.CodingSchemeIdentificationSequence}
    assert back.SeriesDescription.startswith("AI technical defect")
    assert back.ContributingEquipmentSequence[-1].PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"


@pytest.mark.parametrize("category", list(DefectCategory))
def test_each_defect_category_reads_plainly(chest: SourceImage, algorithm: Algorithm,
                                            category: DefectCategory) -> None:
    sr = defect_report(sources=[chest.dataset], algorithm=algorithm, category=category, reason="why")
    (conclusion,) = _text_items(_read_back(sr), "Conclusion")
    assert DEFECT_CODES[category].meaning.removeprefix("AI not applied: ") in conclusion


def test_bad_findings_are_refused_naming_what_is_wrong(chest: SourceImage, algorithm: Algorithm) -> None:
    with pytest.raises(ValueError, match="probability must be between 0 and 1"):
        measurement_report(sources=[chest.dataset], algorithm=algorithm,
                           findings=findings(1.5), conclusion="x")
    with pytest.raises(ValueError, match="at least one finding"):
        measurement_report(sources=[chest.dataset], algorithm=algorithm, findings=[], conclusion="x")
    with pytest.raises(ValueError, match="defect category"):
        defect_report(sources=[chest.dataset], algorithm=algorithm, category="broken",  # type: ignore[arg-type]
                      reason="x")


def test_sources_of_two_studies_are_refused(chest: SourceImage, algorithm: Algorithm) -> None:
    other = with_new_uids(source("CT_small.dcm").dataset, "other-study")
    with pytest.raises(ValueError, match=r"Study Instance UID \(0020,000D\)"):
        measurement_report(sources=[chest.dataset, other], algorithm=algorithm, findings=findings(),
                           conclusion="x")


def test_values_beyond_latin1_survive(chest: SourceImage) -> None:
    algorithm = Algorithm("m", "1", "Модель — пневмония", "Производитель")
    back = dcmread(io.BytesIO(to_part10(measurement_report(
        sources=[chest.dataset], algorithm=algorithm, findings=findings(), conclusion="Пневмония — да"))))
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert back.ContributingEquipmentSequence[-1].ManufacturerModelName == "Модель — пневмония"
    assert _text_items(back, "Conclusion") == ["Пневмония — да"]
    assert back.PatientName == chest.dataset.PatientName


def test_source_image_wrapper_refuses_negative_sizes() -> None:
    with pytest.raises(ValueError, match="size_bytes"):
        SourceImage(Dataset(), -1)
