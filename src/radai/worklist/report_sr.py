"""The DICOM form of a signed report: a Comprehensive SR in the shape of TID 2000.

radai stores each signed report version in the archive as a Comprehensive SR (PS3.3
A.35.3, built with highdicom) whose content follows PS3.16 TID 2000 "Basic Diagnostic
Imaging Report", so PACS and viewers (OHIF lists it with the study) show the radiologist's
text; it also carries the reader's verdicts on the AI's findings, coded, which a Basic
Text SR could not hold with the AI's scores (no NUM items there, PS3.3 Table A.35.1-2)::

    CONTAINER (18748-4, LN, "Diagnostic imaging report")              TID 2000
      HAS CONCEPT MOD  Language of Content Item and Descendants         TID 1204
      HAS OBS CONTEXT  Observer Type = Person, Person Observer Name     TID 1002/1003
      CONTAINS CONTAINER (121070, DCM, "Findings")  — (121078, DCM, "Addendum") for addenda
        CONTAINS TEXT (121071, DCM, "Finding") = the report's text
      CONTAINS CONTAINER (AIREVIEW, 99RADAI, "Review of AI results")    one item per verdict
        CONTAINS CODE (121071, DCM, "Finding") = the finding's code
          HAS PROPERTIES CODE (VERDICT, 99RADAI, "Reader verdict on AI result")
                              = AGREE | DISAGREE | UNCERTAIN | MISSED (99RADAI)
          HAS PROPERTIES TEXT (111001, DCM, "Algorithm Name") / (111003, DCM, "Algorithm Version")
          HAS PROPERTIES CODE <finding code> = Present | Absent        the AI's decision
          HAS PROPERTIES NUM  (122157, DCM, "Probability") {ratio}     the AI's score

The document is complete and verified (Completion Flag COMPLETE, Verification Flag
VERIFIED, the signer in the Verifying Observer Sequence, PS3.3 C.17.2); an addendum lists
the version it adds to in the Predecessor Documents Sequence (PS3.3 C.17.2.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.valuerep import DA, TM

from radai.results.common import (
    CHARACTER_SET,
    MANUFACTURER,
    RADAI_SCHEME,
    declare_scheme,
    quiet_library_output,
    require_same_study,
)
from radai.results.sr import ABSENT, FINDING, PRESENT, PROBABILITY, RATIO
from radai.uids import derived_uid
from radai.worklist.models import MISSED, VerdictValue

#: Series Number (0020,0011) of the report series (just below the AI results' 99xx).
REPORT_SERIES_NUMBER = 9801
REPORT_TITLE = Code("18748-4", "LN", "Diagnostic imaging report")
FINDINGS = Code("121070", "DCM", "Findings")
ADDENDUM = Code("121078", "DCM", "Addendum")
AI_REVIEW = Code("AIREVIEW", RADAI_SCHEME, "Review of AI results")
READER_VERDICT = Code("VERDICT", RADAI_SCHEME, "Reader verdict on AI result")
ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
VERDICT_CODES = {
    VerdictValue.AGREE.value: Code("AGREE", RADAI_SCHEME, "Reader agrees with AI result"),
    VerdictValue.DISAGREE.value: Code("DISAGREE", RADAI_SCHEME, "Reader disagrees with AI result"),
    VerdictValue.UNCERTAIN.value: Code("UNCERTAIN", RADAI_SCHEME, "Reader uncertain about AI result"),
    MISSED: Code("MISSED", RADAI_SCHEME, "Finding not reported by AI"),
}

_CONTAINS = hd.sr.RelationshipTypeValues.CONTAINS
_HAS_PROPERTIES = hd.sr.RelationshipTypeValues.HAS_PROPERTIES


@dataclass(frozen=True)
class VerdictLine:
    """One verdict (or missed finding) as the report states it."""

    verdict: str
    code_value: str
    code_scheme: str
    code_meaning: str
    model_id: str | None = None
    model_version: str | None = None
    probability: float | None = None
    ai_positive: bool | None = None


@dataclass(frozen=True)
class SignedReport:
    """What a signed report version says."""

    study_instance_uid: str
    report_id: int
    version: int
    text: str
    reader: str
    signed_at: datetime
    verdicts: tuple[VerdictLine, ...]

    def __post_init__(self) -> None:
        if not self.reader.strip():
            raise ValueError("the report needs its signer (VerifyingObserverName)")
        if self.version < 1:
            raise ValueError("the report version (InstanceNumber) must be 1 or more")
        for line in self.verdicts:
            if line.verdict not in VERDICT_CODES:
                raise ValueError("each verdict must be one of " + ", ".join(VERDICT_CODES))

    def sop_instance_uid(self) -> str:
        """The SR's SOP Instance UID: derived from the report version and what it says, so
        storing the same signature twice keeps one object (PS3.5 B.2)."""
        said = "\x1e".join([self.text, self.reader] + [
            "\x1f".join(str(v) for v in (line.verdict, line.code_scheme, line.code_value, line.model_id,
                                          line.model_version, line.probability, line.ai_positive))
            for line in self.verdicts])
        return derived_uid("radai-report", self.study_instance_uid, str(self.report_id),
                           str(self.version), said)

    def series_instance_uid(self) -> str:
        """One report series per study holds every version."""
        return derived_uid("radai-report-series", self.study_instance_uid)


def _code(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme_designator,
                              meaning=code.meaning[:64])


def _verdict_item(line: VerdictLine) -> hd.sr.CodeContentItem:
    finding = hd.sr.CodedConcept(value=line.code_value, scheme_designator=line.code_scheme,
                                 meaning=line.code_meaning[:64])
    item = hd.sr.CodeContentItem(name=FINDING, value=finding, relationship_type=_CONTAINS)
    props: list[hd.sr.ContentItem] = [hd.sr.CodeContentItem(
        name=READER_VERDICT, value=_code(VERDICT_CODES[line.verdict]), relationship_type=_HAS_PROPERTIES)]
    if line.model_id:
        props.append(hd.sr.TextContentItem(name=ALGORITHM_NAME, value=line.model_id[:64],
                                           relationship_type=_HAS_PROPERTIES))
    if line.model_version:
        props.append(hd.sr.TextContentItem(name=ALGORITHM_VERSION, value=line.model_version[:64],
                                           relationship_type=_HAS_PROPERTIES))
    if line.ai_positive is not None:
        props.append(hd.sr.CodeContentItem(name=finding, value=PRESENT if line.ai_positive else ABSENT,
                                           relationship_type=_HAS_PROPERTIES))
    if line.probability is not None:
        props.append(hd.sr.NumContentItem(name=PROBABILITY, value=float(line.probability), unit=RATIO,
                                          relationship_type=_HAS_PROPERTIES))
    item.ContentSequence = hd.sr.ContentSequence(props)
    return item


def _content(report: SignedReport) -> hd.sr.ContainerContentItem:
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=report.reader[:64], login_name=report.reader[:64]))
    section = hd.sr.ContainerContentItem(name=ADDENDUM if report.version > 1 else FINDINGS,
                                         relationship_type=_CONTAINS)
    section.ContentSequence = hd.sr.ContentSequence([hd.sr.TextContentItem(
        name=FINDING, value=report.text.strip() or "(no text)", relationship_type=_CONTAINS)])
    items: list[hd.sr.ContentItem] = [
        *hd.sr.LanguageOfContentItemAndDescendants(hd.sr.templates.DEFAULT_LANGUAGE),
        *observer, section]
    if report.verdicts:
        review = hd.sr.ContainerContentItem(name=AI_REVIEW, relationship_type=_CONTAINS)
        review.ContentSequence = hd.sr.ContentSequence([_verdict_item(v) for v in report.verdicts])
        items.append(review)
    root = hd.sr.ContainerContentItem(name=REPORT_TITLE, template_id="2000")
    root.ContentSequence = hd.sr.ContentSequence(items)
    return root


def report_document(*, report: SignedReport, evidence: Sequence[Dataset],
                    previous: Sequence[Dataset] = (), organization: str = "") -> hd.sr.ComprehensiveSR:
    """The Comprehensive SR of a signed report version (see the module docstring).

    ``evidence`` are instances of the study (headers suffice): they give the patient and
    study attributes. ``previous`` are the SRs of earlier versions (for an addendum).
    """
    study_uid = require_same_study(evidence)
    if study_uid != report.study_instance_uid:
        raise ValueError("evidence must belong to the report's study (StudyInstanceUID)")
    with quiet_library_output():
        sr = hd.sr.ComprehensiveSR(
            evidence=list(evidence),
            content=_content(report),
            series_instance_uid=report.series_instance_uid(),
            series_number=REPORT_SERIES_NUMBER,
            sop_instance_uid=report.sop_instance_uid(),
            instance_number=report.version,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=True,
            is_verified=True,
            verifying_observer_name=report.reader[:64],
            verifying_organization=(organization or MANUFACTURER)[:64],
            previous_versions=list(previous) or None,
            series_description="Radiology report",
            manufacturer_model_name="radai worklist",
            specific_character_set=CHARACTER_SET,
        )
    moment = report.signed_at.astimezone()
    sr.ContentDate = DA(moment.strftime("%Y%m%d"))
    sr.ContentTime = TM(moment.strftime("%H%M%S"))
    sr.VerifyingObserverSequence[0].VerificationDateTime = moment.strftime("%Y%m%d%H%M%S%z")
    declare_scheme(sr, RADAI_SCHEME, "radai result codes", "radai")
    return sr
