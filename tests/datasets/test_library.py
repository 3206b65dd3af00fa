"""The dataset library on SQLite and PostgreSQL: add, label, freeze, immutability, new versions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from radai.app import Radai
from radai.archive.models import Instance
from radai.archive.query import Match
from radai.datasets.manifest import load_manifest
from radai.datasets.models import DatasetLabel, DatasetStudy, DatasetVersion
from radai.datasets.service import (
    CodeRef,
    DatasetError,
    FrozenVersion,
    add_studies,
    create_dataset,
    find_studies,
    freeze,
    get_version,
    read_uid_file,
    remove_studies,
    set_card,
    set_label,
    start_draft,
    study_pks_for_uids,
)
from tests.datasets.conftest import store

PNEUMONIA = CodeRef("SCT", "233604007", "Pneumonia")
NODULE = CodeRef("SCT", "27925004", "Nodule")
CARD = {
    "purpose": "tests",
    "source": "pydicom test files",
    "inclusion_criteria": "three modalities",
    "label_method": "made up for the tests",
}


def _studies(radai: Radai) -> dict[str, str]:
    """A chest CR (boy of 7), a CT (woman of 45) and an MR (man born 1961, age from dates)."""
    return {
        "cr": store(
            radai,
            "RG1_UNCI.dcm",
            "lib-cr",
            PatientSex="M",
            PatientAge="007Y",
            PatientID="P-CR",
            BodyPartExamined="CHEST",
            StudyDate="20240301",
        ),
        "ct": store(
            radai,
            "CT_small.dcm",
            "lib-ct",
            PatientSex="F",
            PatientAge="045Y",
            PatientID="P-CT",
            StudyDate="20240301",
        ),
        "mr": store(
            radai,
            "MR_small.dcm",
            "lib-mr",
            PatientSex="M",
            PatientAge="",
            PatientID="P-MR",
            StudyDate="20240301",
        ),
    }


def _dataset(radai: Radai, uids: dict[str, str]) -> None:
    with radai.db.transaction() as s:
        version = create_dataset(s, name="chest-test", actor="tests", description="three studies", card=CARD)
        pks = study_pks_for_uids(s, [uids["cr"], uids["ct"], uids["mr"]])
        add_studies(s, version=version, study_pks=pks)
        for study, value in (("S0001", "present"), ("S0002", "absent"), (uids["mr"], "uncertain")):
            set_label(
                s,
                version=version,
                study=study,
                code=PNEUMONIA,
                value=value,
                method="consensus",
                established_by="two readers",
                actor="tests",
            )
        set_label(
            s,
            version=version,
            study="S0001",
            code=NODULE,
            value="absent",
            method="report",
            established_by="",
            actor="tests",
        )


def test_studies_are_found_by_query_and_by_uid_list(ds_radai: Radai, tmp_path: Path) -> None:
    uids = _studies(ds_radai)
    with ds_radai.db.transaction() as s:
        version = create_dataset(s, name="by-query", actor="tests")
        chest = find_studies(s, matches=[Match("Modality", "CR"), Match("BodyPartExamined", "CHEST")])
        added = add_studies(s, version=version, study_pks=chest)
        assert added.keys == ["S0001"] and added.already == 0
        # A study attribute with wildcard matching, then a UID list file.
        assert find_studies(
            s, matches=[Match("PatientName", "scanlon*"), Match("Modality", "CT")]
        ) == study_pks_for_uids(s, [uids["ct"]])
        listing = tmp_path / "uids.txt"
        listing.write_text(f"# studies\n{uids['ct']}\n\n{uids['mr']}  # the MR\n{uids['cr']}\n")
        again = add_studies(s, version=version, study_pks=study_pks_for_uids(s, read_uid_file(listing)))
        assert again.keys == ["S0002", "S0003"] and again.already == 1
        with pytest.raises(DatasetError, match="PatientWeight is not an attribute radai can match"):
            find_studies(s, matches=[Match("PatientWeight", "70")])
        with pytest.raises(DatasetError, match="SOPInstanceUID is an instance attribute"):
            find_studies(s, matches=[Match("SOPInstanceUID", "1.2.3")])
        with pytest.raises(DatasetError) as refused:
            study_pks_for_uids(s, [uids["ct"], "1.2.826.0.1.3680043.99999.1"])
        assert str(refused.value) == "entry 2: Study Instance UID (0020,000D) is not in the archive"
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{uids['ct']}\nnot-a-uid\n")
    with pytest.raises(DatasetError, match="line 2: not a Study Instance UID"):
        read_uid_file(bad)


def test_freezing_writes_file_hashes_labels_and_the_card(ds_radai: Radai) -> None:
    uids = _studies(ds_radai)
    with ds_radai.db.transaction() as s:
        version = create_dataset(s, name="unready", actor="tests", card={"purpose": "tests"})
        add_studies(s, version=version, study_pks=study_pks_for_uids(s, [uids["ct"]]))
        with pytest.raises(DatasetError, match="the dataset card needs its source"):
            freeze(s, version=version, storage=ds_radai.storage, actor="tests")
        set_card(s, version=version, **CARD)
        with pytest.raises(DatasetError, match="study S0001 of unready@1 has no label"):
            freeze(s, version=version, storage=ds_radai.storage, actor="tests")
    _dataset(ds_radai, uids)
    with ds_radai.db.transaction() as s:
        version = freeze(
            s, version=get_version(s, name="chest-test"), storage=ds_radai.storage, actor="tests"
        )
        stored = {i.sop_instance_uid: i for i in s.scalars(select(Instance))}
    manifest = load_manifest(version)
    assert version.manifest_sha256 == hashlib.sha256((version.manifest or "").encode()).hexdigest()
    assert [st["key"] for st in manifest["studies"]] == ["S0001", "S0002", "S0003"]
    assert [st["study_instance_uid"] for st in manifest["studies"]] == [uids["cr"], uids["ct"], uids["mr"]]
    for study in manifest["studies"]:
        for inst in study["instances"]:
            data = ds_radai.storage.path(stored[inst["sop_instance_uid"]].path).read_bytes()
            assert inst["sha256"] == hashlib.sha256(data).hexdigest() and inst["size"] == len(data)
    cr = manifest["studies"][0]
    assert cr["labels"] == [
        {
            "scheme": "SCT",
            "value": "233604007",
            "meaning": "Pneumonia",
            "label": "present",
            "method": "consensus",
            "established_by": "two readers",
        },
        {
            "scheme": "SCT",
            "value": "27925004",
            "meaning": "Nodule",
            "label": "absent",
            "method": "report",
            "established_by": "",
        },
    ]
    card = manifest["card"]
    assert (card["n_studies"], card["n_instances"], card["modalities"]) == (3, 3, {"CR": 1, "CT": 1, "MR": 1})
    assert card["findings"] == [
        {
            "scheme": "SCT",
            "value": "233604007",
            "meaning": "Pneumonia",
            "present": 1,
            "absent": 1,
            "uncertain": 1,
            "unlabelled": 0,
        },
        {
            "scheme": "SCT",
            "value": "27925004",
            "meaning": "Nodule",
            "present": 0,
            "absent": 1,
            "uncertain": 0,
            "unlabelled": 2,
        },
    ]
    assert card["label_methods"] == {"consensus": 3, "report": 1}
    # The MR has no Patient's Age: its age comes from the birth date (1961-04-17) and study date.
    assert card["subgroups"]["sex"] == {"F": 1, "M": 2}
    assert card["subgroups"]["age_band"] == {"40-64": 2, "5-9": 1}
    assert card["subgroups"]["institution"] == {"St Elsewhere General Hospital": 3}
    assert card["purpose"] == "tests" and card["source"] == "pydicom test files"


def test_a_frozen_version_cannot_change_and_a_new_draft_copies_it(ds_radai: Radai) -> None:
    uids = _studies(ds_radai)
    _dataset(ds_radai, uids)
    with ds_radai.db.transaction() as s:
        v1 = freeze(s, version=get_version(s, name="chest-test"), storage=ds_radai.storage, actor="tests")
        v1_pk, v1_sha = v1.id, v1.manifest_sha256
    # The service refuses every change to the frozen version...
    with ds_radai.db.transaction() as s:
        v1 = get_version(s, name="chest-test", number=1)
        for change in (
            lambda: set_label(
                s,
                version=v1,
                study="S0002",
                code=PNEUMONIA,
                value="present",
                method="x",
                established_by="",
                actor="tests",
            ),
            lambda: add_studies(s, version=v1, study_pks=[1]),
            lambda: remove_studies(s, version=v1, studies=["S0001"]),
            lambda: set_card(s, version=v1, purpose="other"),
            lambda: freeze(s, version=v1, storage=ds_radai.storage, actor="tests"),
        ):
            with pytest.raises(
                FrozenVersion, match=r"chest-test@1 is frozen.*radai datasets draft chest-test"
            ):
                change()
    # ...and so does the database, whoever writes.
    for statement in (
        f"UPDATE dataset_labels SET value = 'absent' WHERE version_pk = {v1_pk}",
        f"DELETE FROM dataset_labels WHERE version_pk = {v1_pk}",
        f"DELETE FROM dataset_studies WHERE version_pk = {v1_pk}",
        f"UPDATE dataset_studies SET key = 'S0099' WHERE version_pk = {v1_pk}",
        f"INSERT INTO dataset_labels (version_pk, entry_pk, code_value, code_scheme, code_meaning, value,"
        f" method, established_by, recorded_at, recorded_by) SELECT version_pk, id, 'X', 'SCT', 'X',"
        f" 'present', 'm', '', added_at, 't' FROM dataset_studies WHERE version_pk = {v1_pk}",
        f"UPDATE dataset_versions SET manifest = '{{}}' WHERE id = {v1_pk}",
        f"UPDATE dataset_versions SET state = 'draft' WHERE id = {v1_pk}",
        f"DELETE FROM dataset_versions WHERE id = {v1_pk}",
    ):
        with pytest.raises(DBAPIError, match="dataset version is frozen"), ds_radai.db.transaction() as s:
            s.execute(text(statement))
    # New data makes a new version: a draft copy of version 1.
    extra = store(ds_radai, "MR_small.dcm", "lib-extra", PatientSex="F", PatientAge="012Y", PatientID="P-4")
    with ds_radai.db.transaction() as s:
        v2 = start_draft(s, name="chest-test", actor="tests")
        assert v2.number == 2 and v2.purpose == "tests"
        with pytest.raises(DatasetError, match="chest-test@2 is still a draft"):
            start_draft(s, name="chest-test", actor="tests")
        set_label(
            s,
            version=v2,
            study="S0002",
            code=PNEUMONIA,
            value="present",
            method="adjudication",
            established_by="third reader",
            actor="tests",
        )
        assert add_studies(s, version=v2, study_pks=study_pks_for_uids(s, [extra])).keys == ["S0004"]
        set_label(
            s,
            version=v2,
            study="S0004",
            code=PNEUMONIA,
            value="absent",
            method="consensus",
            established_by="",
            actor="tests",
        )
        remove_studies(s, version=v2, studies=[uids["mr"]])
        v2 = freeze(s, version=v2, storage=ds_radai.storage, actor="tests")
    with ds_radai.db.session() as s:
        v1 = get_version(s, name="chest-test", number=1)
        assert v1.manifest_sha256 == v1_sha and v2.manifest_sha256 != v1_sha
        labels_v1 = {
            (lab.entry.key, lab.code_value): lab.value
            for lab in s.scalars(select(DatasetLabel).where(DatasetLabel.version_pk == v1.id))
        }
        keys_v2 = list(
            s.scalars(
                select(DatasetStudy.key)
                .join(DatasetVersion)
                .where(DatasetVersion.number == 2)
                .order_by(DatasetStudy.key)
            )
        )
    assert labels_v1[("S0002", "233604007")] == "absent"  # version 1 is as it was frozen
    assert keys_v2 == ["S0001", "S0002", "S0004"]  # keys stay with their studies, never reused
    v2_manifest = load_manifest(v2)
    assert json.dumps(v2_manifest["studies"][1]["labels"][0]).count("adjudication") == 1
