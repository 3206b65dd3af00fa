"""Every row of PS3.15 Table E.1-1 applied to a dataset that holds every attribute, per option."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from radai.deid import DeidentificationRefused, Option, Profile, PseudonymKey, Region, deidentify
from tests.deid.synthetic import (
    NESTED_ID,
    NESTED_NAME,
    NESTED_UID,
    PATIENT_DATE,
    PATIENT_ID,
    every_attribute_dataset,
    marker,
)

KEY = PseudonymKey(b"radai test key 0123456789abcdef")
OTHER_KEY = PseudonymKey(b"another test key 0123456789abcd")

OPTION_CASES = [pytest.param(frozenset(), id="basic")] + [
    pytest.param(frozenset({o}), id=o.cli_name) for o in Option if o is not Option.CLEAN_PIXEL_DATA
]


def roundtrip(ds: Dataset) -> Dataset:
    """Written as a PS3.10 file and read back: the output must be encodable as it is."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return dcmread(io.BytesIO(buf.getvalue()))


def resolved(action: str, vr: str, tag: int) -> str:
    """The alternative radai documents for each combined code (see radai.deid.engine)."""
    if action in ("Z/D", "X/D", "X/Z/D"):
        return "X" if vr == "SQ" and action != "Z/D" else "D"
    if action == "X/Z":
        # Sequences are Type 3 where they occur, except the Acquisition Context Sequence.
        return "X" if vr == "SQ" and tag != 0x00400555 else "Z"
    return {"X/Z/U*": "U"}.get(action, action)


def is_empty(value: object) -> bool:
    from pydicom.sequence import Sequence

    return value is None or value == "" or value == b"" or (isinstance(value, (list, Sequence)) and not value)


def check_nested_deidentified(item: Dataset, options: frozenset[Option]) -> None:
    uid = NESTED_UID if Option.RETAIN_UIDS in options else KEY.uid(NESTED_UID)
    assert item.ReferencedSOPInstanceUID == uid
    assert item.ReferencedSOPClassUID == CTImageStorage
    assert str(item.get("PersonName", "")) != NESTED_NAME
    assert item.get("PatientID", "") != NESTED_ID
    if Option.RETAIN_LONGITUDINAL_FULL_DATES in options:
        assert item.Date == PATIENT_DATE
    else:
        assert item.get("Date", "") != PATIENT_DATE


@pytest.mark.parametrize("options", OPTION_CASES)
def test_each_row_gets_its_action(options: frozenset[Option]) -> None:
    source, planted = every_attribute_dataset()
    out = roundtrip(deidentify(source, profile=Profile(options=options), key=KEY))
    shifts: set[int] = set()
    checked = 0
    for tag, (row, vr, original) in planted.rows.items():
        action = resolved(row.action(options), vr, tag)
        where = f"{row.tag} {row.name} ({action})"
        value = out[tag].value if tag in out else None
        if action == "X" or (action == "C" and vr in ("OB", "OW")):
            assert tag not in out, where
        elif action == "Z":
            assert tag in out and is_empty(value), where
        elif action == "K":
            assert tag in out, where
            if vr == "SQ":
                check_nested_deidentified(value[0], options)
            else:
                assert value == original, where
        elif action == "U":
            if vr == "UI":
                assert value == KEY.uid(str(original)), where
            else:
                check_nested_deidentified(value[0], options)
        elif action == "D":
            assert tag in out and not is_empty(value), where
            if vr == "SQ":
                check_nested_deidentified(value[0], options)
            elif vr == "UI":
                assert value == KEY.uid(str(original)), where
            else:
                assert value != original and marker(tag) not in str(value), where
        elif action == "C":
            assert tag in out, where
            if vr in ("DA", "DT"):
                assert Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options
                assert value[8:] == str(original)[8:], where
                moved = dt.date.fromisoformat(value[:8]) - dt.date.fromisoformat(str(original)[:8])
                shifts.add(moved.days)
            elif vr == "TM":
                assert value == original, where
            elif vr == "SQ":
                check_nested_deidentified(value[0], options)
            else:
                # Cleaned text keeps its own words but loses the identity it mentions.
                assert PATIENT_ID not in str(value), where
        else:
            pytest.fail(f"unexpected action {where}")
        checked += 1
    assert checked == len(planted.rows) > 600
    if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
        # One offset for the patient: every date moved by the same whole number of days.
        assert len(shifts) == 1 and -3650 <= shifts.pop() <= -1


@pytest.mark.parametrize("options", OPTION_CASES)
def test_no_identifying_byte_survives(options: frozenset[Option]) -> None:
    source, planted = every_attribute_dataset()
    buf = io.BytesIO()
    deidentify(source, profile=Profile(options=options), key=KEY).save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    leaked = []
    for tag, (row, vr, original) in planted.rows.items():
        if row.action(options) in ("K", "C") or vr in (
            "US",
            "SS",
            "UL",
            "SL",
            "FL",
            "FD",
            "DS",
            "IS",
            "AS",
            "TM",
        ):
            continue  # kept (or cleaned) on purpose, or numbers too short to tell apart from other bytes
        if vr == "UI":
            needle = str(original).encode()
        elif vr in ("DA", "DT"):
            needle = str(original)[:8].encode()
        else:
            needle = marker(tag).encode()
        if needle in data:
            leaked.append(row.tag)
    nested_uid = () if Option.RETAIN_UIDS in options else (NESTED_UID,)
    # Clean Graphics keeps overlay comments and curve text, cleaned of the patient's identity.
    graphics = () if Option.CLEAN_GRAPHICS in options else ("S60004000", "S50000030")
    for text in (
        PATIENT_ID,
        NESTED_NAME.split("^")[0],
        *nested_uid,
        NESTED_ID,
        "S00291001",
        "S00191010",
        *graphics,
        "S60003000",
        "SRCAE77",
    ):
        if text.encode() in data:
            leaked.append(text)
    assert leaked == []


def test_de_identification_is_recorded() -> None:
    source, _ = every_attribute_dataset()
    options = frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.CLEAN_DESCRIPTORS})
    out = roundtrip(deidentify(source, profile=Profile(options=options), key=KEY))
    assert out.PatientIdentityRemoved == "YES"
    assert [(i.CodeValue, i.CodingSchemeDesignator) for i in out.DeidentificationMethodCodeSequence] == [
        ("113100", "DCM"),
        ("113105", "DCM"),
        ("113107", "DCM"),
    ]
    assert (
        out.DeidentificationMethodCodeSequence[0].CodeMeaning == "Basic Application Confidentiality Profile"
    )
    assert "2026c" in out.DeidentificationMethod[0]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    basic = deidentify(source, profile=Profile(), key=KEY)
    assert basic.LongitudinalTemporalInformationModified == "REMOVED"
    full = deidentify(
        source, profile=Profile(options=frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES})), key=KEY
    )
    assert full.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert full.StudyDate == source.StudyDate


def test_file_meta_follows_the_new_instance() -> None:
    source, _ = every_attribute_dataset()
    out = deidentify(source, profile=Profile(), key=KEY)
    assert (
        out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == KEY.uid(str(source.SOPInstanceUID))
    )
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.SOPInstanceUID.startswith("2.25.") and len(out.SOPInstanceUID) <= 64


def test_private_attributes_go_unless_safe_and_retained() -> None:
    source, _ = every_attribute_dataset()
    basic = deidentify(source, profile=Profile(), key=KEY)
    assert not any(e.tag.is_private for e in basic)
    safe = deidentify(source, profile=Profile(options=frozenset({Option.RETAIN_SAFE_PRIVATE})), key=KEY)
    kept = {int(e.tag): e.value for e in safe if e.tag.is_private}
    # Siemens' B value is on the safe list (PS3.15 Table E.3.10-1); its creator stays with it.
    assert kept == {0x00190010: "SIEMENS MR HEADER", 0x0019100C: "1000"}


def test_same_key_same_pseudonyms_other_key_others() -> None:
    source, _ = every_attribute_dataset()
    profile = Profile(options=frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}))
    first = deidentify(source, profile=profile, key=KEY)
    again = deidentify(
        every_attribute_dataset()[0], profile=profile, key=PseudonymKey(b"radai test key 0123456789abcdef")
    )
    other = deidentify(source, profile=profile, key=OTHER_KEY)
    for keyword in (
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "PatientID",
        "StudyDate",
    ):
        assert first[keyword].value == again[keyword].value, keyword
        assert first[keyword].value != other[keyword].value, keyword
    assert first.PatientID != "S00100020" and len(first.PatientID) == 16


def test_input_is_left_untouched() -> None:
    source, _ = every_attribute_dataset()
    before = roundtrip(source)
    deidentify(source, profile=Profile(), key=KEY)
    assert source.PatientID == before.PatientID and source.StudyInstanceUID == before.StudyInstanceUID


def test_retain_uids_keeps_every_uid() -> None:
    source, _ = every_attribute_dataset()
    out = deidentify(source, profile=Profile(options=frozenset({Option.RETAIN_UIDS})), key=KEY)
    assert out.SOPInstanceUID == source.SOPInstanceUID
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == NESTED_UID


def test_dates_options_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        Profile(
            options=frozenset(
                {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
            )
        )
    with pytest.raises(ValueError, match="unknown de-identification option 'retain-everything'"):
        Profile.from_names(["retain-everything"])


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        PseudonymKey(b"short")


def test_clean_descriptors_removes_identity_from_free_text() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jonathan"
    ds.PatientID = "MRN4242"
    ds.PatientBirthDate = "19700402"
    ds.StudyDescription = "CT chest for Jonathan Doe MRN4242 born 02.04.1970"
    ds.SeriesDescription = "Axial 5mm"
    out = deidentify(ds, profile=Profile(options=frozenset({Option.CLEAN_DESCRIPTORS})), key=KEY)
    assert out.StudyDescription == "CT chest for born"
    assert out.SeriesDescription == "Axial 5mm"
    assert "SeriesDescription" not in deidentify(ds, profile=Profile(), key=KEY)


# --- burned-in annotation -------------------------------------------------------------


def small_image(**attrs: object) -> Dataset:
    import numpy as np
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.1042.5"
    ds.Modality = "CT"
    ds.PatientID = "P1"
    for name, value in attrs.items():
        setattr(ds, name, value)
    arr = np.full((8, 10), 900, dtype=np.uint16)
    ds.set_pixel_data(arr, "MONOCHROME2", 12, generate_instance_uid=False)
    return ds


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation"),
        ({"Modality": "US", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.6.1"}, "Ultrasound Image Storage"),
        ({"Modality": "OT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "Secondary Capture"),
        ({"Modality": "ES"}, "Modality ES"),
    ],
)
def test_burned_in_text_is_refused_without_regions(attrs: dict[str, object], reason: str) -> None:
    with pytest.raises(DeidentificationRefused, match=reason):
        deidentify(small_image(**attrs), profile=Profile(), key=KEY)


def test_regions_are_blanked_and_recorded() -> None:
    ds = small_image(BurnedInAnnotation="YES")
    ds.PixelData = bytes(ds.PixelData)  # plain values: 900 everywhere
    profile = Profile(pixel_regions=(Region(0, 0, 4, 2), Region(8, 6, 50, 50)))
    out = roundtrip(deidentify(ds, profile=profile, key=KEY))
    arr = out.pixel_array
    assert (arr[0:2, 0:4] == 0).all() and (arr[6:8, 8:10] == 0).all()
    assert (arr[2:6, :] == 900).all()
    assert out.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


def test_images_without_burned_in_text_keep_their_pixels() -> None:
    ds = small_image(BurnedInAnnotation="NO")
    out = deidentify(ds, profile=Profile(pixel_regions=(Region(0, 0, 4, 2),)), key=KEY)
    assert out.PixelData == ds.PixelData
    assert "113101" not in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


def test_region_outside_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Rows \(0028,0010\), Columns \(0028,0011\)"):
        deidentify(small_image(Modality="US"), profile=Profile(pixel_regions=(Region(40, 0, 2, 2),)), key=KEY)
    with pytest.raises(ValueError, match="X,Y,WIDTH,HEIGHT"):
        Region.parse("1,2,3")


def sr_with_text() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^Jonathan"
    ds.PatientID = "MRN4242"
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "Findings for Jonathan Doe (MRN4242): no nodule."
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ContentSequence = Sequence([item])
    ds.ContentSequence = Sequence([container])
    return ds


def test_structured_text_is_replaced_or_cleaned() -> None:
    basic = deidentify(sr_with_text(), profile=Profile(), key=KEY)
    assert basic.ContentSequence[0].ContentSequence[0].TextValue == "ANONYMIZED"
    cleaned = deidentify(
        sr_with_text(), profile=Profile(options=frozenset({Option.CLEAN_STRUCTURED_CONTENT})), key=KEY
    )
    assert cleaned.ContentSequence[0].ContentSequence[0].TextValue == "Findings for (): no nodule."
