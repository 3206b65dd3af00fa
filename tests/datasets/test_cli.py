"""``radai datasets`` end to end, as a user runs it (click's runner, SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from radai.app import Radai
from radai.archive.models import Instance
from radai.auth.models import AuditEntry
from radai.cli import main
from tests.datasets.conftest import key_file, make_settings, store
from tests.fixtures.data import pneumonia_images_dir, pydicom_test_file


class Cli:
    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.data_dir = tmp_path / "data"
        self.env = {"RADAI_DATABASE_URL": db_url}

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(
            main, [args[0], args[1], "--data-dir", str(self.data_dir), *args[2:]], env=self.env
        )
        assert (result.exit_code == 0) == ok, result.output
        return result


def _radai(tmp_path: Path, db_url: str) -> Radai:
    radai = Radai(make_settings(tmp_path, db_url))
    radai.prepare()
    return radai


def test_create_add_label_freeze_show_export(tmp_path: Path, db_url: str) -> None:
    radai = _radai(tmp_path, db_url)
    try:
        chest = store(
            radai, "RG1_UNCI.dcm", "cli-cr", BodyPartExamined="CHEST", PatientSex="M", PatientAge="006Y"
        )
        store(radai, "CT_small.dcm", "cli-ct")
    finally:
        radai.stop()
    cli = Cli(tmp_path, db_url)
    cli(
        "datasets",
        "create",
        "chest-cr",
        "--description",
        "chest radiographs",
        "--purpose",
        "tests",
        "--source",
        "pydicom-data",
        "--inclusion-criteria",
        "CR chest",
        "--label-method",
        "consensus",
    )
    added = cli("datasets", "add", "chest-cr", "--query", "Modality=CR", "--query", "BodyPartExamined=CHEST")
    assert "chest-cr@1: 1 added (S0001–S0001), 0 already in it, 1 studies" in added.output
    refused = cli("datasets", "add", "chest-cr", "--query", "PatientWeight=70", ok=False)
    assert "PatientWeight is not an attribute radai can match studies on" in refused.output
    cli(
        "datasets",
        "label",
        "chest-cr",
        chest,
        "--code",
        "SCT:233604007",
        "--meaning",
        "Pneumonia",
        "--value",
        "present",
        "--method",
        "radiologist consensus",
        "--by",
        "two readers",
    )
    frozen = cli("datasets", "freeze", "chest-cr")
    assert "chest-cr@1 is frozen; manifest SHA-256 " in frozen.output
    again = cli(
        "datasets",
        "label",
        "chest-cr",
        "S0001",
        "--code",
        "SCT:233604007",
        "--value",
        "absent",
        "--method",
        "x",
        ok=False,
    )
    assert (
        "chest-cr@1 is frozen and cannot change; start version 2 from it with "
        "`radai datasets draft chest-cr`" in again.output
    )
    shown = cli("datasets", "show", "chest-cr@1")
    assert (
        "chest-cr@1: frozen, 1 studies" in shown.output
        and "| Pneumonia | SCT 233604007 | 1 | 0 | 0 | 0 |" in shown.output
    )
    manifest = json.loads(cli("datasets", "show", "chest-cr", "--manifest").stdout)
    assert manifest["studies"][0]["study_instance_uid"] == chest
    listed = cli("datasets", "list")
    assert "chest-cr" in listed.output and "frozen" in listed.output
    assert "1 of 1 studies as frozen" in cli("datasets", "verify", "chest-cr@1").output
    # De-identified unless --identified; the key comes from --key-file (or the settings).
    no_key = cli("datasets", "export", "chest-cr", str(tmp_path / "x"), ok=False)
    assert "no de-identification key" in no_key.output
    exported = cli(
        "datasets", "export", "chest-cr", str(tmp_path / "out"), "--key-file", str(key_file(tmp_path))
    )
    assert "exported chest-cr@1 (de-identified): 1 studies, 1 files" in exported.output
    assert chest not in (tmp_path / "out" / "labels.csv").read_text()
    cli("datasets", "export", "chest-cr@1", str(tmp_path / "ident"), "--identified")
    assert chest in (tmp_path / "ident" / "labels.csv").read_text()
    # The next version starts as a copy of the frozen one.
    assert (
        "chest-cr@2 is a draft with 1 studies copied from version 1"
        in cli("datasets", "draft", "chest-cr").output
    )
    assert (
        "chest-cr@2: 1 added (S0002–S0002)"
        in cli("datasets", "add", "chest-cr", "--query", "Modality=CT").output
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("study,code,label,method\nS0002,SCT:233604007,absent,report\n")
    assert "1 label(s) recorded" in cli("datasets", "label", "chest-cr", "--csv", str(labels)).output
    assert "chest-cr@2: 1 removed" in cli("datasets", "remove", "chest-cr@2", "S0002").output
    radai = _radai(tmp_path, db_url)
    try:
        with radai.db.session() as s:
            actions = sorted({a.action for a in s.scalars(select(AuditEntry))})
            actors = {a.actor for a in s.scalars(select(AuditEntry))}
    finally:
        radai.stop()
    assert actions == ["datasets.export", "datasets.export.identified"]
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")


def test_import_converts_images_and_records_their_labels(tmp_path: Path, db_url: str) -> None:
    cli = Cli(tmp_path, db_url)
    cli("datasets", "create", "imported")
    images = sorted(pneumonia_images_dir().glob("*.jpeg"))
    shutil.copy(pydicom_test_file("CT_small.dcm"), tmp_path / "ct.dcm")
    rows = tmp_path / "labels.csv"
    with rows.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "code", "meaning", "label", "method", "established_by", "sex", "birth_date"])
        w.writerow([str(images[0]), "SCT:233604007", "Pneumonia", "absent", "", "", "F", "20200101"])
        w.writerow([str(images[-1]), "SCT:233604007", "Pneumonia", "present", "", "", "M", "20190101"])
        w.writerow([str(images[-1]), "SCT:27925004", "Nodule", "uncertain", "report", "", "", ""])
        w.writerow(["ct.dcm", "SCT:233604007", "", "absent", "", "", "", ""])
    bad = tmp_path / "bad.csv"
    bad.write_text(f"file,code,meaning,label\n{images[0]},SCT:233604007,Pneumonia,maybe\n")
    refused = cli("datasets", "import", "imported", str(bad), "--label-method", "file name", ok=False)
    assert "line 2: a label is present, absent or uncertain" in refused.output
    done = cli(
        "datasets",
        "import",
        "imported",
        str(rows),
        "--label-method",
        "file name of the collection",
        "--labelled-by",
        "the collection",
        "--sop-class",
        "dx",
        "--modality",
        "DX",
        "--body-part",
        "CHEST",
        "--pixel-spacing",
        "0.15",
        "--patient-orientation",
        "L,F",
        "--study-date",
        "20240301",
    )
    assert "stored: 3  duplicates: 0  studies added: 3  already in the dataset: 0  labels: 4" in done.output
    shown = cli("datasets", "show", "imported")
    assert "imported@1: draft, 3 studies" in shown.output
    radai = _radai(tmp_path, db_url)
    try:
        with radai.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Instance)) == 3
            from radai.datasets.service import get_version

            version = get_version(s, name="imported")
            labels = {
                (e.key, lab.code_value): (lab.value, lab.method, lab.established_by)
                for e in version.studies
                for lab in e.labels
            }
    finally:
        radai.stop()
    assert labels == {
        ("S0001", "233604007"): ("absent", "file name of the collection", "the collection"),
        ("S0002", "233604007"): ("present", "file name of the collection", "the collection"),
        ("S0002", "27925004"): ("uncertain", "report", "the collection"),
        ("S0003", "233604007"): ("absent", "file name of the collection", "the collection"),
    }
