"""Exports of a frozen version: de-identified by default (no original identifier left in any
byte), identified only when asked, always audited, never half-written."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from radai.app import Radai
from radai.archive.models import Instance
from radai.auth.models import AuditEntry
from radai.datasets.export import ACTION_DEIDENTIFIED, ACTION_IDENTIFIED, export_version
from radai.datasets.manifest import load_manifest
from radai.datasets.service import (
    CodeRef,
    DatasetError,
    DatasetNotFound,
    add_studies,
    create_dataset,
    freeze,
    get_version,
    set_label,
    study_pks_for_uids,
)
from radai.deid.engine import Profile
from radai.deid.pseudonym import PseudonymKey
from tests.datasets.conftest import IDENTITY, key_file, store

CARD = {
    "purpose": "export tests",
    "source": "pydicom test files",
    "inclusion_criteria": "two studies",
    "label_method": "made up",
}
PNEUMONIA = CodeRef("SCT", "233604007", "Pneumonia")
PROFILE = Profile.from_names(["retain-patient-characteristics", "retain-longitudinal-modified-dates"])


def _frozen(radai: Radai, images: dict[str, str], name: str = "export-test") -> dict[str, str]:
    """A frozen dataset of the given images (salt → file); returns salt → Study Instance UID."""
    uids = {
        salt: store(radai, image, salt, PatientSex="F", PatientAge="034Y") for salt, image in images.items()
    }
    with radai.db.transaction() as s:
        version = create_dataset(s, name=name, actor="tests", card=CARD)
        add_studies(s, version=version, study_pks=study_pks_for_uids(s, list(uids.values())))
        for i, uid in enumerate(uids.values()):
            set_label(
                s,
                version=version,
                study=uid,
                code=PNEUMONIA,
                value="present" if i % 2 else "absent",
                method="consensus",
                established_by="panel",
                actor="tests",
            )
        freeze(s, version=version, storage=radai.storage, actor="tests")
    return uids


def _originals(radai: Radai) -> list[bytes]:
    """Every identifying value of the stored studies: the identity given to them and all their UIDs."""
    values = [v.encode() for v in IDENTITY.values()]
    values += [v.split("^")[0].encode() for v in IDENTITY.values() if "^" in v]
    with radai.db.session() as s:
        for inst in s.scalars(select(Instance)):
            ds = dcmread(radai.storage.path(inst.path))
            values += [
                str(ds.StudyInstanceUID).encode(),
                str(ds.SeriesInstanceUID).encode(),
                str(ds.SOPInstanceUID).encode(),
            ]
    return values


def _audit(radai: Radai) -> list[AuditEntry]:
    with radai.db.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_export_is_deidentified_by_default(ds_radai: Radai, tmp_path: Path) -> None:
    uids = _frozen(ds_radai, {"exp-ct": "CT_small.dcm", "exp-mr": "MR_small.dcm"})
    key = PseudonymKey.from_file(key_file(tmp_path))
    out = tmp_path / "export"
    result = export_version(
        db=ds_radai.db,
        storage=ds_radai.storage,
        name="export-test",
        number=None,
        out_dir=out,
        actor="cli:tester",
        client="cli",
        key=key,
        profile=PROFILE,
    )
    assert (result.studies, result.files, result.identified) == (2, 2, False)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    dicom = [p for p in files if p.suffix == ".dcm"]
    assert {p.name for p in files} - {p.name for p in dicom} == {
        "labels.csv",
        "card.json",
        "card.md",
        "manifest.json",
    }
    # Not one byte of any exported file (DICOM, CSV, JSON, Markdown) holds an original identifier or UID.
    originals = _originals(ds_radai)
    for path in files:
        data = path.read_bytes()
        for value in originals:
            assert value not in data, f"{path.name} holds an original identifier"
    for original_uid in uids.values():
        assert original_uid not in str(out) and not any(original_uid in str(p) for p in files)
    # The DICOM files are de-identified (PS3.15 E.1.1) with sex and age kept for subgroups.
    exported = [dcmread(p) for p in dicom]
    for ds in exported:
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientSex == "F" and ds.PatientAge == "034Y"
    # Labels and manifest name the studies by their pseudonymised UIDs, as the files do.
    new_uids = {str(ds.StudyInstanceUID) for ds in exported}
    with (out / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["study_instance_uid"] for r in rows} == new_uids
    assert [(r["study_key"], r["code_value"], r["label"], r["method"]) for r in rows] == [
        ("S0001", "233604007", "absent", "consensus"),
        ("S0002", "233604007", "present", "consensus"),
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    with ds_radai.db.session() as s:
        frozen = get_version(s, name="export-test", number=1)
        frozen_sha = frozen.manifest_sha256
    assert manifest["deidentified"] is True and manifest["source_manifest_sha256"] == frozen_sha
    assert manifest["deidentification"]["options"] == [
        "retain-longitudinal-modified-dates",
        "retain-patient-characteristics",
    ]
    by_sop = {str(ds.SOPInstanceUID): p for ds, p in zip(exported, dicom, strict=True)}
    for study in manifest["studies"]:
        assert study["study_instance_uid"] in new_uids
        assert set(study["subgroups"]) == {"sex", "age_band", "manufacturer"}  # institution is removed
        for inst in study["instances"]:
            assert inst["sha256"] == hashlib.sha256(by_sop[inst["sop_instance_uid"]].read_bytes()).hexdigest()
    card = json.loads((out / "card.json").read_text())
    assert card["n_studies"] == 2 and "institution" not in card["subgroups"]
    assert "Manifest SHA-256" in (out / "card.md").read_text()
    # The same key gives the same pseudonyms: a second export is identical in its UIDs.
    again = tmp_path / "again"
    export_version(
        db=ds_radai.db,
        storage=ds_radai.storage,
        name="export-test",
        number=1,
        out_dir=again,
        actor="cli:tester",
        client="cli",
        key=key,
        profile=PROFILE,
    )
    assert (again / "labels.csv").read_text() == (out / "labels.csv").read_text()
    # Every export is audited with the original study UIDs.
    rows_audit = _audit(ds_radai)
    assert [(a.action, a.actor, a.study_uid, a.outcome) for a in rows_audit] == [
        (ACTION_DEIDENTIFIED, "cli:tester", uid, "allowed") for uid in list(uids.values()) * 2
    ]


def test_identified_export_needs_the_flag_and_copies_the_stored_files(
    ds_radai: Radai, tmp_path: Path
) -> None:
    uids = _frozen(ds_radai, {"id-ct": "CT_small.dcm", "id-mr": "MR_small.dcm"})
    with pytest.raises(DatasetError, match="needs a pseudonymisation key"):
        export_version(
            db=ds_radai.db,
            storage=ds_radai.storage,
            name="export-test",
            number=1,
            out_dir=tmp_path / "x",
            actor="cli:tester",
            client="cli",
        )
    assert not (tmp_path / "x").exists() and _audit(ds_radai) == []
    out = tmp_path / "identified"
    export_version(
        db=ds_radai.db,
        storage=ds_radai.storage,
        name="export-test",
        number=1,
        out_dir=out,
        actor="cli:tester",
        client="cli",
        identified=True,
    )
    with ds_radai.db.session() as s:
        stored = sorted(ds_radai.storage.path(i.path).read_bytes() for i in s.scalars(select(Instance)))
        manifest_text = get_version(s, name="export-test", number=1).manifest
    assert sorted(p.read_bytes() for p in out.rglob("*.dcm")) == stored
    assert (out / "manifest.json").read_text() == manifest_text
    assert IDENTITY["PatientName"].encode() in b"".join(stored)
    assert [(a.action, a.study_uid) for a in _audit(ds_radai)] == [
        (ACTION_IDENTIFIED, u) for u in uids.values()
    ]


def test_nothing_is_exported_when_a_file_is_refused_or_changed(ds_radai: Radai, tmp_path: Path) -> None:
    key = PseudonymKey.from_file(key_file(tmp_path))
    # A Secondary Capture may carry burned-in text: the Basic Profile refuses it, so nothing goes out.
    _frozen(ds_radai, {"sc-ct": "CT_small.dcm", "sc-rgb": "SC_rgb.dcm"}, name="with-sc")
    with pytest.raises(
        DatasetError,
        match=r"nothing exported: 1 instance\(s\) refused by de-identification "
        r"\(study S0002: .*Secondary Capture",
    ):
        export_version(
            db=ds_radai.db,
            storage=ds_radai.storage,
            name="with-sc",
            number=1,
            out_dir=tmp_path / "sc",
            actor="cli:tester",
            client="cli",
            key=key,
            profile=PROFILE,
        )
    assert list(tmp_path.glob("*sc*")) == [] and _audit(ds_radai) == []
    # A stored file that no longer has the SHA-256 of the manifest stops the export.
    _frozen(ds_radai, {"chg-mr": "MR_small.dcm"}, name="changed")
    with ds_radai.db.session() as s:
        version = get_version(s, name="changed", number=1)
        sop = load_manifest(version)["studies"][0]["instances"][0]["sop_instance_uid"]
        path = ds_radai.storage.path(
            s.scalar(select(Instance.path).where(Instance.sop_instance_uid == sop)) or ""
        )
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(
        DatasetError, match="study S0001: a stored file differs from the SHA-256 in the manifest"
    ):
        export_version(
            db=ds_radai.db,
            storage=ds_radai.storage,
            name="changed",
            number=1,
            out_dir=tmp_path / "changed",
            actor="cli:tester",
            client="cli",
            identified=True,
        )
    assert not (tmp_path / "changed").exists()
    # Drafts are not exported, and an export never lands in a folder that holds something.
    with ds_radai.db.transaction() as s:
        create_dataset(s, name="draft-only", actor="tests", card=CARD)
    with pytest.raises(DatasetNotFound, match="draft-only has no frozen version yet"):
        export_version(
            db=ds_radai.db,
            storage=ds_radai.storage,
            name="draft-only",
            number=None,
            out_dir=tmp_path / "d",
            actor="cli:tester",
            client="cli",
            identified=True,
        )
    with pytest.raises(DatasetError, match="draft-only@1 is a draft; only frozen versions are exported"):
        export_version(
            db=ds_radai.db,
            storage=ds_radai.storage,
            name="draft-only",
            number=1,
            out_dir=tmp_path / "d",
            actor="cli:tester",
            client="cli",
            identified=True,
        )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "note.txt").write_text("x")
    with pytest.raises(DatasetError, match="exists and is not an empty folder"):
        export_version(
            db=ds_radai.db,
            storage=ds_radai.storage,
            name="with-sc",
            number=1,
            out_dir=busy,
            actor="cli:tester",
            client="cli",
            identified=True,
        )
    assert [p.name for p in busy.iterdir()] == ["note.txt"]
