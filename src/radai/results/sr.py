"""The structured report of a task: TID 1500 Measurement Report in a Comprehensive 3D SR.

Content tree of a report with findings (PS3.16 TID 1500, built with highdicom)::

    CONTAINER (126000, DCM, "Imaging Measurement Report")          TID 1500
      HAS CONCEPT MOD  Language of Content Item and Descendants       TID 1204
      HAS OBS CONTEXT  Observer Type = Device, Device Observer UID,   TID 1002/1004
                       Name = model name, Manufacturer = vendor, Model Name = model id
      HAS CONCEPT MOD  Procedure Reported = (363679005, SCT, "Imaging procedure")
      CONTAINS CONTAINER (126010, DCM, "Imaging Measurements")
        CONTAINS CONTAINER (125007, DCM, "Measurement Group")        TID 1501, one per finding
          Tracking Identifier / Tracking Unique Identifier           TID 4108
          Finding = the finding's code (e.g. (233604007, SCT, "Pneumonia"))
          Algorithm Name / Algorithm Version / Algorithm Manufacturer /
          Algorithm Parameters = "operating point 0.500"             TID 4019
          <finding code> = (52101004, SCT, "Present") | (272519000, SCT, "Absent")
                                                        qualitative evaluation at the operating point
          (122157, DCM, "Probability") = 0.87 ({ratio}, UCUM, "ratio")  TID 300
          Source = IMAGE reference to each input image                TID 1501 row 15
      CONTAINS CONTAINER (C0034375, UMLS, "Qualitative Evaluations")
        CONTAINS TEXT (121077, DCM, "Conclusion") = plain-language conclusion

The probability is a numeric measurement in UCUM's dimensionless "{ratio}" (the
curly-brace annotation of unity, UCUM §4.5; PS3.16 CID 82 lists it) so that readers see
the model's own 0–1 score unscaled next to its operating point.

A technical defect (no findings could be made) gives the same document shape with no
Imaging Measurements: its Qualitative Evaluations say, as a coded Finding and in plain
text, that the AI did not analyse the study, which defect category applies and why.

The algorithm is named as IHE AIR requires in Contributing Equipment (see
:mod:`radai.results.common`) and in TID 4019 Algorithm Identification.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from radai.models.api import DefectCategory, FindingScore
from radai.results.common import (
    CHARACTER_SET,
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    RADAI_SCHEME,
    Algorithm,
    add_algorithm,
    declare_scheme,
    quiet_library_output,
    require_same_study,
    result_uid,
    sources_key,
)

#: Series Number (0020,0011) of radai's SR series (high, so that they sort last).
SR_SERIES_NUMBER = 9901
#: (363679005, SCT, "Imaging procedure"), PS3.16 CID 100 (Quantitative Diagnostic Imaging Procedures).
PROCEDURE_REPORTED = Code("363679005", "SCT", "Imaging procedure")
#: TID 300 concept name of the model's score.
PROBABILITY = Code("122157", "DCM", "Probability")
#: UCUM's dimensionless ratio (see the module docstring).
RATIO = Code("{ratio}", "UCUM", "ratio")
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("272519000", "SCT", "Absent")
FINDING = Code("121071", "DCM", "Finding")
CONCLUSION = Code("121077", "DCM", "Conclusion")
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")

#: radai's codes for the technical defect categories (ARCHITECTURE.md taxonomy).
DEFECT_CODES: dict[DefectCategory, Code] = {
    DefectCategory.INPUT_NOT_SUITED: Code(
        "DEFECT-INPUT", RADAI_SCHEME, "AI not applied: study not suited to the model"),
    DefectCategory.SERVICE_UNAVAILABLE: Code(
        "DEFECT-SERVICE", RADAI_SCHEME, "AI not applied: AI service unavailable"),
    DefectCategory.MODEL_ERROR: Code(
        "DEFECT-MODEL", RADAI_SCHEME, "AI not applied: AI model failed"),
}


def _code(value: str, scheme: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning[:64])


def _observation_context(algorithm: Algorithm) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=algorithm.device_uid, name=algorithm.name[:64],
        manufacturer_name=algorithm.vendor[:64], model_name=algorithm.model_id)
    observer = hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                     observer_identifying_attributes=device)
    return hd.sr.ObservationContext(observer_device_context=observer)


def _source_refs(sources: Sequence[Dataset]) -> list[hd.sr.SourceImageForMeasurementGroup]:
    return [hd.sr.SourceImageForMeasurementGroup(
        referenced_sop_class_uid=str(ds.SOPClassUID),
        referenced_sop_instance_uid=str(ds.SOPInstanceUID)) for ds in sources]


def _group(finding: FindingScore, index: int, algorithm: Algorithm, sr_uid: str,
           sources: Sequence[Dataset]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if not 0.0 <= finding.probability <= 1.0:
        raise ValueError(f"finding {index + 1}: probability must be between 0 and 1")
    if not 0.0 <= finding.threshold <= 1.0:
        raise ValueError(f"finding {index + 1}: threshold must be between 0 and 1")
    code = _code(finding.code.value, finding.code.scheme, finding.code.meaning)
    algorithm_id = hd.sr.AlgorithmIdentification(
        name=algorithm.name[:64], version=algorithm.version, manufacturer=algorithm.vendor[:64],
        parameters=[f"operating point {finding.threshold:.3f}"])
    probability = hd.sr.Measurement(name=PROBABILITY, value=float(finding.probability), unit=RATIO)
    evaluation = hd.sr.QualitativeEvaluation(name=code, value=PRESENT if finding.positive else ABSENT)
    tracking = hd.sr.TrackingIdentifier(
        identifier=finding.label[:64],
        uid=result_uid("sr-tracking", algorithm, sr_uid, str(index)))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, finding_type=code, algorithm_id=algorithm_id,
        measurements=[probability], qualitative_evaluations=[evaluation],
        source_images=_source_refs(sources) or None)


def _qualitative_evaluations(items: Sequence[hd.sr.ContentItem]) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(list(items))
    return container


def _conclusion_item(text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=CONCLUSION, value=text,
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _document(*, evidence: Sequence[Dataset], content: Dataset, algorithm: Algorithm,
              sop_instance_uid: str, series_description: str) -> hd.sr.Comprehensive3DSR:
    study_uid = require_same_study(evidence)
    with quiet_library_output():
        sr = _comprehensive_3d_sr(evidence=evidence, content=content, algorithm=algorithm,
                                  sop_instance_uid=sop_instance_uid, study_uid=study_uid,
                                  series_description=series_description)
    add_algorithm(sr, algorithm)
    return sr


def _comprehensive_3d_sr(*, evidence: Sequence[Dataset], content: Dataset, algorithm: Algorithm,
                         sop_instance_uid: str, study_uid: str,
                         series_description: str) -> hd.sr.Comprehensive3DSR:
    return hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=content,
        series_instance_uid=result_uid("sr-series", algorithm, study_uid),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        # Complete as a document, but a machine's preliminary output: no person verified it.
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=series_description[:64],
        manufacturer_model_name="radai results",
        software_versions=_radai_version(),
        specific_character_set=CHARACTER_SET,
    )


def _radai_version() -> str:
    from radai import __version__

    return __version__


def measurement_report(*, sources: Sequence[Dataset], algorithm: Algorithm,
                       findings: Sequence[FindingScore], conclusion: str) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 Measurement Report of a task's findings (PS3.16 TID 1500, PS3.3 A.35.13).

    ``sources`` are the task's input images (headers suffice); each finding becomes a
    TID 1501 group that references them (they also land in the Current Requested
    Procedure Evidence Sequence). The SOP Instance UID is derived from the model
    version and the set of sources, so the same task gives the same document.
    """
    if not findings:
        raise ValueError("a measurement report needs at least one finding")
    study_uid = require_same_study(sources)
    sop_uid = result_uid("sr", algorithm, study_uid, sources_key(str(ds.SOPInstanceUID) for ds in sources))
    groups = [_group(f, i, algorithm, sop_uid, sources) for i, f in enumerate(findings)]
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(algorithm),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    report[0].ContentSequence.append(_qualitative_evaluations([_conclusion_item(conclusion)]))
    return _document(evidence=sources, content=report[0], algorithm=algorithm,
                     sop_instance_uid=sop_uid, series_description=f"AI report {algorithm.name}")


def defect_text(category: DefectCategory, reason: str) -> str:
    """The plain-language conclusion of a technical defect."""
    what = DEFECT_CODES[category].meaning.removeprefix("AI not applied: ")
    return (f"{NOT_FOR_DIAGNOSIS}. The AI did not analyse this study: {what}. "
            f"Reason: {reason.strip() or 'not given'}. Read the study without AI support.")


def defect_report(*, sources: Sequence[Dataset], algorithm: Algorithm, category: DefectCategory,
                  reason: str) -> hd.sr.Comprehensive3DSR:
    """An SR stating a technical defect instead of findings (TID 1500 shape, no measurements).

    ``sources`` are instances of the study (headers suffice), at least one: they give
    the patient and study context and are listed as evidence. ``reason`` must hold no
    patient data (it comes from :class:`radai.models.api.ModelDefect`).
    """
    try:
        category = DefectCategory(category)
    except ValueError:
        raise ValueError("defect category must be one of "
                         + ", ".join(c.value for c in DefectCategory)) from None
    study_uid = require_same_study(sources)
    sop_uid = result_uid("sr-defect", algorithm, study_uid, category.value,
                         sources_key(str(ds.SOPInstanceUID) for ds in sources))
    text = defect_text(category, reason)
    root = hd.sr.ContainerContentItem(name=codes.cid7021.ImagingMeasurementReport, template_id="1500")
    root.ContentSequence = hd.sr.ContentSequence([
        *hd.sr.LanguageOfContentItemAndDescendants(hd.sr.templates.DEFAULT_LANGUAGE),
        *_observation_context(algorithm),
        hd.sr.CodeContentItem(name=codes.DCM.ProcedureReported, value=PROCEDURE_REPORTED,
                              relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD),
        _qualitative_evaluations([
            hd.sr.CodeContentItem(name=FINDING, value=DEFECT_CODES[category],
                                  relationship_type=hd.sr.RelationshipTypeValues.CONTAINS),
            _conclusion_item(text),
        ]),
    ])
    sr = _document(evidence=sources, content=root, algorithm=algorithm, sop_instance_uid=sop_uid,
                   series_description=f"AI technical defect {algorithm.name}")
    declare_scheme(sr, RADAI_SCHEME, "radai result codes", "radai")
    return sr
