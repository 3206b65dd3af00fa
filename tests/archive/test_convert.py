"""``radai import --as-dicom``: valid DICOM (dciodvfy), exact pixels, attributes, grouping, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom import dcmread
from sqlalchemy import func, select

from radai.app import Radai
from radai.archive.convert import (
    DX_FOR_PRESENTATION,
    SECONDARY_CAPTURE,
    ConversionError,
    ImageAttributes,
    convert_and_store,
    image_to_dataset,
)
from radai.archive.models import Instance, Patient, Study
from radai.cli import main
from tests.fixtures.data import pneumonia_images_dir
from tests.fixtures.peers import require_program

CHEST = ImageAttributes(patient_id="P-1", patient_name="Doe^Jane", patient_sex="F",
                        patient_birth_date="20170304", study_description="Chest two views",
                        body_part="CHEST", modality="CR", view_position="PA", institution="City Hospital",
                        accession_number="ACC1")


def _radiograph() -> Path:
    return sorted(pneumonia_images_dir().glob("*.jpeg"))[0]


def _dciodvfy(path: Path) -> list[str]:
    proc = subprocess.run([require_program("dciodvfy"), str(path)], capture_output=True, text=True,
                          check=False)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]


def _write(ds: object, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)  # type: ignore[attr-defined]
    return path


def _colour_png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb, "RGB").save(path)
    return path


def test_secondary_capture_and_dx_are_valid_dicom(tmp_path: Path) -> None:
    sc = image_to_dataset(_radiograph(), CHEST, sop_class="sc", study_uid="1.2.826.0.1.1",
                          series_uid="1.2.826.0.1.2", instance_number=1)
    assert _dciodvfy(_write(sc, tmp_path / "sc.dcm")) == []
    dx_attrs = ImageAttributes(**{**CHEST.__dict__, "modality": "DX", "pixel_spacing": "0.139",
                                  "patient_orientation": "L,F"})
    dx = image_to_dataset(_radiograph(), dx_attrs, sop_class="dx", study_uid="1.2.826.0.1.1",
                          series_uid="1.2.826.0.1.3", instance_number=1)
    assert _dciodvfy(_write(dx, tmp_path / "dx.dcm")) == []
    colour = image_to_dataset(_colour_png(tmp_path), ImageAttributes(), sop_class="sc",
                              study_uid="1.2.826.0.1.4", series_uid="1.2.826.0.1.5", instance_number=1)
    assert _dciodvfy(_write(colour, tmp_path / "rgb.dcm")) == []
    back = dcmread(tmp_path / "sc.dcm")
    assert back.SOPClassUID == SECONDARY_CAPTURE
    assert dcmread(tmp_path / "dx.dcm").SOPClassUID == DX_FOR_PRESENTATION
    assert (back.PatientID, str(back.PatientName), back.PatientSex, back.PatientBirthDate) == (
        "P-1", "Doe^Jane", "F", "20170304")
    assert (back.Modality, back.BodyPartExamined, back.ViewPosition, back.InstitutionName) == (
        "CR", "CHEST", "PA", "City Hospital")
    assert back.LossyImageCompression == "01"  # the JPEG was lossy before it became DICOM


def test_pixels_are_kept_exactly(tmp_path: Path) -> None:
    gray = image_to_dataset(_radiograph(), CHEST, sop_class="sc", study_uid="1.2.3", series_uid="1.2.4",
                            instance_number=1)
    assert gray.PhotometricInterpretation == "MONOCHROME2" and gray.BitsStored == 8
    original = np.asarray(Image.open(_radiograph()).convert("L"))
    np.testing.assert_array_equal(dcmread(_write(gray, tmp_path / "g.dcm")).pixel_array, original)
    # An RGB image whose channels are equal is stored as MONOCHROME2 (a model's gray→RGB
    # replication gives back the same RGB input); a real colour image stays RGB.
    equal = tmp_path / "equal.png"
    Image.fromarray(np.repeat(original[..., None], 3, axis=2), "RGB").save(equal)
    assert image_to_dataset(equal, ImageAttributes(), sop_class="sc", study_uid="1.2.3", series_uid="1.2.4",
                            instance_number=1).PhotometricInterpretation == "MONOCHROME2"
    colour = _colour_png(tmp_path)
    rgb = image_to_dataset(colour, ImageAttributes(), sop_class="sc", study_uid="1.2.3", series_uid="1.2.4",
                           instance_number=1)
    assert rgb.PhotometricInterpretation == "RGB" and rgb.LossyImageCompression == "00"
    np.testing.assert_array_equal(dcmread(_write(rgb, tmp_path / "c.dcm")).pixel_array,
                                  np.asarray(Image.open(colour)))
    sixteen = tmp_path / "sixteen.png"
    values = (np.arange(64 * 32, dtype=np.uint16).reshape(64, 32) * 29) % 65535
    Image.fromarray(values).save(sixteen)
    deep = image_to_dataset(sixteen, ImageAttributes(), sop_class="sc", study_uid="1.2.3", series_uid="1.2.4",
                            instance_number=1)
    assert deep.BitsStored == 16
    np.testing.assert_array_equal(dcmread(_write(deep, tmp_path / "d.dcm")).pixel_array, values)


@pytest.mark.parametrize(("attrs", "message"), [
    ({"patient_sex": "X"}, "Patient's Sex (0010,0040) must be M, F or O"),
    ({"patient_birth_date": "2017-03-04"}, "Patient's Birth Date (0010,0030) must be a date YYYYMMDD"),
    ({"study_date": "20171332"}, "Study Date (0008,0020) must be a date YYYYMMDD"),
    ({"body_part": "chest wall and ribs"}, "Body Part Examined (0018,0015) must be at most 16"),
    ({"accession_number": "A" * 17}, "Accession Number (0008,0050) must be at most 16 characters"),
])
def test_bad_attributes_are_named(attrs: dict[str, str], message: str) -> None:
    with pytest.raises(ConversionError) as err:
        ImageAttributes(**attrs).checked()
    assert str(err.value).startswith(message)
    for value in attrs.values():
        assert value not in str(err.value)


def test_dx_needs_what_the_image_cannot_say() -> None:
    with pytest.raises(ConversionError, match=r"Imager Pixel Spacing \(0018,1164\) is required"):
        image_to_dataset(_radiograph(), ImageAttributes(patient_orientation="L,F"), sop_class="dx",
                         study_uid="1.2.3", series_uid="1.2.4", instance_number=1)
    with pytest.raises(ConversionError, match=r"Patient Orientation \(0020,0020\) is required"):
        image_to_dataset(_radiograph(), ImageAttributes(pixel_spacing="0.2"), sop_class="dx",
                         study_uid="1.2.3", series_uid="1.2.4", instance_number=1)


def _counts(radai: Radai) -> tuple[int, int, int]:
    with radai.db.session() as s:
        return (s.scalar(select(func.count()).select_from(Instance)) or 0,
                s.scalar(select(func.count()).select_from(Study)) or 0,
                s.scalar(select(func.count()).select_from(Patient)) or 0)


def test_csv_groups_studies_and_a_bad_file_stores_nothing(radai: Radai, tmp_path: Path) -> None:
    images = sorted(pneumonia_images_dir().glob("*.jpeg"))[:3]
    rows = tmp_path / "rows.csv"
    rows.write_text("file,patient_id,patient_name,sex,birth_date,study_date,accession,body_part,view_position\n"
                    + f"{images[0]},P1,Roe^Ann,F,20160101,20240105,ACC-1,CHEST,PA\n"
                    + f"{images[1]},P1,Roe^Ann,F,20160101,20240105,ACC-1,CHEST,AP\n"
                    + f"{images[2]},P2,Poe^Ed,M,20150202,20240106,ACC-2,CHEST,PA\n")
    broken = tmp_path / "broken.jpeg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with_broken = tmp_path / "with-broken.csv"
    with_broken.write_text(rows.read_text() + f"{broken},P3,,,,,,CHEST,PA\n")
    from radai.archive.convert import read_csv

    summary = convert_and_store(radai.archive, [], defaults=ImageAttributes(modality="CR"),
                                per_file=read_csv(with_broken, ImageAttributes(modality="CR")))
    assert summary.stored == 0 and [p for p, _ in summary.rejected] == [broken.resolve()]
    assert "cannot be read as an image" in summary.rejected[0][1]
    assert _counts(radai) == (0, 0, 0)
    summary = convert_and_store(radai.archive, [], defaults=ImageAttributes(modality="CR"),
                                per_file=read_csv(rows, ImageAttributes(modality="CR")))
    assert summary.stored == 3 and len(summary.studies) == 2 and not summary.rejected
    assert _counts(radai) == (3, 2, 2)
    stored = [dcmread(radai.archive.instance_path(i.sop_instance_uid)) for i in radai.archive.study_instances(
        next(iter(summary.studies)))]
    assert {ds.AccessionNumber for ds in stored} in ({"ACC-1"}, {"ACC-2"})


def test_cli_as_dicom_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(main, ["import", "--as-dicom", "--data-dir", str(data), "--patient-id", "P9",
                                  "--patient-sex", "M", "--modality", "DX", "--sop-class", "dx",
                                  "--pixel-spacing", "0.15,0.15", "--patient-orientation", "L,F",
                                  "--body-part", "CHEST", "--view-position", "AP", str(_radiograph())])
    assert result.exit_code == 0, result.output
    assert "stored: 1" in result.output
    bad = runner.invoke(main, ["import", "--as-dicom", "--data-dir", str(data), "--patient-sex", "Z",
                               str(_radiograph())])
    assert bad.exit_code != 0 and "Patient's Sex (0010,0040) must be M, F or O" in bad.output
    plain = runner.invoke(main, ["import", "--data-dir", str(data), "--modality", "CR", str(_radiograph())])
    assert plain.exit_code == 2 and "need --as-dicom" in plain.output
